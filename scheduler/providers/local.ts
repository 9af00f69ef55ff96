/**
 * The local provider: each launched node is a real node-agent process on this machine
 * (`nodes/main.ts --profile <pool> --node-id <id>`), its profile built from the catalogue pool
 * (labels pool, zone, spot, price, type) and passed in `SHOAL_NODES`. It registers in the nodes
 * bucket like any node, so membership sees it.
 *
 * Node ids are slots, `<pool>-auto-<k>` with k ≤ `slotsPerPool`: a fixed set, so the NATS server
 * can know every launched node's user in advance (per-node credentials), and a slot is reused
 * once its node is gone — the one free longest first, so a fresh id is preferred while there is
 * one.
 *
 * `preempt()` simulates a spot interruption the way a cloud does it: a `preemption-notice`
 * event, a `{ type: 'drain', deadlineMs }` on the node's control subject, then SIGKILL when the
 * notice runs out if the node has not left by itself.
 */
import { request, spawnChild, subjects, type Child, type Credential, type NatsConnection } from '../../cluster/index.ts';
import { poolOf, resolveCatalogue } from '../catalogue.ts';
import { SchedulerErrors } from '../errors.ts';
import type { Catalogue, ResolvedCatalogue, ResolvedPool } from '../types.ts';
import { NodePhase, ProviderEvents, type LaunchRequest, type Provider, type ProviderEvent, type ProviderNode } from './provider.ts';

export interface LocalProviderOptions {
  catalogue: Catalogue | ResolvedCatalogue;
  /** A connection allowed to send node control (the scheduler role's). */
  nc: NatsConnection;
  /** Environment for node processes: `SHOAL_NATS_URL`, log settings (their user and password come from `credential`). */
  env: NodeJS.ProcessEnv;
  /** Each node's own NATS credential (`nodeCredential(secret, nodeId)`). */
  credential: (nodeId: string) => Credential;
  /** Node-id slots per pool (`<pool>-auto-1` … `-<n>`). @default the pool's max */
  slotsPerPool?: number;
  /** Extra flags for every node (e.g. `--membership.heartbeatMs 200`). @default [] */
  args?: string[];
  /** @default 'shoal' */
  subjectPrefix?: string;
  /** Preemption notice. @default 30_000 */
  noticeMs?: number;
  /** SIGTERM → SIGKILL grace on terminate. @default 5000 */
  stopTimeoutMs?: number;
  /** Probe WebGPU on nodes whose type has GPUs. @default false (probing is slow on lavapipe) */
  probeGpu?: boolean;
  /** Each line a node prints. */
  onLine?: (nodeId: string, line: string) => void;
}

interface LocalNode {
  view: ProviderNode;
  child: Child;
  /** Set when we asked it to stop, so its exit is not reported as a failure. */
  ending: 'requested' | 'preempted' | undefined;
  killTimer: NodeJS.Timeout | undefined;
}

export class LocalProvider implements Provider {
  readonly name = 'local';
  readonly catalogue: ResolvedCatalogue;
  readonly #o: LocalProviderOptions;
  readonly #nodes = new Map<string, LocalNode>();
  readonly #events = new ProviderEvents();
  readonly #noticeMs: number;
  /** When each slot's last node went away (slots never used are not here). */
  readonly #freedAt = new Map<string, number>();

