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
import { ORT_TYPE, allocate, checkAgainst, firstNonFinite, fromBytes, numel, toBytes, type TensorSpec, type TypedArray, type WireTensor } from '../tensor.ts';
import { DynamicBatcher } from './batcher.ts';
import { INFERENCE_ACTOR_TYPE, InferenceArgs, InferenceMsg, type InferItem, type InferReply, type ItemResult, type ReadyReply, type ReplicaStats } from './messages.ts';

interface Prepared {
  /** Input tensors in signature order, as typed arrays. */
  inputs: TypedArray[];
  shapes: number[][];
  rows: number;
  outputs: string[] | undefined;
}

type Outputs = Map<string, { data: TypedArray; dims: readonly number[] }>;

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

  constructor(args: unknown) {
    super();
    const a = validate(InferenceArgs, args, 'inference actor args');
    this.#args = { maxBatchSize: 32, maxQueueDelayMs: 0, maxQueueRows: 4096, threads: 1, ...a };
  }

  override async onStart(): Promise<void> {
    const { model, version } = this.#args;
    const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
    const { version: mv, bytes } = await registry.loadArtifact(model, version);
    this.#mv = mv;
    this.#session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: this.#args.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
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
  }

  receive(m: InferenceMsg): unknown {
    switch (m.type) {
      case 'infer':
        return this.#infer(m.items);
      case 'ready':
        return { ready: true, actorId: this.ctx.actorId, model: this.#mv.name, version: this.#mv.version } satisfies ReadyReply;
      case 'stats':
        return this.stats();
    }
  }

  stats(): ReplicaStats {
    const s = this.#batcher.stats();
    return {
      actorId: this.ctx.actorId,
      nodeId: this.ctx.nodeId,
      model: this.#mv.name,
      version: this.#mv.version,
      batches: s.batches,
      requests: s.requests,
      rows: s.rows,
      avgBatchSize: s.avgBatchSize,
      maxBatchSeen: s.maxBatchSeen,
      queueRows: s.queueRows,
      errors: this.#errors,
      maxBatchSize: this.#batcher.maxBatchSize,
      maxQueueDelayMs: this.#batcher.maxQueueDelayMs,
    };
  }

  async #infer(items: InferItem[]): Promise<InferReply> {
    const results = await Promise.all(
      items.map(async (item): Promise<ItemResult> => {
        try {
          const p = this.#prepare(item);
          const key = this.#batchable ? p.shapes.map((s) => s.slice(1).join('x')).join('|') : '';
          const { value, batch } = await this.#batcher.submit(p, p.rows, key);
          return { outputs: this.#encodeOutputs(value, p.outputs), batch };
        } catch (err) {
          const code = errorCode(err);
          if (!code || code === MlErrors.INFERENCE_FAILED.code) this.#errors++;
          return { error: { code: code ?? MlErrors.INFERENCE_FAILED.code, message: err instanceof Error ? err.message : String(err) } };
        }
      }),
    );
    return { results, queueRows: this.#batcher.queueRows, actorId: this.ctx.actorId };
  }

  /** Checks one request against the signature and decodes its tensors. */
  #prepare(item: InferItem): Prepared {
    const sig = this.#mv.signature;
    const byName = new Map<string, WireTensor>();
    for (const t of item.inputs) {
      if (byName.has(t.name)) throw MlErrors.BAD_INPUT(`input "${t.name}" given twice`);
      byName.set(t.name, t);
    }
    for (const name of byName.keys()) if (!sig.inputs.some((s) => s.name === name)) throw MlErrors.BAD_INPUT(`model ${this.#mv.name} v${this.#mv.version} has no input "${name}" (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`);
    const inputs: TypedArray[] = [];
    const shapes: number[][] = [];
    let rows = 1;
    sig.inputs.forEach((spec: TensorSpec, i) => {
      const t = byName.get(spec.name);
      if (!t) throw MlErrors.BAD_INPUT(`missing input "${spec.name}"`);
      checkAgainst(spec, t.datatype, t.shape);
      const data = fromBytes(spec.name, spec.datatype, t.data, numel(t.shape));
      const bad = firstNonFinite(spec.datatype, data);
      if (bad >= 0) throw MlErrors.BAD_INPUT(`input "${spec.name}": element ${bad} is not finite`);
      if (this.#batchable) {
        if (i === 0) rows = t.shape[0]!;
        else if (t.shape[0] !== rows) throw MlErrors.BAD_INPUT(`input "${spec.name}" has ${t.shape[0]} rows where "${sig.inputs[0]!.name}" has ${rows}`);
      }
      inputs.push(data);
      shapes.push([...t.shape]);
    });
    if (this.#batchable && rows === 0) throw MlErrors.BAD_INPUT('a request needs at least one row');
    if (item.outputs) for (const o of item.outputs) if (!sig.outputs.some((s) => s.name === o)) throw MlErrors.BAD_INPUT(`model ${this.#mv.name} v${this.#mv.version} has no output "${o}"`);
    return { inputs, shapes, rows, outputs: item.outputs };
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
      const out = allocate(spec.datatype, numel(dims));
      let off = 0;
      for (const it of items) {
        const a = it.inputs[i]!;
        (out as Float32Array).set(a as Float32Array, off);
        off += a.length;
      }
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
      const data = t.data as TypedArray;
      if (items.length === 1 || !this.#batchable) {
        per[0]!.set(spec.name, { data, dims: t.dims });
        continue;
      }
      const rowSize = rows > 0 ? data.length / rows : 0;
      let r = 0;
      items.forEach((it, k) => {
        per[k]!.set(spec.name, { data: data.subarray(r * rowSize, (r + it.rows) * rowSize) as TypedArray, dims: [it.rows, ...t.dims.slice(1)] });
        r += it.rows;
      });
    }
    return per;
  }

  #encodeOutputs(outs: Outputs, wanted: string[] | undefined): WireTensor[] {
    const out: WireTensor[] = [];
    for (const spec of this.#mv.signature.outputs) {
      if (wanted && !wanted.includes(spec.name)) continue;
      const o = outs.get(spec.name);
      if (!o) continue;
      out.push({ name: spec.name, datatype: spec.datatype, shape: [...o.dims], data: toBytes(o.data) });
    }
    return out;
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
