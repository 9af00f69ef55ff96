/**
 * Quality on labeled rows (with intervals), performance estimated before labels (CBPE), and the
 * confidence-drop rule. Known values: Wilson intervals from Newcombe (1998), "Two-sided
 * confidence intervals for the single proportion", Table I (method 3, no continuity correction);
 * AUC, DeLong variance, ECE, PAV and the expected AUC worked by hand from their definitions
 * (shown in the comments); Welch's t from its definition with the t table's 97.5 % point.
 */
import { describe, expect, it } from 'vitest';
import {
  IsotonicCalibrator,
  Moments,
  aucDeLong,
  binaryLabel,
  binaryQuality,
  buildReferenceProfile,
  calibration,
  confidenceDrop,
  confidenceOf,
  estimatePerformance,
  estimateWindow,
  expectedAuc,
  wilson,
} from '../../ml/monitoring/stats/index.ts';
import { rocAuc } from '../../ml/training/metrics.ts';
import { calibrationRows, fraudRows } from '../fixtures/monitoring-stats.ts';

describe('quality with intervals', () => {
  it('Wilson intervals match Newcombe 1998, Table I', () => {
    const cases: [number, number, number, number][] = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
    ];
    for (const [x, n, lo, hi] of cases) {
      const w = wilson(x, n);
      expect(w.lower).toBeCloseTo(lo, 4);
      expect(w.upper).toBeCloseTo(hi, 4);
      expect(w.n).toBe(n);
    }
    expect(wilson(0, 0)).toMatchObject({ lower: 0, upper: 1, n: 0 });
  });

  it('AUC with ties and DeLong\'s variance, by hand', () => {
    // Positives 0.9, 0.8, 0.4; negatives 0.7, 0.4, 0.2. Pairs won: 3 + 3 + (0 + ½ + 1) = 7.5 of 9.
    // Placements V10 = [1, 1, ½] (var 1/12), V01 = [⅔, ⅚, 1] (var 1/36): Var = (1/12)/3 + (1/36)/3 = 1/27.
    const a = aucDeLong([0.9, 0.8, 0.4, 0.7, 0.4, 0.2], [1, 1, 1, 0, 0, 0]);
    expect(a.auc).toBeCloseTo(7.5 / 9, 12);
    expect(a.variance).toBeCloseTo(1 / 27, 12);
    // Agrees with the trainer's rank-sum AUC on tied scores.
    const s = [0.1, 0.4, 0.4, 0.4, 0.6, 0.6, 0.9, 0.2, 0.9, 0.4];
    const y = [0, 1, 0, 1, 1, 0, 1, 0, 0, 1];
    expect(aucDeLong(s, y).auc).toBeCloseTo(rocAuc(s, y), 12);
  });

  it('ECE over equal-width bins, by hand', () => {
    // Bins of 0.1, 0.2, 0.8, 0.9 with labels 0, 1, 1, 1: |0.1−0| + |0.2−1| + |0.8−1| + |0.9−1| = 1.2, over 4 rows.
    const c = calibration([0.1, 0.2, 0.8, 0.9], [0, 1, 1, 1]);
    expect(c.ece).toBeCloseTo(0.3, 12);
    expect(c.bins).toHaveLength(4);
    expect(c.bins[1]).toMatchObject({ rows: 1, positiveRate: 1 });
  });

  it('reports every metric with an interval that holds its value and the sample size', () => {
    const { scores, labels } = calibrationRows({ rows: 2000, seed: 5 });
    const q = binaryQuality(scores, labels, { seed: 7 });
    expect(q.rows).toBe(2000);
    const c = q.confusion;
    expect(c.tp + c.fp + c.tn + c.fn).toBe(2000);
    expect(q.accuracy.value).toBeCloseTo((c.tp + c.tn) / 2000, 12);
    expect(q.precision.n).toBe(c.tp + c.fp);
    expect(q.recall.n).toBe(c.tp + c.fn);
    for (const m of [q.accuracy, q.precision, q.recall, q.f1, q.auc, q.ece]) {
      expect(m.lower).toBeLessThanOrEqual(m.value);
      expect(m.upper).toBeGreaterThanOrEqual(m.value);
      expect(m.upper - m.lower).toBeGreaterThan(0);
      expect(m.upper - m.lower).toBeLessThan(0.2);
    }
    // The bootstrap is seeded: the same seed, the same interval; the model is over-confident, so ECE is far from 0.
    expect(binaryQuality(scores, labels, { seed: 7 }).f1).toEqual(q.f1);
    expect(q.ece.lower).toBeGreaterThan(0.05);
    // Ten times the rows: a narrower interval.
    const big = calibrationRows({ rows: 20_000, seed: 6 });
    const qb = binaryQuality(big.scores, big.labels, { bootstrap: 50 });
    expect(qb.accuracy.upper - qb.accuracy.lower).toBeLessThan(q.accuracy.upper - q.accuracy.lower);
  });

  it('labels of any type map to 0/1', () => {
    expect([true, false, 1, 0, 'yes', 'no', 'true', '1'].map((l) => binaryLabel(l))).toEqual([1, 0, 1, 0, 1, 0, 1, 1]);
    expect(binaryLabel('fraud', 'fraud')).toBe(1);
    expect(binaryLabel('legit', 'fraud')).toBe(0);
  });
});

