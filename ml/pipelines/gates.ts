/**
 * The blessing gates of a pipeline run (TFX's Evaluator): the candidate and the production
 * version scored on the same holdout. AUC is compared with DeLong's paired variance (1988), so
 * "not worse than production by more than δ" is judged on the lower end of a one-sided interval
 * of the difference, not on a point estimate; calibration is the expected calibration error over
 * equal-width bins; fairness reuses the governance judge.
 */
import { judge as judgeFairness, type FairnessAudit, type FairnessPolicy } from '../governance/fairness/index.ts';
import { calibration, delongComponents } from '../monitoring/stats/quality.ts';
import { normalQuantile } from '../monitoring/stats/special.ts';
import { judgeLatency, type LatencyPolicy, type LatencyReplay } from './latency-gate.ts';

/** Area under the ROC curve (Mann–Whitney, ties count half). */
export function auc(p: ArrayLike<number>, y: ArrayLike<number>): number {
  return components(p, y).auc;
}

function components(p: ArrayLike<number>, y: ArrayLike<number>): { auc: number; v10: Float64Array; v01: Float64Array } {
  const c = delongComponents(p, y);
  if (!c) throw new RangeError('AUC needs at least one positive and one negative label');
  return c;
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

/** Expected calibration error over `bins` equal-width probability bins (monitoring's calibration; 0 with no rows). */
export function ece(p: ArrayLike<number>, y: ArrayLike<number>, bins = 10): number {
  return p.length === 0 ? 0 : calibration(p, y, bins).ece;
}

export interface GatePolicy {
  /** The candidate's AUC may be lower than production's by at most this (judged on the interval's low end). */
  maxAucDrop: number;
  /** @default 0.95 */
  confidence?: number;
  /** Upper bound of the candidate's ECE. */
  maxEce?: number;
  fairness?: FairnessPolicy;
  /** The latency gate's bounds (judged on a replay, latency-gate.ts). */
  latency?: LatencyPolicy;
}

export interface GateCheck {
  gate: 'auc' | 'ece' | 'fairness' | 'latency';
  pass: boolean;
  message: string;
}

export interface GateReport {
  pass: boolean;
  holdoutRows: number;
  auc?: AucComparison;
  ece?: number;
  /** Both versions' latency on the replay, when the pipeline has a latency gate. */
  latency?: LatencyReplay;
  checks: GateCheck[];
}

const f3 = (x: number) => x.toFixed(3);

/**
 * Judges a candidate against production on one holdout. `production` undefined (a model's first
 * version) skips the comparison; the other gates still apply.
 */
export function judgeGates(policy: GatePolicy, holdout: { y: ArrayLike<number>; candidate: ArrayLike<number>; production?: ArrayLike<number> }, fairnessAudit?: FairnessAudit, latency?: LatencyReplay): GateReport {
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
  if (policy.latency && latency) {
    report.latency = latency;
    checks.push(judgeLatency(policy.latency, latency));
  }
  report.pass = checks.every((c) => c.pass);
  return report;
}
