/**
 * Inference behind the HTTP routes: resolve the target version (catalog), check and convert the
 * request's tensors against that version's signature (every problem is a 400 naming the input),
 * send it (dispatcher), turn the reply back into OIP outputs, and feed the canary monitor —
 * which rolls a failing canary back on its own.
 */
import {
  CanaryMonitor,
  DATATYPES,
  MlErrors,
  ModelDeployments,
  TrackState,
  checkAgainst,
  fromBytes,
  numel,
  toBytes,
  toJson,
  type Datatype,
  type InferItem,
  type ItemOk,
  type Signature,
  type WireTensor,
} from '../ml/index.ts';
import { errorCode, registeredErrorCodes, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { ModelCatalog, type Target } from './catalog.ts';
import { InferenceDispatcher } from './dispatcher.ts';
import type { GatewayMetrics } from './metrics.ts';
import { jsonToTensor, oipResponseJson } from './tensors.ts';

export interface OipInput {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
  parameters?: Record<string, unknown>;
}

export interface OipRequest {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: OipInput[];
  outputs?: { name: string; parameters?: Record<string, unknown> }[];
}

export interface OipOutput {
  name: string;
  datatype: Datatype;
  shape: number[];
  data: number[] | boolean[];
}

export interface OipResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: OipOutput[];
}

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

/** Converts OIP inputs to wire tensors checked against the signature; returns the row count. */
export function toItem(model: string, version: number, sig: Signature, req: OipRequest): { item: InferItem; rows: number } {
  const inputs: WireTensor[] = [];
  for (let i = 0; i < req.inputs.length; i++) {
    const inp = req.inputs[i]!;
    for (let j = 0; j < i; j++) if (req.inputs[j]!.name === inp.name) throw MlErrors.BAD_INPUT(`input "${inp.name}" given twice`);
    const spec = sig.inputs.find((s) => s.name === inp.name);
    if (!spec) throw MlErrors.BAD_INPUT(`model ${model} v${version} has no input "${inp.name}" (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`);
    if (!(DATATYPES as string[]).includes(inp.datatype)) throw MlErrors.BAD_INPUT(`input "${inp.name}": unsupported datatype ${inp.datatype} (supported: ${DATATYPES.join(', ')})`);
    checkAgainst(spec, inp.datatype, inp.shape);
    const arr = jsonToTensor(inp.name, spec.datatype, inp.shape, inp.data);
    inputs.push({ name: inp.name, datatype: spec.datatype, shape: inp.shape, data: toBytes(arr) });
  }
  if (inputs.length !== sig.inputs.length) {
    for (const s of sig.inputs) if (!inputs.some((x) => x.name === s.name)) throw MlErrors.BAD_INPUT(`missing input "${s.name}" (${s.datatype} [${s.shape.join(', ')}])`);
  }
  const outputs = req.outputs?.map((o) => {
    if (!sig.outputs.some((s) => s.name === o.name)) throw MlErrors.BAD_INPUT(`model ${model} v${version} has no output "${o.name}" (outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
    return o.name;
  });
  const rows = inputs[0]!.shape[0] ?? 1;
  return { item: { inputs, ...(outputs ? { outputs } : {}) }, rows: Math.max(1, rows) };
}

/** A request's answer before it is written out: the target it ran on and the wire outputs. */
export interface InferResult {
  target: Target;
  outputs: WireTensor[];
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

  /** Runs a request and answers OIP response objects (outputs as JSON arrays). */
  async infer(name: string, versionRef: string | undefined, routeKey: string | undefined, req: OipRequest): Promise<OipResponse & { route: string }> {
    const { target: t, outputs } = await this.run(name, versionRef, routeKey, req);
    return {
      model_name: t.model,
      model_version: String(t.version),
      ...(req.id !== undefined ? { id: req.id } : {}),
      outputs: outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, data: toJson(o.datatype, fromBytes(o.name, o.datatype, o.data, numel(o.shape))) })),
      route: t.route,
    };
  }

  /** Runs a request and answers the OIP response body as JSON text (the hot route's path). */
  async inferJson(name: string, versionRef: string | undefined, routeKey: string | undefined, req: OipRequest): Promise<{ json: string; version: string; route: string }> {
    const { target: t, outputs } = await this.run(name, versionRef, routeKey, req);
    const version = this.#statsOf(t).version;
    return { json: oipResponseJson(t.model, version, req.id, outputs), version, route: t.route };
  }

  /** Resolves the target (stable/canary/pinned), runs the request there, falls back to stable. */
  async run(name: string, versionRef: string | undefined, routeKey: string | undefined, req: OipRequest): Promise<InferResult> {
    const deadline = Date.now() + (this.#o.requestTimeoutMs ?? 10_000);
    const target = this.catalog.resolve(name, versionRef, routeKey);
    try {
      return await this.#inferOn(target, req, deadline);
    } catch (err) {
      // A failing canary should not fail the caller: the same (idempotent) request goes to stable.
      if (target.route === 'canary' && countsAsFailure(err)) {
        const stable = this.catalog.stable(name);
        if (stable) return this.#inferOn(stable, req, deadline);
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

  async #inferOn(t: Target, req: OipRequest, deadline: number): Promise<InferResult> {
    const stats = this.#statsOf(t);
    const { item, rows } = toItem(t.model, t.version, t.signature, req);
    const t0 = performance.now();
    let r: ItemOk & { queueRows: number };
    try {
      r = await this.dispatcher.infer(t.service, t.maxBatchSize, item, rows, deadline);
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
    return { target: t, outputs: r.outputs };
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
