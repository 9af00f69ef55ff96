/**
 * Drift tests: each statistic against a value computed by hand from its definition (or a
 * published example, named), the choice of test by window size, the multiple-testing correction,
 * and the statistical honesty of the whole: on undrifted windows (fraud generator, seeded) the
 * per-window false-alarm rate stays ≤ 5 %, and on the generator's drift knob the shifted
 * features are flagged and the unshifted ones are not.
 */
import { describe, expect, it } from 'vitest';
import {
  benjaminiHochberg,
  bonferroni,
  buildReferenceProfile,
  chiSquaredTest,
  chooseTest,
  ColumnSketch,
  detectDrift,
  driftAgainstReference,
  exactSample,
  jensenShannonDistance,
  ksPValue,
  ksStatistic,
  poolSparseBins,
  profileRows,
  psi,
  resolveDriftOptions,
  wassersteinDistance,
  type DriftOptions,
  type ReferenceProfile,
} from '../../ml/monitoring/stats/index.ts';
import { FRAUD_SHIFTED, FRAUD_UNSHIFTED, fraudRows } from '../fixtures/monitoring-stats.ts';

const numeric = (xs: number[]) => {
  const c = new ColumnSketch('numeric');
  xs.forEach((x) => c.update(x));
  return c;
};
const categorical = (xs: string[]) => {
  const c = new ColumnSketch('categorical');
  xs.forEach((x) => c.update(x));
  return c;
};

describe('drift statistics against hand-computed values', () => {
  it('KS statistic: the largest gap between the empirical CDFs', () => {
    // F_a steps ¼ at 1, 2, 3, 4; F_b ⅓ at 2.5, 5, 6. At x = 4: F_a = 1, F_b = ⅓ → D = ⅔.
    expect(ksStatistic(exactSample([1, 2, 3, 4]), exactSample([2.5, 5, 6]))).toBeCloseTo(2 / 3, 12);
    // Ties move together: identical samples have D = 0.
    expect(ksStatistic(exactSample([1, 1, 2, 2]), exactSample([2, 1, 2, 1]))).toBe(0);
  });

  it('KS p-value: the asymptotic one with Stephens\' correction hits Smirnov\'s 5 % point', () => {
    // n = m = 100: √ne = √50; (√ne + 0.12 + 0.11/√ne)·D = 1.3581 ⇒ p = 0.05.
    const en = Math.sqrt(50);
    const d = 1.3581 / (en + 0.12 + 0.11 / en);
    expect(ksPValue(d, 100, 100)).toBeCloseTo(0.05, 3);
    expect(ksPValue(0, 100, 100)).toBe(1);
  });

  it('chi-squared homogeneity test on a 2×2 table', () => {
    // reference a:30 b:70, current a:50 b:50. Expected counts 40/40 and 60/60:
    // X² = 100/40 + 100/40 + 100/60 + 100/60 = 8.3333, df = 1, p = 2·(1 − Φ(√8.3333)) = 0.00389.
    const t = chiSquaredTest(
      new Map([
        ['a', 30],
        ['b', 70],
      ]),
      new Map([
        ['a', 50],
        ['b', 50],
      ]),
    );
    expect(t.statistic).toBeCloseTo(25 / 3, 10);
    expect(t.df).toBe(1);
    expect(t.pValue).toBeCloseTo(0.00389, 4);
    // A category seen only now still counts (it is a column of the table).
    expect(chiSquaredTest(new Map([['a', 10]]), new Map([['a', 5], ['new', 5]])).df).toBe(1);
  });

  it('Wasserstein-1 distance', () => {
    // scipy.stats.wasserstein_distance's documented example: [0, 1, 3] vs [5, 6, 8] → 5.
    expect(wassersteinDistance(exactSample([0, 1, 3]), exactSample([5, 6, 8]))).toBeCloseTo(5, 12);
    // By hand: |F_a − F_b| is ⅙ on [0, 1) and ⅓ on [1, 2): ½.
    expect(wassersteinDistance(exactSample([0, 1]), exactSample([0, 1, 2]))).toBeCloseTo(0.5, 12);
  });

  it('Jensen-Shannon distance (natural log by default, as scipy)', () => {
    // scipy.spatial.distance.jensenshannon's documented examples.
    expect(jensenShannonDistance(new Map([['a', 1], ['b', 0]]), new Map([['a', 0.5], ['b', 0.5]]))).toBeCloseTo(0.46450140402245893, 12);
    expect(jensenShannonDistance(new Map([['a', 1], ['b', 0], ['c', 0]]), new Map([['a', 0], ['b', 1], ['c', 0]]), 2)).toBeCloseTo(1, 12);
    expect(jensenShannonDistance(new Map([['a', 3]]), new Map([['a', 7]]))).toBe(0);
  });

  it('PSI', () => {
    // (0.4 − 0.5)·ln(0.4/0.5) + (0.6 − 0.5)·ln(0.6/0.5) = 0.1·(0.22314 + 0.18232) = 0.040546
    expect(psi([0.5, 0.5], [0.4, 0.6])).toBeCloseTo(0.0405465108, 9);
    expect(psi([0.2, 0.8], [0.2, 0.8])).toBe(0);
  });

  it('sparse ordered bins are merged until each expects five counts of the smaller side', () => {
    // 50 vs 1350: a merged bin needs (r + c) · 50 / 1400 ≥ 5, i.e. 140 counts in all.
    const stable = [900, 200, 120, 60, 30, 20, 10, 6, 3, 1];
    const canary = [30, 9, 5, 3, 1, 1, 0, 0, 0, 1];
    const pooled = poolSparseBins(stable, canary);
    // 930 and 209 stand alone; 125 + 63 = 188 closes the third; the last six (73) are too few and join it.
    expect(pooled).toEqual({ reference: [900, 200, 120 + 60 + 30 + 20 + 10 + 6 + 3 + 1], current: [30, 9, 5 + 3 + 1 + 1 + 1] });
    expect(pooled.reference.reduce((a, b) => a + b)).toBe(1350);
    // The tail bin alone (1 canary score where 1 in 1350 was expected) no longer reads as a shift.
    const asMap = (h: number[]) => new Map(h.map((k, i) => [String(i), k]));
    const raw = chiSquaredTest(asMap(stable), asMap(canary));
    const merged = chiSquaredTest(asMap(pooled.reference), asMap(pooled.current));
    // Raw: 14.3 on 9 df, 12.5 of it from the last cell (one canary score where 2 · 50/1400 = 0.071 were expected: (1 − 0.071)² / 0.071 + (1 − 1.93)² / 1.93).
    expect(raw.statistic).toBeCloseTo(14.2956, 3);
    expect(merged.statistic).toBeCloseTo(0.9637, 3);
    expect(merged.df).toBe(2);
    const share = (h: number[], n: number) => h.map((k) => k / n);
    expect(psi(share(stable, 1350), share(canary, 50))).toBeCloseTo(0.139, 3);
    expect(psi(share(pooled.reference, 1350), share(pooled.current, 50))).toBeCloseTo(0.0192, 3);
    // Dense bins are kept as they are; too little in all leaves one bin; lengths must agree.
    expect(poolSparseBins([100, 100, 100], [100, 100, 100])).toEqual({ reference: [100, 100, 100], current: [100, 100, 100] });
    expect(poolSparseBins([3, 2], [1, 0])).toEqual({ reference: [5], current: [1] });
    expect(() => poolSparseBins([1, 2], [1])).toThrow(/2 reference bins vs 1 current/);
  });

  it('multiple-testing corrections', () => {
    // BH, m = 4: sorted 0.005, 0.01, 0.03, 0.04 → ×4/rank = 0.02, 0.02, 0.04, 0.04 (monotone from the top).
    expect(benjaminiHochberg([0.01, 0.04, 0.03, 0.005])).toEqual([0.02, 0.04, 0.04, 0.02]);
    expect(bonferroni([0.01, 0.04, 0.3, 0.005])).toEqual([0.04, 0.16, 1, 0.02]);
  });
});

