/**
 * Inference behind the HTTP routes: resolve the target version (routing table), forward the request
 * body as it came to that version's replicas (dispatcher) — the replica parses it against its
 * signature and writes the response body, so this event loop never touches tensors — and report
 * each version's outcomes (requests, server errors, latency histogram) every half second on
 * `shoal.gw.outcomes`. The rollout controller on the scheduler leader adds every gateway's
 * reports up and takes the canary verdicts; a gateway routes, limits and reports, it does not
 * decide. A model with a ready shadow version also gets a share of its stable requests mirrored
 * there, after stable answered (shadow-mirror.ts): compared, tallied, never returned.
 */
import type { Subscription } from '@nats-io/transport-node';
import {
  MlErrors,
  ModelRegistry,
  OutcomeTally,
  batchingInfo,
  planBatching,
  resolveRef,
  type BatchingInfo,
  type ExplainOptions,
  type JsonFormat,
  type JsonItem,
  type ModelVersion,
  type TensorSpec,
  type WarmupReport,
} from '../ml/index.ts';
import { encode, errorCode, registeredErrorCodes, type Logger, type NatsConnection, type Subjects, type TraceContext } from '../cluster/index.ts';
import { RoutingTable, type Target } from './routing-table.ts';
import { InferenceDispatcher, type DispatchResult } from './dispatcher.ts';
import type { GatewayMetrics } from './metrics.ts';
import { Activator } from './activator.ts';
import { ShadowMirror } from './shadow-mirror.ts';

export interface InferenceServiceOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  metrics: GatewayMetrics;
  /** @default 10000 */
  requestTimeoutMs?: number;
  /** Dispatcher coalescing: messages in flight per replica before requests wait, and how long at most. */
  coalesce?: { inflightPerReplica?: number; maxHoldMs?: number; hedgeAfterMs?: number };
  /** How often this gateway reports its outcome tallies. @default 500 */
  reportEveryMs?: number;
  /** Requests mirrored to shadow versions at once on this gateway (more are dropped, counted). @default 32 */
  shadowInflight?: number;
}

/** Server-side failures count against a version; the caller's mistakes and overload do not. */
function countsAsFailure(err: unknown): boolean {
  const code = errorCode(err);
  const status = code ? (registeredErrorCodes().get(code)?.status ?? 500) : 500;
  return status >= 500 && code !== 'SHOAL_ERR_OVERLOADED';
}

/** A request's answer: the HTTP response body the replica wrote, and where it ran. */
export interface InferResult {
  body: Buffer;
  /** Set when outputs are binary: the JSON header's length (`Inference-Header-Content-Length`). */
  headerLength?: number;
  /** The version that answered (for `x-shoal-model-version`). */
  version: string;
  route: Target['route'];
  /** The request id its prediction-log records carry (`x-request-id`): what feedback names. */
  requestId?: string;
}

/** Who sent a request: the gateway's request id and the admitted tenant (logged with the prediction). */
export interface RequestMeta {
  requestId?: string;
  tenant?: string;
  /** The request's server span context, when the gateway traces (cluster/tracing.ts). */
  trace?: TraceContext;
}

/** A model's OIP metadata (`GET /v2/models/{name}`, gRPC `ModelMetadata`). */
export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /**
   * Shoal's extension: how the version is served — `batching` (batched along which dimension and
   * axes, or unbatched and why), and once deployed its `warmup` (with a warning when a synthetic
   * warm-up failed), `instances` and `intraOpThreads`.
   */
  parameters: ModelParameters;
}

/** The `parameters` of model metadata. */
export interface ModelParameters {
  /** Whether the version serves now (a ready stable or canary track). */
  deployed: boolean;
  /** Absent for a version registered before dimension names were kept and not serving yet (a replica decides when it loads). */
  batching?: BatchingInfo;
  warmup?: WarmupReport;
  instances?: number;
  intraOpThreads?: number;
}

