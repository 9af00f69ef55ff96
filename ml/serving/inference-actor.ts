/**
 * The inference actor: loads one model version from the registry (sha256-verified), creates an
 * onnxruntime session, warms it up in `onStart` — the host subscribes the replica to its service
 * subject only after that, so only ready replicas get traffic — and serves `infer` messages
 * through a {@link DynamicBatcher}: one `session.run` per batch.
 *
 * The type is registered with `concurrency` > 1, so the host hands several messages to
 * `receive` at once: each enqueues its requests and resolves when its batch completes, which is
 * what lets requests from different messages share a batch. The mailbox still bounds what waits.
 */
import * as ort from 'onnxruntime-node';
import { Actor, Errors, defineActorType, errorCode, validate } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry } from '../registry/registry.ts';
import type { ModelVersion } from '../registry/schemas.ts';
import { ORT_TYPE, allocate, concatRows, numel, splitRows, type TensorData } from '../tensor.ts';
import { DynamicBatcher } from './batcher.ts';
import { withLargePayloads } from './large-payloads.ts';
import {
  INFERENCE_ACTOR_TYPE,
  InferenceArgs,
  InferenceMsg,
  type InferItem,
  type InferJsonReply,
  type InferReply,
  type ItemError,
  type ItemResult,
  type JsonItem,
  type JsonResult,
  type ReadyReply,
  type ReplicaStats,
} from './messages.ts';
import { decodeOip, decodePredict, decodeWire, encodeOip, encodePredict, encodeWire, type Decoded, type Outputs } from './codecs/index.ts';
import { modelView, startProcessor, type RequestProcessor } from './processor.ts';

/** A decoded request and its row count (what the batcher queues). */
interface Prepared extends Decoded {
  rows: number;
}

/** Messages handed to `receive` at once per replica (bounded in-flight batching window). */
export const INFERENCE_CONCURRENCY = 256;

export class InferenceActor extends Actor<InferenceMsg> {
  readonly #args: Required<InferenceArgs>;
  #session!: ort.InferenceSession;
  #mv!: ModelVersion;
  #batcher!: DynamicBatcher<Prepared, Outputs>;
  /** Whether the first dimension of every input and output is the batch dimension. */
  #batchable = false;
  #errors = 0;
  /** The version's pre/post-processing module, on a worker thread (processor.ts); none for most. */
  #processor: RequestProcessor | undefined;
  /** What clients send and get: the processor's public signature, else the model's. */
  #public!: ModelVersion['signature'];

  constructor(args: unknown) {
    super();
    const a = validate(InferenceArgs, args, 'inference actor args');
    this.#args = { maxBatchSize: 32, maxQueueDelayMs: 0, maxQueueRows: 4096, threads: 1, ...a };
  }

