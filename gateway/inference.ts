/**
 * Inference behind the HTTP routes: resolve the target version (catalog), forward the request
 * body as it came to that version's replicas (dispatcher) — the replica parses it against its
 * signature and writes the response body, so this event loop never touches tensors — and feed
 * the canary monitor, which rolls a failing canary back on its own.
 */
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Subscription } from '@nats-io/transport-node';
import { CanaryMonitor, MlErrors, ModelRegistry, OutcomeTally, RegistryClient, TrackState, type JsonFormat, type JsonItem } from '../ml/index.ts';
import { decode, encode, errorCode, registeredErrorCodes, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { ModelCatalog, type Target } from './catalog.ts';
import { InferenceDispatcher, type DispatchResult } from './dispatcher.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface InferenceServiceOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  metrics: GatewayMetrics;
  /** @default 10000 */
  requestTimeoutMs?: number;
  /** Dispatcher coalescing: messages in flight per replica before requests wait, and how long at most. */
  coalesce?: { inflightPerReplica?: number; maxHoldMs?: number; hedgeAfterMs?: number };
  /** How often canaries are judged. @default 500 */
  judgeEveryMs?: number;
}

/** What a gateway publishes every `judgeEveryMs`: its outcome tallies since the last report. */
const OutcomeReport = Type.Object({
  type: Type.Literal('outcomes'),
  counts: Type.Array(
    Type.Object({
      model: Type.String(),
      version: Type.Integer({ minimum: 1 }),
      requests: Type.Number({ minimum: 0 }),
      errors: Type.Number({ minimum: 0 }),
      buckets: Type.Array(Type.Number()),
    }),
    { maxItems: 4096 },
  ),
});
const isOutcomeReport = TypeCompiler.Compile(OutcomeReport);

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
}

/** Per-target metric children and canary recorder, made once per target. */
interface TargetStats {
  version: string;
  duration: { observe: (v: number) => void };
  ok: { inc: () => void };
  batch: { observe: (v: number) => void };
  queue: { set: (v: number) => void };
  record: (ok: boolean, ms: number) => void;
}

export class InferenceService {
  readonly catalog: ModelCatalog;
  readonly dispatcher: InferenceDispatcher;
  /**
   * Outcomes of every gateway (their reports on `gatewayOutcomes`, this one's included), so that
   * each judges a canary on the cluster's traffic, not on its own share of it. Every gateway
   * reaches the same verdict; the rollback is a compare-and-swap on the canary's version, so it
   * happens once.
   */
  readonly monitor = new CanaryMonitor();
  /** This gateway's outcomes since its last report. */
  readonly #tally = new OutcomeTally();
  #sub: Subscription | undefined;
  /** Last live readiness probe per service. */
  readonly #probes = new Map<string, { at: number; ok: boolean }>();
  readonly #o: InferenceServiceOptions;
  /** The registry service: a failing canary is rolled back by a request to it (the gateway writes no KV). */
  readonly #control: RegistryClient;
  readonly #rollingBack = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** Targets are cached by the catalog until something changes, so this hits per request. */
  readonly #stats = new WeakMap<Target, TargetStats>();

