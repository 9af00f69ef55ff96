/**
 * The inference actor: loads one model version from the registry (sha256-verified), starts its
 * sessions — `instances` onnxruntime sessions, each on its own worker thread (session-pool.ts),
 * so a run never stops this node's event loop — decides how to batch (batch-axis.ts: along the
 * one symbolic dimension every input and output shares, or unbatched), warms up in `onStart`
 * (the host subscribes the replica to its service subject only after that, so only ready
 * replicas get traffic) and serves `infer` messages through a {@link DynamicBatcher}: one run
 * per batch, up to `instances` batches at once.
 *
 * Warm-up (Triton's `model_warmup`): `sample` runs the request stored with the version on every
 * session and fails the start when onnxruntime refuses it (naming the inputs and onnxruntime's
 * words); `synthetic` runs made-up inputs (dynamic dimensions 1, zeros) and, when the model
 * refuses those, serves anyway with a warning in its status; `off` runs nothing.
 *
 * The type is registered with `concurrency` > 1, so the host hands several messages to
 * `receive` at once: each enqueues its requests and resolves when its batch completes, which is
 * what lets requests from different messages share a batch. The mailbox still bounds what waits.
 *
 * Explain requests (a forwarded body with `explain` set) go to the replica's explainer
 * (explain.ts), which runs its perturbed rows on the same sessions, outside the batcher.
 */
import {
  Actor,
  Errors,
  ROOT_CONTEXT,
  SpanKind,
  activeTrace,
  defineActorType,
  endSpan,
  errorCode,
  linkTo,
  startSpan,
  tracing,
  validate,
  withSpan,
  type Span,
  type SpanLink,
  type TraceContext,
} from '../../cluster/index.ts';
import { replicaMetrics, type ReplicaMetrics } from './serving-metrics.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry, specShape } from '../registry/registry.ts';
import type { ModelVersion, Signature } from '../registry/schemas.ts';
import { ORT_TYPE, allocate, numel, type Datatype, type TensorData, type TensorSpec } from '../tensor.ts';
import { DynamicBatcher } from './batcher.ts';
import { batchingInfo, concatAlong, planBatching, splitAlong, type BatchPlan, type BatchingInfo } from './batch-axis.ts';
import { withLargePayloads } from './large-payloads.ts';
import {
  INFERENCE_ACTOR_TYPE,
  InferenceArgs,
  InferenceMsg,
  type InferItem,
  type InferJsonReply,
  type InferReply,
  type ItemError,
  type JsonItem,
  type ReadyReply,
  type ReplicaStats,
  type WarmupMode,
  type WarmupReport,
} from './messages.ts';
import { serveJson, serveWire, type RequestRunner } from './serve-requests.ts';
import { PIPELINE_DEPTH, SessionPool, keepSpareSessionWorkers, type PoolTensor, type SessionValueInfo } from './session-pool.ts';
import { decodeOip, type Decoded, type Outputs } from './codecs/index.ts';
import { modelView, startProcessor, type RequestProcessor } from './processor.ts';
import { EntityFeatures, featureLineage } from './entity-features.ts';
import { replicaPredictionLog } from '../monitoring/replica-log.ts';
import { replicaProfiles } from '../monitoring/records.ts';
import { replicaPiiFields, withPiiExcluded } from '../governance/privacy/pii.ts';
import { ReplicaExplainer } from './explain.ts';
import { readFile } from 'node:fs/promises';
import type { PredictionLog } from '../monitoring/prediction-log.ts';

/** A decoded request and its row count (what the batcher queues). */
interface Prepared extends Decoded {
  rows: number;
  /** The request's span context (the replica's receive span), only when tracing. */
  trace?: TraceContext;
}

/** Messages handed to `receive` at once per replica (bounded in-flight batching window). */
export const INFERENCE_CONCURRENCY = 256;

/** The spawn arguments with their defaults. */
interface Resolved {
  model: string;
  version: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
  maxQueueRows: number;
  instances: number;
  intraOpThreads: number;
  warmup: WarmupMode | undefined;
  batching: boolean | undefined;
  batchAxes: Record<string, number> | undefined;
  monitoring: InferenceArgs['monitoring'];
  spareWorkers: number | undefined;
}

