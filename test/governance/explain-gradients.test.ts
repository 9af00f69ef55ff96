/**
 * Integrated gradients through the kernels' backward pass (ml/governance/explain/gradients.ts):
 * the input gradients against central differences of the trainer's float64 forward pass, IG's
 * efficiency and its agreement with the finite-difference IG through onnxruntime, and which
 * graphs are recognised as Shoal's MLP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKernels, floatTensor, onnxModel, type Kernels } from '../../kernels/index.ts';
import { integratedGradients, type Background } from '../../ml/governance/explain/attributions.ts';
import { igBackwardRows, integratedGradientsBackward, mlpInputGradients, shoalMlp, type ShoalMlp } from '../../ml/governance/explain/gradients.ts';
import { exportOnnx, initParams, layout, predict, type ModelShape } from '../../ml/training/model.ts';
import { logisticOnnx, mlpOnnx, ortEvaluator, referenceWithBackground, rowsOf } from '../fixtures/explain.ts';

const bgOf = (rows: number[][]): Background => ({ x: Float32Array.from(rows.flat()), rows: rows.length, d: rows[0]!.length });
const sum = (a: number[]) => a.reduce((p, q) => p + q, 0);

/** A two-hidden-layer MLP as training exports it, with non-zero biases. */
function deepMlp(features: number): { bytes: Uint8Array; shape: ModelShape; params: Float32Array } {
  const shape: ModelShape = { type: 'mlp', features, layers: [8, 6] };
  const params = initParams(shape, 11);
  for (const d of layout(shape).dense) for (let k = 0; k < d.out; k++) params[d.b + k] = 0.1 * ((k % 3) - 1);
  return { bytes: exportOnnx(shape, params, 'deep'), shape, params };
}

function recognised(bytes: Uint8Array): ShoalMlp {
  const r = shoalMlp(bytes, 'Y');
  if ('notMlp' in r) throw new Error(r.notMlp);
  return r;
}

let k: Kernels;
const closing: (() => Promise<void>)[] = [];
beforeAll(async () => {
  k = await createKernels({ backend: 'cpu', cpuWorkers: 0, autotune: false });
});
afterAll(async () => {
  for (const c of closing) await c();
  await k.close();
});

describe('input gradients through the kernels', () => {
  for (const [name, make] of [
    ['one hidden layer', () => mlpOnnx(5)],
    ['two hidden layers', () => deepMlp(5)],
  ] as const) {
    it(`${name}: equal central differences of the float64 forward pass within 1e-3 (identity and logit links)`, async () => {
      const m = make();
      const mlp = recognised(m.bytes);
      expect(mlp.layers.map((l) => [l.in, l.out])).toEqual(layout(m.shape).dense.map((d) => [d.in, d.out]));
      const rows = rowsOf(12, 5, 21);
      const x = Float32Array.from(rows.flat());
      const h = 1e-4;
      for (const link of ['identity', 'logit'] as const) {
        const { z, grad } = await mlpInputGradients(k, mlp, x, rows.length, link);
        let worst = 0;
        let scale = 0;
        rows.forEach((row, r) => {
          const p = predict(m.shape, m.params, Float32Array.from(row), 1)[0]!;
          expect(z[r]!).toBeCloseTo(Math.log(p / (1 - p)), 4);
          for (let j = 0; j < 5; j++) {
            // float64 differences of the float64 forward (Float32Array.from would round x ± h).
            const up = [...row];
            const dn = [...row];
            up[j]! += h;
            dn[j]! -= h;
            const fd = (gAt(m, up, link) - gAt(m, dn, link)) / (2 * h);
            worst = Math.max(worst, Math.abs(grad[r * 5 + j]! - fd));
            scale = Math.max(scale, Math.abs(fd));
          }
        });
        expect(worst).toBeLessThan(1e-3);
        expect(scale).toBeGreaterThan(1e-2); // the check is not vacuous
      }
    });
  }
});

/** The model in float64 on float64 inputs (predict() takes float32 rows). */
function gAt(m: { shape: ModelShape; params: Float32Array }, row: number[], link: 'identity' | 'logit'): number {
  const L = layout(m.shape);
  let cur = row;
  L.dense.forEach((d, li) => {
    const next: number[] = [];
    for (let o = 0; o < d.out; o++) {
      let z = m.params[d.b + o]!;
      for (let j = 0; j < d.in; j++) z += cur[j]! * m.params[d.w + j * d.out + o]!;
      next.push(li === L.dense.length - 1 ? z : Math.max(0, z));
    }
    cur = next;
  });
  const z = cur[0]!;
  return link === 'logit' ? z : 1 / (1 + Math.exp(-z));
}

