/**
 * Mergeable sketches: the KLL quantile sketch keeps its stated rank error (≤ 1.65 % for k = 200,
 * Apache DataSketches' published bound at 99 % confidence) alone and merged; merging N replicas'
 * sketches gives what one sketch of all the traffic gives (within that error); moments merge
 * exactly (Chan et al.), frequency tables keep the Misra-Gries bound; everything survives JSON
 * and MessagePack.
 */
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { COLUMN_KLL_K, ColumnSketch, FrequentItems, KllSketch, Moments, OTHER, exactSample, profileRows, RecordProfile } from '../../ml/monitoring/stats/index.ts';
import { fraudRows } from '../fixtures/monitoring-stats.ts';

const EPS = 0.0165;

function values(n: number, seed: number): number[] {
  const r = seededRandom(seed);
  // A skewed mixture: log-normal bulk and a far tail, so quantiles are not evenly spaced.
  return Array.from({ length: n }, () => (r() < 0.9 ? Math.exp(Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r())) : 50 + 100 * r()));
}

/** The largest |rank(q-quantile) − q| over q = 0.01 … 0.99, ranks counted exactly in `sorted`. */
function maxRankError(sketch: KllSketch, sorted: number[]): number {
  let worst = 0;
  for (let i = 1; i < 100; i++) {
    const q = i / 100;
    const v = sketch.quantile(q);
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid]! <= v) lo = mid + 1;
      else hi = mid;
    }
    // The true rank interval of v: [#(< v), #(≤ v)] / n; the error is the distance of q from it.
    let below = lo;
    while (below > 0 && sorted[below - 1] === v) below--;
    const err = q < below / sorted.length ? below / sorted.length - q : q > lo / sorted.length ? q - lo / sorted.length : 0;
    worst = Math.max(worst, err);
  }
  return worst;
}

describe('KLL quantile sketch', () => {
  it('is exact below k values and within its rank error on 100 000', () => {
    const small = new KllSketch(200);
    for (let i = 1; i <= 150; i++) small.update(i);
    expect(small.quantile(0.5)).toBe(75); // the 75th of 150: rank exactly ½
    expect(small.cdf(30)).toBe(0.2);
    const xs = values(100_000, 3);
    const k = new KllSketch(200);
    for (const x of xs) k.update(x);
    const sorted = [...xs].sort((a, b) => a - b);
    expect(maxRankError(k, sorted)).toBeLessThanOrEqual(EPS);
    expect(k.retained()).toBeLessThan(3 * 200 + 100); // memory stays O(k)
    expect(k.n).toBe(100_000);
    expect(k.min).toBe(sorted[0]);
    expect(k.max).toBe(sorted.at(-1));
    expect(() => k.update(NaN)).toThrow(/not a finite number/);
  });

  it('merging N replicas\' sketches equals one sketch of all the traffic, within the stated error', () => {
    const N = 8;
    const shards = Array.from({ length: N }, (_, i) => values(5_000 + 1_000 * i, 100 + i));
    const all = shards.flat();
    const sorted = [...all].sort((a, b) => a - b);
    const merged = new KllSketch();
    for (const s of shards) {
      const k = new KllSketch();
      for (const x of s) k.update(x);
      // Each replica's sketch crosses the wire (MessagePack) before the monitor merges it.
      merged.merge(KllSketch.fromJSON(unpack(pack(k.toJSON())) as ReturnType<KllSketch['toJSON']>));
    }
    const single = new KllSketch();
    for (const x of all) single.update(x);
    expect(merged.n).toBe(all.length);
    expect(maxRankError(merged, sorted)).toBeLessThanOrEqual(EPS);
    expect(maxRankError(single, sorted)).toBeLessThanOrEqual(EPS);
    // Both estimate the same CDF: they differ by at most twice the error anywhere.
    for (let i = 1; i < 100; i++) {
      const x = sorted[Math.floor((i / 100) * sorted.length)]!;
      expect(Math.abs(merged.cdf(x) - single.cdf(x))).toBeLessThanOrEqual(2 * EPS);
    }
  });

  it('refuses to merge sketches of different k and round-trips through JSON', () => {
    expect(() => new KllSketch(200).merge(new KllSketch(100))).toThrow(/k differs/);
    const k = new KllSketch();
    for (const x of values(20_000, 9)) k.update(x);
    const back = KllSketch.fromJSON(JSON.parse(JSON.stringify(k)));
    for (const q of [0.1, 0.5, 0.9, 0.99]) expect(back.quantile(q)).toBe(k.quantile(q));
  });
});

describe('moments (Chan et al.)', () => {
  it('merged moments equal the two-pass mean and variance of all values', () => {
    const xs = values(30_000, 5).map((x) => x + 1e6); // a large offset: the naive Σx² formula would lose digits
    const n = xs.length;
    const mean = xs.reduce((a, b) => a + b, 0) / n;
    const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
    const parts = [xs.slice(0, 7), xs.slice(7, 12_000), xs.slice(12_000)];
    const merged = new Moments();
    for (const p of parts) {
      const m = new Moments();
      p.forEach((x) => m.update(x));
      merged.merge(Moments.fromJSON(JSON.parse(JSON.stringify(m))));
    }
    expect(merged.n).toBe(n);
    expect(merged.mean).toBeCloseTo(mean, 6);
    expect(merged.variance() / variance).toBeCloseTo(1, 9);
    expect(merged.min).toBe(Math.min(...xs));
    // Hand example: {2, 4, 4, 4, 5, 5, 7, 9}: mean 5, population variance 4, sample variance 32/7.
    const h = new Moments();
    [2, 4, 4, 4].forEach((x) => h.update(x));
    const h2 = new Moments();
    [5, 5, 7, 9].forEach((x) => h2.update(x));
    h.merge(h2);
    expect(h.mean).toBe(5);
    expect(h.populationStd()).toBeCloseTo(2, 12);
    expect(h.variance()).toBeCloseTo(32 / 7, 12);
  });
});