export class InferenceActor extends Actor<InferenceMsg> {
  readonly #args: Resolved;
  #pool!: SessionPool;
  #mv!: ModelVersion;
  /** The version's signature, with the session's symbolic dimension names where the record has none. */
  #sig!: Signature;
  #plan: BatchPlan = { batched: false, reason: 'not loaded' };
  #batching!: BatchingInfo;
  #warmup: WarmupReport = { mode: 'off', ok: true };
  #batcher!: DynamicBatcher<Prepared, Outputs>;
  /** Set when a session worker died: the next message crashes the actor, so its supervisor restarts it. */
  #broken: Error | undefined;
  #errors = 0;
  /** The version's pre/post-processing module, on a worker thread (processor.ts); none for most. */
  #processor: RequestProcessor | undefined;
  /** What clients send and get: the processor's public signature, else the model's. */
  #public!: ModelVersion['signature'];
  /** Predictions by entity, for a version that records its feature views (entity-features.ts). */
  #entities: RequestRunner['entities'];
  /** Batch sizes and run times in the node's registry (serving-metrics.ts). */
  #metrics: ReplicaMetrics | undefined;
  /** The prediction log (deployment option `monitoring`), off the hot path (ml/monitoring). */
  #log: PredictionLog | undefined;
  /** Explain requests (explain.ts), made at the first one. */
  #explainer: ReplicaExplainer | undefined;
  #registry!: ModelRegistry;