/** Per-target metric children and canary recorder, made once per target. */
interface TargetStats {
  version: string;
  duration: { observe: (v: number) => void };
  ok: { inc: () => void };
  batch: { observe: (v: number) => void };
  queue: { set: (v: number) => void };
  record: (ok: boolean, ms: number, tenant?: string) => void;
}

export class InferenceService {
  readonly routing: RoutingTable;
  readonly dispatcher: InferenceDispatcher;
  /** Holds requests for models scaled to zero while a replica starts. */
  readonly activator: Activator;
  /** Mirrors a share of stable's requests to a model's shadow version (never answered with). */
  readonly shadow: ShadowMirror;
  /** This gateway's outcomes since its last report. */
  readonly #tally = new OutcomeTally();
  #sub: Subscription | undefined;
  /** Last live readiness probe per service. */
  readonly #probes = new Map<string, { at: number; ok: boolean }>();
  readonly #o: InferenceServiceOptions;
  #timer: NodeJS.Timeout | undefined;
  /** Targets are cached by the routing table until something changes, so this hits per request. */
  readonly #stats = new WeakMap<Target, TargetStats>();

  private constructor(o: InferenceServiceOptions, registry: ModelRegistry) {
    this.#o = o;
    this.routing = new RoutingTable(registry);
    this.activator = new Activator({ nc: o.nc, subjects: o.subjects, routing: this.routing, metrics: o.metrics, log: o.log });
    this.dispatcher = new InferenceDispatcher(o.nc, o.subjects, {
      onMessage: (service, n) => o.metrics.messageRequests.labels(service).observe(n),
      ...(o.coalesce?.inflightPerReplica !== undefined ? { maxInflight: o.coalesce.inflightPerReplica } : {}),
      ...(o.coalesce?.maxHoldMs !== undefined ? { maxHoldMs: o.coalesce.maxHoldMs } : {}),
      ...(o.coalesce?.hedgeAfterMs !== undefined ? { hedgeAfterMs: o.coalesce.hedgeAfterMs } : {}),
    });
    this.shadow = new ShadowMirror({ nc: o.nc, subjects: o.subjects, dispatcher: this.dispatcher, log: o.log, timeoutMs: o.requestTimeoutMs ?? 10_000, ...(o.shadowInflight !== undefined ? { maxInflight: o.shadowInflight } : {}) });
  }

