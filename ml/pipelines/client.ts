/**
 * Pipelines from any process (CLI, gateway, tests): apply and manual runs go to the pipelines
 * service by request; specs and run records are read from KV.
 */
import { request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { ApplyResult } from './service.ts';
import { PipelineStore, type RunRecord } from './store.ts';

export class PipelineClient {
  readonly #nc: NatsConnection;
  readonly #s: Subjects;
  #store: PipelineStore | undefined;

  constructor(nc: NatsConnection, subjects: Subjects) {
    this.#nc = nc;
    this.#s = subjects;
  }

  apply(spec: unknown): Promise<ApplyResult> {
    return request<ApplyResult>(this.#nc, this.#s.pipelines('apply'), { spec }, { timeoutMs: 30_000, idempotent: true });
  }

  /** A manual trigger: a new run, or coalesced into the run in flight. */
  run(name: string, reason?: string): Promise<{ run: number; coalesced: boolean }> {
    return request(this.#nc, this.#s.pipelines('run'), { name, ...(reason ? { reason } : {}) }, { timeoutMs: 15_000 });
  }

  async #kv(): Promise<PipelineStore> {
    this.#store ??= await PipelineStore.open(this.#nc, this.#s.prefix);
    return this.#store;
  }

  /** The pipeline's runs, oldest first; undefined when no pipeline has that name. */
  async runs(name: string): Promise<RunRecord[] | undefined> {
    const store = await this.#kv();
    if (!(await store.getSpec(name))) return undefined;
    return store.runs(name);
  }

  async spec(name: string) {
    return (await this.#kv()).getSpec(name);
  }
}
