/**
 * Deployments and canaries: the record that says which versions of a model serve and how
 * traffic splits between them (key `deploy.<name>` in the models bucket), the routing decision
 * (weighted, optionally sticky by a request key), and the monitor that compares the canary with
 * the stable version and calls for a rollback when its error rate or p99 passes the policy.
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';

export const TrackState = { STARTING: 'starting', READY: 'ready' } as const;

export const Track = Type.Object({
  version: Type.Integer({ minimum: 1 }),
  /** Service name: replicas serve on `shoal.svc.<service>`. */
  service: Type.String(),
  replicas: Type.Integer({ minimum: 1 }),
  state: Type.Union([Type.Literal('starting'), Type.Literal('ready')]),
  maxBatchSize: Type.Integer({ minimum: 1 }),
  maxQueueDelayMs: Type.Number({ minimum: 0 }),
  since: Type.Number(),
});
export type Track = Static<typeof Track>;

export const CanaryTrack = Type.Intersect([
  Track,
  Type.Object({
    /** Share of traffic, 0..1. */
    weight: Type.Number({ minimum: 0, maximum: 1 }),
    /** Route by a hash of the request key (header `x-shoal-route-key`), so a caller sticks to one version. */
    sticky: Type.Boolean(),
  }),
]);
export type CanaryTrack = Static<typeof CanaryTrack>;

export const RollbackPolicy = Type.Object({
  /** Roll back automatically (else only report). @default true */
  auto: Type.Boolean({ default: true }),
  /** Canary error rate may exceed stable's by this much. @default 0.05 */
  maxErrorRateDelta: Type.Number({ minimum: 0, maximum: 1, default: 0.05 }),
  /** Canary p99 may be this many times stable's … @default 2 */
  maxP99Ratio: Type.Number({ minimum: 1, default: 2 }),
  /** … and must also exceed it by this many ms (ignores noise at sub-ms latencies). @default 25 */
  minP99DeltaMs: Type.Number({ minimum: 0, default: 25 }),
  /** Canary requests in the window before judging. @default 20 */
  minRequests: Type.Integer({ minimum: 1, default: 20 }),
  /** Sliding window. @default 60000 */
  windowMs: Type.Integer({ minimum: 1000, default: 60_000 }),
});
export type RollbackPolicy = Static<typeof RollbackPolicy>;
export const DEFAULT_POLICY: RollbackPolicy = { auto: true, maxErrorRateDelta: 0.05, maxP99Ratio: 2, minP99DeltaMs: 25, minRequests: 20, windowMs: 60_000 };

export const DeploymentEvent = Type.Object({
  at: Type.Number(),
  event: Type.String(),
  version: Type.Integer(),
  detail: Type.Optional(Type.String()),
});
export type DeploymentEvent = Static<typeof DeploymentEvent>;

export const Deployment = Type.Object({
  model: Type.String(),
  stable: Track,
  canary: Type.Optional(CanaryTrack),
  policy: RollbackPolicy,
  history: Type.Array(DeploymentEvent),
  updatedAt: Type.Number(),
});
export type Deployment = Static<typeof Deployment>;

export const serviceName = (model: string, version: number) => `model-${model}-v${version}`;

export type Route = 'stable' | 'canary';

/**
 * Which track serves this request. The canary gets traffic only once it is ready; with
 * `sticky` the same key always lands on the same side (hash of key vs weight).
 */
export function pickTrack(d: Deployment, key: string | undefined, random: () => number = Math.random): Route {
  const c = d.canary;
  if (!c || c.state !== TrackState.READY || c.weight <= 0) return 'stable';
  if (c.weight >= 1) return 'canary';
  const u = c.sticky && key !== undefined ? hashUnit(`${d.model}:${key}`) : random();
  return u < c.weight ? 'canary' : 'stable';
}

/** A stable hash of a string to [0, 1). */
export function hashUnit(s: string): number {
  return createHash('sha1').update(s).digest().readUInt32BE(0) / 2 ** 32;
}

/**
 * One version's outcome samples: a ring of the last {@link WINDOW_SAMPLES} (time, ok, ms) in
 * typed arrays — recording a request allocates nothing.
 */