describe('integrated gradients by the backward pass', () => {
  // The midpoint rule's error comes from the ReLU kinks the path crosses (the gradient jumps
  // there): O(1/steps), about 1 % of |prediction − base| at 64 steps on these rows.
  for (const link of ['logit', 'identity'] as const) {
    it(`${link}: efficient to the quadrature error (1e-3 at 1024 steps) and agrees with the finite-difference IG`, async () => {
      const m = mlpOnnx(4);
      const mlp = recognised(m.bytes);
      const bg = bgOf(rowsOf(16, 4, 5));
      const rows = 6;
      const x = Float32Array.from(rowsOf(rows, 4, 9).flat());
      const ev = await ortEvaluator(m.bytes);
      closing.push(ev.close);
      const at64 = await integratedGradientsBackward(k, mlp, bg, x, rows, { link, steps: 64 });
      expect(at64.runRows).toBe(igBackwardRows(rows, 64));
      for (const a of at64.attributions) expect(Math.abs(a.gap)).toBeLessThan(0.02 * Math.abs(a.prediction - a.base) + 2e-3);
      const { attributions } = await integratedGradientsBackward(k, mlp, bg, x, rows, { link, steps: 1024 });
      const fd = await integratedGradients(ev.f, bg, x.slice(), rows, { link, steps: 1024 });
      let moved = 0;
      attributions.forEach((a, r) => {
        expect(Math.abs(a.gap)).toBeLessThan(1e-3);
        expect(a.prediction - a.base - sum(a.values)).toBeCloseTo(a.gap, 12);
        expect(a.base).toBeCloseTo(fd[r]!.base, 4);
        expect(a.prediction).toBeCloseTo(fd[r]!.prediction, 4);
        expect(a.output!).toBeCloseTo(fd[r]!.output!, 5);
        for (let j = 0; j < 4; j++) expect(Math.abs(a.values[j]! - fd[r]!.values[j]!)).toBeLessThan(1e-3);
        moved = Math.max(moved, Math.abs(a.prediction - a.base));
      });
      expect(moved).toBeGreaterThan(0.05); // the rows are not all at the base value
    });
  }

  it('a NaN in a row is a typed 400 from the kernels, before anything runs', async () => {
    const m = mlpOnnx(2);
    const x = Float32Array.from([1, Number.NaN]);
    await expect(integratedGradientsBackward(k, recognised(m.bytes), bgOf([[0, 0]]), x, 1, { steps: 4 })).rejects.toMatchObject({ code: 'SHOAL_ERR_KERNEL_NAN_INPUT' });
  });

  it('a two-hidden-layer MLP is efficient too (logit, 1024 steps)', async () => {
    const m = deepMlp(3);
    const bg = bgOf(rowsOf(8, 3, 2));
    const x = Float32Array.from(rowsOf(4, 3, 13).flat());
    const { attributions } = await integratedGradientsBackward(k, recognised(m.bytes), bg, x, 4, { link: 'logit', steps: 1024 });
    for (const a of attributions) expect(Math.abs(a.gap)).toBeLessThan(1e-3);
  });
});

