/**
 * Attribution algorithms against known values: a hand-computed linear case, Shapley values
 * enumerated by their definition, KernelSHAP against exact SHAP on a logistic model, and
 * integrated gradients' completeness — explained through real onnxruntime sessions over models in
 * the format Shoal's training exports.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { coalitions, enumeratedShapley, graphKind, integratedGradients, kernelShap, linearShap, probeLinear, trainingExplainReference, groupAttributions, applyLink, type Background, type Evaluator } from '../../ml/index.ts';
import { logisticOnnx, mlpOnnx, ortEvaluator, rowsOf } from '../fixtures/explain.ts';

const bgOf = (rows: number[][]): Background => ({ x: Float32Array.from(rows.flat()), rows: rows.length, d: rows[0]!.length });
const sum = (a: number[]) => a.reduce((p, q) => p + q, 0);
const closing: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closing) await c();
});

describe('exact SHAP of a linear model', () => {
  it('matches the hand-computed values w_i (x_i − E[x_i]) through onnxruntime, read off the logit', async () => {
    // w = [2, −1, 0.5], b = 0.1; background mean [1, 1, 1]; x = [3, 0, 1]
    // φ = [2·2, −1·(−1), 0.5·0] = [4, 1, 0]; base = 0.1 + 2 − 1 + 0.5 = 1.6; logit(f(x)) = 0.1 + 6 + 0.5 = 6.6
    const ev = await ortEvaluator(logisticOnnx([2, -1, 0.5], 0.1));
    closing.push(ev.close);
    const bg = bgOf([[0, 0, 0], [2, 2, 2]]);
    const lm = await probeLinear(ev.f, bg, 'logit');
    if ('notLinear' in lm) throw new Error(lm.notLinear);
    expect(Array.from(lm.weights)).toEqual([expect.closeTo(2, 3), expect.closeTo(-1, 3), expect.closeTo(0.5, 3)]);
    const [a] = linearShap(lm, bg, Float32Array.from([3, 0, 1]), 1);
    expect(a!.values).toEqual([expect.closeTo(4, 3), expect.closeTo(1, 3), expect.closeTo(0, 3)]);
    expect(a!.base).toBeCloseTo(1.6, 3);
    expect(a!.prediction).toBeCloseTo(6.6, 3);
    expect(Math.abs(a!.gap)).toBeLessThan(1e-6);
    expect(ev.calls()).toBe(1); // the probe is one batched run
  });

  it('refuses to call a non-additive model linear', async () => {
    const m = mlpOnnx(4);
    const ev = await ortEvaluator(m.bytes);
    closing.push(ev.close);
    const r = await probeLinear(ev.f, bgOf(rowsOf(16, 4)), 'logit');
    expect(r).toHaveProperty('notLinear');
  });

  it('tells a logistic graph from an MLP by its ops', () => {
    expect(graphKind(logisticOnnx([1, 2], 0), 'Y')).toMatchObject({ linear: true, link: 'logit', mlp: false });
    expect(graphKind(mlpOnnx(3).bytes, 'Y')).toMatchObject({ linear: false, link: 'logit', mlp: true, why: expect.stringContaining('Relu') });
  });
});

describe('Shapley values enumerated, and KernelSHAP', () => {
  // f(x) = x0·x1 + x2 against the all-zero background: the interaction splits evenly.
  const f: Evaluator = async (x, n) => Float64Array.from({ length: n }, (_, i) => x[i * 3]! * x[i * 3 + 1]! + x[i * 3 + 2]!);
  const zero = bgOf([[0, 0, 0]]);

  it('enumeration gives the known values of x0·x1 + x2 at (2, 3, 5): [3, 3, 5]', async () => {
    const [a] = await enumeratedShapley(f, zero, Float32Array.from([2, 3, 5]), 1);
    expect(a!.values).toEqual([3, 3, 5]);
    expect(a!.base).toBe(0);
    expect(a!.prediction).toBe(11);
  });

  it('KernelSHAP over all coalitions equals them', async () => {
    const [a] = await kernelShap(f, zero, Float32Array.from([2, 3, 5]), 1, { samples: 100 });
    a!.values.forEach((v, j) => expect(v).toBeCloseTo([3, 3, 5][j]!, 6));
  });

  it('KernelSHAP equals enumerated Shapley values on an MLP (onnxruntime, one run each)', async () => {
    const m = mlpOnnx(5, 8, 4);
    const ev = await ortEvaluator(m.bytes);
    closing.push(ev.close);
    const bg = bgOf(rowsOf(8, 5, 11));
    const x = Float32Array.from(rowsOf(3, 5, 12).flat());
    const exact = await enumeratedShapley(ev.f, bg, x, 3);
    const before = ev.calls();
    const kern = await kernelShap(ev.f, bg, x, 3, { samples: 64 });
    expect(ev.calls() - before).toBe(1);
    for (let r = 0; r < 3; r++) {
      // The enumerated values are not trivially zero: the test can fail.
      expect(Math.max(...exact[r]!.values.map(Math.abs))).toBeGreaterThan(1e-3);
      exact[r]!.values.forEach((v, j) => expect(kern[r]!.values[j]).toBeCloseTo(v, 5));
      expect(Math.abs(kern[r]!.prediction - kern[r]!.base - sum(kern[r]!.values))).toBeLessThan(1e-9);
    }
  });

  it('sampled coalitions come in complementary pairs', () => {
    const c = coalitions(15, 64, 3);
    expect(c.complete).toBe(false);
    expect(c.masks).toHaveLength(64);
    for (let k = 0; k < 64; k += 2) c.masks[k]!.forEach((b, j) => expect(b + c.masks[k + 1]![j]!).toBe(1));
  });
});

describe('KernelSHAP agrees with exact SHAP on a logistic model', () => {
  it('15 features, sampled coalitions, logit link: the same attributions within 1e-3', async () => {
    const w = Array.from({ length: 15 }, (_, j) => ((j * 7) % 11) / 5 - 1);
    const ev = await ortEvaluator(logisticOnnx(w, -0.3));
    closing.push(ev.close);
    const bg = bgOf(rowsOf(16, 15, 21));
    const x = Float32Array.from(rowsOf(2, 15, 22).flat());
    const lm = await probeLinear(ev.f, bg, 'logit');
    if ('notLinear' in lm) throw new Error(lm.notLinear);
    const exact = linearShap(lm, bg, x, 2);
    const kern = await kernelShap(ev.f, bg, x, 2, { samples: 256, link: 'logit' });
    for (let r = 0; r < 2; r++) {
      expect(kern[r]!.base).toBeCloseTo(exact[r]!.base, 3);
      exact[r]!.values.forEach((v, j) => expect(Math.abs(kern[r]!.values[j]! - v)).toBeLessThan(1e-3));
    }
  });

  it('in probability space (identity link) the two differ: the logistic model is not additive there', async () => {
    const ev = await ortEvaluator(logisticOnnx([3, -2, 1], 0));
    closing.push(ev.close);
    const bg = bgOf(rowsOf(8, 3, 5));
    const x = Float32Array.from([2, -2, 1]);
    const [k] = await kernelShap(ev.f, bg, x, 1, { link: 'identity' });
    const lm = (await probeLinear(ev.f, bg, 'logit')) as { weights: Float64Array; bias: number };
    const [e] = linearShap(lm, bg, x, 1);
    expect(Math.abs(k!.values[0]! - e!.values[0]!)).toBeGreaterThan(0.1);
    // …and both are efficient in their own space.
    expect(k!.prediction - k!.base - sum(k!.values)).toBeCloseTo(0, 9);
    expect(k!.prediction).toBeCloseTo(applyLink('identity', 1 / (1 + Math.exp(-(6 + 4 + 1)))), 5);
  });
});

describe('integrated gradients by batched path evaluation', () => {
  it('on a logistic model in logit space they are exact SHAP (linear: the gradient is w)', async () => {
    const ev = await ortEvaluator(logisticOnnx([2, -1, 0.5], 0.1));
    closing.push(ev.close);
    const bg = bgOf([[0, 0, 0], [2, 2, 2]]);
    const [a] = await integratedGradients(ev.f, bg, Float32Array.from([3, 0, 1]), 1, { link: 'logit', steps: 16 });
    a!.values.forEach((v, j) => expect(v).toBeCloseTo([4, 1, 0][j]!, 3));
    expect(a!.base).toBeCloseTo(1.6, 3);
  });

  it('on an MLP they satisfy completeness within 1% of |f(x) − f(baseline)| + 2e-3 (float32 outputs), in one run', async () => {
    const m = mlpOnnx(6, 16, 9);
    const ev = await ortEvaluator(m.bytes);
    closing.push(ev.close);
    const bg = bgOf(rowsOf(16, 6, 31));
    const x = Float32Array.from(rowsOf(4, 6, 32).flat());
    const before = ev.calls();
    const out = await integratedGradients(ev.f, bg, x, 4, { link: 'logit', steps: 64 });
    expect(ev.calls() - before).toBe(1);
    for (const a of out) {
      expect(Math.abs(a.prediction - a.base)).toBeGreaterThan(1e-3);
      expect(Math.abs(a.gap)).toBeLessThanOrEqual(0.01 * Math.abs(a.prediction - a.base) + 2e-3);
    }
  });
});

describe('what a training job stores', () => {
  it('logistic regression: a background sample and the mean |w_i (x_i − E[x_i])| on the holdout, highest first', async () => {
    const shape = { type: 'logreg' as const, features: 3, layers: [] };
    const params = Float32Array.from([2, -1, 0.5, 0.1]);
    const holdout = rowsOf(40, 3, 41);
    const ref = await trainingExplainReference(shape, params, Float32Array.from(holdout.flat()), 40, ['a', 'b', 'c']);
    expect(ref.background!.rows).toHaveLength(32);
    expect(ref.background!.columns).toEqual(['a', 'b', 'c']);
    const mean = [0, 1, 2].map((j) => ref.background!.rows.reduce((s, r) => s + r[j]!, 0) / 32);
    const want = [0, 1, 2].map((j) => holdout.reduce((s, r) => s + Math.abs([2, -1, 0.5][j]! * (r[j]! - mean[j]!)), 0) / 40);
    const got = Object.fromEntries(ref.importance!.columns.map((c) => [c.name, c.importance]));
    expect(got.a).toBeCloseTo(want[0]!, 4);
    expect(got.b).toBeCloseTo(want[1]!, 4);
    expect(got.c).toBeCloseTo(want[2]!, 4);
    expect(ref.importance).toMatchObject({ method: 'exact', link: 'logit', rows: 40 });
    expect(ref.importance!.columns[0]!.name).toBe('a');
  });

  it('an MLP: KernelSHAP importance over the holdout', async () => {
    const m = mlpOnnx(4, 8, 2);
    const ref = await trainingExplainReference(m.shape, m.params, Float32Array.from(rowsOf(100, 4, 51).flat()), 100, ['w', 'x', 'y', 'z']);
    expect(ref.importance).toMatchObject({ method: 'kernel', link: 'logit', rows: 64 });
    expect(ref.importance!.columns.every((c) => c.importance >= 0)).toBe(true);
    expect(ref.importance!.columns.some((c) => c.importance > 1e-3)).toBe(true);
  });
});

describe('feature-view grouping', () => {
  it('sums one-hot columns into their raw feature', () => {
    const g = groupAttributions({ values: [1, 2, 3, 4], base: 0, prediction: 10, gap: 0 }, ['v.amount', 'v.color=red', 'v.color=<unknown>', 'v.age'], (c) => c.split('=')[0]!);
    expect(g).toEqual({ names: ['v.amount', 'v.color', 'v.age'], values: [1, 5, 4] });
  });
});

describe('servers that cannot explain', () => {
  it('a pipeline (serveJson) refuses an explain request with SHOAL_ERR_EXPLAIN_UNSUPPORTED instead of predicting', async () => {
    const { serveJson } = await import('../../ml/serving/serve-requests.ts');
    let ran = 0;
    const runner = {
      signature: { inputs: [{ name: 'X', datatype: 'FP32' as const, shape: [-1, 2] }], outputs: [{ name: 'Y', datatype: 'FP32' as const, shape: [-1, 1] }] },
      label: 'pipe v1',
      name: 'pipe',
      version: 1,
      run: async () => {
        ran++;
        return { value: new Map(), batch: 1 };
      },
      failure: (err: unknown) => ({ error: { code: (err as { code: string }).code, message: (err as Error).message } }),
    };
    const body = new TextEncoder().encode(JSON.stringify({ instances: [[1, 2]] }));
    const [r] = await serveJson(runner, [{ format: 'v1', body, explain: {} }]);
    expect(r).toMatchObject({ error: { code: 'SHOAL_ERR_EXPLAIN_UNSUPPORTED', message: expect.stringContaining('pipeline') } });
    expect(ran).toBe(0);
  });
});
