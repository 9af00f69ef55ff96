/**
 * The pipeline actor: serves a `pipeline` model version (ml/registry/pipeline-spec.ts) on its
 * own service subject, exactly like an inference replica from the outside — the same `infer`,
 * `infer-json`, `ready` and `stats` messages, the same codecs against the version's (derived)
 * signature — but instead of a session it runs the DAG: each step a binary `infer` message to
 * the step model's replicas (pipeline.ts). It holds no model and batches nothing itself; every
 * step is batched on its own model's replicas. Deployed by `ModelDeployments` when a version's
 * format is `pipeline`.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Actor, defineActorType, errorCode, validate } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { stepNames } from '../registry/pipeline-spec.ts';
import type { ModelVersion } from '../registry/schemas.ts';
import { fromBytes, toBytes, type Datatype, type TensorData, type TypedArray, type WireTensor } from '../tensor.ts';
import type { Decoded, Outputs } from './codecs/index.ts';
import { withLargePayloads } from './large-payloads.ts';
import { InferenceMsg, type InferItem, type InferJsonReply, type InferReply, type ItemError, type JsonItem, type ReadyReply, type ReplicaStats } from './messages.ts';
import { PipelineRunner, StepSender } from './pipeline.ts';
import { serveJson, serveWire, type RequestRunner } from './serve-requests.ts';

export const PIPELINE_ACTOR_TYPE = 'shoal-pipeline';

/** Spawn arguments of a `shoal-pipeline` actor. */
export const PipelineArgs = Type.Object({ model: Type.String({ minLength: 1 }), version: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
export type PipelineArgs = Static<typeof PipelineArgs>;

export class PipelineActor extends Actor<InferenceMsg> {
  readonly #args: PipelineArgs;
  #mv!: ModelVersion;
  #runner!: PipelineRunner;
  #requests = 0;
  #errors = 0;
  #inflight = 0;

  constructor(args: unknown) {
    super();
    this.#args = validate(PipelineArgs, args, 'pipeline actor args');
  }

  override async onStart(): Promise<void> {
    const { model, version } = this.#args;
    const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
    const mv = await registry.version(model, version);
    if (mv.format !== 'pipeline' || !mv.pipeline) throw MlErrors.BAD_MODEL(model, `v${version} is not a pipeline (format ${mv.format})`);
    this.#mv = mv;
    const label = `${model} v${version}`;
    const names = stepNames(mv.pipeline);
    const sender = new StepSender(label, this.ctx.nc, this.ctx.subjects, registry, names);
    this.#runner = new PipelineRunner(label, mv.pipeline, sender.send);
    this.ctx.log.info({ model, version, steps: names }, 'pipeline serving');
  }

  receive(m: InferenceMsg): unknown {
    switch (m.type) {
      case 'infer':
        return this.#infer(m.items);
      case 'infer-json':
        return withLargePayloads(this.ctx, m.items, (items) => this.#inferJson(items));
      case 'ready':
        return {
          ready: true,
          actorId: this.ctx.actorId,
          model: this.#mv.name,
          version: this.#mv.version,
          // Nothing runs here: each step batches, warms up and runs on its own model's replicas.
          batching: { batched: false, maxBatchSize: 0, reason: 'a pipeline: each step is batched on its own model\'s replicas' },
          warmup: { mode: 'off', ok: true },
          instances: 1,
          intraOpThreads: 1,
        } satisfies ReadyReply;
      case 'stats':
        return {
          actorId: this.ctx.actorId,
          nodeId: this.ctx.nodeId,
          model: this.#mv.name,
          version: this.#mv.version,
          batches: this.#requests,
          requests: this.#requests,
          rows: this.#requests,
          avgBatchSize: 1,
          maxBatchSeen: 1,
          queueRows: this.#inflight,
          errors: this.#errors,
          maxBatchSize: 1,
          maxQueueDelayMs: 0,
          instances: 1,
          inflight: this.#inflight,
          busySessions: 0,
        } satisfies ReplicaStats;
    }
  }

  get #label(): string {
    return `${this.#mv.name} v${this.#mv.version}`;
  }

  /** One decoded request through the DAG; its outputs as the codecs take them. */
  async #run(d: Decoded): Promise<{ value: Outputs; batch: number }> {
    const sig = this.#mv.signature;
    this.#requests++;
    this.#inflight++;
    try {
      const inputs: WireTensor[] = sig.inputs.map((spec, i) => ({ name: spec.name, datatype: spec.datatype, shape: d.shapes[i]!, data: toBytes(d.inputs[i] as TensorData) }));
      const { outputs, batch } = await this.#runner.run(inputs);
      const value: Outputs = new Map();
      for (const spec of sig.outputs) {
        const t = outputs.get(spec.name)!;
        value.set(spec.name, { data: fromBytes(spec.name, spec.datatype as Datatype, t.data) as TypedArray, dims: t.shape });
      }
      return { value, batch };
    } finally {
      this.#inflight--;
    }
  }

  #failure(err: unknown): ItemError {
    const code = errorCode(err);
    if (code !== MlErrors.BAD_INPUT.code) this.#errors++;
    return { error: { code: code ?? MlErrors.INFERENCE_FAILED.code, message: err instanceof Error ? err.message : String(err) } };
  }

  /** What the codecs need to serve this actor's requests (serve-requests.ts). */
  get #serving(): RequestRunner {
    return { signature: this.#mv.signature, label: this.#label, name: this.#mv.name, version: this.#mv.version, run: (d) => this.#run(d), failure: (err) => this.#failure(err) };
  }

  async #infer(items: InferItem[]): Promise<InferReply> {
    const results = await serveWire(this.#serving, items);
    return { results, queueRows: this.#inflight, actorId: this.ctx.actorId };
  }

  async #inferJson(items: JsonItem[]): Promise<InferJsonReply> {
    const results = await serveJson(this.#serving, items);
    return { results, queueRows: this.#inflight, actorId: this.ctx.actorId, version: this.#mv.version };
  }
}

export const pipelineActorType = defineActorType({
  name: PIPELINE_ACTOR_TYPE,
  messages: InferenceMsg,
  create: (args) => new PipelineActor(args),
  kind: 'inference',
  mailboxCapacity: 1024,
  // Each message waits on its steps' replicas: many at once, as the inference actor.
  concurrency: 256,
  supervision: { maxRestarts: 3, withinMs: 60_000, backoffMs: 100 },
});
