/**
 * Performance estimated before labels arrive (NannyML's CBPE, confidence-based performance
 * estimation): if a score p is a calibrated probability of the positive class, a row predicted
 * positive is a true positive with probability p and a false positive with probability 1 − p
 * (and likewise for a predicted negative). Summing gives the expected confusion matrix of a
 * window, hence estimated accuracy, precision, recall and F1; the expected ROC AUC weighs every
 * (i, j) pair by p_i·(1 − p_j). Scores are first mapped through a calibrator fitted on the
 * reference (isotonic regression by pool-adjacent-violators), as CBPE does when a model's scores
 * are not calibrated. The estimate is right as long as the relation between score and label
 * holds (covariate shift); under concept drift it is not, which is what labels are for.
 */
import { normalQuantile } from './special.ts';

export interface IsotonicJSON {
  /** Upper score of each block (ascending) and the block's positive rate. */
  x: number[];
  y: number[];
}

/** An isotonic (non-decreasing) calibration map fitted by pool-adjacent-violators. */
export class IsotonicCalibrator {
  constructor(
    readonly x: number[],
    readonly y: number[],
  ) {}

  static fit(scores: ArrayLike<number>, labels: ArrayLike<number>): IsotonicCalibrator {
    const idx = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
    // Blocks: [sum of labels, weight, upper score]; equal scores start in one block.
    const sums: number[] = [];
    const weights: number[] = [];
    const uppers: number[] = [];
    for (const i of idx) {
      const s = scores[i]!;
      const y = labels[i]! > 0 ? 1 : 0;
      if (uppers.length && uppers.at(-1) === s) {
        sums[sums.length - 1]! += y;
        weights[weights.length - 1]! += 1;
      } else {
        sums.push(y);
        weights.push(1);
        uppers.push(s);
      }
      while (sums.length > 1 && sums.at(-2)! / weights.at(-2)! >= sums.at(-1)! / weights.at(-1)!) {
        const s1 = sums.pop()!;
        const w1 = weights.pop()!;
        const u1 = uppers.pop()!;
        sums[sums.length - 1]! += s1;
        weights[weights.length - 1]! += w1;
        uppers[uppers.length - 1] = u1;
      }
    }
    return new IsotonicCalibrator(
      uppers,
      sums.map((s, i) => s / weights[i]!),
    );
  }

  /** The calibrated probability of a score: its block's rate (scores above the last block take the last). */
  apply(score: number): number {
    const { x, y } = this;
    if (!x.length) return score;
    let lo = 0;
    let hi = x.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x[mid]! >= score) hi = mid;
      else lo = mid + 1;
    }
    return y[lo]!;
  }

  toJSON(): IsotonicJSON {
    return { x: [...this.x], y: [...this.y] };
  }

  static fromJSON(j: IsotonicJSON): IsotonicCalibrator {
    return new IsotonicCalibrator([...j.x], [...j.y]);
  }
}

export interface EstimatedPerformance {
  rows: number;
  threshold: number;
  /** Expected counts (fractional). */
  confusion: { tp: number; fp: number; tn: number; fn: number };
  accuracy: number;
  /**
   * The interval the realised accuracy falls in if the scores are calibrated: correctness of row i
   * is Bernoulli(max(p_i, 1 − p_i) on the predicted side), independent, so the variance is
   * Σ q_i(1 − q_i)/n² (normal approximation).
   */
  accuracyInterval: { lower: number; upper: number };
  precision: number;
  recall: number;
  f1: number;
  auc: number;
}

export interface EstimateOptions {
  /** A row is predicted positive when its probability is ≥ threshold (unless `predicted` says). @default 0.5 */
  threshold?: number;
  /**
   * The model's own decisions, when they are taken on the raw score (calibration may move a
   * score across the threshold's calibrated image inside a flat block): row i predicted positive.
   */
  predicted?: ArrayLike<boolean>;
  /** Of `accuracyInterval`. @default 0.95 */
  confidence?: number;
}

/** CBPE on calibrated probabilities of the positive class. */
export function estimatePerformance(probabilities: ArrayLike<number>, o: EstimateOptions = {}): EstimatedPerformance {
  const threshold = o.threshold ?? 0.5;
  const n = probabilities.length;
  if (o.predicted && o.predicted.length !== n) throw new RangeError(`estimatePerformance: ${n} probabilities but ${o.predicted.length} decisions`);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  let varSum = 0;
  for (let i = 0; i < n; i++) {
    const p = Math.min(1, Math.max(0, probabilities[i]!));
    if (o.predicted ? o.predicted[i] : p >= threshold) {
      tp += p;
      fp += 1 - p;
      varSum += p * (1 - p);
    } else {
      fn += p;
      tn += 1 - p;
      varSum += p * (1 - p);
    }
  }
  const accuracy = n ? (tp + tn) / n : NaN;
  const zz = normalQuantile(1 - (1 - (o.confidence ?? 0.95)) / 2);
  const half = n ? (zz * Math.sqrt(varSum)) / n : NaN;
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    rows: n,
    threshold,
    confusion: { tp, fp, tn, fn },
    accuracy,
    accuracyInterval: { lower: Math.max(0, accuracy - half), upper: Math.min(1, accuracy + half) },
    precision,
    recall,
    f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0,
    auc: expectedAuc(probabilities),
  };
}

/**
 * E[AUC] ≈ Σ_{i≠j} p_i(1 − p_j)·[s_i > s_j (+½ if equal)] / Σ_{i≠j} p_i(1 − p_j), with the
 * calibrated probability as the score: one sort, running sums of (1 − p) below each value.
 */
export function expectedAuc(probabilities: ArrayLike<number>): number {
  const p = Float64Array.from(probabilities).sort();
  const n = p.length;
  let negBelow = 0;
  let num = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    let posTie = 0;
    let negTie = 0;
    while (j < n && p[j] === p[i]) {
      posTie += p[j]!;
      negTie += 1 - p[j]!;
      j++;
    }
    // Pairs inside a tie group count ½ (a row is never paired with itself).
    let selfTie = 0;
    for (let k = i; k < j; k++) selfTie += p[k]! * (1 - p[k]!);
    num += posTie * negBelow + 0.5 * (posTie * negTie - selfTie);
    negBelow += negTie;
    i = j;
  }
  let sp = 0;
  let sn = 0;
  let self = 0;
  for (let i = 0; i < n; i++) {
    sp += p[i]!;
    sn += 1 - p[i]!;
    self += p[i]! * (1 - p[i]!);
  }
  const den = sp * sn - self;
  return den > 0 ? num / den : NaN;
}
