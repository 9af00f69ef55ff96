/**
 * Group fairness metrics of a binary classifier, written out by hand with Fairlearn's
 * definitions: per group the selection rate (share predicted positive), TPR, FPR, precision, ROC
 * AUC and size; across groups the demographic parity difference (max − min selection rate), the
 * equalized odds difference (the larger of the TPR and the FPR spreads) and the disparate impact
 * ratio (min / max selection rate, AIF360's "four-fifths rule" quantity).
 *
 * A group smaller than `minGroupSize` is reported with its metrics but is "too small to judge":
 * it takes no part in the summary metrics. A rate whose denominator is empty (a TPR in a group
 * with no positives) is NaN and is left out of the spread it would enter.
 */
import { rocAuc } from '../../training/metrics.ts';

export interface GroupMetrics {
  /** The group's label (its id as a string, or `a=1 & b=0` for an intersection). */
  group: string;
  size: number;
  positives: number;
  selectionRate: number;
  tpr: number;
  fpr: number;
  precision: number;
  auc: number;
  /** Fewer rows than the minimum group size: reported, not judged. */
  tooSmall: boolean;
}

export interface SummaryPoint {
  demographicParityDifference: number;
  equalizedOddsDifference: number;
  disparateImpact: number;
}

export const SUMMARY_METRICS = ['demographicParityDifference', 'equalizedOddsDifference', 'disparateImpact'] as const;
export type SummaryMetric = (typeof SUMMARY_METRICS)[number];

/** Confusion counts of one group. */
interface Counts {
  n: number;
  pos: number;
  predPos: number;
  tp: number;
  fp: number;
}

const rate = (num: number, den: number) => (den > 0 ? num / den : Number.NaN);

/** Counts per group id for the rows `idx` (every row when absent). */
function countGroups(pred: ArrayLike<number>, y: ArrayLike<number>, groups: ArrayLike<number>, idx?: ArrayLike<number>): Map<number, Counts> {
  const m = new Map<number, Counts>();
  const n = idx ? idx.length : pred.length;
  for (let k = 0; k < n; k++) {
    const i = idx ? idx[k]! : k;
    const g = groups[i]!;
    let c = m.get(g);
    if (!c) m.set(g, (c = { n: 0, pos: 0, predPos: 0, tp: 0, fp: 0 }));
    const yi = y[i] ? 1 : 0;
    const pi = pred[i] ? 1 : 0;
    c.n++;
    c.pos += yi;
    c.predPos += pi;
    if (pi && yi) c.tp++;
    else if (pi) c.fp++;
  }
  return m;
}

const spread = (xs: number[]): number => {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length < 2 ? Number.NaN : Math.max(...v) - Math.min(...v);
};

/** The summary metrics over the groups' counts (only the groups in `judged`). */
function summarize(counts: Map<number, Counts>, judged: ReadonlySet<number>): SummaryPoint {
  const sel: number[] = [];
  const tpr: number[] = [];
  const fpr: number[] = [];
  for (const [g, c] of counts) {
    if (!judged.has(g)) continue;
    sel.push(rate(c.predPos, c.n));
    tpr.push(rate(c.tp, c.pos));
    fpr.push(rate(c.fp, c.n - c.pos));
  }
  const s = sel.filter((x) => Number.isFinite(x));
  const tprSpread = spread(tpr);
  const fprSpread = spread(fpr);
  const max = Math.max(...s);
  return {
    demographicParityDifference: spread(sel),
    // Fairlearn: max(TPR difference, FPR difference); one undefined spread leaves the other.
    equalizedOddsDifference: Number.isNaN(tprSpread) ? fprSpread : Number.isNaN(fprSpread) ? tprSpread : Math.max(tprSpread, fprSpread),
    disparateImpact: s.length < 2 ? Number.NaN : max > 0 ? Math.min(...s) / max : 1,
  };
}

/** Per-group metrics (groups in ascending id order) at the decision `threshold` on scores `p`. */
export function groupMetrics(p: ArrayLike<number>, y: ArrayLike<number>, groups: ArrayLike<number>, threshold: number, minGroupSize: number, label: (g: number) => string = String): GroupMetrics[] {
  const pred = Array.from(p, (x) => (x >= threshold ? 1 : 0));
  const counts = countGroups(pred, y, groups);
  const ids = [...counts.keys()].sort((a, b) => a - b);
  return ids.map((g) => {
    const c = counts.get(g)!;
    const ps: number[] = [];
    const ys: number[] = [];
    for (let i = 0; i < p.length; i++) if (groups[i] === g) (ps.push(p[i]!), ys.push(y[i] ? 1 : 0));
    return {
      group: label(g),
      size: c.n,
      positives: c.pos,
      selectionRate: rate(c.predPos, c.n),
      tpr: rate(c.tp, c.pos),
      fpr: rate(c.fp, c.n - c.pos),
      precision: rate(c.tp, c.predPos),
      auc: c.pos === 0 || c.pos === c.n ? Number.NaN : rocAuc(ps, ys),
      tooSmall: c.n < minGroupSize,
    };
  });
}