  constructor(opts: LocalProviderOptions) {
    this.catalogue = opts.catalogue.types instanceof Map ? (opts.catalogue as ResolvedCatalogue) : resolveCatalogue(opts.catalogue as Catalogue);
    this.#o = opts;
    this.#noticeMs = opts.noticeMs ?? 30_000;
    if (!(this.#noticeMs >= 0)) throw SchedulerErrors.BAD_OPTION('noticeMs', `must be ≥ 0, got ${this.#noticeMs}`);
  }

  async launch(req: LaunchRequest): Promise<ProviderNode> {
    const pool = this.#pool(req.pool);
    const live = [...this.#nodes.values()].filter((n) => n.view.pool === pool.name).length;
    if (live >= pool.max) throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `pool ${pool.name} is at its max (${pool.max})`);
    const nodeId = req.nodeId ?? this.#freeSlot(pool);
    if (this.#nodes.has(nodeId)) throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `node id ${nodeId} is taken`);
    let credential: Credential;
    try {
      credential = this.#o.credential(nodeId);
    } catch (err) {
      throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `no credential for ${nodeId}: ${err instanceof Error ? err.message : String(err)}`);
    }
    // A node gets its own credential and nothing it could derive others' from.
    const env: NodeJS.ProcessEnv = { ...this.#o.env, SHOAL_NATS_USER: credential.user, SHOAL_NATS_PASS: credential.pass };
    delete env.SHOAL_NATS_NODE_SECRET;
    const labels = { ...pool.labels, type: pool.type };
    const profile = { name: pool.name, labels, gpu: (this.#o.probeGpu ?? false) && (pool.nodeType.resources.gpu ?? 0) > 0, replicas: 1, workerThreads: 1 };
    let child: Child;
    try {
      child = spawnChild({
        name: `node:${nodeId}`,
        entry: 'nodes/main.ts',
        args: ['--profile', pool.name, '--node-id', nodeId, ...(this.#o.args ?? [])],
        env: { ...env, SHOAL_NODES: JSON.stringify([profile]) },
        onLine: (line) => this.#o.onLine?.(nodeId, line),
      });
    } catch (err) {
      throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', err instanceof Error ? err.message : String(err));
    }
    const view: ProviderNode = { nodeId, pool: pool.name, type: pool.type, zone: pool.zone, spot: pool.spot, phase: NodePhase.LAUNCHING, launchedAt: Date.now(), pricePerHour: pool.listPricePerHour, labels };
    const node: LocalNode = { view, child, ending: undefined, killTimer: undefined };
    this.#nodes.set(nodeId, node);
    this.#emit({ type: 'node-launching', node: { ...view }, at: Date.now() });
    child.ready.then(
      () => {
        if (view.phase !== NodePhase.LAUNCHING) return;
        view.phase = NodePhase.RUNNING;
        this.#emit({ type: 'node-ready', node: { ...view }, at: Date.now() });
      },
      (err: Error) => {
        if (node.ending) return;
        this.#emit({ type: 'launch-failed', pool: pool.name, nodeId, error: { code: SchedulerErrors.PROVIDER_FAILED.code, message: err.message }, at: Date.now() });
      },
    );
    void child.exited.then(() => {
      if (node.killTimer) clearTimeout(node.killTimer);
      view.phase = NodePhase.TERMINATED;
      this.#nodes.delete(nodeId);
      this.#freedAt.set(nodeId, Date.now());
      this.#emit({ type: 'node-terminated', node: { ...view }, at: Date.now(), reason: node.ending ?? 'failed' });
    });
    return { ...view };
  }

  async terminate(nodeId: string): Promise<void> {
    const n = this.#nodes.get(nodeId);
    if (!n) return;
    n.ending ??= 'requested';
    n.view.phase = NodePhase.TERMINATING;
    await n.child.stop(this.#o.stopTimeoutMs ?? 5000);
  }

  async list(): Promise<ProviderNode[]> {
    return [...this.#nodes.values()].map((n) => ({ ...n.view }));
  }

  onEvent(listener: (e: ProviderEvent) => void): () => void {
    return this.#events.on(listener);
  }

  /**
   * Simulates a spot interruption: notice event, drain request, SIGKILL after `noticeMs` if
   * the node is still there. Resolves when the node process is gone.
   */
  async preempt(nodeId: string, noticeMs = this.#noticeMs): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const n = this.#nodes.get(nodeId);
    if (!n) throw SchedulerErrors.UNKNOWN_NODE(nodeId);
    const at = Date.now();
    n.ending = 'preempted';
    n.view.phase = NodePhase.TERMINATING;
    this.#emit({ type: 'preemption-notice', node: { ...n.view }, at, terminateAt: at + noticeMs });
    n.killTimer = setTimeout(() => {
      if (n.child.alive()) n.child.process.kill('SIGKILL');
    }, noticeMs);
    const s = subjects(this.#o.subjectPrefix ?? 'shoal');
    // A node that does not answer (hung, or already gone) is simply killed when the notice ends.
    await request(this.#o.nc, s.nodeCtl(nodeId), { type: 'drain', deadlineMs: noticeMs }, { timeoutMs: Math.max(100, Math.min(noticeMs, 5000)) }).catch(() => undefined);
    return n.child.exited;
  }

  /** OS pid of a node's process (operators, tests). */
  pidOf(nodeId: string): number {
    const n = this.#nodes.get(nodeId);
    if (!n) throw SchedulerErrors.UNKNOWN_NODE(nodeId);
    return n.child.pid;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#nodes.keys()].map((id) => this.terminate(id)));
  }

  #emit(e: ProviderEvent): void {
    this.#events.emit(e);
  }

  /** A slot of the pool no live node uses: one never used, else the one free the longest. */
  #freeSlot(pool: ResolvedPool): string {
    const n = this.#o.slotsPerPool ?? pool.max;
    let best: string | undefined;
    let bestAt = Infinity;
    for (let k = 1; k <= n; k++) {
      const id = `${pool.name}-auto-${k}`;
      if (this.#nodes.has(id)) continue;
      const at = this.#freedAt.get(id) ?? -1;
      if (at < bestAt) {
        best = id;
        bestAt = at;
      }
    }
    if (!best) throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `pool ${pool.name} has no free node slot (${n} slots: ${pool.name}-auto-1…${n})`);
    return best;
  }

  #pool(name: string): ResolvedPool {
    return poolOf(this.catalogue, name);
  }
}
