/**
 * Deployments and canaries: the record that says which versions of a model serve and how
 * traffic splits between them (key `deploy.<name>` in the models bucket), the routing decision
 * (weighted, optionally sticky by a request key), and the monitor that compares the canary with
 * the stable version and calls for a rollback when its error rate or p99 passes the policy. A
 * deployment may also carry a shadow track (mirrored requests only; see shadow.ts).
 */
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ServingInfo } from './messages.ts';
import { MonitoringSpec } from '../monitoring/records.ts';
import { ColdStart, ScaleToZero, ZeroState } from './scale-to-zero-spec.ts';

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
  /** How its replicas serve (batching, warm-up, instances), as the first one to answer reported once ready. */
  serving: Type.Optional(ServingInfo),
  /** Model monitoring options the track was deployed with (ml/monitoring). */
  monitoring: Type.Optional(MonitoringSpec),
  /** `minReplicas: 0`: the replicas stop after the idle timeout and start on the next request (scale-to-zero-spec.ts). */
  scaleToZero: Type.Optional(ScaleToZero),
  /** Present while the track runs no replica. */
  zero: Type.Optional(ZeroState),
  /** The last start from zero. */
  coldStart: Type.Optional(ColdStart),
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

/**
 * A shadow: a version that receives a mirrored share of the stable version's requests, whose
 * answers are compared with stable's and never returned to a caller (ml/serving/shadow.ts).
 */
export const ShadowTrack = Type.Intersect([
  Track,
  Type.Object({
    /** Share of stable's requests mirrored to it, 0..1. */
    fraction: Type.Number({ minimum: 0, maximum: 1 }),
  }),
]);
export type ShadowTrack = Static<typeof ShadowTrack>;

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
  /**
   * Canary requests before its p99 is judged too: the p99 of 20 requests is their slowest one,
   * one cold-start hiccup away from a rollback. @default 100
   */
  minLatencyRequests: Type.Optional(Type.Integer({ minimum: 1, default: 100 })),
  /** Sliding window. @default 60000 */
  windowMs: Type.Integer({ minimum: 1000, default: 60_000 }),
});
export type RollbackPolicy = Static<typeof RollbackPolicy>;
export const DEFAULT_POLICY: RollbackPolicy = { auto: true, maxErrorRateDelta: 0.05, maxP99Ratio: 2, minP99DeltaMs: 25, minRequests: 20, minLatencyRequests: 100, windowMs: 60_000 };

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
  /** Mirrored traffic only: its answers are compared, never returned (ml/serving/shadow.ts). */
  shadow: Type.Optional(ShadowTrack),
  policy: RollbackPolicy,
  history: Type.Array(DeploymentEvent),
  updatedAt: Type.Number(),
});
export type Deployment = Static<typeof Deployment>;
/** The compiled check of a deployment record (read from KV, so checked before use). */
export const isDeployment = TypeCompiler.Compile(Deployment);

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
 * Latency histogram buckets: bucket 0 is ≤ 0.01 ms, bucket b ≥ 1 is (0.01·1.05^(b−1), 0.01·1.05^b]
 * ms, the last one open-ended (≥ ~60 s). A p99 read from it is the bucket's upper bound: at most
 * 5% above the true value. Fixed buckets are what lets gateways add their counts up.
 */
export const LATENCY_BUCKETS = 320;
const LAT_LO = 0.01;
const LN_RATIO = Math.log(1.05);
const latencyBucket = (ms: number): number => (ms <= LAT_LO ? 0 : Math.min(LATENCY_BUCKETS - 1, Math.floor(Math.log(ms / LAT_LO) / LN_RATIO) + 1));
const bucketUpperMs = (b: number): number => LAT_LO * Math.exp(b * LN_RATIO);

/** Time slots of the window: one per second, the last 10 minutes (a policy window is capped there). */
const SLOT_MS = 1000;
const SLOTS = 600;
const MAX_WINDOW_MS = SLOT_MS * SLOTS;