/** The summary metrics at `threshold`, over the groups with at least `minGroupSize` rows. */
export function summaryMetrics(p: ArrayLike<number>, y: ArrayLike<number>, groups: ArrayLike<number>, threshold: number, minGroupSize: number): SummaryPoint {
  const pred = Array.from(p, (x) => (x >= threshold ? 1 : 0));
  const counts = countGroups(pred, y, groups);
  return summarize(counts, judgedGroups(counts, minGroupSize));
}

function judgedGroups(counts: Map<number, Counts>, minGroupSize: number): Set<number> {
  return new Set([...counts].filter(([, c]) => c.n >= minGroupSize).map(([g]) => g));
}

export interface Interval {
  value: number;
  low: number;
  high: number;
}

export interface BootstrapOptions {
  /** Resamples. @default 500 */
  samples?: number;
  /** @default 1 */
  seed?: number;
  /** Two-sided coverage of the percentile interval. @default 0.95 */
  confidence?: number;
}

/**
 * The summary metrics with percentile bootstrap intervals. Rows are resampled with replacement
 * (seeded); the groups judged are those judged on the full data.
 *
 * Each interval is of the gap between the groups at the ends of the point estimate (a fixed pair,
 * signed): a resample where the disadvantaged group comes out ahead gives a negative difference or
 * a ratio above 1. Re-taking max − min in every resample instead would push a fair model's
 * interval away from parity (|noise| is never below zero), so a fair model could not pass a
 * bound judged on its interval. With more than two groups the pair is fixed at the point
 * estimate's extremes (other pairs overtaking them in a resample are not followed).
 *
 * A resample in which a metric is undefined (a group drawn empty, or without positives) is left
 * out of that metric's interval (`used` says how many were kept).
 */
export function bootstrapSummary(
  p: ArrayLike<number>,
  y: ArrayLike<number>,
  groups: ArrayLike<number>,
  threshold: number,
  minGroupSize: number,
  o: BootstrapOptions & { random: () => number },
): Record<SummaryMetric, Interval & { used: number }> {
  const pred = Array.from(p, (x) => (x >= threshold ? 1 : 0));
  const full = countGroups(pred, y, groups);
  const judged = judgedGroups(full, minGroupSize);
  const point = summarize(full, judged);
  const sel = (c: Counts | undefined) => (c ? rate(c.predPos, c.n) : Number.NaN);
  const tpr = (c: Counts | undefined) => (c ? rate(c.tp, c.pos) : Number.NaN);
  const fpr = (c: Counts | undefined) => (c ? rate(c.fp, c.n - c.pos) : Number.NaN);
  const sPair = extremePair(full, judged, sel);
  const tPair = extremePair(full, judged, tpr);
  const fPair = extremePair(full, judged, fpr);
  const gap = (m: Map<number, Counts>, pair: [number, number] | undefined, f: (c: Counts | undefined) => number) => (pair ? f(m.get(pair[1])) - f(m.get(pair[0])) : Number.NaN);
  const B = o.samples ?? 500;
  const n = pred.length;
  const draws: Record<SummaryMetric, number[]> = { demographicParityDifference: [], equalizedOddsDifference: [], disparateImpact: [] };
  const idx = new Uint32Array(n);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < n; k++) idx[k] = Math.floor(o.random() * n);
    const m = countGroups(pred, y, groups, idx);
    const dpd = gap(m, sPair, sel);
    const hi = sPair ? sel(m.get(sPair[1])) : Number.NaN;
    const di = sPair && hi > 0 ? sel(m.get(sPair[0])) / hi : Number.NaN;
    const t = gap(m, tPair, tpr);
    const f = gap(m, fPair, fpr);
    const eod = Number.isNaN(t) ? f : Number.isNaN(f) ? t : Math.max(t, f);
    if (Number.isFinite(dpd)) draws.demographicParityDifference.push(dpd);
    if (Number.isFinite(di)) draws.disparateImpact.push(di);
    if (Number.isFinite(eod)) draws.equalizedOddsDifference.push(eod);
  }
  const alpha = (1 - (o.confidence ?? 0.95)) / 2;
  const out = {} as Record<SummaryMetric, Interval & { used: number }>;
  for (const m of SUMMARY_METRICS) {
    const d = draws[m].sort((a, b) => a - b);
    out[m] = { value: point[m], low: quantile(d, alpha), high: quantile(d, 1 - alpha), used: d.length };
  }
  return out;
}

/** The judged groups with the lowest and the highest finite value of `f` (ids), or undefined with fewer than two. */
function extremePair(counts: Map<number, Counts>, judged: ReadonlySet<number>, f: (c: Counts) => number): [number, number] | undefined {
  const v = [...counts].filter(([g, c]) => judged.has(g) && Number.isFinite(f(c))).sort((a, b) => f(a[1]) - f(b[1]) || a[0] - b[0]);
  return v.length < 2 ? undefined : [v[0]![0], v[v.length - 1]![0]];
}

/** Linear-interpolated quantile of sorted values (NaN when empty). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (h - lo);
}
