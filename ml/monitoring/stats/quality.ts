/**
 * Quality of a binary classifier on labeled rows, each number with a confidence interval and its
 * sample size: accuracy, precision and recall with Wilson score intervals (Wilson 1927; the
 * interval Newcombe 1998 recommends for a proportion), F1 and the calibration error (ECE) with a
 * percentile bootstrap (seeded, so reports are reproducible), ROC AUC (ties count ½) with DeLong's
 * variance (DeLong, DeLong, Clarke-Pearson 1988).
 */
import { seededRandom } from '../../../cluster/index.ts';
import { normalQuantile } from './special.ts';

export interface Interval {
  value: number;
  lower: number;
  upper: number;
  /** The sample size the value was computed from (its denominator). */
  n: number;
}

export interface CalibrationBin {
  /** The bin's score range [lower, upper). */
  lower: number;
  upper: number;
  rows: number;
  meanScore: number;
  positiveRate: number;
}

export interface QualityOptions {
  /** Scores at or above it are predicted positive. @default 0.5 */
  threshold?: number;
  /** Of every interval. @default 0.95 */
  confidence?: number;
  /** Equal-width calibration bins over [0, 1]. @default 10 */
  bins?: number;
  /** Bootstrap resamples for F1 and ECE. @default 200 */
  bootstrap?: number;
  /** @default 1 */
  seed?: number;
}

export interface QualityReport {
  rows: number;
  positives: number;
  threshold: number;
  confidence: number;
  confusion: { tp: number; fp: number; tn: number; fn: number };
  accuracy: Interval;
  precision: Interval;
  recall: Interval;
  f1: Interval;
  auc: Interval;
  ece: Interval;
  calibration: CalibrationBin[];
}

const z = (confidence: number) => normalQuantile(1 - (1 - confidence) / 2);

/** The Wilson score interval of `successes` out of `n` ([0, 1] when n = 0). */
export function wilson(successes: number, n: number, confidence = 0.95): Interval {
  if (n === 0) return { value: NaN, lower: 0, upper: 1, n };
  const zz = z(confidence);
  const p = successes / n;
  const z2 = zz * zz;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (zz * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return { value: p, lower: Math.max(0, centre - half), upper: Math.min(1, centre + half), n };
}

/** Confusion counts at a threshold. */
export function confusion(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): { tp: number; fp: number; tn: number; fn: number } {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const pred = scores[i]! >= threshold;
    const y = labels[i]! > 0;
    if (pred && y) tp++;
    else if (pred) fp++;
    else if (y) fn++;
    else tn++;
  }
  return { tp, fp, tn, fn };
}

export function f1Of(c: { tp: number; fp: number; fn: number }): number {
  return c.tp === 0 ? 0 : (2 * c.tp) / (2 * c.tp + c.fp + c.fn);
}

/** For each of `xs`, the share of `sorted` below it, ties counting half (DeLong's placement value ψ). */
function placements(xs: ArrayLike<number>, sorted: Float64Array): Float64Array {
  const out = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    let eq = lo;
    hi = sorted.length;
    while (eq < hi) {
      const mid = (eq + hi) >> 1;
      if (sorted[mid]! <= x) eq = mid + 1;
      else hi = mid;
    }
    out[i] = (lo + 0.5 * (eq - lo)) / sorted.length;
  }
  return out;
}

/**
 * DeLong's structural components of the ROC AUC: V10 per positive (share of negatives below it)
 * and V01 per negative (share of positives above it); the AUC is the mean of either. Undefined
 * without at least one positive and one negative label.
 */
export function delongComponents(scores: ArrayLike<number>, labels: ArrayLike<number>): { auc: number; v10: Float64Array; v01: Float64Array } | undefined {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < scores.length; i++) (labels[i]! > 0 ? pos : neg).push(scores[i]!);
  if (pos.length === 0 || neg.length === 0) return undefined;
  const v10 = placements(pos, Float64Array.from(neg).sort());
  const v01 = placements(neg, Float64Array.from(pos).sort()).map((b) => 1 - b);
  let s = 0;
  for (const v of v10) s += v;
  return { auc: s / v10.length, v10, v01 };
}

/**
 * ROC AUC (P(score of a positive > score of a negative), ties ½) and DeLong's variance:
 * Var = S10/m + S01/n, from the positives' and negatives' placement values.
 */
export function aucDeLong(scores: ArrayLike<number>, labels: ArrayLike<number>): { auc: number; variance: number; positives: number; negatives: number } {
  const c = delongComponents(scores, labels);
  if (!c) {
    let m = 0;
    for (let i = 0; i < labels.length; i++) if (labels[i]! > 0) m++;
    return { auc: NaN, variance: NaN, positives: m, negatives: labels.length - m };
  }
  const m = c.v10.length;
  const n = c.v01.length;
  const s = (v: Float64Array, mean: number) => (v.length > 1 ? v.reduce((acc, x) => acc + (x - mean) ** 2, 0) / (v.length - 1) : 0);
  return { auc: c.auc, variance: s(c.v10, c.auc) / m + s(c.v01, c.auc) / n, positives: m, negatives: n };
}