  static async create(o: InferenceServiceOptions): Promise<InferenceService> {
    // The scheduler creates the buckets; a gateway started at the same time waits for them.
    let registry: ModelRegistry | undefined;
    for (let i = 0; !registry; i++) {
      try {
        registry = await ModelRegistry.open(o.nc, o.subjects.prefix);
      } catch (err) {
        if (i >= 100) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const s = new InferenceService(o, registry);
    await s.routing.start();
    // Rollbacks are the controller's; this gateway counts the automatic ones of the models it serves.
    s.#sub = o.nc.subscribe(o.subjects.event('model-rollback'), { callback: (err, m) => (err ? undefined : s.#onRollback(m.data)) });
    s.#timer = setInterval(() => s.#report(), o.reportEveryMs ?? 500);
    s.#timer.unref();
    return s;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#sub?.unsubscribe();
    this.activator.stop();
    this.routing.stop();
    this.dispatcher.stop();
  }

  /**
   * A model's metadata: of `versionRef` (a number or an alias) when given, else of the version
   * serving now (the stable one), else the production alias's, else the latest.
   */
  metadata(name: string, versionRef: string | undefined): ModelMetadata {
    const rec = this.routing.record(name);
    let v: number;
    if (versionRef !== undefined) v = this.routing.versionOf(name, versionRef);
    else v = this.routing.serving(name)[0]?.version ?? rec.aliases.production ?? resolveRef(rec, 'latest');
    const mv = this.routing.version(name, v);
    if (!mv) throw MlErrors.MODEL_VERSION_NOT_FOUND(name, String(v));
    return {
      name,
      versions: versionRef !== undefined ? [String(v)] : rec.versions.map(String),
      // A pipeline model reports Triton's ensemble platform.
      platform: mv.format === 'pipeline' ? 'ensemble' : 'onnxruntime_onnx',
      inputs: mv.signature.inputs,
      outputs: mv.signature.outputs,
      parameters: this.parameters(name, mv),
    };
  }

  /**
   * How a version serves: what its replicas reported when its track became ready, else what a
   * deployment with default options would decide from its signature.
   */
  parameters(name: string, mv: ModelVersion): ModelParameters {
    const d = this.routing.deployments.get(name);
    const track = d?.stable.version === mv.version ? d.stable : d?.canary?.version === mv.version ? d.canary : undefined;
    const deployed = track?.state === 'ready';
    if (track?.serving) {
      const { batching, warmup, instances, intraOpThreads } = track.serving;
      return { deployed, batching, warmup, instances, intraOpThreads };
    }
    if (![...mv.signature.inputs, ...mv.signature.outputs].every((t) => t.dimParams)) return { deployed };
    let batching: BatchingInfo;
    try {
      batching = batchingInfo(mv.signature, planBatching(mv.signature), track?.maxBatchSize ?? 32);
    } catch (err) {
      batching = { batched: false, maxBatchSize: 0, reason: (err as Error).message };
    }
    return { deployed, batching };
  }

  /**
   * Readiness of a model (its stable version) or of one version: deployed and ready in the
   * deployment record, and a replica answers a live `ready` probe now (one second at most;
   * answers are reused for half a second so a probe storm costs the replicas nothing).
   */
  async ready(name: string, versionRef: string | undefined): Promise<{ ready: boolean; reason?: string }> {
    this.routing.record(name);
    const serving = this.routing.serving(name);
    const v = versionRef === undefined ? undefined : this.routing.versionOf(name, versionRef);
    const s = v === undefined ? serving.find((x) => x.route === 'stable') : serving.find((x) => x.version === v);
    if (!s) return { ready: false, reason: 'not deployed, or its replicas are still starting' };
    const now = Date.now();
    let probe = this.#probes.get(s.service);
    if (!probe || now - probe.at >= 500) {
      probe = { at: now, ok: await this.dispatcher.probe(s.service, 1000) };
      this.#probes.set(s.service, probe);
    }
    return probe.ok ? { ready: true } : { ready: false, reason: 'no replica answered a readiness probe' };
  }

  /**
   * Runs an HTTP request body (an OIP `infer` or a `/v1 predict` body, unparsed) on the target
   * version — stable/canary split, or pinned by `versionRef` — and answers the response body
   * the replica wrote. A canary that fails it server-side is retried on stable.
   */
  async infer(name: string, versionRef: string | undefined, routeKey: string | undefined, format: JsonFormat, body: Buffer, headerLength?: number, meta: RequestMeta = {}): Promise<InferResult> {
    if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
    // Scaled to zero: held until a replica serves (its own deadline), then the request's deadline starts.
    const held = this.activator.admit(name, versionRef);
    if (held) await held;
    const deadline = Date.now() + (this.#o.requestTimeoutMs ?? 10_000);
    const target = this.routing.resolve(name, versionRef, routeKey);
    const item: JsonItem = headerLength === undefined ? { format, body } : { format, body, headerLength };
    if (meta.requestId !== undefined) item.requestId = meta.requestId;
    if (meta.tenant !== undefined) item.tenant = meta.tenant;
    try {
      const r = await this.#inferOn(target, item, deadline, meta.trace);
      // A shadow gets a copy of a share of stable's requests, after stable answered (never awaited).
      if (target.route === 'stable') {
        const shadow = this.routing.shadow(name);
        if (shadow) this.shadow.offer(shadow, target.version, item, r.body, r.headerLength);
      }
      return r;
    } catch (err) {
      // A failing canary should not fail the caller: the same (idempotent) request goes to stable.
      if (target.route === 'canary' && countsAsFailure(err)) {
        const stable = this.routing.stable(name);
        if (stable) return this.#inferOn(stable, item, deadline, meta.trace);
      }
      throw err;
    }
  }

  /**
   * Explains an HTTP request body (the same body an infer/predict takes) on the stable version
   * (canary traffic is not split: an explanation is of one named version), or the pinned one;
   * the replica computes it next to its sessions (ml/serving/explain.ts).
   */
  async explain(name: string, versionRef: string | undefined, format: JsonFormat, body: Buffer, options: ExplainOptions, headerLength?: number, meta: RequestMeta = {}): Promise<InferResult> {
    if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
    const held = this.activator.admit(name, versionRef);
    if (held) await held;
    const deadline = Date.now() + (this.#o.requestTimeoutMs ?? 10_000);
    const target = versionRef === undefined ? (this.routing.stable(name) ?? this.routing.resolve(name, undefined, undefined)) : this.routing.resolve(name, versionRef, undefined);
    const item: JsonItem = headerLength === undefined ? { format, body, explain: options } : { format, body, headerLength, explain: options };
    if (meta.requestId !== undefined) item.requestId = meta.requestId;
    if (meta.tenant !== undefined) item.tenant = meta.tenant;
    // The lane's own message size (what infer passes): an explain item may share a message with infer items.
    const r = await this.dispatcher.infer(target.service, target.maxBatchSize, item, deadline);
    const b = r.body;
    const out: InferResult = { body: Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength), version: String(target.version), route: target.route };
    if (item.requestId !== undefined) out.requestId = item.requestId;
    return out;
  }

  #statsOf(t: Target): TargetStats {
    let s = this.#stats.get(t);
    if (!s) {
      const { metrics } = this.#o;
      const v = String(t.version);
      s = {
        version: v,
        duration: metrics.inferDuration.labels(t.model, v, t.route),
        ok: metrics.inferRequests.labels(t.model, v, t.route, 'ok'),
        batch: metrics.batchSize.labels(t.model, v),
        queue: metrics.queueDepth.labels(t.model, v),
        record: this.#tally.recorder(t.model, t.version),
      };
      this.#stats.set(t, s);
    }
    return s;
  }

  async #inferOn(t: Target, item: JsonItem, deadline: number, trace?: TraceContext): Promise<InferResult> {
    const stats = this.#statsOf(t);
    const t0 = performance.now();
    let r: DispatchResult;
    try {
      r = await this.dispatcher.infer(t.service, t.maxBatchSize, item, deadline, trace);
    } catch (err) {
      const ms = performance.now() - t0;
      this.#o.metrics.inferRequests.labels(t.model, stats.version, t.route, errorCode(err) ?? 'SHOAL_ERR_INTERNAL').inc();
      if (countsAsFailure(err)) stats.record(false, ms, item.tenant);
      throw err;
    }
    const ms = performance.now() - t0;
    stats.record(true, ms, item.tenant);
    stats.duration.observe(ms / 1000);
    stats.ok.inc();
    stats.batch.observe(r.batch);
    stats.queue.set(r.queueRows);
    const b = r.body;
    const out: InferResult = { body: Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength), version: stats.version, route: t.route };
    const requestId = r.requestId ?? item.requestId;
    if (requestId !== undefined) out.requestId = requestId;
    if (r.headerLength !== undefined) out.headerLength = r.headerLength;
    return out;
  }

  /** Publishes this gateway's tallies since the last report (the rollout controller adds them up). */
  #report(): void {
    this.shadow.report();
    const counts = this.#tally.take();
    if (counts.length === 0 || this.#o.nc.isClosed()) return;
    try {
      this.#o.nc.publish(this.#o.subjects.gatewayOutcomes, encode({ type: 'outcomes', counts }));
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'could not publish outcome tallies');
    }
  }

  #onRollback(data: Uint8Array): void {
    try {
      const e = JSON.parse(new TextDecoder().decode(data)) as { model?: unknown; reason?: unknown };
      if (typeof e.model === 'string' && typeof e.reason === 'string' && e.reason.startsWith('automatic:')) this.#o.metrics.rollbacks.labels(e.model).inc();
    } catch {
      /* not ours to judge */
    }
  }
}
