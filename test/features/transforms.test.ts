/**
 * The transformations against values worked out by hand: fill, standardize (population std),
 * min-max, log1p, clip, bucketize edges, fitted quantile boundaries, vocabulary order and the
 * unknown bucket; and the same raw values giving bit-identical float32 vectors through the batch
 * (training) and single-entity (serving) entry points.
 */
import { describe, expect, it } from 'vitest';
import { MlErrors, compileEncoder, encodeOne, encodeRows, fitView, parseViewDef, type FeatureViewDef } from '../../ml/index.ts';

const view: FeatureViewDef = {
  name: 'txn',
  entity: ['customer_id'],
  source: { type: 'push' },
  ttlSeconds: 3600,
  features: [
    { name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] },
    { name: 'count', type: 'numeric', fill: { strategy: 'zero' }, transforms: [{ op: 'log1p' }] },
    { name: 'score', type: 'numeric', fill: { strategy: 'median' }, transforms: [{ op: 'clip', min: 0, max: 10 }, { op: 'minmax' }] },
    { name: 'age', type: 'numeric', fill: { strategy: 'constant', value: 30 }, transforms: [{ op: 'bucketize', boundaries: [18, 30, 65] }] },
    { name: 'country', type: 'categorical', transforms: [{ op: 'onehot' }] },
    { name: 'channel', type: 'categorical', fill: { strategy: 'constant', value: 'web' }, transforms: [{ op: 'ordinal', vocabulary: ['web', 'app'] }] },
    { name: 'is_new', type: 'boolean' },
  ],
};

const snapshot = [
  { amount: 10, count: 0, score: 2, age: 17, country: 'FR', channel: 'web', is_new: true },
  { amount: 20, count: 3, score: 20, age: 18, country: 'DE', channel: 'app', is_new: false },
  { amount: 30, count: null, score: 4, age: 64.9, country: 'FR', channel: 'pos', is_new: null },
  { amount: null, count: 7, score: null, age: 65, country: 'US', channel: null },
];