/**
 * Outcome counts of some requests to one version: what a gateway tallies between two reports
 * and what the monitors add up. `buckets` is sparse: [bucket, count, bucket, count, …].
 */
export interface OutcomeCounts {
  model: string;
  version: number;
  requests: number;
  errors: number;
  buckets: number[];
  tenants?: Record<string, number>;
}

/** What a gateway publishes on `shoal.gw.outcomes` every half second: its tallies since the last report. */
export const OutcomeReport = Type.Object({
  type: Type.Literal('outcomes'),
  counts: Type.Array(
    Type.Object({
      model: Type.String(),
      version: Type.Integer({ minimum: 1 }),
      requests: Type.Number({ minimum: 0 }),
      errors: Type.Number({ minimum: 0 }),
      buckets: Type.Array(Type.Number()),
      /** Requests by the tenant the gateway admitted them as (the cost ledger splits shared replicas by it). */
      tenants: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0 }))),
    }),
    { maxItems: 4096 },
  ),
});
export type OutcomeReport = Static<typeof OutcomeReport>;

/** One version's outcomes, per second, for the last {@link MAX_WINDOW_MS}: adding allocates nothing after a slot's first use. */
class OutcomeWindow {
  readonly #sec = new Float64Array(SLOTS).fill(-1);
  readonly #reqs = new Float64Array(SLOTS);
  readonly #errs = new Float64Array(SLOTS);
  readonly #hist: (Float64Array | undefined)[] = new Array<Float64Array | undefined>(SLOTS);

  #slot(atMs: number): number {
    const sec = Math.floor(atMs / SLOT_MS);
    const i = sec % SLOTS;
    if (this.#sec[i] !== sec) {
      this.#sec[i] = sec;
      this.#reqs[i] = 0;
      this.#errs[i] = 0;
      this.#hist[i]?.fill(0);
    }
    return i;
  }

  #histOf(i: number): Float64Array {
    return (this.#hist[i] ??= new Float64Array(LATENCY_BUCKETS));
  }

  add(atMs: number, ok: boolean, ms: number): void {
    const i = this.#slot(atMs);
    this.#reqs[i]!++;
    if (!ok) this.#errs[i]!++;
    this.#histOf(i)[latencyBucket(ms)]!++;
  }

  addCounts(atMs: number, c: OutcomeCounts): void {
    const i = this.#slot(atMs);
    this.#reqs[i]! += c.requests;
    this.#errs[i]! += c.errors;
    const h = this.#histOf(i);
    for (let k = 0; k + 1 < c.buckets.length; k += 2) {
      const b = c.buckets[k]!;
      if (b >= 0 && b < LATENCY_BUCKETS) h[b]! += c.buckets[k + 1]!;
    }
  }

  /** Requests, errors and p99 of the slots from `fromMs` to `nowMs`. */
  health(fromMs: number, nowMs: number): TrackHealth {
    const first = Math.floor(fromMs / SLOT_MS);
    const last = Math.floor(nowMs / SLOT_MS);
    const sum = new Float64Array(LATENCY_BUCKETS);
    let requests = 0;
    let errors = 0;
    for (let i = 0; i < SLOTS; i++) {
      const sec = this.#sec[i]!;
      if (sec < first || sec > last) continue;
      requests += this.#reqs[i]!;
      errors += this.#errs[i]!;
      const h = this.#hist[i];
      if (h) for (let b = 0; b < LATENCY_BUCKETS; b++) sum[b]! += h[b]!;
    }
    let p99 = 0;
    if (requests > 0) {
      // The value below which 99% of the requests fall (nearest rank, as sorting samples would).
      const rank = Math.min(requests, Math.floor(requests * 0.99) + 1);
      let seen = 0;
      for (let b = 0; b < LATENCY_BUCKETS; b++) {
        seen += sum[b]!;
        if (seen >= rank) {
          p99 = bucketUpperMs(b);
          break;
        }
      }
    }
    return { requests, errors, errorRate: requests ? errors / requests : 0, p99Ms: p99 };
  }
}