class Samples {
  readonly at = new Float64Array(WINDOW_SAMPLES);
  readonly ms = new Float64Array(WINDOW_SAMPLES);
  readonly ok = new Uint8Array(WINDOW_SAMPLES);
  /** Samples ever recorded; the newest is at (n - 1) % WINDOW_SAMPLES. */
  n = 0;

  push(at: number, ok: boolean, ms: number): void {
    const i = this.n % WINDOW_SAMPLES;
    this.at[i] = at;
    this.ok[i] = ok ? 1 : 0;
    this.ms[i] = ms;
    this.n++;
  }
}

/** Samples kept per version (the judge's window is this many requests at most). */
const WINDOW_SAMPLES = 16_384;

/** Records one version's outcomes (from {@link CanaryMonitor.recorder}). */
export type OutcomeRecorder = (ok: boolean, ms: number) => void;

export interface TrackHealth {
  requests: number;
  errors: number;
  errorRate: number;
  p99Ms: number;
}

export interface Verdict {
  rollback: boolean;
  reason?: string;
  stable: TrackHealth;
  canary: TrackHealth;
}

/**
 * Per-version outcome samples in a sliding window (server errors count as failures; bad input,
 * 429s and the like are the caller's, not the version's). `judge` compares canary with stable.
 */
export class CanaryMonitor {
  readonly #samples = new Map<string, Samples>();
  constructor(private readonly now: () => number = Date.now) {}

  #of(model: string, version: number): Samples {
    const k = `${model}@${version}`;
    let s = this.#samples.get(k);
    if (!s) this.#samples.set(k, (s = new Samples()));
    return s;
  }

  record(model: string, version: number, ok: boolean, ms: number): void {
    this.#of(model, version).push(this.now(), ok, ms);
  }

  /** A recorder bound to one version (no key lookup per request). */
  recorder(model: string, version: number): OutcomeRecorder {
    const s = this.#of(model, version);
    return (ok, ms) => s.push(this.now(), ok, ms);
  }

  health(model: string, version: number, windowMs: number, since = 0): TrackHealth {
    const cutoff = Math.max(this.now() - windowMs, since);
    const s = this.#samples.get(`${model}@${version}`);
    const ms: number[] = [];
    let errors = 0;
    if (s) {
      for (let j = Math.max(0, s.n - WINDOW_SAMPLES); j < s.n; j++) {
        const i = j % WINDOW_SAMPLES;
        if (s.at[i]! < cutoff) continue;
        ms.push(s.ms[i]!);
        if (!s.ok[i]) errors++;
      }
    }
    ms.sort((a, b) => a - b);
    const p99 = ms.length ? ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))]! : 0;
    return { requests: ms.length, errors, errorRate: ms.length ? errors / ms.length : 0, p99Ms: p99 };
  }

  judge(d: Deployment): Verdict | undefined {
    const c = d.canary;
    if (!c || c.state !== TrackState.READY) return undefined;
    const p = d.policy;
    const canary = this.health(d.model, c.version, p.windowMs, c.since);
    const stable = this.health(d.model, d.stable.version, p.windowMs);
    if (canary.requests < p.minRequests) return { rollback: false, stable, canary };
    if (canary.errorRate > stable.errorRate + p.maxErrorRateDelta) {
      return { rollback: true, reason: `canary error rate ${(canary.errorRate * 100).toFixed(1)}% vs stable ${(stable.errorRate * 100).toFixed(1)}% (allowed +${(p.maxErrorRateDelta * 100).toFixed(1)}%)`, stable, canary };
    }
    if (stable.requests >= p.minRequests && canary.p99Ms > stable.p99Ms * p.maxP99Ratio && canary.p99Ms - stable.p99Ms > p.minP99DeltaMs) {
      return { rollback: true, reason: `canary p99 ${canary.p99Ms.toFixed(1)} ms vs stable ${stable.p99Ms.toFixed(1)} ms (allowed ×${p.maxP99Ratio})`, stable, canary };
    }
    return { rollback: false, stable, canary };
  }
}