describe('estimated performance before labels (CBPE)', () => {
  it('pool-adjacent-violators and the expected AUC, by hand', () => {
    // Labels 0, 1, 0, 1, 1 at scores 0.1 … 0.5: the violation (1, 0) pools to ½; the rest stays.
    const cal = IsotonicCalibrator.fit([0.1, 0.2, 0.3, 0.4, 0.5], [0, 1, 0, 1, 1]);
    expect([0.1, 0.25, 0.3, 0.45, 0.9].map((s) => cal.apply(s))).toEqual([0, 0.5, 0.5, 1, 1]);
    // p = [0.2, 0.8]: the pair (0.8 positive, 0.2 negative) weighs 0.8·0.8 and is ranked right;
    // (0.2 positive, 0.8 negative) weighs 0.2·0.2 and is not: 0.64 / 0.68.
    expect(expectedAuc([0.2, 0.8])).toBeCloseTo(0.64 / 0.68, 12);
    // Expected confusion: p = 0.9 predicted positive is 0.9 TP + 0.1 FP, p = 0.3 is 0.3 FN + 0.7 TN.
    const e = estimatePerformance([0.9, 0.3]);
    expect(e.confusion.tp).toBeCloseTo(0.9, 12);
    expect(e.confusion.fp).toBeCloseTo(0.1, 12);
    expect(e.confusion.fn).toBeCloseTo(0.3, 12);
    expect(e.confusion.tn).toBeCloseTo(0.7, 12);
    expect(e.accuracy).toBeCloseTo(0.8, 12);
  });

  it('tracks the labeled metrics on shifted data within 0.03 (accuracy, F1, AUC)', () => {
    // The reference: 5000 labeled rows of an over-confident model; the calibration map is fitted on it.
    const ref = buildReferenceProfile(calibrationRows({ rows: 5000, seed: 3 }).rows, undefined, { createdAt: 0 });
    expect(ref.calibration).toBeDefined();
    const TOL = 0.03;
    const seen: { shift: number; est: number; real: number }[] = [];
    for (const shift of [-1, -0.5, 0.5, 1, 1.5]) {
      const w = calibrationRows({ rows: 5000, seed: 100 + Math.round(10 * shift), shift });
      const est = estimateWindow(ref, w.scores)!;
      const real = binaryQuality(w.scores, w.labels, { bootstrap: 20 });
      expect(Math.abs(est.accuracy - real.accuracy.value), `accuracy at shift ${shift}`).toBeLessThanOrEqual(TOL);
      expect(Math.abs(est.f1 - real.f1.value), `F1 at shift ${shift}`).toBeLessThanOrEqual(TOL);
      expect(Math.abs(est.auc - real.auc.value), `AUC at shift ${shift}`).toBeLessThanOrEqual(TOL);
      expect(est.rows).toBe(5000);
      seen.push({ shift, est: est.f1, real: real.f1.value });
    }
    // The shift moves F1 a lot (far more than the tolerance), and the estimate moves with it.
    expect(seen.at(-1)!.real - seen[0]!.real).toBeGreaterThan(0.25);
    expect(seen.at(-1)!.est - seen[0]!.est).toBeGreaterThan(0.25);
    // Without the calibration map the over-confident scores would overstate accuracy badly.
    const w = calibrationRows({ rows: 5000, seed: 111, shift: 1 });
    expect(estimatePerformance(w.scores).accuracy - binaryQuality(w.scores, w.labels, { bootstrap: 20 }).accuracy.value).toBeGreaterThan(0.05);
  });
});

