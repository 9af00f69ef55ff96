import { afterAll, describe, expect, it } from 'vitest';
import { createKernels, type Kernels } from '../../kernels/index.ts';
import { MlErrors, evaluate, exportOnnx, generateFraud, importCsv, initParams, predict, rocAuc, split } from '../../ml/index.ts';
import * as ort from 'onnxruntime-node';

// Outside a node the test creates its own kernels (a node agent hands its actors the node's).
let kernels: Promise<Kernels> | undefined;
const testKernels = () => (kernels ??= createKernels({ backend: 'auto' }));
afterAll(async () => {
  await (await kernels)?.close();
});

describe('training units', () => {
  it('ROC AUC matches a hand-computed case, ties averaged', () => {
    // Positives at 0.9 and 0.4, negatives at 0.8, 0.4, 0.1: pairs won 2 + 0.5 + 1 + 1 = 4.5 of 6.
    expect(rocAuc([0.9, 0.8, 0.4, 0.4, 0.1], [1, 0, 1, 0, 0])).toBeCloseTo(4.5 / 6, 12);
    expect(rocAuc([0.1, 0.2], [1, 0])).toBe(0);
    const m = evaluate([0.9, 0.8, 0.2, 0.1], [1, 0, 1, 0]);
    expect([m.precision, m.recall, m.accuracy]).toEqual([0.5, 0.5, 0.5]);
  });

  it('the fraud generator is deterministic by seed, imbalanced, and drifts', () => {
    const a = generateFraud({ rows: 5000, seed: 9 });
    const b = generateFraud({ rows: 5000, seed: 9 });
    expect(Buffer.from(a.features.buffer).equals(Buffer.from(b.features.buffer))).toBe(true);
    const rate = a.labels.reduce((s, l) => s + l, 0) / a.rows;
    expect(rate).toBeGreaterThan(0.005);
    expect(rate).toBeLessThan(0.1);
    const d = generateFraud({ rows: 5000, seed: 9, drift: 1 });
    const mean = (x: Float32Array) => x.filter((_, i) => i % a.columns.length === 0).reduce((s, v) => s + v, 0) / a.rows;
    expect(mean(d.features) - mean(a.features)).toBeGreaterThan(0.2); // log_amount shifted up
    expect(new Set(a.sensitive)).toEqual(new Set([0, 1]));
  });

  it('splits are a deterministic partition', () => {
    const s = split(1000, 3);
    expect(s.train.length + s.validation.length + s.holdout.length).toBe(1000);
    expect(new Set([...s.train, ...s.validation, ...s.holdout]).size).toBe(1000);
    expect(split(1000, 3)).toEqual(s);
    expect(split(1000, 4).train).not.toEqual(s.train);
  });

  it('CSV import one-hots categoricals, standardises numerics, names a bad cell', () => {
    const csv = 'amount,merchant,age,label\n10,shop,30,0\n20,"web, inc",40,1\n30,shop,50,0\n';
    const d = importCsv(csv, { label: 'label', numeric: ['amount'], categorical: ['merchant'], sensitive: 'age' });
    expect(d.columns).toEqual(['amount', 'merchant_shop', 'merchant_web, inc']);
    expect(Array.from(d.labels)).toEqual([0, 1, 0]);
    expect(d.features[0]).toBeCloseTo(-1.2247, 3);
    expect(d.features[3 * 1 + 2]).toBe(1);
    expect(() => importCsv('amount,label\nabc,1\n', { label: 'label', numeric: ['amount'] })).toThrow(/row 2, column "amount"/);
    expect(() => importCsv('amount,label\n1,yes\n', { label: 'label', numeric: ['amount'] })).toThrow(expect.objectContaining({ code: MlErrors.BAD_DATASET.code }));
  });

  it('the exported ONNX (logreg, MLP of one and of two hidden layers) computes the trainer forward pass', async () => {
    const d = generateFraud({ rows: 64, seed: 2 });
    for (const [type, layers] of [['logreg', []], ['mlp', [8]], ['mlp', [8, 4]]] as const) {
      const shape = { type, features: d.columns.length, layers: [...layers] };
      const p = initParams(shape, 5);
      for (let i = 0; i < p.length; i++) p[i] = p[i]! + Math.sin(i) * 0.3; // not all zeros
      const session = await ort.InferenceSession.create(exportOnnx(shape, p));
      const out = await session.run({ X: new ort.Tensor('float32', d.features, [d.rows, d.columns.length]) });
      const y = out.Y!.data as Float32Array;
      const ref = predict(shape, p, d.features, d.rows);
      for (let i = 0; i < d.rows; i++) expect(Math.abs(y[i]! - ref[i]!)).toBeLessThan(1e-5);
    }
  });
});