  override async onStart(): Promise<void> {
    const { model, version } = this.#args;
    const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
    // A single file's bytes, or the graph path of a package unpacked on this node (its external data beside it).
    const { version: loaded, model: source } = await registry.loadModel(model, version);
    this.#processor = await startProcessor(() => registry.store(), loaded);
    this.#public = loaded.signature;
    const mv = modelView(loaded);
    this.#mv = mv;
    const options: ort.InferenceSession.SessionOptions = { intraOpNumThreads: this.#args.threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' };
    this.#session = await (typeof source === 'string' ? ort.InferenceSession.create(source, options) : ort.InferenceSession.create(source, options));
    const sig = mv.signature;
    this.#batchable = [...sig.inputs, ...sig.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
    const maxBatchSize = this.#batchable ? this.#args.maxBatchSize : 1;
    this.#batcher = new DynamicBatcher<Prepared, Outputs>((items, rows) => this.#runBatch(items, rows), {
      maxBatchSize,
      maxQueueDelayMs: this.#args.maxQueueDelayMs,
      maxQueueRows: Math.max(this.#args.maxQueueRows, maxBatchSize),
      onFull: () => Errors.MAILBOX_FULL(this.ctx.actorId, this.#args.maxQueueRows),
    });
    // Warm up (first runs allocate and plan): a single row, then a full batch.
    for (const rows of this.#batchable ? [1, maxBatchSize] : [1]) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const t of sig.inputs) {
        const dims = t.shape.map((d, i) => (i === 0 && this.#batchable ? rows : d < 0 ? 1 : d));
        feeds[t.name] = new ort.Tensor(ORT_TYPE[t.datatype], allocate(t.datatype, numel(dims)), dims);
      }
      await this.#session.run(feeds);
    }
    this.ctx.log.info({ model, version, sha256: mv.sha256.slice(0, 12), batchable: this.#batchable, maxBatchSize, maxQueueDelayMs: this.#args.maxQueueDelayMs }, 'model loaded and warmed up');
  }

  override async onStop(): Promise<void> {
    this.#batcher?.close(Errors.ACTOR_STOPPED(this.ctx.actorId, 'stopping'));
    await this.#session?.release().catch(() => undefined);
    await this.#processor?.close().catch(() => undefined);
  }

  receive(m: InferenceMsg): unknown {
    switch (m.type) {
      case 'infer':
        return this.#infer(m.items);
      case 'infer-json':
        // Bodies larger than one NATS message are pulled before, and held after (large-payloads.ts).
        return withLargePayloads(this.ctx, m.items, (items) => this.#inferJson(items));
      case 'ready':
        return { ready: true, actorId: this.ctx.actorId, model: this.#mv.name, version: this.#mv.version } satisfies ReadyReply;
      case 'stats':
        return this.stats();
    }
  }

  stats(): ReplicaStats {
    const { inflight: _inflight, ...batcher } = this.#batcher.stats();
    return {
      actorId: this.ctx.actorId,
      nodeId: this.ctx.nodeId,
      model: this.#mv.name,
      version: this.#mv.version,
      ...batcher,
      errors: this.#errors,
      maxBatchSize: this.#batcher.maxBatchSize,
      maxQueueDelayMs: this.#batcher.maxQueueDelayMs,
    };
  }

  get #label(): string {
    return `${this.#mv.name} v${this.#mv.version}`;
  }

  /** A decoded request through the version's processor, when it has one: preprocess, batch and run, postprocess. */
  async #run(d: Decoded): Promise<{ value: Outputs; batch: number }> {
    const p = this.#processor;
    if (!p) return this.#submit(d);
    const { model, id } = await p.pre(d);
    let r: { value: Outputs; batch: number };
    try {
      r = await this.#submit(model);
    } catch (err) {
      p.forget(id);
      throw err;
    }
    return { value: await p.post(id, r.value), batch: r.batch };
  }

  /** Queues a decoded request in the batcher; resolves with its outputs once its batch ran. */
  #submit(d: Decoded): Promise<{ value: Outputs; batch: number }> {
    const p = d as Prepared;
    p.rows = 1;
    if (this.#batchable) {
      p.rows = d.shapes[0]![0]!;
      const sig = this.#mv.signature;
      for (let i = 1; i < d.shapes.length; i++) {
        if (d.shapes[i]![0] !== p.rows) throw MlErrors.BAD_INPUT(`input "${sig.inputs[i]!.name}" has ${d.shapes[i]![0]} rows where "${sig.inputs[0]!.name}" has ${p.rows}`);
      }
      if (p.rows === 0) throw MlErrors.BAD_INPUT('a request needs at least one row');
    }
    const key = this.#batchable ? (d.shapes.length === 1 && d.shapes[0]!.length === 2 ? String(d.shapes[0]![1]) : d.shapes.map((s) => s.slice(1).join('x')).join('|')) : '';
    return this.#batcher.submit(p, p.rows, key);
  }

  #failure(err: unknown): ItemError {
    const code = errorCode(err);
    if (!code || code === MlErrors.INFERENCE_FAILED.code) this.#errors++;
    return { error: { code: code ?? MlErrors.INFERENCE_FAILED.code, message: err instanceof Error ? err.message : String(err) } };
  }

  /** Binary requests (tensors as bytes, from NATS clients). */
  async #infer(items: InferItem[]): Promise<InferReply> {
    const sig = this.#public;
    const results = await Promise.all(
      items.map(async (item): Promise<ItemResult> => {
        try {
          const d = decodeWire(sig, this.#label, item.inputs, item.outputs);
          const { value, batch } = await this.#run(d);
          return { outputs: encodeWire(sig, value, d.outputs), batch };
        } catch (err) {
          return this.#failure(err);
        }
      }),
    );
    return { results, queueRows: this.#batcher.queueRows, actorId: this.ctx.actorId };
  }

  /** HTTP bodies forwarded by the gateway: parsed, checked and answered here. */
  async #inferJson(items: JsonItem[]): Promise<InferJsonReply> {
    const mv = this.#mv;
    const version = String(mv.version);
    const results = await Promise.all(
      items.map(async (item): Promise<JsonResult> => {
        try {
          const v1 = item.format === 'v1';
          const sig = this.#public;
          const d = v1 ? decodePredict(sig, this.#label, item.body) : decodeOip(sig, this.#label, item.body, item.headerLength);
          const { value, batch } = await this.#run(d);
          const out = v1 ? encodePredict(sig, mv.name, version, d, value) : encodeOip(sig, mv.name, version, d, value);
          return out.headerLength === undefined ? { body: out.body, batch } : { body: out.body, headerLength: out.headerLength, batch };
        } catch (err) {
          return this.#failure(err);
        }
      }),
    );
    return { results, queueRows: this.#batcher.queueRows, actorId: this.ctx.actorId, version: mv.version };
  }

  /** One `session.run` for the whole batch; splits the outputs back per request by rows. */
  async #runBatch(items: Prepared[], rows: number): Promise<Outputs[]> {
    const sig = this.#mv.signature;
    const feeds: Record<string, ort.Tensor> = {};
    sig.inputs.forEach((spec, i) => {
      const first = items[0]!;
      if (items.length === 1) {
        feeds[spec.name] = new ort.Tensor(ORT_TYPE[spec.datatype], first.inputs[i]! as never, first.shapes[i]!);
        return;
      }
      const dims = [rows, ...first.shapes[i]!.slice(1)];
      const out = concatRows(spec.datatype, items.map((it) => it.inputs[i]!), numel(dims));
      feeds[spec.name] = new ort.Tensor(ORT_TYPE[spec.datatype], out as never, dims);
    });
    let res: ort.InferenceSession.OnnxValueMapType;
    try {
      res = await this.#session.run(feeds);
    } catch (err) {
      throw MlErrors.INFERENCE_FAILED(`${this.#mv.name} v${this.#mv.version}`, (err as Error).message.split('\n')[0] ?? 'onnxruntime error');
    }
    const per: Outputs[] = items.map(() => new Map());
    for (const spec of sig.outputs) {
      const t = res[spec.name] as ort.Tensor | undefined;
      if (!t) continue;
      const data = t.data as TensorData;
      if (items.length === 1 || !this.#batchable) {
        per[0]!.set(spec.name, { data, dims: t.dims });
        continue;
      }
      const parts = splitRows(data, items.map((it) => it.rows));
      items.forEach((it, k) => per[k]!.set(spec.name, { data: parts[k]!, dims: [it.rows, ...t.dims.slice(1)] }));
    }
    return per;
  }
}

export const inferenceActorType = defineActorType({
  name: INFERENCE_ACTOR_TYPE,
  messages: InferenceMsg,
  create: (args) => new InferenceActor(args),
  kind: 'inference',
  mailboxCapacity: 1024,
  concurrency: INFERENCE_CONCURRENCY,
  // A model that cannot load will not load on a retry either: give up quickly.
  supervision: { maxRestarts: 3, withinMs: 60_000, backoffMs: 100 },
});
