/**
 * The blessing gates of a pipeline run (TFX's Evaluator): the candidate and the production
 * version scored on the same holdout. AUC is compared with DeLong's paired variance (1988), so
 * "not worse than production by more than δ" is judged on the lower end of a one-sided interval
 * of the difference, not on a point estimate; calibration is the expected calibration error over
 * equal-width bins; fairness reuses the governance judge.
 */
import { judge as judgeFairness, type FairnessAudit, type FairnessPolicy } from '../governance/fairness/index.ts';

/** ψ(x, y) counts: for each score in `xs`, how many of `sorted` are below it plus half the ties. */
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
    while (eq < sorted.length && sorted[eq] === x) eq++;
    out[i] = (lo + (eq - lo) / 2) / sorted.length;
  }
  return out;
}

interface Components {
  auc: number;
  /** V10 per positive, V01 per negative (DeLong's structural components). */
  v10: Float64Array;
  v01: Float64Array;
}

function components(p: ArrayLike<number>, y: ArrayLike<number>): Components {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < y.length; i++) (y[i]! > 0.5 ? pos : neg).push(p[i]!);
  if (pos.length === 0 || neg.length === 0) throw new RangeError('AUC needs at least one positive and one negative label');
  const sp = Float64Array.from(pos).sort();
  const sn = Float64Array.from(neg).sort();
  const v10 = placements(pos, sn);
  // For a negative, the share of positives above it: 1 − (below + ties/2)/m.
  const below = placements(neg, sp);
  const v01 = below.map((b) => 1 - b);
  let s = 0;
  for (const v of v10) s += v;
  return { auc: s / v10.length, v10, v01 };
}

/** Area under the ROC curve (Mann–Whitney, ties count half). */
export function auc(p: ArrayLike<number>, y: ArrayLike<number>): number {
  return components(p, y).auc;
}

const cov = (a: Float64Array, b: Float64Array): number => {
  const n = a.length;
  if (n < 2) return 0;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let s = 0;
  for (let i = 0; i < n; i++) s += (a[i]! - ma) * (b[i]! - mb);
  return s / (n - 1);
};

export interface AucComparison {
  candidate: number;
  production: number;
  /** candidate − production. */
  delta: number;
  /** DeLong standard error of `delta`. */
  se: number;
  /** Lower end of the one-sided interval of `delta` at `confidence`. */
  low: number;
  confidence: number;
}

/** Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(q: number): number {
  if (!(q > 0 && q < 1)) throw new RangeError(`quantile ${q} is not in (0, 1)`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const lowTail = 0.02425;
  if (q < lowTail) {
    const t = Math.sqrt(-2 * Math.log(q));
    return (((((c[0]! * t + c[1]!) * t + c[2]!) * t + c[3]!) * t + c[4]!) * t + c[5]!) / ((((d[0]! * t + d[1]!) * t + d[2]!) * t + d[3]!) * t + 1);
  }
  if (q > 1 - lowTail) return -normalQuantile(1 - q);
  const s = q - 0.5;
  const r = s * s;
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * s) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
}

/** Paired DeLong comparison of two scorings of the same rows. */
export function compareAuc(candidate: ArrayLike<number>, production: ArrayLike<number>, y: ArrayLike<number>, confidence = 0.95): AucComparison {
  if (candidate.length !== y.length || production.length !== y.length) throw new RangeError('candidate, production and labels must have one value per holdout row');
  const a = components(candidate, y);
  const b = components(production, y);
  const m = a.v10.length;
  const n = a.v01.length;
  const var10 = cov(a.v10, a.v10) + cov(b.v10, b.v10) - 2 * cov(a.v10, b.v10);
  const var01 = cov(a.v01, a.v01) + cov(b.v01, b.v01) - 2 * cov(a.v01, b.v01);
  const se = Math.sqrt(Math.max(0, var10 / m + var01 / n));
  const delta = a.auc - b.auc;
  return { candidate: a.auc, production: b.auc, delta, se, low: delta - normalQuantile(confidence) * se, confidence };
}

/** Expected calibration error over `bins` equal-width probability bins. */
export function ece(p: ArrayLike<number>, y: ArrayLike<number>, bins = 10): number {
  const count = new Float64Array(bins);
  const sumP = new Float64Array(bins);
  const sumY = new Float64Array(bins);
  for (let i = 0; i < p.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(p[i]! * bins)));
    count[b]!++;
    sumP[b]! += p[i]!;
    sumY[b]! += y[i]!;
  }
  let e = 0;
  for (let b = 0; b < bins; b++) if (count[b]! > 0) e += Math.abs(sumP[b]! - sumY[b]!) / p.length;
  return e;
}

export interface GatePolicy {
  /** The candidate's AUC may be lower than production's by at most this (judged on the interval's low end). */
  maxAucDrop: number;
  /** @default 0.95 */
  confidence?: number;
  /** Upper bound of the candidate's ECE. */
  maxEce?: number;
  fairness?: FairnessPolicy;
}

export interface GateCheck {
  gate: 'auc' | 'ece' | 'fairness';
  pass: boolean;
  message: string;
}

export interface GateReport {
  pass: boolean;
  holdoutRows: number;
  auc?: AucComparison;
  ece?: number;
  checks: GateCheck[];
}

const f3 = (x: number) => x.toFixed(3);

/**
 * Judges a candidate against production on one holdout. `production` undefined (a model's first
 * version) skips the comparison; the other gates still apply.
 */
export function judgeGates(policy: GatePolicy, holdout: { y: ArrayLike<number>; candidate: ArrayLike<number>; production?: ArrayLike<number> }, fairnessAudit?: FairnessAudit): GateReport {
  const checks: GateCheck[] = [];
  const report: GateReport = { pass: true, holdoutRows: holdout.y.length, checks };
  if (holdout.production) {
    const c = compareAuc(holdout.candidate, holdout.production, holdout.y, policy.confidence ?? 0.95);
    report.auc = c;
    const pass = c.low >= -policy.maxAucDrop;
    checks.push({
      gate: 'auc',
      pass,
      message: `AUC ${f3(c.candidate)} vs production ${f3(c.production)}: Δ ${f3(c.delta)}, ${Math.round(c.confidence * 100)}% lower bound ${f3(c.low)} ${pass ? '≥' : '<'} −${policy.maxAucDrop}`,
    });
  } else {
    const a = auc(holdout.candidate, holdout.y);
    checks.push({ gate: 'auc', pass: true, message: `AUC ${f3(a)} (no production version to compare with)` });
  }
  if (policy.maxEce !== undefined) {
    const e = ece(holdout.candidate, holdout.y);
    report.ece = e;
    const pass = e <= policy.maxEce;
    checks.push({ gate: 'ece', pass, message: `ECE ${f3(e)} ${pass ? '≤' : '>'} ${policy.maxEce}` });
  }
  if (policy.fairness) {
    const v = judgeFairness(policy.fairness, fairnessAudit, 'the candidate');
    checks.push({ gate: 'fairness', pass: v.pass, message: v.pass ? 'fairness policy met' : v.violations.map((x) => x.message).join('; ') });
  }
  report.pass = checks.every((c) => c.pass);
  return report;
}