/** Expected calibration error over `bins` equal-width bins: Σ (rows_b/n)·|mean score_b − positive rate_b|. */
export function calibration(scores: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): { ece: number; bins: CalibrationBin[] } {
  const acc = Array.from({ length: bins }, () => ({ n: 0, s: 0, y: 0 }));
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]!;
    const b = acc[Math.min(bins - 1, Math.max(0, Math.floor(p * bins)))]!;
    b.n++;
    b.s += p;
    b.y += labels[i]! > 0 ? 1 : 0;
  }
  const n = scores.length;
  let ece = 0;
  const out: CalibrationBin[] = [];
  acc.forEach((b, i) => {
    if (!b.n) return;
    ece += (b.n / n) * Math.abs(b.s / b.n - b.y / b.n);
    out.push({ lower: i / bins, upper: (i + 1) / bins, rows: b.n, meanScore: b.s / b.n, positiveRate: b.y / b.n });
  });
  return { ece: n ? ece : NaN, bins: out };
}

/** A percentile bootstrap interval of `stat` over resampled row indices (seeded). */
export function bootstrap(n: number, stat: (idx: Uint32Array) => number, o: { resamples: number; seed: number; confidence: number }): { lower: number; upper: number } {
  if (n === 0) return { lower: NaN, upper: NaN };
  const r = seededRandom(o.seed);
  const values: number[] = [];
  const idx = new Uint32Array(n);
  for (let b = 0; b < o.resamples; b++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(r() * n);
    const v = stat(idx);
    if (Number.isFinite(v)) values.push(v);
  }
  values.sort((a, b) => a - b);
  if (!values.length) return { lower: NaN, upper: NaN };
  const q = (p: number) => values[Math.min(values.length - 1, Math.max(0, Math.floor(p * values.length)))]!;
  return { lower: q((1 - o.confidence) / 2), upper: q(1 - (1 - o.confidence) / 2) };
}

/** Every quality metric with its interval, on scores (probability of the positive class) and 0/1 labels. */
export function binaryQuality(scores: ArrayLike<number>, labels: ArrayLike<number>, o: QualityOptions = {}): QualityReport {
  if (scores.length !== labels.length) throw new RangeError(`binaryQuality: ${scores.length} scores but ${labels.length} labels`);
  const threshold = o.threshold ?? 0.5;
  const confidence = o.confidence ?? 0.95;
  const bins = o.bins ?? 10;
  const boot = { resamples: o.bootstrap ?? 200, seed: o.seed ?? 1, confidence };
  const n = scores.length;
  const c = confusion(scores, labels, threshold);
  const f1 = f1Of(c);
  const f1Boot = bootstrap(
    n,
    (idx) => {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (const i of idx) {
        const pred = scores[i]! >= threshold;
        const y = labels[i]! > 0;
        if (pred && y) tp++;
        else if (pred) fp++;
        else if (y) fn++;
      }
      return f1Of({ tp, fp, fn });
    },
    boot,
  );
  const cal = calibration(scores, labels, bins);
  const eceBoot = bootstrap(
    n,
    (idx) => {
      const s = new Float64Array(idx.length);
      const y = new Float64Array(idx.length);
      idx.forEach((i, k) => {
        s[k] = scores[i]!;
        y[k] = labels[i]!;
      });
      return calibration(s, y, bins).ece;
    },
    boot,
  );
  const a = aucDeLong(scores, labels);
  const half = z(confidence) * Math.sqrt(a.variance);
  return {
    rows: n,
    positives: c.tp + c.fn,
    threshold,
    confidence,
    confusion: c,
    accuracy: wilson(c.tp + c.tn, n, confidence),
    precision: wilson(c.tp, c.tp + c.fp, confidence),
    recall: wilson(c.tp, c.tp + c.fn, confidence),
    f1: { value: f1, ...f1Boot, n },
    auc: { value: a.auc, lower: Math.max(0, a.auc - half), upper: Math.min(1, a.auc + half), n },
    ece: { value: cal.ece, ...eceBoot, n },
    calibration: cal.bins,
  };
}

/** A label as 0/1: true, 1, "1", "true", "yes" (or `positive` when given) are positive. */
export function binaryLabel(label: number | string | boolean, positive?: number | string | boolean): 0 | 1 {
  if (positive !== undefined) return label === positive || String(label) === String(positive) ? 1 : 0;
  if (typeof label === 'boolean') return label ? 1 : 0;
  if (typeof label === 'number') return label > 0 ? 1 : 0;
  return ['1', 'true', 'yes', 'positive'].includes(label.toLowerCase()) ? 1 : 0;
}