describe('choosing and applying the tests', () => {
  it('picks KS / chi-squared up to 1000 rows and the distances above, like Evidently', () => {
    const o = resolveDriftOptions();
    expect(chooseTest('numeric', 1000, o)).toBe('ks');
    expect(chooseTest('categorical', 1000, o)).toBe('chi2');
    expect(chooseTest('numeric', 1001, o)).toBe('wasserstein');
    expect(chooseTest('categorical', 1001, o)).toBe('jensenshannon');
    expect(chooseTest('numeric', 1001, resolveDriftOptions({ smallWindowRows: 5000 }))).toBe('ks');
  });

  it('refuses bad options, naming them', () => {
    expect(() => resolveDriftOptions({ alpha: 2 })).toThrow(/alpha/);
    expect(() => resolveDriftOptions({ threshold: 0 })).toThrow(/threshold/);
    expect(() => resolveDriftOptions({ driftShare: 0 })).toThrow(/driftShare/);
    expect(() => resolveDriftOptions({ correction: 'holm' as never })).toThrow(/correction/);
  });

  it('reports every feature with its sample sizes and nulls, and the dataset verdict by share', () => {
    const ref = { rows: 6, columns: { x: numeric([1, 2, 3, 4, 5, 6]), c: categorical(['a', 'a', 'b', 'b', 'a', 'b']) } };
    const cur = { rows: 4, columns: { x: numeric([1, 2, 3]), c: categorical(['a', 'b', 'a', 'b']) } };
    cur.columns.x.update(null);
    const r = detectDrift(ref, cur);
    const x = r.features.find((f) => f.feature === 'x')!;
    expect(x).toMatchObject({ test: 'ks', referenceSize: 6, currentSize: 3, currentNulls: 1, threshold: 0.05 });
    expect(r).toMatchObject({ referenceRows: 6, currentRows: 4, correction: 'benjamini-hochberg', drifted: 0, datasetDrift: false });
    // An empty side is no evidence of drift.
    const empty = detectDrift(ref, { rows: 0, columns: { x: new ColumnSketch('numeric') } });
    expect(empty.features[0]).toMatchObject({ drifted: false, currentSize: 0, pValue: 1 });
    // A forced test of the wrong kind is refused, naming the feature.
    expect(() => detectDrift(ref, cur, { tests: { c: 'ks' } })).toThrow(/feature c: ks needs a numeric column/);
  });
});

