/**
 * The canary quality policy on known values and on seeded synthetic windows built with the
 * monitoring statistics themselves (binaryQuality on labeled rows, CBPE on calibrated scores, the
 * monitor's score histogram): the same model on the same traffic never fails a step, a worse or a
 * shifted canary does, labels are preferred once there are enough, too few rows wait.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { scoreHistogram, type MonitorReport, type WindowReport } from '../../ml/monitoring/index.ts';
import { binaryQuality, estimatePerformance } from '../../ml/monitoring/stats/index.ts';
import { judgeCanaryQuality, validatePipelineSpec, type CanaryQualityPolicy, type RunRecord, type SpecLookups } from '../../ml/pipelines/index.ts';
import { formatRun } from '../../cli/pipelines.ts';

const POLICY: CanaryQualityPolicy = { maxDrop: 0.02, maxDivergence: 0.25, minLabeled: 200, minRows: 100, confidence: 0.95 };
const MIN = 60_000;
const T0 = 1_700_000_000_000;

/** Rows of a calibrated model on one traffic distribution: score p = σ(2x − 2), label ~ Bernoulli(p). */
function traffic(rows: number, seed: number, model: (p: number, r: () => number) => number = (p) => p): { scores: number[]; labels: number[] } {
  const r = seededRandom(seed);
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < rows; i++) {
    const x = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const p = 1 / (1 + Math.exp(-(2 * x - 2)));
    labels.push(r() < p ? 1 : 0);
    scores.push(model(p, r));
  }
  return { scores, labels };
}

/** A closed window as the monitor reports it: estimated performance and histogram on the scores, quality on the first `labeled` rows. */
function windowOf(t: { scores: number[]; labels: number[] }, o: { labeled?: number; start?: number; version?: number; estimated?: boolean } = {}): WindowReport {
  const start = o.start ?? T0;
  const labeled = o.labeled ?? 0;
  return {
    model: 'm',
    version: o.version ?? 1,
    window: '1m',
    sizeMs: MIN,
    start,
    end: start + MIN,
    closedAt: start + MIN + 1000,
    partial: false,
    rows: t.scores.length,
    source: 'log',
    logged: t.scores.length,
    ...(o.estimated === false ? {} : { estimated: estimatePerformance(t.scores) }),
    ...(labeled ? { quality: binaryQuality(t.scores.slice(0, labeled), t.labels.slice(0, labeled), { bootstrap: 20 }) } : {}),
    scoreHistogram: scoreHistogram(t.scores),
    labeled,
    alerts: [],
  };
}

const report = (...windows: WindowReport[]): MonitorReport => ({ windows }) as unknown as MonitorReport;