  constructor(args: unknown) {
    super();
    const a = validate(InferenceArgs, args, 'inference actor args');
    this.#args = {
      model: a.model,
      version: a.version,
      maxBatchSize: a.maxBatchSize ?? 32,
      maxQueueDelayMs: a.maxQueueDelayMs ?? 0,
      maxQueueRows: a.maxQueueRows ?? 4096,
      instances: a.instances ?? 1,
      intraOpThreads: a.intraOpThreads ?? a.threads ?? 1,
      warmup: a.warmup,
      batching: a.batching,
      batchAxes: a.batchAxes,
      monitoring: a.monitoring,
      spareWorkers: a.spareWorkers,
    };
  }

  override async onStart(): Promise<void> {
    try {
      await this.#load();
    } catch (err) {
      // The host calls onStop only for a started actor: end the workers a failed start began
      // (a refused sample warm-up, a model onnxruntime cannot load) before saying so.
      await this.onStop();
      throw err;
    }
  }

  /** Loads the version: its processor, its sessions, the batching plan; then warms up. */
  async #load(): Promise<void> {
    const { model, version, instances, intraOpThreads } = this.#args;
    const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
    // A single file's bytes, or the graph path of a package unpacked on this node (its external data beside it).
    const { version: loaded, model: source } = await registry.loadModel(model, version);
    this.#registry = registry;
    const byEntity = await EntityFeatures.open(this.ctx.nc, this.ctx.subjects.prefix, loaded);
    this.#entities = byEntity?.decoder(loaded.signature, this.#label);
    this.#processor = await startProcessor(() => registry.store(), loaded);
    this.#public = loaded.signature;
    const mv = modelView(loaded);
    this.#mv = mv;
    try {
      this.#pool = await SessionPool.create(source, {
        instances,
        intraOpThreads,
        onExit: (err) => {
          this.#broken = err;
          // This instance is done (its supervisor starts a new one): stop reporting its queue.
          this.#metrics?.remove();
          this.ctx.log.error({ model, version, err: err.message }, 'a session worker died; the replica restarts');
          // A crashed actor is not stopped (no onStop): end the other sessions' workers now.
          void this.#pool?.close().catch(() => undefined);
        },
      });
    } catch (err) {
      throw MlErrors.MODEL_NOT_READY(this.#label, `onnxruntime cannot load it: ${(err as Error).message}`);
    }
    this.#sig = withSessionDims(mv.signature, this.#pool.inputs, this.#pool.outputs);
    if (!this.#processor) this.#public = this.#sig;
    this.#plan = planBatching(this.#sig, { ...(this.#args.batching !== undefined ? { batching: this.#args.batching } : {}), ...(this.#args.batchAxes ? { batchAxes: this.#args.batchAxes } : {}) });
    const maxBatchSize = this.#plan.batched ? this.#args.maxBatchSize : 1;
    this.#batching = batchingInfo(this.#sig, this.#plan, maxBatchSize);
    this.#batcher = new DynamicBatcher<Prepared, Outputs>((items, rows) => this.#runBatch(items, rows), {
      maxBatchSize,
      maxQueueDelayMs: this.#args.maxQueueDelayMs,
      // Each session takes the next batch while it runs one (session-pool.ts).
      maxInflight: instances * PIPELINE_DEPTH,
      maxQueueRows: Math.max(this.#args.maxQueueRows, maxBatchSize),
      onFull: () => Errors.MAILBOX_FULL(this.ctx.actorId, this.#args.maxQueueRows),
    });
    this.#metrics = replicaMetrics(this.ctx.metrics, { model, version, stats: () => this.#batcher.stats() });
    this.#warmup = await this.#warmUp(registry, this.#args.warmup ?? (mv.sample ? 'sample' : 'synthetic'));
    // Pre-warm (scale-to-zero tracks): a booted worker for the next replica that starts on this node.
    if (this.#args.spareWorkers) keepSpareSessionWorkers(this.#args.spareWorkers);
    const log = { model, version, sha256: mv.sha256.slice(0, 12), batching: this.#batching, instances, intraOpThreads, warmup: this.#warmup.mode, maxQueueDelayMs: this.#args.maxQueueDelayMs };
    const spec = this.#args.monitoring;
    if (spec) {
      // PII fields (signature, feature views) are never logged nor profiled: PII implies logExclude (ml/governance/privacy).
      const logSpec = withPiiExcluded(spec, replicaPiiFields(loaded, byEntity?.input));
      // The reference's schema names the columns of the replica's own profile (none: records only).
      const reference = !replicaProfiles(logSpec) ? undefined : await registry.loadReference(await registry.version(model, version)).catch(() => undefined);
      this.#log = replicaPredictionLog({ nc: this.ctx.nc, subjects: this.ctx.subjects, model, version, spec: logSpec, log: this.ctx.log, replica: this.ctx.actorId, reference });
    }
    if (this.#warmup.warning) this.ctx.log.warn({ ...log, warning: this.#warmup.warning }, 'model loaded; warm-up failed, serving anyway');
    else this.ctx.log.info(log, 'model loaded and warmed up');
  }

  override async onStop(): Promise<void> {
    this.#metrics?.remove();
    this.#metrics = undefined;
    this.#batcher?.close(Errors.ACTOR_STOPPED(this.ctx.actorId, 'stopping'));
    await this.#pool?.close().catch(() => undefined);
    await this.#processor?.close().catch(() => undefined);
    await this.#log?.close().catch(() => undefined);
  }

  receive(m: InferenceMsg): unknown {
    switch (m.type) {
      case 'infer':
        if (this.#broken) throw this.#broken;
        return this.#infer(m.items);
      case 'infer-json':
        if (this.#broken) throw this.#broken;
        // Bodies larger than one NATS message are pulled before, and held after (large-payloads.ts).
        return withLargePayloads(this.ctx, m.items, (items) => this.#inferJson(items, m.hedge === true));
      case 'ready':
        return {
          ready: true,
          actorId: this.ctx.actorId,
          model: this.#mv.name,
          version: this.#mv.version,
          batching: this.#batching,
          warmup: this.#warmup,
          instances: this.#args.instances,
          intraOpThreads: this.#args.intraOpThreads,
        } satisfies ReadyReply;
      case 'stats':
        return this.stats();
    }
  }

  stats(): ReplicaStats {
    return {
      actorId: this.ctx.actorId,
      nodeId: this.ctx.nodeId,
      model: this.#mv.name,
      version: this.#mv.version,
      ...this.#batcher.stats(),
      errors: this.#errors,
      maxBatchSize: this.#batcher.maxBatchSize,
      maxQueueDelayMs: this.#batcher.maxQueueDelayMs,
      instances: this.#args.instances,
      busySessions: this.#pool.busy,
      ...(this.#log ? { predictionLog: this.#log.stats() } : {}),
    };
  }

  get #label(): string {
    return `${this.#args.model} v${this.#args.version}`;
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
    if (tracing.on) {
      const t = activeTrace();
      if (t) p.trace = t;
    }
    const plan = this.#plan;
    if (!plan.batched) return this.#batcher.submit(p, 1, '');
    const axes = plan.inputAxes;
    const sig = this.#sig;
    p.rows = d.shapes[0]![axes[0]!]!;
    for (let i = 1; i < d.shapes.length; i++) {
      const r = d.shapes[i]![axes[i]!];
      if (r !== p.rows) throw MlErrors.BAD_INPUT(`input "${sig.inputs[i]!.name}" has ${r} rows (dimension ${axes[i]}) where "${sig.inputs[0]!.name}" has ${p.rows} (dimension ${axes[0]})`);
    }
    if (p.rows === 0) throw MlErrors.BAD_INPUT('a request needs at least one row');
    // Requests whose other dimensions agree can share a batch.
    const key = d.shapes.length === 1 && d.shapes[0]!.length === 2 && axes[0] === 0 ? String(d.shapes[0]![1]) : d.shapes.map((s, i) => s.map((x, k) => (k === axes[i] ? '*' : x)).join('x')).join('|');
    return this.#batcher.submit(p, p.rows, key);
  }

  #failure(err: unknown): ItemError {
    const code = errorCode(err);
    if (!code || code === MlErrors.INFERENCE_FAILED.code) this.#errors++;
    return { error: { code: code ?? MlErrors.INFERENCE_FAILED.code, message: err instanceof Error ? err.message : String(err) } };
  }

  /** What the codecs need to serve this replica's requests (serve-requests.ts). */
  get #runner(): RequestRunner {
    const entities = this.#entities;
    return { signature: this.#public, label: this.#label, name: this.#mv.name, version: this.#mv.version, run: (d) => this.#run(d), failure: (err) => this.#failure(err), log: this.#log, ...(entities ? { entities } : {}) };
  }

  /** Binary requests (tensors as bytes, from NATS clients). */
  async #infer(items: InferItem[]): Promise<InferReply> {
    const results = await serveWire(this.#runner, items);
    return { results, queueRows: this.#batcher.queueRows, actorId: this.ctx.actorId };
  }

  /** HTTP bodies forwarded by the gateway: parsed, checked and answered here. */
  async #inferJson(items: JsonItem[], hedge: boolean): Promise<InferJsonReply> {
    // A hedged copy is answered but not logged: the copy first sent logs it (monitoring counts each request once).
    const runner = hedge ? { ...this.#runner, log: undefined } : this.#runner;
    if (hedge) this.#log?.countHedged(items.length);
    const results = items.some((it) => it.explain) ? await this.#withExplain(items, runner) : await serveJson(runner, items);
    return { results, queueRows: this.#batcher.queueRows, actorId: this.ctx.actorId, version: this.#mv.version };
  }

  /** A message with explain requests: those to the explainer, the others served as usual, answers in order. */
  async #withExplain(items: JsonItem[], runner: RequestRunner): Promise<InferJsonReply['results']> {
    const plain = items.filter((it) => !it.explain);
    const served = plain.length > 0 ? serveJson(runner, plain) : Promise.resolve([]);
    const explained = Promise.all(items.map((it) => (it.explain ? this.#explain(it) : undefined)));
    const [p, e] = await Promise.all([served, explained]);
    let k = 0;
    return e.map((r) => r ?? p[k++]!);
  }

  #explain(item: JsonItem): ReturnType<ReplicaExplainer['explain']> {
    this.#explainer ??= new ReplicaExplainer({
      label: this.#label,
      name: this.#mv.name,
      version: this.#mv.version,
      signature: this.#public,
      model: this.#sig,
      processor: !!this.#processor,
      run: (feeds) => this.#pool.run(feeds),
      entities: this.#entities,
      // Read again at the first explain (the graph check), not kept in memory next to the sessions.
      modelBytes: async () => {
        const { model } = await this.#registry.loadModel(this.#args.model, this.#args.version);
        return typeof model === 'string' ? new Uint8Array(await readFile(model)) : model;
      },
      reference: () => this.#registry.loadReference(this.#mv),
      columns: featureLineage(this.#mv)?.columns,
      failure: (err) => this.#failure(err),
    });
    return this.#explainer.explain(item);
  }

  /** The feeds of a batch: each input of the one request as it came, or the requests' inputs concatenated along its batch axis. */
  #feeds(items: readonly Decoded[]): Record<string, PoolTensor> {
    const feeds: Record<string, PoolTensor> = {};
    const plan = this.#plan;
    this.#sig.inputs.forEach((spec, i) => {
      const type = ORT_TYPE[spec.datatype];
      if (items.length === 1) {
        feeds[spec.name] = { type, data: items[0]!.inputs[i]! as TensorData, dims: items[0]!.shapes[i]! };
        return;
      }
      const { data, dims } = concatAlong(
        items.map((it) => it.inputs[i]!),
        items.map((it) => it.shapes[i]!),
        plan.batched ? plan.inputAxes[i]! : 0,
      );
      feeds[spec.name] = { type, data, dims };
    });
    return feeds;
  }

  /** One run for the whole batch (on an idle session); splits the outputs back per request along their batch axes. */
  async #runBatch(items: Prepared[], rows: number): Promise<Outputs[]> {
    const spans = tracing.on ? this.#batchSpans(items, rows) : undefined;
    try {
      const per = await this.#runAndSplit(items, rows, spans?.run);
      if (spans) endSpan(spans.batch);
      return per;
    } catch (err) {
      if (spans) endSpan(spans.batch, err);
      throw err;
    }
  }

  async #runAndSplit(items: Prepared[], rows: number, runSpan: Span | undefined): Promise<Outputs[]> {
    let res: Record<string, PoolTensor>;
    const m = this.#metrics;
    const t0 = m ? performance.now() : 0;
    try {
      res = await this.#pool.run(this.#feeds(items));
    } catch (err) {
      const e = MlErrors.INFERENCE_FAILED(this.#label, (err as Error).message);
      if (runSpan) endSpan(runSpan, e);
      throw e;
    }
    if (runSpan) endSpan(runSpan);
    if (m) {
      m.runSeconds.observe((performance.now() - t0) / 1000);
      m.batchSize.observe(rows);
    }
    const per: Outputs[] = items.map(() => new Map());
    const plan = this.#plan;
    this.#sig.outputs.forEach((spec, j) => {
      const t = res[spec.name];
      if (!t) return;
      if (items.length === 1 || !plan.batched) {
        per[0]!.set(spec.name, { data: t.data, dims: t.dims });
        return;
      }
      let parts: { data: TensorData; dims: number[] }[];
      try {
        parts = splitAlong(t.data, t.dims, plan.outputAxes[j]!, items.map((it) => it.rows));
      } catch (err) {
        throw MlErrors.INFERENCE_FAILED(this.#label, `output "${spec.name}" [${t.dims.join(', ')}] does not split back into the batch's requests: ${(err as Error).message}`);
      }
      parts.forEach((part, k) => per[k]!.set(spec.name, { data: part.data, dims: part.dims }));
    });
    return per;
  }

  /**
   * The batch's span — a child of its first traced request, linked to the others (a batch has
   * one parent but serves many requests) — and the onnxruntime run's inside it. None when no
   * request in the batch carries a trace.
   */
  #batchSpans(items: Prepared[], rows: number): { batch: Span; run: Span } | undefined {
    let parent: TraceContext | undefined;
    const links: SpanLink[] = [];
    // Requests of one message share its receive span: link each other span once, never the parent.
    const seen = new Set<string>();
    for (const it of items) {
      if (!it.trace) continue;
      const l = linkTo(it.trace);
      if (!l || seen.has(l.context.spanId)) continue;
      seen.add(l.context.spanId);
      if (!parent) parent = it.trace;
      else links.push(l);
    }
    if (!parent) return undefined;
    const attributes = { 'shoal.model': this.#args.model, 'shoal.model.version': this.#args.version, 'shoal.actor.id': this.ctx.actorId, 'shoal.batch.rows': rows, 'shoal.batch.requests': items.length };
    const batch = startSpan('inference.batch', { kind: SpanKind.INTERNAL, parent, attributes, ...(links.length ? { links } : {}) });
    const run = startSpan('onnxruntime.run', { kind: SpanKind.INTERNAL, parent: withSpan(batch, ROOT_CONTEXT), attributes: { 'shoal.model': this.#args.model, 'shoal.model.version': this.#args.version, 'shoal.batch.rows': rows } });
    return { batch, run };
  }

  // ---- warm-up ----------------------------------------------------------------------------------

  async #warmUp(registry: ModelRegistry, mode: WarmupMode): Promise<WarmupReport> {
    if (mode === 'off') return { mode, ok: true };
    if (mode === 'sample') return this.#warmUpSample(registry);
    // Synthetic: zeros, every dynamic dimension 1 (the batch axis 1, then a full batch). A model
    // that refuses such inputs may serve real ones fine: a warning, not a failed start.
    const sizes = this.#plan.batched && this.#batcher.maxBatchSize > 1 ? [1, this.#batcher.maxBatchSize] : [1];
    for (const rows of sizes) {
      const shapes = this.#sig.inputs.map((t, i) => t.shape.map((d, k) => (this.#plan.batched && k === this.#plan.inputAxes[i] ? rows : d < 0 ? 1 : d)));
      try {
        await this.#pool.runEach(() => {
          const d: Decoded = { inputs: this.#sig.inputs.map((t, i) => synthetic(t.datatype, numel(shapes[i]!))), shapes, outputs: undefined, id: undefined };
          return this.#feeds([d]);
        });
      } catch (err) {
        return {
          mode,
          ok: false,
          warning: `synthetic warm-up failed (${describeInputs(this.#sig.inputs, shapes)}): onnxruntime: ${(err as Error).message}; serving anyway — register a sample request (shoal models register … --sample request.json) to warm up with a real one`,
        };
      }
    }
    return { mode, ok: true };
  }

  /**
   * The stored sample request, on every session: a refusal fails the start, naming the inputs and
   * onnxruntime's words. With a processor the sample is a request in the public signature and goes
   * through its preprocess first, as a client's would.
   */
  async #warmUpSample(registry: ModelRegistry): Promise<WarmupReport> {
    const bytes = await registry.loadSample(this.#mv);
    if (!bytes) throw MlErrors.MODEL_NOT_READY(this.#label, 'warmup is "sample" but the version has no sample request (register one with --sample request.json, or deploy with warmup "synthetic" or "off")');
    const { instances } = this.#args;
    // One decoded copy per run: a run takes its inputs' buffers.
    const firsts = await this.#sampleInputs(bytes, instances);
    const shapes = firsts[0]!.shapes;
    try {
      await this.#pool.runEach(() => this.#feeds([firsts.pop()!]));
    } catch (err) {
      throw MlErrors.MODEL_NOT_READY(this.#label, `warm-up with the sample request failed (${describeInputs(this.#sig.inputs, shapes)}): onnxruntime: ${(err as Error).message}`);
    }
    // A full batch of copies of the sample, when it batches: a failure there is only a warning.
    const plan = this.#plan;
    const rows = plan.batched ? shapes[0]![plan.inputAxes[0]!]! : 0;
    const copies = rows > 0 ? Math.floor(this.#batcher.maxBatchSize / rows) : 0;
    if (copies > 1) {
      const batch = await this.#sampleInputs(bytes, copies * instances);
      try {
        await this.#pool.runEach(() => this.#feeds(batch.splice(0, copies)));
      } catch (err) {
        return { mode: 'sample', ok: false, warning: `warm-up with ${copies} copies of the sample request in one batch failed: onnxruntime: ${(err as Error).message}` };
      }
    }
    return { mode: 'sample', ok: true };
  }

  /** `n` copies of the sample request as the model takes it: decoded and, with a processor, preprocessed. */
  async #sampleInputs(bytes: Uint8Array, n: number): Promise<Decoded[]> {
    const out: Decoded[] = [];
    for (let i = 0; i < n; i++) {
      let d: Decoded;
      try {
        d = decodeOip(this.#public, this.#label, bytes);
      } catch (err) {
        throw MlErrors.MODEL_NOT_READY(this.#label, `the sample request does not fit the model: ${(err as Error).message}`);
      }
      const p = this.#processor;
      if (p) {
        try {
          const { model, id } = await p.pre(d);
          p.forget(id);
          d = model;
        } catch (err) {
          throw MlErrors.MODEL_NOT_READY(this.#label, `the processor's preprocess refused the sample request: ${(err as Error).message}`);
        }
      }
      out.push(d);
    }
    return out;
  }
}

/** Zeros of a datatype (empty strings for BYTES). */
function synthetic(datatype: Datatype, n: number): TensorData {
  return datatype === 'BYTES' ? new Array<string>(n).fill('') : allocate(datatype, n);
}

/** `X FP32 [1, 4, 1], t FP32 []`: the inputs a warm-up sent. */
function describeInputs(specs: readonly TensorSpec[], shapes: readonly (readonly number[])[]): string {
  return `input${specs.length === 1 ? '' : 's'} ${specs.map((t, i) => `"${t.name}" ${t.datatype} [${shapes[i]!.join(', ')}]`).join(', ')}`;
}

/**
 * The version's signature, each tensor given the loaded session's symbolic dimension names
 * where the record has none (versions registered before they were kept).
 */
function withSessionDims(sig: Signature, inputs: readonly SessionValueInfo[], outputs: readonly SessionValueInfo[]): Signature {
  const fill = (specs: TensorSpec[], infos: readonly SessionValueInfo[]) =>
    specs.map((t) => {
      if (t.dimParams) return t;
      const shape = infos.find((x) => x.name === t.name)?.shape;
      return shape && shape.length === t.shape.length ? { ...t, dimParams: specShape(shape).dimParams } : t;
    });
  return { inputs: fill(sig.inputs, inputs), outputs: fill(sig.outputs, outputs) };
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
