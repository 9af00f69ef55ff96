/**
 * Inference behind the HTTP routes: resolve the target version (catalog), forward the request
 * body as it came to that version's replicas (dispatcher) — the replica parses it against its
 * signature and writes the response body, so this event loop never touches tensors — and feed
 * the canary monitor, which rolls a failing canary back on its own.
 */
import { CanaryMonitor, MlErrors, ModelDeployments, TrackState, type JsonFormat } from '../ml/index.ts';
import { errorCode, registeredErrorCodes, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
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
  /** How often canaries are judged. @default 500 */
  judgeEveryMs?: number;
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
  readonly monitor = new CanaryMonitor();
  readonly #o: InferenceServiceOptions;
  readonly #deployments: ModelDeployments;
  readonly #rollingBack = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  /** Targets are cached by the catalog until something changes, so this hits per request. */
  readonly #stats = new WeakMap<Target, TargetStats>();

  private constructor(o: InferenceServiceOptions, deployments: ModelDeployments) {
    this.#o = o;
    this.#deployments = deployments;
    this.catalog = new ModelCatalog(deployments.registry);
    this.dispatcher = new InferenceDispatcher(o.nc, o.subjects, { onMessage: (service, n) => o.metrics.messageRequests.labels(service).observe(n) });
  }

  static async create(o: InferenceServiceOptions): Promise<InferenceService> {
    // The scheduler creates the buckets; a gateway started at the same time waits for them.
    let deployments: ModelDeployments | undefined;
    for (let i = 0; !deployments; i++) {
      try {
        deployments = await ModelDeployments.open(o.nc, o.subjects, o.log);
      } catch (err) {
        if (i >= 100) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const s = new InferenceService(o, deployments);
    await s.catalog.start();
    s.#timer = setInterval(() => s.#judge(), o.judgeEveryMs ?? 500);
    s.#timer.unref();
    return s;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.catalog.stop();
    this.dispatcher.stop();
  }

  /**
   * Runs an HTTP request body (an OIP `infer` or a `/v1 predict` body, unparsed) on the target
   * version — stable/canary split, or pinned by `versionRef` — and answers the response body
   * the replica wrote. A canary that fails it server-side is retried on stable.
   */
  async infer(name: string, versionRef: string | undefined, routeKey: string | undefined, format: JsonFormat, body: Buffer): Promise<InferResult> {
    const deadline = Date.now() + (this.#o.requestTimeoutMs ?? 10_000);
    if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
    const target = this.catalog.resolve(name, versionRef, routeKey);
    const item = { format, body };
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
        record: this.monitor.recorder(t.model, t.version),
      };
      this.#stats.set(t, s);
    }
    return s;
  }

  async #inferOn(t: Target, item: { format: JsonFormat; body: Buffer }, deadline: number): Promise<InferResult> {
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
    return { body: Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength), version: stats.version, route: t.route };
  }

  /** Canary watch: roll back a ready canary whose errors or p99 pass its policy. */
  #judge(): void {
    for (const [name, d] of this.catalog.deployments) {
      if (!d.canary || d.canary.state !== TrackState.READY || !d.policy.auto || this.#rollingBack.has(name)) continue;
      const verdict = this.monitor.judge(d);
      if (!verdict?.rollback) continue;
      const version = d.canary.version;
      this.#rollingBack.add(name);
      this.#o.log.warn({ model: name, version, reason: verdict.reason, canary: verdict.canary, stable: verdict.stable }, 'canary breached its policy: rolling back');
      this.#o.metrics.rollbacks.labels(name).inc();
      void this.#deployments
        .rollback(name, `automatic: ${verdict.reason}`, version)
        .catch((err: unknown) => this.#o.log.error({ model: name, err: (err as Error).message }, 'automatic rollback failed'))
        .finally(() => this.#rollingBack.delete(name));
    }
  }
}