describe('confidence drop', () => {
  const moments = (n: number, mean: number, variance: number) => Moments.fromJSON({ n, mean, m2: variance * (n - 1), min: 0, max: 1 });

  it('Welch\'s t on moments, by hand', () => {
    // Reference n = 1000, mean 0.90, var 0.01; window n = 100, mean 0.85, var 0.02.
    // SE = √(1e-5 + 2e-4) = 0.0144914; t = 0.05 / SE = 3.4503;
    // df = (2.1e-4)² / ((1e-5)²/999 + (2e-4)²/99) = 109.12; t_{0.975, 109} ≈ 1.982 (table: 1.984 at 100, 1.980 at 120).
    const d = confidenceDrop(moments(1000, 0.9, 0.01), moments(100, 0.85, 0.02));
    expect(d.drop).toBeCloseTo(0.05, 12);
    expect(d.t).toBeCloseTo(3.4503, 3);
    expect(d.degreesOfFreedom).toBeCloseTo(109.12, 1);
    expect(d.interval.lower).toBeCloseTo(0.05 - 1.982 * 0.0144914, 3);
    expect(d.interval.upper).toBeCloseTo(0.05 + 1.982 * 0.0144914, 3);
    expect(d.pValue).toBeLessThan(0.001);
    expect(d.fired).toBe(true);
    expect(d).toMatchObject({ referenceSize: 1000, currentSize: 100 });
    // Significant but too small to matter: a 0.005 drop on a million rows does not fire (minDrop 0.02).
    expect(confidenceDrop(moments(1e6, 0.9, 0.01), moments(1e6, 0.895, 0.01)).fired).toBe(false);
    // A rise never fires.
    expect(confidenceDrop(moments(1000, 0.8, 0.01), moments(1000, 0.9, 0.01)).fired).toBe(false);
  });

  it('fires on the fraud model when the population drifts, not on undrifted traffic (the seed\'s example)', () => {
    const confidences = (drift: number, seed: number, rows: number) => {
      const m = new Moments();
      for (const r of fraudRows({ rows, seed, drift })) m.update(confidenceOf(r.outputs.score as number));
      return m;
    };
    const ref = confidences(0, 1, 5000);
    // Drift raises amounts and shortens account ages: more scores near ½, lower confidence.
    const low = confidenceDrop(ref, confidences(0.5, 2, 1000));
    expect(low.fired).toBe(true);
    expect(low.interval.lower).toBeGreaterThan(0.02);
    expect(low).toMatchObject({ referenceSize: 5000, currentSize: 1000 });
    const same = confidenceDrop(ref, confidences(0, 3, 1000));
    expect(same.fired).toBe(false);
    expect(same.interval.lower).toBeLessThan(0);
    expect(same.interval.upper).toBeGreaterThan(0);
    expect(confidenceOf([0.2, 0.7, 0.1])).toBe(0.7);
    expect(confidenceOf(0.1)).toBe(0.9);
  });
});
