/** Holdout evaluation of a binary classifier: accuracy, precision, recall, F1, ROC AUC, calibration. */

export interface BinaryMetrics {
  rows: number;
  positives: number;
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** Area under the ROC curve (ties averaged). */
  auc: number;
  /** Mean squared error of the probabilities. */
  brier: number;
  /** Expected calibration error over 10 equal-width bins. */
  ece: number;
  /** The decision threshold the confusion metrics use. */
  threshold: number;
  logLoss: number;
}

export function rocAuc(p: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = p.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a]! - p[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && p[idx[j + 1]!] === p[idx[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (y[idx[k]!]) {
      pos++;
      rankSum += avgRank;
    }
    i = j + 1;
  }
  const neg = n - pos;
  return pos === 0 || neg === 0 ? 0.5 : (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

export function evaluate(p: ArrayLike<number>, y: ArrayLike<number>, threshold = 0.5): BinaryMetrics {
  const n = p.length;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  let brier = 0;
  let logLoss = 0;
  const bins = Array.from({ length: 10 }, () => ({ n: 0, p: 0, y: 0 }));
  for (let i = 0; i < n; i++) {
    const pi = p[i]!;
    const yi = y[i] ? 1 : 0;
    const pred = pi >= threshold ? 1 : 0;
    if (pred && yi) tp++;
    else if (pred) fp++;
    else if (yi) fn++;
    else tn++;
    brier += (pi - yi) ** 2;
    const c = Math.min(1 - 1e-12, Math.max(1e-12, pi));
    logLoss -= yi ? Math.log(c) : Math.log(1 - c);
    const b = bins[Math.min(9, Math.floor(pi * 10))]!;
    b.n++;
    b.p += pi;
    b.y += yi;
  }
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    rows: n,
    positives: tp + fn,
    accuracy: n ? (tp + tn) / n : 0,
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    auc: rocAuc(p, y),
    brier: n ? brier / n : 0,
    ece: n ? bins.reduce((s, b) => s + (b.n ? Math.abs(b.p / b.n - b.y / b.n) * b.n : 0), 0) / n : 0,
    threshold,
    logLoss: n ? logLoss / n : 0,
  };
}

/** The threshold with the best F1 (over the distinct predicted values' quantiles). */
export function bestF1Threshold(p: ArrayLike<number>, y: ArrayLike<number>): number {
  const sorted = Array.from(p).sort((a, b) => a - b);
  let best = 0.5;
  let bestF1 = -1;
  for (let q = 0.5; q < 1; q += 0.005) {
    const t = sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    const f1 = evaluate(p, y, t).f1;
    if (f1 > bestF1) {
      bestF1 = f1;
      best = t;
    }
  }
  return best;
}
