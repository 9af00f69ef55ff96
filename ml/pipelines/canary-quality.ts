/**
 * How a canary step is judged on model quality (issue #16 item 4), beside the rollout
 * controller's errors and latency: a pure function of the two tracks' monitor reports
 * (monitor-core.ts), so it is tested on known values without a cluster.
 *
 * Which window: the canary's newest closed window of its smallest size that ended after the step
 * began (so each step is judged on traffic it served), and the stable's window of the same size
 * and start — the same time, the same requests' distribution — or else its newest of that size
 * with enough rows (a 100 % step leaves the stable no new traffic).
 *
 * Which metric, in order of trust:
 * - `labeled`: both windows have at least `minLabeled` labeled rows: AUC (DeLong interval), or
 *   accuracy (Wilson) when AUC is undefined (one class only).
 * - `estimated`: before labels, CBPE's estimated AUC (an approximate Hanley-McNeil interval on the
 *   expected class counts), or estimated accuracy, on at least `minRows` scores per track.
 * - `insufficient`: neither.
 * The step fails when the canary is worse than the stable by more than `maxDrop` even at the high
 * end of the difference's interval: a rollback needs evidence, so the same model on the same
 * traffic (noise alone) does not roll back, while a real regression does once the rows show it.
 *
 * Always, when both windows have `minRows` scores: the divergence of the canary's score
 * distribution from the stable's (score histograms in the window reports): PSI, the JS distance
 * and the chi-squared test of homogeneity (ml/monitoring/stats), on the ten score bins with
 * sparse neighbours merged until each expects five of the smaller side's scores (poolSparseBins:
 * with 50 canary scores against 1,350, one score in a tail bin the stable rarely fills read as a
 * shift, PSI 0.34 and p = 0.0004, on the same traffic). It fails when PSI exceeds
 * `maxDivergence` and the difference is significant at (1 − confidence) ÷ `comparisons`: PSI
 * alone grows with sampling noise on small windows, and a run judges one divergence per step, so
 * the level is split over its steps (Bonferroni) to keep a run's chance of a false rollback on
 * it within 1 − confidence.
 *
 * Too few rows: the verdict is `insufficient` with `wait` set, and the stage waits for more (up
 * to `maxWaitMs`) rather than passing blindly. After the bound the step passes with basis
 * `insufficient` recorded — a model with little traffic or no labels can still be rolled out, the
 * gates have already judged it offline on the holdout, and the rollout controller still guards
 * errors and latency; the run record says the step was not judged on quality, and why. Failing
 * instead would make a canary of a quiet model impossible.
 */
import type { MonitorReport } from '../monitoring/monitor-actor.ts';
import type { WindowReport } from '../monitoring/monitor-core.ts';
import { chiSquaredTest, jensenShannonDistance, normalQuantile, poolSparseBins, psi } from '../monitoring/stats/index.ts';

export type QualityBasis = 'labeled' | 'estimated' | 'insufficient';

export interface CanaryQualityPolicy {
  maxDrop: number;
  maxDivergence: number;
  minLabeled: number;
  minRows: number;
  /** Of every interval and test. */
  confidence: number;
  /** Divergence tests a run makes (its steps): the divergence test's level is (1 − confidence) ÷ this. Default 1. */
  comparisons?: number;
}

/** A value with its interval, when the statistics give one, and its sample size. */
export interface Estimate {
  value: number;
  lower?: number;
  upper?: number;
  n: number;
}

export interface CanaryQuality {
  pass: boolean;
  basis: QualityBasis;
  reason: string;
  /** Canary rows the verdict rests on (labeled rows for `labeled`, scores for `estimated`, window rows else). */
  n: number;
  /** The stable's rows compared with. */
  stableN: number;
  /** More rows, labels or a closed window could still change an `insufficient` verdict. */
  wait?: boolean;
  window?: { size: string; start: number; end: number };
  metric?: { name: 'auc' | 'accuracy'; canary: Estimate; stable: Estimate; difference: { value: number; lower: number; upper: number } };
  divergence?: { psi: number; js: number; pValue: number; canaryRows: number; stableRows: number; /** Score bins compared, after sparse ones were merged. */ bins: number; pass: boolean };
}

const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : String(v));
const finite = (e: Estimate | undefined): e is Estimate & { lower: number; upper: number } => !!e && Number.isFinite(e.value) && Number.isFinite(e.lower) && Number.isFinite(e.upper);

