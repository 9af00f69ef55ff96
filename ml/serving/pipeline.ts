/**
 * Running a pipeline model (ml/registry/pipeline-spec.ts) with Triton-ensemble semantics: each
 * step is sent as a binary `infer` message (nats-binary codec) to the step model's own service
 * subject, so it is batched on that model's replicas with everything else they serve; steps
 * start as soon as the tensors they read exist, so independent steps run concurrently.
 *
 * A step goes to the stable track of the step model's deployment (a pinned `version` must be
 * what that deployment serves, stable or canary). A step model that is not deployed, or whose
 * replicas do not answer, is SHOAL_ERR_MODEL_NOT_READY (503) naming the step and its model; an
 * error from a step keeps its code and status and names the step.
 */
import { Errors, ShoalError, errorCode, registeredErrorCodes, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { stepNames, type PipelineSpec, type PipelineStep } from '../registry/pipeline-spec.ts';
import { keys } from '../registry/schemas.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { WireTensor } from '../tensor.ts';
import { TrackState, isDeployment, type Deployment } from './canary.ts';
import type { InferItem, InferReply, ItemResult } from './messages.ts';

/** What one step gives back: its outputs (by step output name) and the rows of the batch it ran in. */
export interface StepResult {
  outputs: WireTensor[];
  batch: number;
}

/** Sends step `step` (index `i`) its inputs, asking for `outputs`. */
export type SendStep = (i: number, step: PipelineStep, inputs: WireTensor[], outputs: string[]) => Promise<StepResult>;

/** The DAG of a validated spec, ready to run many requests. */
export class PipelineRunner {
  readonly names: string[];
  /** Steps each step waits for (their outputs feed it). */
  readonly #deps: number[][];

  constructor(
    readonly label: string,
    readonly spec: PipelineSpec,
    readonly send: SendStep,
  ) {
    this.names = stepNames(spec);
    const producer = new Map<string, number>();
    spec.steps.forEach((s, i) => {
      for (const t of Object.values(s.output_map)) producer.set(t, i);
    });
    this.#deps = spec.steps.map((s) => [...new Set(Object.values(s.input_map).flatMap((t) => (producer.has(t) ? [producer.get(t)!] : [])))]);
  }

  /**
   * Runs one request: pipeline inputs (wire tensors by pipeline input name) → the pipeline's
   * outputs (by name), and the largest batch any step ran in. Fails with the first step error.
   */
  async run(inputs: readonly WireTensor[]): Promise<{ outputs: Map<string, WireTensor>; batch: number }> {
    const tensors = new Map<string, WireTensor>();
    for (const t of inputs) tensors.set(t.name, t);
    let batch = 0;
    const started: Promise<void>[] = [];
    const start = (i: number): Promise<void> => {
      started[i] ??= Promise.all(this.#deps[i]!.map(start)).then(async () => {
        const step = this.spec.steps[i]!;
        const stepInputs = Object.entries(step.input_map).map(([input, tensor]) => ({ ...tensors.get(tensor)!, name: input }));
        const r = await this.send(i, step, stepInputs, Object.keys(step.output_map));
        batch = Math.max(batch, r.batch);
        for (const [output, tensor] of Object.entries(step.output_map)) {
          const o = r.outputs.find((x) => x.name === output);
          if (!o) throw MlErrors.INFERENCE_FAILED(this.label, `step "${this.names[i]}" (model ${step.model}) gave no output "${output}"`);
          tensors.set(tensor, { ...o, name: tensor });
        }
      });
      return started[i]!;
    };
    await Promise.all(this.spec.steps.map((_, i) => start(i)));
    const outputs = new Map<string, WireTensor>();
    for (const o of this.spec.outputs) outputs.set(o.name, tensors.get(o.name)!);
    return { outputs, batch };
  }
}

/** An error a step answered, named after the step; its code (and so its HTTP status) kept. */
export function stepError(pipeline: string, step: string, model: string, err: { code: string; message: string }): ShoalError {
  const status = registeredErrorCodes().get(err.code)?.status ?? 500;
  return new ShoalError(err.code, `pipeline ${pipeline}, step "${step}" (model ${model}): ${err.message}`, status);
}

const DEPLOYMENT_TTL_MS = 1000;
/** Step requests in one message, at most (and at most this many bytes of tensor data). */
const MAX_ITEMS = 64;
const MAX_MESSAGE_BYTES = 1024 * 1024;
const STEP_TIMEOUT_MS = 30_000;
const ATTEMPTS = 4;

/**
 * Where the steps go: each step model's deployment (read from the registry's KV bucket, cached
 * for a second, read again when its service stops answering) and the binary `infer` message.
 */
export class StepSender {
  readonly #cache = new Map<string, { dep: Deployment | undefined; at: number }>();
  /** Step requests waiting for this turn's message to their service (coalesced, as the gateway does). */
  readonly #lanes = new Map<string, { items: InferItem[]; bytes: number; waiters: { resolve: (r: ItemResult) => void; reject: (e: unknown) => void }[] }>();
  readonly #decoder = new TextDecoder();

  constructor(
    readonly pipeline: string,
    readonly nc: NatsConnection,
    readonly subjects: Subjects,
    readonly registry: ModelRegistry,
    readonly names: string[],
  ) {}