describe('recognising a Shoal MLP', () => {
  it('accepts the MLP and logistic regression exports', () => {
    expect(recognised(mlpOnnx(4, 8).bytes).layers.map((l) => [l.in, l.out])).toEqual([[4, 8], [8, 1]]);
    expect(recognised(logisticOnnx([1, 2], 0.5)).layers.map((l) => [l.in, l.out])).toEqual([[2, 1]]);
  });

  it('refuses other graphs, and another output than the final Sigmoid', () => {
    const tanh = onnxModel(
      {
        name: 'tanh-mlp',
        nodes: [
          { op: 'MatMul', inputs: ['X', 'W0'], outputs: ['m0'] },
          { op: 'Add', inputs: ['m0', 'B0'], outputs: ['a0'] },
          { op: 'Tanh', inputs: ['a0'], outputs: ['h0'] },
          { op: 'MatMul', inputs: ['h0', 'W1'], outputs: ['m1'] },
          { op: 'Add', inputs: ['m1', 'B1'], outputs: ['z'] },
          { op: 'Sigmoid', inputs: ['z'], outputs: ['Y'] },
        ],
        initializers: [floatTensor('W0', [2, 2], [1, 2, 3, 4]), floatTensor('B0', [2], [0, 0]), floatTensor('W1', [2, 1], [1, 1]), floatTensor('B1', [1], [0])],
        inputs: [{ name: 'X', dims: ['N', 2] }],
        outputs: [{ name: 'Y', dims: ['N', 1] }],
      },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    expect(shoalMlp(tanh, 'Y')).toEqual({ notMlp: expect.stringContaining('Tanh') });
    const noSigmoid = onnxModel(
      {
        name: 'linear',
        nodes: [
          { op: 'MatMul', inputs: ['X', 'W0'], outputs: ['m0'] },
          { op: 'Add', inputs: ['m0', 'B0'], outputs: ['Y'] },
        ],
        initializers: [floatTensor('W0', [2, 1], [1, 2]), floatTensor('B0', [1], [0])],
        inputs: [{ name: 'X', dims: ['N', 2] }],
        outputs: [{ name: 'Y', dims: ['N', 1] }],
      },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    expect('notMlp' in shoalMlp(noSigmoid, 'Y')).toBe(true);
    expect(shoalMlp(mlpOnnx(3).bytes, 'z')).toEqual({ notMlp: expect.stringContaining('"z"') });
    expect(shoalMlp(new Uint8Array([1, 2, 3]), 'Y')).toEqual({ notMlp: expect.any(String) });
  });
});

describe('a replica explaining with method=ig', () => {
  async function explainVia(bytes: Uint8Array, D: number): Promise<Record<string, unknown>> {
    const { ReplicaExplainer } = await import('../../ml/serving/explain.ts');
    const ort = await import('onnxruntime-node');
    const s = await ort.InferenceSession.create(bytes);
    closing.push(() => s.release());
    let sessionRows = 0;
    const sig = { inputs: [{ name: 'X', datatype: 'FP32' as const, shape: [-1, D] }], outputs: [{ name: 'Y', datatype: 'FP32' as const, shape: [-1, 1] }] };
    const columns = Array.from({ length: D }, (_, j) => `f${j}`);
    const ex = new ReplicaExplainer({
      label: 'm v1',
      name: 'm',
      version: 1,
      signature: sig,
      model: sig,
      processor: false,
      run: async (feeds) => {
        const t = feeds.X!;
        sessionRows += t.dims[0]!;
        const out = await s.run({ X: new ort.Tensor('float32', t.data as Float32Array, t.dims) });
        return { Y: { type: 'float32', data: out.Y!.data as Float32Array, dims: [...out.Y!.dims] } };
      },
      modelBytes: async () => bytes,
      reference: async () => JSON.parse(new TextDecoder().decode(referenceWithBackground(columns, rowsOf(16, D, 5)))),
      columns: undefined,
      failure: (err: unknown) => ({ error: { code: (err as { code: string }).code, message: (err as Error).message } }),
    });
    const body = new TextEncoder().encode(JSON.stringify({ instances: rowsOf(2, D, 9) }));
    const r = await ex.explain({ format: 'v1', body, explain: { method: 'ig', steps: 64 } });
    if (!('body' in r)) throw new Error(JSON.stringify(r));
    return { ...(JSON.parse(new TextDecoder().decode(r.body)) as Record<string, unknown>), sessionRows };
  }

  it('a Shoal MLP: gradients by the backward pass, one kernels pass, no session run', async () => {
    const a = await explainVia(mlpOnnx(3).bytes, 3);
    expect(a).toMatchObject({ method: 'ig', gradients: 'backward', steps: 64, run_rows: igBackwardRows(2, 64), sessionRows: 0, link: 'logit' });
    const e = a.explanations as { prediction: number; base_value: number; output: number; efficiency_gap: number; attributions: Record<string, number> }[];
    expect(e).toHaveLength(2);
    for (const x of e) {
      expect(x.efficiency_gap).toBeCloseTo(x.prediction - x.base_value - sum(Object.values(x.attributions)), 9);
      expect(x.output).toBeCloseTo(1 / (1 + Math.exp(-x.prediction)), 5);
    }
  });

  it('another graph: finite differences through the session', async () => {
    const tanh = onnxModel(
      {
        name: 'tanh',
        nodes: [
          { op: 'MatMul', inputs: ['X', 'W0'], outputs: ['m0'] },
          { op: 'Tanh', inputs: ['m0'], outputs: ['z'] },
          { op: 'Sigmoid', inputs: ['z'], outputs: ['Y'] },
        ],
        initializers: [floatTensor('W0', [2, 1], [1, -1])],
        inputs: [{ name: 'X', dims: ['N', 2] }],
        outputs: [{ name: 'Y', dims: ['N', 1] }],
      },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    const a = await explainVia(tanh, 2);
    expect(a).toMatchObject({ method: 'ig', gradients: 'finite-difference', run_rows: 1 + 2 * (1 + 2 * 2 * 64) });
    expect(a.sessionRows).toBe(a.run_rows);
  });
});