  private constructor(o: InferenceServiceOptions, registry: ModelRegistry) {
    this.#o = o;
    this.#control = new RegistryClient(o.nc, o.subjects);
    this.catalog = new ModelCatalog(registry);
    this.dispatcher = new InferenceDispatcher(o.nc, o.subjects, {
      onMessage: (service, n) => o.metrics.messageRequests.labels(service).observe(n),
      ...(o.coalesce?.inflightPerReplica !== undefined ? { maxInflight: o.coalesce.inflightPerReplica } : {}),
      ...(o.coalesce?.maxHoldMs !== undefined ? { maxHoldMs: o.coalesce.maxHoldMs } : {}),
      ...(o.coalesce?.hedgeAfterMs !== undefined ? { hedgeAfterMs: o.coalesce.hedgeAfterMs } : {}),
    });
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
    await s.catalog.start();
    s.#sub = o.nc.subscribe(o.subjects.gatewayOutcomes, { callback: (err, m) => (err ? undefined : s.#onReport(m.data)) });
    s.#timer = setInterval(() => {
      s.#report();
      s.#judge();
    }, o.judgeEveryMs ?? 500);
    s.#timer.unref();
    return s;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#sub?.unsubscribe();
    this.catalog.stop();
    this.dispatcher.stop();
  }

  /**
   * Readiness of a model (its stable version) or of one version: deployed and ready in the
   * deployment record, and a replica answers a live `ready` probe now (one second at most;
   * answers are reused for half a second so a probe storm costs the replicas nothing).
   */
  async ready(name: string, versionRef: string | undefined): Promise<{ ready: boolean; reason?: string }> {
    this.catalog.record(name);
    const serving = this.catalog.serving(name);
    const v = versionRef === undefined ? undefined : this.catalog.versionOf(name, versionRef);
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
  async infer(name: string, versionRef: string | undefined, routeKey: string | undefined, format: JsonFormat, body: Buffer, headerLength?: number): Promise<InferResult> {
    const deadline = Date.now() + (this.#o.requestTimeoutMs ?? 10_000);
    if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
    const target = this.catalog.resolve(name, versionRef, routeKey);
    const item: JsonItem = headerLength === undefined ? { format, body } : { format, body, headerLength };
    try {
      return await this.#inferOn(target, item, deadline);
    } catch (err) {
      // A failing canary should not fail the caller: the same (idempotent) request goes to stable.
      if (target.route === 'canary' && countsAsFailure(err)) {
        const stable = this.catalog.stable(name);
        if (stable) return this.#inferOn(stable, item, deadline);
      }
      throw err;
    }
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

  async #inferOn(t: Target, item: JsonItem, deadline: number): Promise<InferResult> {
    const stats = this.#statsOf(t);
    const t0 = performance.now();
    let r: DispatchResult;
    try {
      r = await this.dispatcher.infer(t.service, t.maxBatchSize, item, deadline);
    } catch (err) {
      const ms = performance.now() - t0;
      this.#o.metrics.inferRequests.labels(t.model, stats.version, t.route, errorCode(err) ?? 'SHOAL_ERR_INTERNAL').inc();
      if (countsAsFailure(err)) stats.record(false, ms);
      throw err;
    }
    const ms = performance.now() - t0;
    stats.record(true, ms);
    stats.duration.observe(ms / 1000);
    stats.ok.inc();
    stats.batch.observe(r.batch);
    stats.queue.set(r.queueRows);
    const b = r.body;
    const out: InferResult = { body: Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength), version: stats.version, route: t.route };
    if (r.headerLength !== undefined) out.headerLength = r.headerLength;
    return out;
  }

  /** Publishes this gateway's tallies since the last report (to every gateway, itself included). */
  #report(): void {
    const counts = this.#tally.take();
    if (counts.length === 0 || this.#o.nc.isClosed()) return;
    try {
      this.#o.nc.publish(this.#o.subjects.gatewayOutcomes, encode({ type: 'outcomes', counts }));
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'could not publish outcome tallies');
    }
  }

  #onReport(data: Uint8Array): void {
    let m: unknown;
    try {
      m = decode(data);
    } catch {
      return;
    }
    if (!isOutcomeReport.Check(m)) {
      this.#o.log.warn('ignored a malformed outcome report');
      return;
    }
    for (const c of m.counts) this.monitor.addCounts(c);
  }

  /** Canary watch: roll back a ready canary whose errors or p99 pass its policy. */
  #judge(): void {
    for (const [name, d] of this.catalog.deployments) {
      if (!d.canary || d.canary.state !== TrackState.READY || !d.policy.auto || this.#rollingBack.has(name)) continue;
      const verdict = this.monitor.judge(d);
      if (!verdict?.rollback) continue;
      const version = d.canary.version;
      this.#rollingBack.add(name);
      // Every gateway sees the same outcomes and may call it at once: the registry service rolls
      // back by compare-and-swap on the canary's version, so one request rolls back (and its
      // gateway counts it); the others find the canary gone.
      void this.#control
        .rollback(name, `automatic: ${verdict.reason}`, version)
        .then((done) => {
          if (!done) return;
          this.#o.log.warn({ model: name, version, reason: verdict.reason, canary: verdict.canary, stable: verdict.stable }, 'canary breached its policy: rolled back');
          this.#o.metrics.rollbacks.labels(name).inc();
        })
        .catch((err: unknown) => this.#o.log.error({ model: name, err: (err as Error).message }, 'automatic rollback failed'))
        .finally(() => this.#rollingBack.delete(name));
    }
  }
}
