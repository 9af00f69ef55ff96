/**
 * The confidence-drop rule (the product seed's example: an alert when a fraud model's average
 * prediction confidence drops significantly over an hour): the window's mean confidence against
 * the reference's, a one-sided Welch t-test (unequal variances, Welch-Satterthwaite degrees of
 * freedom) on moments alone — so merged replica sketches suffice — plus a minimum drop, because
 * with enough rows any drop is "significant".
 */
import { Moments } from './sketch.ts';
import { studentTSf } from './special.ts';

export interface ConfidenceDropOptions {
  /** One-sided significance level. @default 0.01 */
  alpha?: number;
  /** The drop (reference mean − window mean) must also be at least this large. @default 0.02 */
  minDrop?: number;
  /** Of the reported interval of the drop. @default 0.95 */
  confidence?: number;
}

export interface ConfidenceDrop {
  referenceMean: number;
  currentMean: number;
  /** referenceMean − currentMean, with its two-sided interval. */
  drop: number;
  interval: { lower: number; upper: number };
  t: number;
  degreesOfFreedom: number;
  /** One-sided: P(a drop this large | no drop). */
  pValue: number;
  fired: boolean;
  alpha: number;
  minDrop: number;
  referenceSize: number;
  currentSize: number;
}

/** A prediction's confidence: max(p, 1 − p) for a probability, the largest entry of a probability vector. */
export function confidenceOf(output: number | readonly number[]): number {
  if (typeof output === 'number') return Math.max(output, 1 - output);
  if (output.length === 1) return Math.max(output[0]!, 1 - output[0]!);
  let m = -Infinity;
  for (const v of output) if (v > m) m = v;
  return m;
}

/** The quantile of Student's t with `df` degrees of freedom (bisection on the CDF). */
export function studentTQuantile(p: number, df: number): number {
  let lo = -1e3;
  let hi = 1e3;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    const cdf = 1 - studentTSf(mid, df);
    if (cdf < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export function confidenceDrop(reference: Moments, current: Moments, o: ConfidenceDropOptions = {}): ConfidenceDrop {
  const alpha = o.alpha ?? 0.01;
  const minDrop = o.minDrop ?? 0.02;
  const level = o.confidence ?? 0.95;
  const n1 = reference.n;
  const n2 = current.n;
  const drop = reference.mean - current.mean;
  const base = { referenceMean: reference.mean, currentMean: current.mean, drop, alpha, minDrop, referenceSize: n1, currentSize: n2 };
  if (n1 < 2 || n2 < 2) return { ...base, interval: { lower: -Infinity, upper: Infinity }, t: 0, degreesOfFreedom: 0, pValue: 1, fired: false };
  const a = reference.variance() / n1;
  const b = current.variance() / n2;
  const se = Math.sqrt(a + b);
  if (se === 0) {
    return { ...base, interval: { lower: drop, upper: drop }, t: drop > 0 ? Infinity : 0, degreesOfFreedom: n1 + n2 - 2, pValue: drop > 0 ? 0 : 1, fired: drop > 0 && drop >= minDrop };
  }
  const df = (a + b) ** 2 / (a * a / (n1 - 1) + (b * b) / (n2 - 1));
  const t = drop / se;
  const pValue = studentTSf(t, df);
  const q = studentTQuantile(1 - (1 - level) / 2, df);
  return { ...base, interval: { lower: drop - q * se, upper: drop + q * se }, t, degreesOfFreedom: df, pValue, fired: pValue < alpha && drop >= minDrop };
}