describe('feature transforms (fitted on a snapshot)', () => {
  const fitted = fitView(view, snapshot);
  const enc = compileEncoder(view, fitted);

  it('fits fills, mean/std, min/max and the vocabulary as worked out by hand', () => {
    // amount: present 10, 20, 30 → mean fill 20; then mean 20 over [10,20,30,20], std sqrt(200/4).
    expect(fitted.features.amount).toEqual({ fill: 20, steps: [{ mean: 20, std: Math.sqrt(50) }] });
    // score: median of [2,20,4] = 4; clipped [2,10,4,4] → min 2, max 10.
    expect(fitted.features.score).toEqual({ fill: 4, steps: [null, { min: 2, max: 10 }] });
    // country: FR twice, then DE and US tied (code-unit order); missing → unknown bucket.
    expect(fitted.features.country).toEqual({ fill: null, steps: [{ vocabulary: ['FR', 'DE', 'US'] }] });
    expect(fitted.columns).toEqual(['amount', 'count', 'score', 'age', 'country=FR', 'country=DE', 'country=US', 'country=<unknown>', 'channel', 'is_new']);
    expect(fitted.width).toBe(10);
  });

  it('encodes known values: fill, clip, bucket edges, one-hot and ordinal unknown buckets', () => {
    const m = encodeRows(enc, snapshot);
    const row = (i: number) => Array.from(m.subarray(i * 10, i * 10 + 10));
    const f = Math.fround;
    const s = Math.sqrt(50);
    expect(row(0)).toEqual([f(-10 / s), 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    // age 18 is on the boundary: bucket 1 (boundaries ≤ x); score 20 clips to 10 → 1.
    expect(row(1)).toEqual([0, f(Math.log1p(3)), 1, 1, 0, 1, 0, 0, 1, 0]);
    // count null → zero fill; channel "pos" is not in the vocabulary → ordinal unknown = 2; is_new null → false.
    expect(row(2)).toEqual([f(10 / s), 0, f(0.25), 2, 1, 0, 0, 0, 2, 0]);
    // amount null → mean 20 → 0; score null → median 4 → 0.25; age 65 → bucket 3; channel null → "web" → 0.
    expect(row(3)).toEqual([0, f(Math.log1p(7)), f(0.25), 3, 0, 0, 1, 0, 0, 0]);
    // A country never seen goes to the unknown bucket; a negative count is log1p(0).
    expect(Array.from(encodeOne(enc, { country: 'JP', count: -5 })).slice(1, 8)).toEqual([0, f(0.25), 2, 0, 0, 0, 1]);
  });

  it('fits quantile boundaries and a capped vocabulary', () => {
    const def: FeatureViewDef = {
      ...view,
      features: [
        { name: 'x', type: 'numeric', transforms: [{ op: 'bucketize', quantiles: 4 }] },
        { name: 'c', type: 'categorical', transforms: [{ op: 'onehot', maxVocabulary: 1 }] },
      ],
    };
    const rows = Array.from({ length: 8 }, (_, i) => ({ x: i + 1, c: i < 5 ? 'b' : 'a' }));
    const fit = fitView(def, rows);
    expect(fit.features.x!.steps[0]).toEqual({ boundaries: [3, 5, 7] });
    expect(fit.columns).toEqual(['x', 'c=b', 'c=<unknown>']);
  });

  it('gives bit-identical float32 vectors through the batch and single-entity paths', () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ amount: i * 1.37 - 9.1, count: i % 5 === 0 ? null : i * 0.3, score: (i * 7) % 13, age: i * 1.7, country: ['FR', 'DE', 'US', 'JP'][i % 4]!, channel: i % 3 ? 'app' : null, is_new: i % 2 === 0 }));
    const batch = encodeRows(enc, rows);
    // A second encoder compiled from a JSON round trip of the stored parameters (as a replica would load them).
    const served = compileEncoder(parseViewDef(JSON.parse(JSON.stringify(view))), JSON.parse(JSON.stringify(fitted)));
    rows.forEach((r, i) => {
      const one = encodeOne(served, JSON.parse(JSON.stringify(r)));
      expect(Buffer.from(one.buffer).equals(Buffer.from(batch.buffer, i * 40, 40)), `row ${i}`).toBe(true);
    });
  });

  it('refuses definitions that cannot work, naming the field', () => {
    expect(() => parseViewDef({ ...view, features: [{ name: 'c', type: 'categorical' }] })).toThrow(/features\[0\] \(c\) is categorical: it needs exactly one transform/);
    expect(() => parseViewDef({ ...view, features: [{ name: 'n', type: 'numeric', transforms: [{ op: 'onehot' }] }] })).toThrow(/features\[0\] \(n\)\.transforms\[0\] onehot is for categorical/);
    expect(() => parseViewDef({ ...view, ttlSeconds: -1 })).toThrow(/\/ttlSeconds/);
    expect(() => parseViewDef({ ...view, source: { type: 'dataset', dataset: 'd', timeColumn: 't' } })).toThrow(/source.type "dataset" is not supported yet/);
    expect(() => parseViewDef({ ...view, source: { type: 'aggregate', spec: {} } })).toThrow(/\/source/);
    expect(() => parseViewDef({ ...view, features: [{ name: 'x', type: 'numeric', transforms: [{ op: 'bucketize', boundaries: [2, 1] }] }] })).toThrow(/strictly increasing/);
    // Nothing to fit a mean on.
    const err = (() => {
      try {
        fitView(view, [{ country: 'FR' }]);
      } catch (e) {
        return e as Error & { code: string };
      }
    })();
    expect(err?.code).toBe(MlErrors.BAD_INPUT.code);
    expect(err?.message).toMatch(/cannot fit the mean fill of feature "amount"/);
  });
});