/** Tallies outcomes per version between two reports (what a gateway publishes to the others). */
export class OutcomeTally {
  readonly #versions = new Map<string, { model: string; version: number; requests: number; errors: number; hist: Float64Array; tenants: Map<string, number> }>();

  /** A recorder bound to one version (no key lookup per request). */
  recorder(model: string, version: number): OutcomeRecorder {
    const k = `${model}@${version}`;
    return (ok, ms, tenant) => {
      let v = this.#versions.get(k);
      if (!v) this.#versions.set(k, (v = { model, version, requests: 0, errors: 0, hist: new Float64Array(LATENCY_BUCKETS), tenants: new Map() }));
      v.requests++;
      if (tenant !== undefined) v.tenants.set(tenant, (v.tenants.get(tenant) ?? 0) + 1);
      if (!ok) v.errors++;
      v.hist[latencyBucket(ms)]!++;
    };
  }

  /** The counts since the last call (versions with requests only), and a fresh start. */
  take(): OutcomeCounts[] {
    const out: OutcomeCounts[] = [];
    for (const v of this.#versions.values()) {
      if (v.requests === 0) continue;
      const buckets: number[] = [];
      for (let b = 0; b < LATENCY_BUCKETS; b++) if (v.hist[b]! > 0) buckets.push(b, v.hist[b]!);
      out.push({ model: v.model, version: v.version, requests: v.requests, errors: v.errors, buckets, ...(v.tenants.size ? { tenants: Object.fromEntries(v.tenants) } : {}) });
    }
    this.#versions.clear();
    return out;
  }
}

/** Records one version's outcomes (from {@link CanaryMonitor.recorder}). */
export type OutcomeRecorder = (ok: boolean, ms: number, tenant?: string) => void;

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
 * Per-version outcomes in a sliding window (server errors count as failures; bad input, 429s and
 * the like are the caller's, not the version's). `judge` compares canary with stable. Outcomes
 * come from `record` (one process) or `addCounts` (tallies of every gateway, so that the verdict
 * is the cluster's, not one gateway's share of the traffic).
 */
export class CanaryMonitor {
  readonly #windows = new Map<string, OutcomeWindow>();
  constructor(private readonly now: () => number = Date.now) {}

  #of(model: string, version: number): OutcomeWindow {
    const k = `${model}@${version}`;
    let w = this.#windows.get(k);
    if (!w) this.#windows.set(k, (w = new OutcomeWindow()));
    return w;
  }

  record(model: string, version: number, ok: boolean, ms: number): void {
    this.#of(model, version).add(this.now(), ok, ms);
  }

  /** A recorder bound to one version (no key lookup per request). */
  recorder(model: string, version: number): OutcomeRecorder {
    const w = this.#of(model, version);
    return (ok, ms) => w.add(this.now(), ok, ms);
  }

  /** Adds a tally (from any gateway) as of `atMs`. */
  addCounts(c: OutcomeCounts, atMs = this.now()): void {
    this.#of(c.model, c.version).addCounts(atMs, c);
  }

  /** Outcomes of the last `windowMs` (at most {@link MAX_WINDOW_MS}), not before `since`. */
  health(model: string, version: number, windowMs: number, since = 0): TrackHealth {
    const now = this.now();
    const w = this.#windows.get(`${model}@${version}`);
    if (!w) return { requests: 0, errors: 0, errorRate: 0, p99Ms: 0 };
    return w.health(Math.max(now - Math.min(windowMs, MAX_WINDOW_MS), since), now);
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
    const latencyN = Math.max(p.minRequests, p.minLatencyRequests ?? 100);
    if (canary.requests >= latencyN && stable.requests >= latencyN && canary.p99Ms > stable.p99Ms * p.maxP99Ratio && canary.p99Ms - stable.p99Ms > p.minP99DeltaMs) {
      return { rollback: true, reason: `canary p99 ${canary.p99Ms.toFixed(1)} ms vs stable ${stable.p99Ms.toFixed(1)} ms (allowed ×${p.maxP99Ratio})`, stable, canary };
    }
    return { rollback: false, stable, canary };
  }
}