/**
 * The windows compared: the canary's newest of its smallest size ended after `since` (with
 * `minRows` rows if one has), and the stable's of the same size and start, else its newest with
 * `minRows` rows (at a 100 % step the stable serves nothing new: its last full window stands in).
 */
function pickWindows(stable: MonitorReport, canary: MonitorReport, since: number, minRows: number): { c: WindowReport; s: WindowReport } | string {
  const cw = canary.windows.filter((w) => w.end > since);
  if (cw.length === 0) return 'no canary window has closed since the step began';
  const size = Math.min(...cw.map((w) => w.sizeMs));
  const mine = cw.filter((w) => w.sizeMs === size).sort((a, b) => b.end - a.end);
  const c = mine.find((w) => w.rows >= minRows) ?? mine[0]!;
  const sw = stable.windows.filter((w) => w.sizeMs === size).sort((a, b) => b.end - a.end);
  const same = sw.find((w) => w.start === c.start);
  const s = same && same.rows >= minRows ? same : (sw.find((w) => w.rows >= minRows) ?? same ?? sw[0]);
  return s ? { c, s } : `the stable has no closed ${c.window} window`;
}

/** An approximate interval of an AUC on `pos` positives and `neg` negatives (Hanley & McNeil 1982). */
function aucInterval(auc: number, pos: number, neg: number, z: number): { lower: number; upper: number } | undefined {
  if (!(pos >= 1 && neg >= 1) || !Number.isFinite(auc)) return undefined;
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  const v = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (pos * neg);
  const half = z * Math.sqrt(Math.max(0, v));
  return { lower: Math.max(0, auc - half), upper: Math.min(1, auc + half) };
}

function labeledMetric(w: WindowReport): { auc?: Estimate; accuracy?: Estimate } {
  const q = w.quality;
  if (!q) return {};
  return { auc: { ...q.auc }, accuracy: { ...q.accuracy } };
}

function estimatedMetric(w: WindowReport, z: number): { auc?: Estimate; accuracy?: Estimate } {
  const e = w.estimated;
  if (!e) return {};
  const ci = aucInterval(e.auc, e.confusion.tp + e.confusion.fn, e.confusion.tn + e.confusion.fp, z);
  return { ...(ci ? { auc: { value: e.auc, ...ci, n: e.rows } } : {}), accuracy: { value: e.accuracy, ...e.accuracyInterval, n: e.rows } };
}

function compare(name: 'auc' | 'accuracy', canary: Estimate & { lower: number; upper: number }, stable: Estimate & { lower: number; upper: number }): NonNullable<CanaryQuality['metric']> {
  const value = canary.value - stable.value;
  // Independent samples (different requests): the half-widths add in quadrature.
  const half = Math.hypot((canary.upper - canary.lower) / 2, (stable.upper - stable.lower) / 2);
  return { name, canary, stable, difference: { value, lower: value - half, upper: value + half } };
}

/** AUC when both sides have it with an interval, else accuracy; undefined when neither. */
function pickMetric(c: { auc?: Estimate; accuracy?: Estimate }, s: { auc?: Estimate; accuracy?: Estimate }): NonNullable<CanaryQuality['metric']> | undefined {
  if (finite(c.auc) && finite(s.auc)) return compare('auc', c.auc, s.auc);
  if (finite(c.accuracy) && finite(s.accuracy)) return compare('accuracy', c.accuracy, s.accuracy);
  return undefined;
}

function divergenceOf(c: WindowReport, s: WindowReport, p: CanaryQualityPolicy): CanaryQuality['divergence'] | 'few' | undefined {
  const hc = c.scoreHistogram;
  const hs = s.scoreHistogram;
  if (!hc || !hs || hc.length !== hs.length) return undefined;
  const nc = hc.reduce((a, b) => a + b, 0);
  const ns = hs.reduce((a, b) => a + b, 0);
  if (nc < p.minRows || ns < p.minRows) return 'few';
  const pooled = poolSparseBins(hs, hc);
  const value = psi(
    pooled.reference.map((k) => k / ns),
    pooled.current.map((k) => k / nc),
  );
  const asMap = (h: number[]) => new Map(h.map((k, i) => [String(i), k]));
  const js = jensenShannonDistance(asMap(pooled.reference), asMap(pooled.current));
  const { pValue } = chiSquaredTest(asMap(pooled.reference), asMap(pooled.current));
  const alpha = (1 - p.confidence) / Math.max(1, p.comparisons ?? 1);
  return { psi: value, js, pValue, canaryRows: nc, stableRows: ns, bins: pooled.reference.length, pass: !(value > p.maxDivergence && pValue < alpha) };
}

