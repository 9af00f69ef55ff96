/**
 * Spot price and availability traces, one per pool: sampled every `stepMs` from `startAt`.
 * Synthetic traces are deterministic by seed; recorded ones (e.g. from a cloud's spot price
 * history) are replayed as they are.
 *
 * The synthetic model: availability is a two-state Markov chain per pool whose mean up-time is
 * 1 / interruptionRatePerHour hours and whose mean outage is `meanOutageHours`; the price is a
 * mean-reverting walk around the type's spot price, capped at the on-demand price.
 */
import { seededRandom } from '../../cluster/index.ts';
import { SchedulerErrors } from '../errors.ts';
import type { ResolvedCatalogue } from '../types.ts';

export interface SpotTrace {
  pool: string;
  startAt: number;
  stepMs: number;
  /** Price per hour at each step. */
  price: Float64Array | number[];
  /** 1 = spot capacity available at that step, 0 = none (running spot nodes are preempted). */
  available: Uint8Array | number[];
}

export interface SyntheticTraceOptions {
  seed: number;
  startAt?: number;
  durationMs: number;
  /** @default 300_000 (5 min) */
  stepMs?: number;
  /** Mean length of a capacity outage. @default 1 */
  meanOutageHours?: number;
  /** Relative volatility of the price walk per step. @default 0.03 */
  priceVolatility?: number;
  /**
   * Capacity crunches shared by every spot pool of one node type (a region short of GPUs):
   * rate per hour and mean length. @default none
   */
  correlatedOutages?: { ratePerHour: number; meanHours: number };
}

export function syntheticTraces(cat: ResolvedCatalogue, opts: SyntheticTraceOptions): Map<string, SpotTrace> {
  const stepMs = opts.stepMs ?? 300_000;
  const steps = Math.ceil(opts.durationMs / stepMs) + 1;
  const stepH = stepMs / 3_600_000;
  const outH = opts.meanOutageHours ?? 1;
  const vol = opts.priceVolatility ?? 0.03;
  const out = new Map<string, SpotTrace>();
  // One shared up/down chain per node type for correlated crunches.
  const shared = new Map<string, Uint8Array>();
  if (opts.correlatedOutages) {
    const { ratePerHour, meanHours } = opts.correlatedOutages;
    let typeIndex = 0;
    for (const t of cat.types.keys()) {
      const rnd = seededRandom(opts.seed * 7727 + ++typeIndex * 104729);
      const chain = new Uint8Array(steps);
      let up = true;
      for (let i = 0; i < steps; i++) {
        up = up ? rnd() >= 1 - Math.exp(-ratePerHour * stepH) : rnd() < 1 - Math.exp(-stepH / meanHours);
        chain[i] = up ? 1 : 0;
      }
      shared.set(t, chain);
    }
  }
  let poolIndex = 0;
  for (const pool of cat.pools.values()) {
    // One stream per pool (seed + index) so adding a pool does not change the others' traces.
    const rnd = seededRandom(opts.seed * 1009 + ++poolIndex * 7919);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
    const price = new Float64Array(steps);
    const available = new Uint8Array(steps);
    const t = pool.nodeType;
    const base = pool.spot ? t.spotPricePerHour : t.onDemandPricePerHour;
    const pDown = pool.spot ? 1 - Math.exp(-t.interruptionRatePerHour * stepH) : 0;
    const pUp = 1 - Math.exp(-stepH / outH);
    let up = true;
    let x = 0;
    for (let i = 0; i < steps; i++) {
      if (pool.spot) {
        up = up ? rnd() >= pDown : rnd() < pUp;
        x = 0.97 * x + vol * gauss();
        price[i] = Math.min(t.onDemandPricePerHour, base * Math.exp(x));
      } else price[i] = base;
      available[i] = up && (!pool.spot || (shared.get(pool.type)?.[i] ?? 1) === 1) ? 1 : 0;
    }
    out.set(pool.name, { pool: pool.name, startAt: opts.startAt ?? 0, stepMs, price, available });
  }
  return out;
}

/** Validates a recorded trace for replay. */
export function replayTrace(trace: SpotTrace): SpotTrace {
  if (!(trace.stepMs > 0)) throw SchedulerErrors.BAD_OPTION(`traces.${trace.pool}.stepMs`, 'must be > 0');
  if (trace.price.length === 0 || trace.price.length !== trace.available.length) throw SchedulerErrors.BAD_OPTION(`traces.${trace.pool}`, 'price and available must be non-empty and of equal length');
  return trace;
}

/** Step index of `t` in `trace` (clamped to the last step). */
export function traceStep(trace: SpotTrace, t: number): number {
  return Math.max(0, Math.min(trace.price.length - 1, Math.floor((t - trace.startAt) / trace.stepMs)));
}