describe('statistical honesty on the fraud generator', () => {
  let reference: ReferenceProfile;
  const ref = () => (reference ??= buildReferenceProfile(fraudRows({ rows: 20_000, seed: 1 }), undefined, { createdAt: 0 }));

  /** Windows (seeds 1000+) of undrifted traffic: how many raise any alarm, flag the dataset, flag the prediction. */
  function falseAlarms(windows: number, rows: number, o: DriftOptions = {}): { any: number; dataset: number; predictions: number } {
    let any = 0;
    let dataset = 0;
    let predictions = 0;
    for (let w = 0; w < windows; w++) {
      const d = driftAgainstReference(ref(), profileRows(fraudRows({ rows, seed: 1000 + w }), ref().schema), o);
      // A window raises an alarm when any of its tests does (features or prediction).
      if (d.features.drifted + d.predictions.drifted > 0) any++;
      if (d.features.datasetDrift) dataset++;
      if (d.predictions.drifted > 0) predictions++;
    }
    return { any, dataset, predictions };
  }

  it('infers the schema like Evidently: a 0/1 flag and strings are categories', () => {
    expect(ref().schema.features).toMatchObject({ log_amount: 'numeric', tx_last_24h: 'numeric', new_device: 'categorical', category: 'categorical', channel: 'categorical' });
    expect(ref().schema.score).toBe('score');
  });

  it('on ≥ 40 undrifted windows the per-window false-alarm rate is ≤ 5 % (small and large windows)', () => {
    const W = 60;
    for (const rows of [250, 1000]) {
      const r = falseAlarms(W, rows);
      // Any test flagged in a window (nine features and the score, corrected as one family) is a false alarm of that window.
      expect(r.any / W, `${rows}-row windows: ${r.any} of ${W} raised an alarm`).toBeLessThanOrEqual(0.05);
      expect(r.predictions / W).toBeLessThanOrEqual(0.05);
      expect(r.dataset).toBe(0);
    }
    // Large windows use the distances; sampling noise stays far below the 0.1 threshold.
    expect(falseAlarms(10, 5000).any).toBe(0);
  });

  it('the correction matters: uncorrected, ten tests per window raise more false alarms', () => {
    const W = 60;
    const corrected = falseAlarms(W, 250).any;
    const uncorrected = falseAlarms(W, 250, { correction: 'none' }).any;
    expect(uncorrected).toBeGreaterThan(corrected);
  });

  it('flags the shifted features and not the unshifted ones (small window: tests)', () => {
    const d = driftAgainstReference(ref(), profileRows(fraudRows({ rows: 500, seed: 77, drift: 1 }), ref().schema));
    const flagged = d.features.features.filter((f) => f.drifted).map((f) => f.feature);
    expect(flagged.sort()).toEqual([...FRAUD_SHIFTED].sort());
    for (const f of d.features.features) {
      expect(f.currentSize).toBe(500);
      expect(f.referenceSize).toBe(20_000);
      expect(f.test).toBe(f.kind === 'numeric' ? 'ks' : 'chi2');
    }
    expect(d.features.datasetDrift).toBe(true); // 6 of 9 ≥ 50 %
    expect(d.features.share).toBeCloseTo(6 / 9, 12);
    // The model's score follows its inputs: prediction drift.
    expect(d.predictions.features[0]).toMatchObject({ feature: 'score', test: 'ks', drifted: true });
  });

  it('flags the strongly shifted features and none of the unshifted ones (large window: distances)', () => {
    const d = driftAgainstReference(ref(), profileRows(fraudRows({ rows: 5000, seed: 78, drift: 1 }), ref().schema));
    const by = Object.fromEntries(d.features.features.map((f) => [f.feature, f]));
    for (const f of ['log_amount', 'account_age', 'distance_from_home', 'channel']) expect(by[f]!.drifted, f).toBe(true);
    for (const f of FRAUD_UNSHIFTED) {
      expect(by[f]!.drifted, f).toBe(false);
      expect(by[f]!.test).toBe('wasserstein');
    }
    expect(by.channel!.test).toBe('jensenshannon');
    // PSI is reported for every feature, and is larger on the shifted ones.
    expect(Math.min(...['log_amount', 'account_age', 'distance_from_home'].map((f) => by[f]!.psi))).toBeGreaterThan(Math.max(...FRAUD_UNSHIFTED.map((f) => by[f]!.psi)));
    // The dataset share threshold is configurable: 5 of 9 drift here.
    expect(d.features.datasetDrift).toBe(d.features.share >= 0.5);
    const strict = driftAgainstReference(ref(), profileRows(fraudRows({ rows: 5000, seed: 78, drift: 1 }), ref().schema), { driftShare: 0.9 });
    expect(strict.features.datasetDrift).toBe(false);
    expect(strict.features.driftShare).toBe(0.9);
  });
});