  async #deployment(model: string, fresh: boolean): Promise<Deployment | undefined> {
    const c = this.#cache.get(model);
    if (c && !fresh && performance.now() - c.at < DEPLOYMENT_TTL_MS) return c.dep;
    const e = await this.registry.kv.get(keys.deployment(model));
    let dep: Deployment | undefined;
    if (e && e.operation === 'PUT' && e.value.length > 0) {
      const v = JSON.parse(this.#decoder.decode(e.value)) as unknown;
      if (isDeployment.Check(v)) dep = v;
    }
    this.#cache.set(model, { dep, at: performance.now() });
    return dep;
  }

  /** The service subject that serves step `i` now, or MODEL_NOT_READY naming the step. */
  async service(i: number, step: PipelineStep, fresh = false): Promise<string> {
    const name = this.names[i]!;
    const d = await this.#deployment(step.model, fresh);
    const why = (what: string) => MlErrors.MODEL_NOT_READY(step.model, `pipeline ${this.pipeline} needs it for step "${name}", and ${what}`);
    if (!d) throw why(`it is not deployed (deploy the step models first: shoal models deploy ${step.model})`);
    const tracks = [d.stable, ...(d.canary ? [d.canary] : [])].filter((t) => t.state === TrackState.READY);
    const t = step.version === undefined ? tracks.find((x) => x === d.stable) : tracks.find((x) => x.version === step.version);
    if (!t) throw why(step.version === undefined ? `its replicas are still starting` : `the step is pinned to v${step.version} but its deployment serves v${d.stable.version}${d.canary ? ` (canary v${d.canary.version})` : ''}`);
    return this.subjects.service(t.service);
  }

  /**
   * Queues one step request for `subject`; the requests queued in this event-loop turn travel as
   * one `infer` message (each still gets its own result), so a burst of pipeline requests costs
   * each step one message, not one per request.
   */
  #enqueue(subject: string, item: InferItem): Promise<ItemResult> {
    let bytes = 0;
    for (const t of item.inputs) bytes += t.data.length;
    let lane = this.#lanes.get(subject);
    if (lane && (lane.items.length >= MAX_ITEMS || lane.bytes + bytes > MAX_MESSAGE_BYTES)) {
      this.#lanes.delete(subject);
      void this.#flush(subject, lane);
      lane = undefined;
    }
    if (!lane) {
      const fresh = { items: [] as InferItem[], bytes: 0, waiters: [] as { resolve: (r: ItemResult) => void; reject: (e: unknown) => void }[] };
      this.#lanes.set(subject, fresh);
      setImmediate(() => {
        if (this.#lanes.get(subject) === fresh) this.#lanes.delete(subject);
        if (fresh.items.length > 0) void this.#flush(subject, fresh);
      });
      lane = fresh;
    }
    const l = lane;
    return new Promise<ItemResult>((resolve, reject) => {
      l.items.push(item);
      l.bytes += bytes;
      l.waiters.push({ resolve, reject });
    });
  }

  async #flush(subject: string, lane: { items: InferItem[]; waiters: { resolve: (r: ItemResult) => void; reject: (e: unknown) => void }[] }): Promise<void> {
    const items = lane.items.splice(0);
    const waiters = lane.waiters.splice(0);
    if (items.length === 0) return;
    try {
      const reply = await request<InferReply>(this.nc, subject, { type: 'infer', items }, { timeoutMs: STEP_TIMEOUT_MS });
      waiters.forEach((w, i) => {
        const r = reply.results[i];
        if (r) w.resolve(r);
        else w.resolve({ error: { code: MlErrors.INFERENCE_FAILED.code, message: 'the step answered no result for this request' } });
      });
    } catch (err) {
      for (const w of waiters) w.reject(err);
    }
  }

  /** A {@link SendStep} over NATS: retried while nobody answers (replicas restarting), then 503. */
  readonly send: SendStep = async (i, step, inputs, outputs) => {
    const name = this.names[i]!;
    let lastNoResponders: unknown;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const subject = await this.service(i, step, attempt > 0);
      let r: ItemResult;
      try {
        r = await this.#enqueue(subject, { inputs, outputs });
      } catch (err) {
        const code = errorCode(err);
        if (code === Errors.NO_RESPONDERS.code || code === Errors.ACTOR_NOT_FOUND.code || code === Errors.ACTOR_STOPPED.code) {
          lastNoResponders = err;
          await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
          continue;
        }
        throw stepError(this.pipeline, name, step.model, { code: code ?? MlErrors.INFERENCE_FAILED.code, message: (err as Error).message });
      }
      if ('error' in r) throw stepError(this.pipeline, name, step.model, r.error);
      return { outputs: r.outputs, batch: r.batch };
    }
    throw MlErrors.MODEL_NOT_READY(step.model, `pipeline ${this.pipeline} needs it for step "${name}", and no replica answers (${(lastNoResponders as Error).message})`);
  };
}

/** Before a pipeline is deployed: every step model must serve (pinned versions included), or MODEL_NOT_READY naming the first that does not. */
export async function checkStepsServing(pipeline: string, spec: PipelineSpec, nc: NatsConnection, subjects: Subjects, registry: ModelRegistry): Promise<void> {
  const sender = new StepSender(pipeline, nc, subjects, registry, stepNames(spec));
  for (const [i, step] of spec.steps.entries()) await sender.service(i, step, true);
}