describe('bounded frequency table', () => {
  it('is exact within capacity and merges to the table of all traffic', () => {
    const a = new FrequentItems(10);
    const b = new FrequentItems(10);
    ['x', 'y', 'x', 'z'].forEach((v) => a.update(v));
    ['x', 'w', 'w'].forEach((v) => b.update(v));
    a.merge(b);
    expect(Object.fromEntries(a.counts)).toEqual({ x: 3, y: 1, z: 1, w: 2 });
    expect(a.n).toBe(7);
    expect(a.other).toBe(0);
    expect(a.maxError()).toBe(0);
  });

  it('past its capacity keeps every count within the Misra-Gries bound n/(capacity+1), merged or not', () => {
    const r = seededRandom(11);
    const truth = new Map<string, number>();
    const replicas = Array.from({ length: 4 }, () => new FrequentItems(20));
    for (let i = 0; i < 40_000; i++) {
      // Zipf-like: a few heavy categories and a long tail of 500.
      const v = `c${Math.floor(500 * r() ** 4)}`;
      truth.set(v, (truth.get(v) ?? 0) + 1);
      replicas[i % 4]!.update(v);
    }
    const merged = replicas.reduce((acc, f) => acc.merge(f), new FrequentItems(20));
    expect(merged.counts.size).toBeLessThanOrEqual(20);
    expect(merged.n).toBe(40_000);
    expect(merged.maxError()).toBeLessThanOrEqual(40_000 / 21);
    for (const [v, c] of truth) {
      const est = merged.count(v);
      expect(est).toBeLessThanOrEqual(c);
      expect(c - est).toBeLessThanOrEqual(merged.maxError() + 1e-9);
    }
    // The weight no longer attributed is reported, so proportions still sum to 1.
    const col = new ColumnSketch('categorical', { categories: 20 });
    col.freq!.merge(merged);
    const total = [...col.proportions().values()].reduce((s, p) => s + p, 0);
    expect(total).toBeCloseTo(1, 12);
    expect(col.proportions().has(OTHER)).toBe(true);
  });
});

describe('column sketches and row profiles', () => {
  it('numeric columns are exact up to 1024 values (also merged) and within 0.33 % rank error beyond', () => {
    const xs = values(1000, 31);
    const halves = [new ColumnSketch('numeric'), new ColumnSketch('numeric')];
    xs.forEach((x, i) => halves[i % 2]!.update(x));
    const merged = halves[0]!.merge(halves[1]!);
    expect(merged.kll!.k).toBe(COLUMN_KLL_K);
    const exact = exactSample(xs);
    const s = merged.kll!.sample();
    expect(Array.from(s.values)).toEqual(Array.from(exact.values));
    expect(Array.from(s.cum)).toEqual(Array.from(exact.cum));
    const big = new ColumnSketch('numeric');
    const many = values(200_000, 32);
    many.forEach((x) => big.update(x));
    expect(maxRankError(big.kll!, [...many].sort((a, b) => a - b))).toBeLessThanOrEqual(0.0033);
    expect(big.kll!.retained()).toBeLessThan(3 * COLUMN_KLL_K);
  });

  it('count nulls and wrong-typed values apart from the values sketched', () => {
    const c = new ColumnSketch('numeric');
    [1, 2, null, undefined, NaN, 'oops', true, 3].forEach((v) => c.update(v));
    expect(c.count).toBe(8);
    expect(c.nulls).toBe(3);
    expect(c.invalid).toBe(1);
    expect(c.valid()).toBe(4);
    expect(c.moments!.mean).toBe((1 + 2 + 1 + 3) / 4);
    const k = new ColumnSketch('categorical');
    [true, 'a', 1, null].forEach((v) => k.update(v));
    expect(Object.fromEntries(k.freq!.counts)).toEqual({ true: 1, a: 1, '1': 1 });
  });

  it('replica profiles merged (after MessagePack) describe all their rows', () => {
    const rows = fraudRows({ rows: 6_000, seed: 21 });
    const schema = {
      features: { log_amount: 'numeric', account_age: 'numeric', category: 'categorical', new_device: 'categorical' },
      outputs: { score: 'numeric' },
      score: 'score',
    } as const;
    const whole = profileRows(rows, schema);
    const merged = new RecordProfile(schema);
    for (let r = 0; r < 3; r++) {
      const part = profileRows(rows.filter((_, i) => i % 3 === r), schema);
      merged.merge(RecordProfile.fromJSON(unpack(pack(part.toJSON())) as ReturnType<RecordProfile['toJSON']>, schema));
    }
    expect(merged.rows).toBe(6_000);
    expect(merged.features.category!.categoryCounts()).toEqual(whole.features.category!.categoryCounts());
    expect(merged.features.log_amount!.moments!.mean).toBeCloseTo(whole.features.log_amount!.moments!.mean, 10);
    expect(merged.confidence.n).toBe(6_000);
    expect(merged.confidence.mean).toBeCloseTo(whole.confidence.mean, 10);
    for (const q of [0.1, 0.5, 0.9]) {
      const x = whole.features.account_age!.kll!.quantile(q);
      expect(Math.abs(merged.features.account_age!.kll!.cdf(x) - q)).toBeLessThanOrEqual(2 * EPS);
    }
  });
});