describe('judgeCanaryQuality', () => {
  it('no false alarm: the same model on the same traffic passes every step, on labels and before them', () => {
    const bases = new Map<string, number>();
    let fails = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const stable = traffic(2000, seed * 2);
      const canary = traffic(300, seed * 2 + 1);
      for (const labeled of [0, 250]) {
        const v = judgeCanaryQuality(report(windowOf(stable, { labeled: labeled ? 800 : 0 })), report(windowOf(canary, { labeled, version: 2 })), POLICY, T0);
        if (!v.pass) fails++;
        bases.set(v.basis, (bases.get(v.basis) ?? 0) + 1);
        expect(v.divergence?.pass, v.reason).toBe(true);
      }
    }
    expect(fails).toBe(0);
    expect(Object.fromEntries(bases)).toEqual({ estimated: 60, labeled: 60 });
  });

  it('no false rollback on few canary scores: runs of four 50-score steps on skewed scores stay within 1 − confidence', () => {
    // What CI once saw: a 10 % step with 50 canary scores against 1,350, fraud-like scores (most
    // near 0), rolled back on divergence (PSI 0.34, p = 0.0004) although both served the same
    // traffic. Sparse tail bins are merged and the level is split over the run's steps.
    const skewed = (p: number) => 1 / (1 + Math.exp(-(Math.log(p / (1 - p)) - 1.5)));
    const policy = { ...POLICY, minRows: 30, comparisons: 4 };
    const RUNS = 300;
    let falseRuns = 0;
    let steps = 0;
    for (let run = 1; run <= RUNS; run++) {
      let failed = false;
      for (let step = 0; step < 4; step++) {
        const seed = 10_000 + run * 8 + step * 2;
        const v = judgeCanaryQuality(report(windowOf(traffic(1350, seed, skewed), { estimated: false })), report(windowOf(traffic(50, seed + 1, skewed), { version: 2, estimated: false })), policy, T0);
        expect(v.divergence!.canaryRows).toBe(50);
        expect(v.divergence!.bins).toBeLessThan(10);
        steps++;
        if (!v.divergence!.pass) failed = true;
      }
      if (failed) falseRuns++;
    }
    expect(steps).toBe(RUNS * 4);
    // Seen: 6 of 300 runs (2 %); on the raw ten bins at the undivided level, 88 of 300 (29 %).
    expect(falseRuns / RUNS).toBeLessThanOrEqual(1 - POLICY.confidence);
    // A real shift is still caught on 50 scores.
    const shifted = judgeCanaryQuality(report(windowOf(traffic(1350, 3, skewed), { estimated: false })), report(windowOf(traffic(50, 4, (p) => Math.min(1, skewed(p) + 0.35)), { version: 2, estimated: false })), policy, T0);
    expect(shifted.divergence).toMatchObject({ pass: false, canaryRows: 50 });
  });

  it('known values: a labeled AUC drop beyond maxDrop on the interval fails, one within the noise passes', () => {
    const win = (auc: [number, number, number], n: number, version: number): WindowReport => {
      const w = windowOf(traffic(n, version), { labeled: n, version });
      w.quality = { ...w.quality!, rows: n, auc: { value: auc[0], lower: auc[1], upper: auc[2], n } };
      return w;
    };
    const stable = report(win([0.85, 0.83, 0.87], 1000, 1));
    const bad = judgeCanaryQuality(stable, report(win([0.7, 0.66, 0.74], 400, 2)), POLICY, T0);
    expect(bad).toMatchObject({ pass: false, basis: 'labeled', n: 400, stableN: 1000, metric: { name: 'auc', canary: { value: 0.7 }, stable: { value: 0.85 } } });
    // −0.15 ± hypot(0.04, 0.02)
    expect(bad.metric!.difference.value).toBeCloseTo(-0.15, 10);
    expect(bad.metric!.difference.upper).toBeCloseTo(-0.15 + Math.hypot(0.04, 0.02), 10);
    expect(bad.reason).toMatch(/labeled auc 0\.700 on 400 rows is worse than the stable's 0\.850 by more than maxDrop 0\.02/);
    // A drop of 0.03 with an interval reaching above −0.02: not evidence enough to roll back.
    const noisy = judgeCanaryQuality(stable, report(win([0.82, 0.76, 0.88], 400, 2)), POLICY, T0);
    expect(noisy).toMatchObject({ pass: true, basis: 'labeled' });
    expect(noisy.metric!.difference.upper).toBeGreaterThan(-0.02);
  });

  it('before labels: a canary whose scores carry no information fails on estimated AUC (and its score distribution)', () => {
    const stable = traffic(2000, 11);
    // Scores near the base rate whatever the row: calibrated, but useless.
    const useless = traffic(400, 12, (_p, r) => 0.18 + 0.04 * r());
    const v = judgeCanaryQuality(report(windowOf(stable)), report(windowOf(useless, { version: 2 })), POLICY, T0);
    expect(v).toMatchObject({ pass: false, basis: 'estimated', n: 400, stableN: 2000, metric: { name: 'auc' } });
    expect(v.metric!.canary.value).toBeLessThan(0.6);
    expect(v.metric!.stable.value).toBeGreaterThan(0.75);
    expect(v.divergence?.pass).toBe(false);
    expect(v.reason).toMatch(/estimated auc .* worse than the stable's/);
  });

  it('a shifted score distribution fails on divergence even with no metric to compare', () => {
    const stable = traffic(2000, 21);
    const shifted = traffic(400, 22, (p) => Math.min(1, p + 0.35));
    const v = judgeCanaryQuality(report(windowOf(stable, { estimated: false })), report(windowOf(shifted, { version: 2, estimated: false })), POLICY, T0);
    expect(v).toMatchObject({ pass: false, basis: 'insufficient' });
    expect(v.divergence!.psi).toBeGreaterThan(0.25);
    expect(v.divergence!.pValue).toBeLessThan(0.05);
    expect(v.reason).toMatch(/score distribution diverges from the stable's: PSI/);
  });

  it('labels are preferred from minLabeled rows on; fewer labels fall back to the estimate', () => {
    const stable = windowOf(traffic(2000, 31), { labeled: 900 });
    const canary = traffic(400, 32);
    expect(judgeCanaryQuality(report(stable), report(windowOf(canary, { labeled: 250, version: 2 })), POLICY, T0)).toMatchObject({ basis: 'labeled', n: 250, stableN: 900 });
    expect(judgeCanaryQuality(report(stable), report(windowOf(canary, { labeled: 150, version: 2 })), POLICY, T0)).toMatchObject({ basis: 'estimated', n: 400 });
  });

  it('labels of one class only: accuracy is compared (AUC is undefined)', () => {
    const stable = traffic(2000, 41);
    const canary = traffic(400, 42);
    const negatives = (t: { scores: number[]; labels: number[] }) => {
      const idx = t.labels.map((l, i) => (l === 0 ? i : -1)).filter((i) => i >= 0);
      return { scores: [...idx.map((i) => t.scores[i]!), ...t.scores], labels: [...idx.map(() => 0), ...t.labels] };
    };
    const s = windowOf(negatives(stable), { labeled: 1000 });
    const c = windowOf(negatives(canary), { labeled: 250, version: 2 });
    const v = judgeCanaryQuality(report(s), report(c), POLICY, T0);
    expect(v).toMatchObject({ basis: 'labeled', metric: { name: 'accuracy' } });
  });

  it('too few rows, or no window closed since the step began: insufficient, and the step waits', () => {
    const stable = windowOf(traffic(2000, 51));
    const few = judgeCanaryQuality(report(stable), report(windowOf(traffic(40, 52), { version: 2 })), POLICY, T0);
    expect(few).toMatchObject({ pass: true, basis: 'insufficient', wait: true, n: 40 });
    expect(few.reason).toMatch(/fewer than minRows \(100\)/);
    const before = judgeCanaryQuality(report(stable), report(windowOf(traffic(400, 53), { version: 2 })), POLICY, T0 + 2 * MIN);
    expect(before).toMatchObject({ pass: true, basis: 'insufficient', wait: true, reason: 'no canary window has closed since the step began' });
  });

  it('enough rows but no estimate (no reference profile) and no labels: insufficient without waiting', () => {
    const t = traffic(2000, 61);
    const v = judgeCanaryQuality(report(windowOf(t, { estimated: false })), report(windowOf(traffic(400, 62), { version: 2, estimated: false })), POLICY, T0);
    expect(v).toMatchObject({ pass: true, basis: 'insufficient', divergence: { pass: true } });
    expect(v.wait).toBeUndefined();
  });

  it("at a 100 % step (no new stable window of the same start) the stable's newest window with enough rows stands in", () => {
    const full = windowOf(traffic(2000, 81), { start: T0 });
    const trickle = windowOf(traffic(5, 82), { start: T0 + MIN });
    const v = judgeCanaryQuality(report(trickle, full), report(windowOf(traffic(400, 83), { start: T0 + 2 * MIN, version: 2 })), POLICY, T0 + 2 * MIN);
    expect(v).toMatchObject({ pass: true, basis: 'estimated', stableN: 2000, window: { start: T0 + 2 * MIN } });
  });

  it('the stable window of the same start is compared, not a newer one', () => {
    const same = windowOf(traffic(2000, 71), { start: T0 });
    const newer = windowOf(traffic(2000, 72, (p) => Math.min(1, p + 0.35)), { start: T0 + MIN });
    const v = judgeCanaryQuality(report(newer, same), report(windowOf(traffic(400, 73), { start: T0, version: 2 })), POLICY, T0);
    expect(v).toMatchObject({ pass: true, window: { start: T0 } });
  });
});

describe('scoreHistogram (what a window reports of its scores)', () => {
  it('counts scores in ten equal-width bins over [0, 1], outside values in the end bins, non-finite ones left out', () => {
    expect(scoreHistogram([0, 0.05, 0.1, 0.55, 0.99, 1, 1.5, -0.2, NaN])).toEqual([3, 1, 0, 0, 0, 1, 0, 0, 0, 3]);
  });
});

describe('rollout.quality in the pipeline spec', () => {
  const lookups: SpecLookups = { modelMetrics: async () => ['auc'], datasetExists: async () => true, viewExists: async () => false };
  const base = { name: 'p', model: 'm', data: { dataset: 'd' } };

  it('gets its defaults, and keeps what is given', async () => {
    expect((await validatePipelineSpec(base, lookups)).rollout.quality).toEqual({ maxDrop: 0.02, maxDivergence: 0.25, minLabeled: 200, minRows: 100, confidence: 0.95, maxWaitMs: 900_000 });
    const s = await validatePipelineSpec({ ...base, rollout: { stepMs: 1000, quality: { minRows: 20, maxWaitMs: 0 } } }, lookups);
    expect(s.rollout).toMatchObject({ stepMs: 1000, steps: [5, 25, 50, 100], quality: { minRows: 20, maxWaitMs: 0, maxDrop: 0.02 } });
  });

  it('refuses a bad field naming it', async () => {
    for (const [quality, field] of [
      [{ maxDrop: 2 }, 'rollout.quality.maxDrop'],
      [{ maxDivergence: 0 }, 'rollout.quality.maxDivergence'],
      [{ minLabeled: 0.5 }, 'rollout.quality.minLabeled'],
      [{ minRows: -1 }, 'rollout.quality.minRows'],
      [{ confidence: 1 }, 'rollout.quality.confidence'],
      [{ nope: 1 }, 'rollout.quality'],
    ] as const) {
      await expect(validatePipelineSpec({ ...base, rollout: { quality } }, lookups)).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringContaining(`pipeline ${field}`) });
    }
  });
});

describe('shoal pipelines runs', () => {
  it("shows each passed step's quality basis and rows, and a failed step's reason", () => {
    const pass = judgeCanaryQuality(report(windowOf(traffic(2000, 91))), report(windowOf(traffic(400, 92), { version: 2 })), POLICY, T0);
    const run = { pipeline: 'p', run: 3, state: 'done', trigger: { kind: 'manual', at: T0 }, coalesced: [], steps: [{ percent: 5, pass: true, at: T0, quality: pass }, { percent: 25, pass: false, at: T0, reason: 'rolled back at 25%: 1m window: estimated auc 0.5 …' }], decision: { outcome: 'rolled-back', reason: 'rolled back at 25%', at: T0 } } as unknown as RunRecord;
    const text = formatRun(run);
    expect(text).toContain('  canary   5% pass\n           quality estimated, n=400: 1m window: estimated auc');
    expect(text).toContain('  canary   25% FAIL rolled back at 25%: 1m window: estimated auc 0.5');
  });
});