describe('MLP gradients through kernels', () => {
  it('match finite differences of the loss, for two hidden layers', async () => {
    const { gradient } = await import('../../ml/index.ts');
    const d = generateFraud({ rows: 32, seed: 4 });
    const shape = { type: 'mlp' as const, features: d.columns.length, layers: [6, 5] };
    const p = initParams(shape, 3);
    for (let i = 0; i < p.length; i++) p[i] = p[i]! + 0.05 * Math.cos(i); // biases non-zero too
    const y = Float32Array.from(d.labels, (l, i) => (i % 3 === 0 ? 1 : l));
    const k = await testKernels();
    const g = await gradient(k, shape, p, d.features, y, d.rows);
    const loss = (q: Float32Array) => {
      const pr = predict(shape, q, d.features, d.rows);
      let s = 0;
      for (let i = 0; i < d.rows; i++) s -= y[i] ? Math.log(pr[i]!) : Math.log(1 - pr[i]!);
      return s / d.rows;
    };
    expect(g.loss).toBeCloseTo(loss(p), 4);
    // Central differences on a spread of coordinates (every layer's weights and biases).
    for (const i of [0, 7, 40, 95, 97, 101, 120, 130, p.length - 3, p.length - 1]) {
      const h = 1e-3;
      const up = p.slice();
      up[i] = up[i]! + h;
      const dn = p.slice();
      dn[i] = dn[i]! - h;
      const fd = (loss(up) - loss(dn)) / (2 * h);
      expect(Math.abs(g.grad[i]! - fd)).toBeLessThan(2e-3);
    }
  });
});

describe('optimizer updates through kernels', () => {
  it('adam and sgd match the closed form in float64 over several steps, with the state in float32', async () => {
    const { applyUpdate } = await import('../../ml/index.ts');
    const k = await testKernels();
    const n = 300;
    const p = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const m = new Float64Array(n);
    const v = new Float64Array(n);
    const ref = { p: Float64Array.from(p), m: new Float64Array(n), v: new Float64Array(n) };
    for (let step = 1; step <= 5; step++) {
      const g = Float32Array.from({ length: n }, (_, i) => Math.cos(i * step) * 0.1);
      const backend = await applyUpdate(k, 'adam', 0.01, step, p, g, m, v);
      expect(['cpu', 'gpu']).toContain(backend);
      for (let i = 0; i < n; i++) {
        ref.m[i] = 0.9 * ref.m[i]! + 0.1 * g[i]!;
        ref.v[i] = 0.999 * ref.v[i]! + 0.001 * g[i]! * g[i]!;
        ref.p[i] = ref.p[i]! - (0.01 * (ref.m[i]! / (1 - 0.9 ** step))) / (Math.sqrt(ref.v[i]! / (1 - 0.999 ** step)) + 1e-8);
      }
    }
    for (let i = 0; i < n; i++) {
      expect(Math.abs(p[i]! - ref.p[i]!)).toBeLessThan(1e-5);
      expect(Math.abs(m[i]! - ref.m[i]!)).toBeLessThan(1e-6);
      expect(Math.fround(m[i]!)).toBe(m[i]); // the state is float32: a checkpoint round-trips exactly
      expect(Math.fround(v[i]!)).toBe(v[i]);
    }
    const q = Float32Array.from([1, 2, 3]);
    await applyUpdate(k, 'sgd', 0.5, 1, q, Float32Array.from([0.2, -0.4, 0]), new Float64Array(3), new Float64Array(3));
    expect(Array.from(q)).toEqual([0.8999999761581421, 2.200000047683716, 3]);
  });
});