/**
 * Judges a canary step on the two tracks' monitor reports: windows closed after `since` (epoch
 * ms, the step's start) on the canary's side. Pure; see the file's comment for the rules.
 */
export function judgeCanaryQuality(stable: MonitorReport, canary: MonitorReport, policy: CanaryQualityPolicy, since = 0): CanaryQuality {
  const picked = pickWindows(stable, canary, since, policy.minRows);
  if (typeof picked === 'string') return { pass: true, basis: 'insufficient', reason: picked, n: 0, stableN: 0, wait: true };
  const { c, s } = picked;
  const window = { size: c.window, start: c.start, end: c.end };
  const z = normalQuantile(1 - (1 - policy.confidence) / 2);
  const div = divergenceOf(c, s, policy);
  const divergence = typeof div === 'object' ? div : undefined;
  const divText = divergence ? `; score PSI ${f3(divergence.psi)} (JS ${f3(divergence.js)}, χ² p=${divergence.pValue.toPrecision(2)})` : '';

  let basis: QualityBasis = 'insufficient';
  let metric: CanaryQuality['metric'];
  let n = c.rows;
  let stableN = s.rows;
  if ((c.quality?.rows ?? 0) >= policy.minLabeled && (s.quality?.rows ?? 0) >= policy.minLabeled) metric = pickMetric(labeledMetric(c), labeledMetric(s));
  if (metric) {
    basis = 'labeled';
    n = c.quality!.rows;
    stableN = s.quality!.rows;
  } else if ((c.estimated?.rows ?? 0) >= policy.minRows && (s.estimated?.rows ?? 0) >= policy.minRows) {
    metric = pickMetric(estimatedMetric(c, z), estimatedMetric(s, z));
    if (metric) {
      basis = 'estimated';
      n = c.estimated!.rows;
      stableN = s.estimated!.rows;
    }
  }
  const base = { basis, n, stableN, window, ...(metric ? { metric } : {}), ...(divergence ? { divergence } : {}) };

  const failures: string[] = [];
  if (metric && metric.difference.upper < -policy.maxDrop) {
    failures.push(`${basis} ${metric.name} ${f3(metric.canary.value)} on ${n} rows is worse than the stable's ${f3(metric.stable.value)} by more than maxDrop ${policy.maxDrop} (difference ${f3(metric.difference.value)} [${f3(metric.difference.lower)}, ${f3(metric.difference.upper)}])`);
  }
  if (divergence && !divergence.pass) {
    failures.push(`the canary's score distribution diverges from the stable's: PSI ${f3(divergence.psi)} > maxDivergence ${policy.maxDivergence} (JS ${f3(divergence.js)}, χ² p=${divergence.pValue.toPrecision(2)}, ${divergence.canaryRows} vs ${divergence.stableRows} scores in ${divergence.bins} bins)`);
  }
  if (failures.length) return { pass: false, ...base, reason: `${window.size} window: ${failures.join('; ')}` };

  if (!metric) {
    const few = c.rows < policy.minRows || div === 'few' || (!!c.estimated && (c.estimated.rows < policy.minRows || (s.estimated?.rows ?? 0) < policy.minRows));
    const why = few
      ? `${c.rows} canary and ${s.rows} stable rows in the ${window.size} window, fewer than minRows (${policy.minRows}) scored on a side`
      : `no labeled or estimated metric on both tracks (${c.quality?.rows ?? 0} labeled canary rows; estimated performance needs the versions' reference profiles)`;
    return { pass: true, ...base, reason: `${why}${divText}`, ...(few ? { wait: true } : {}) };
  }
  const m = metric;
  const mText = `${basis} ${m.name} ${f3(m.canary.value)} [${f3(m.canary.lower!)}, ${f3(m.canary.upper!)}] on ${n} rows vs the stable's ${f3(m.stable.value)} on ${stableN}: difference ${f3(m.difference.value)} [${f3(m.difference.lower)}, ${f3(m.difference.upper)}], within maxDrop ${policy.maxDrop}`;
  // The metric is judged, the divergence could not be yet (too few scores on a side): wait for it too.
  return { pass: true, ...base, reason: `${window.size} window: ${mText}${divText}`, ...(div === 'few' ? { wait: true } : {}) };
}
