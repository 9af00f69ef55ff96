/**
 * The quantizer against known values and against onnxruntime: per-channel scales and integers
 * of a small matrix worked out by hand (half-to-even included), the round-trip error bound on
 * random matrices, both int8 graph forms and fp16 run by onnxruntime next to the float model,
 * Gemm's transB/alpha/beta, ops it does not handle refused by name, and the verdict policy.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { exportOnnx, initParams } from '../../ml/training/model.ts';
import { floatTensor, onnxGraphSummary, onnxModel } from '../../kernels/index.ts';
import { dequantizePerChannel, judgeQuantized as judge, quantizeModel, quantizePerChannel, roundHalfEven, type LatencyComparison } from '../../ml/index.ts';

const onnxGraphOps = (m: Uint8Array) => onnxGraphSummary(m).ops.map((o) => o.op);

const run = async (model: Uint8Array, x: Float32Array, rows: number, cols: number, input = 'X'): Promise<Float32Array> => {
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const out = await s.run({ [input]: new ort.Tensor('float32', x, [rows, cols]) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } finally {
    await s.release();
  }
};

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('per-channel int8 arithmetic', () => {
  it('rounds half to even, as ONNX QuantizeLinear does', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001, -63.5, 63.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, 3, -64, 64]);
  });

  it('a 2×3 matrix, one scale per column: the scales and integers worked out by hand', () => {
    const w = Float32Array.from([1, -2, 0.5, -0.5, 4, -1]);
    const p = quantizePerChannel(w, 2, 3, 1, 8);
    // max|w| per column: 1, 4, 1 → scale = max/127.
    expect(Array.from(p.scales)).toEqual([1 / 127, 4 / 127, 1 / 127].map(Math.fround));
    // -0.5·127 = -63.5 → -64; -2/(4/127) = -63.5 → -64; 0.5·127 = 63.5 → 64 (ties to even).
    expect(Array.from(p.q)).toEqual([127, -64, 64, -64, 127, -127]);
    expect(p.qmax).toBe(127);
  });

  it('one scale per row (a Gemm weight with transB) and the 7-bit range', () => {
    const w = Float32Array.from([1, -2, 0.5, -0.5, 4, -1]);
    const p = quantizePerChannel(w, 2, 3, 0, 7);
    expect(Array.from(p.scales)).toEqual([2 / 63, 4 / 63].map(Math.fround));
    // Row 0: 1/scale is 31.4999… (the float32 scale lies just above 2/63), so 31 — not a tie; -2 → -63,
    // 0.5/scale = 15.75 → 16; row 1: -0.5/(4/63) = -7.875 → -8, 4 → 63, -1 → -15.75 → -16.
    expect(1 / p.scales[0]!).toBeLessThan(31.5);
    expect(Array.from(p.q)).toEqual([31, -63, 16, -8, 63, -16]);
  });

  it('an all-zero channel gets scale 1 and zeros, not a division by zero', () => {
    const p = quantizePerChannel(Float32Array.from([0, 3, 0, -3]), 2, 2, 1);
    expect(Array.from(p.scales)).toEqual([1, Math.fround(3 / 127)]);
    expect(Array.from(p.q)).toEqual([0, 127, 0, -127]);
  });

  it('round trip: every weight within half a step of its channel (random matrices, both axes, 7 and 8 bits)', () => {
    const r = seededRandom(99);
    for (const [rows, cols] of [[17, 5], [64, 33], [3, 128]] as const) {
      for (const axis of [0, 1] as const) {
        for (const bits of [7, 8] as const) {
          const w = Float32Array.from({ length: rows * cols }, () => (r() * 2 - 1) * (1 + 10 * r()));
          const p = quantizePerChannel(w, rows, cols, axis, bits);
          const back = dequantizePerChannel(p, rows, cols, axis);
          let worst = 0;
          for (let i = 0; i < w.length; i++) {
            const s = p.scales[axis === 1 ? i % cols : Math.floor(i / cols)]!;
            worst = Math.max(worst, Math.abs(w[i]! - back[i]!) / s);
          }
          // Half a step, plus float32 rounding of the product.
          expect(worst).toBeLessThanOrEqual(0.5 + 1e-4);
          expect(worst).toBeGreaterThan(0.3); // the bound is near-tight, so the check can fail
          expect(Math.max(...Array.from(p.q, Math.abs))).toBe(2 ** (bits - 1) - 1);
        }
      }
    }
  });
});

describe('quantizeModel under onnxruntime', () => {
  const shape = { type: 'mlp' as const, features: 24, layers: [64, 32] };
  const params = initParams(shape, 3);
  const float = exportOnnx(shape, params, 'mlp');
  const rows = 64;
  const r = seededRandom(5);
  const x = Float32Array.from({ length: rows * shape.features }, () => r() * 4 - 2);

  it('int8 integer form: DynamicQuantizeLinear → MatMulInteger, every weight quantized, outputs close, ~¼ the size', async () => {
    const q = quantizeModel('mlp', float, { mode: 'int8', format: 'integer' });
    expect(q.weights.map((w) => w.weight)).toEqual(['W0', 'W1', 'W2']);
    expect(q.weightBits).toBe(7);
    const ops = onnxGraphOps(q.bytes);
    expect(ops.filter((o) => o === 'MatMulInteger')).toHaveLength(3);
    expect(ops).not.toContain('MatMul');
    expect(q.bytes.length / float.length).toBeLessThan(0.4);
    const d = maxAbsDiff(await run(float, x, rows, shape.features), await run(q.bytes, x, rows, shape.features));
    expect(d).toBeLessThan(0.03);
    expect(d).toBeGreaterThan(0); // it did change the arithmetic
  });

  it('int8 QDQ form: int8 weights through DequantizeLinear into the same MatMuls', async () => {
    const q = quantizeModel('mlp', float, { mode: 'int8', format: 'qdq' });
    const ops = onnxGraphOps(q.bytes);
    expect(ops.filter((o) => o === 'DequantizeLinear')).toHaveLength(3);
    expect(ops.filter((o) => o === 'MatMul')).toHaveLength(3);
    expect(q.bytes.length / float.length).toBeLessThan(0.4);
    // Weight-only 8-bit: only the weights' rounding, so closer than the integer form.
    expect(maxAbsDiff(await run(float, x, rows, shape.features), await run(q.bytes, x, rows, shape.features))).toBeLessThan(0.01);
  });

  it('fp16: half the size, float32 signature, outputs within half precision', async () => {
    const q = quantizeModel('mlp', float, { mode: 'fp16' });
    expect(q.bytes.length / float.length).toBeLessThan(0.55);
    const d = maxAbsDiff(await run(float, x, rows, shape.features), await run(q.bytes, x, rows, shape.features));
    expect(d).toBeLessThan(2e-3);
  });

  it('Gemm with transB, alpha and beta: both int8 forms agree with the float model', async () => {
    const [K, N, M] = [40, 12, 16];
    const wr = seededRandom(8);
    const B = Float32Array.from({ length: N * K }, () => wr() * 2 - 1);
    const C = Float32Array.from({ length: N }, () => wr());
    const gemm = onnxModel(
      { name: 'g', nodes: [{ op: 'Gemm', inputs: ['A', 'B', 'C'], outputs: ['Y'], attributes: { alpha: { f: 0.5 }, beta: { f: 2 }, transB: { i: 1 } } }], initializers: [floatTensor('B', [N, K], B), floatTensor('C', [N], C)], inputs: [{ name: 'A', dims: ['N', K] }], outputs: [{ name: 'Y', dims: ['N', N] }] },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    const a = Float32Array.from({ length: M * K }, () => wr() * 2 - 1);
    const ref = await run(gemm, a, M, K, 'A');
    for (const format of ['integer', 'qdq'] as const) {
      const q = quantizeModel('g', gemm, { mode: 'int8', format });
      const d = maxAbsDiff(ref, await run(q.bytes, a, M, K, 'A'));
      // |Y| is a few units: a few percent of a step per product, summed over K.
      expect(d).toBeLessThan(0.05);
    }
  });

  it('refuses ops it does not handle, listing each once, and a model with nothing to quantize', () => {
    const m = onnxModel(
      {
        name: 'odd',
        nodes: [
          { op: 'MatMul', inputs: ['X', 'W'], outputs: ['a'] },
          { op: 'Sin', inputs: ['a'], outputs: ['b'] },
          { op: 'Softsign', inputs: ['b'], outputs: ['c'] },
          { op: 'Sin', inputs: ['c'], outputs: ['Y'] },
        ],
        initializers: [floatTensor('W', [4, 4], new Float32Array(16).fill(0.5))],
        inputs: [{ name: 'X', dims: ['N', 4] }],
        outputs: [{ name: 'Y', dims: ['N', 4] }],
      },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    for (const mode of ['int8', 'fp16'] as const) {
      expect(() => quantizeModel('odd', m, { mode })).toThrow(expect.objectContaining({ code: 'SHOAL_ERR_QUANTIZE_UNSUPPORTED', message: expect.stringContaining('does not handle: Sin, Softsign (') }));
    }
    const tiny = exportOnnx({ type: 'logreg', features: 3, layers: [] }, new Float32Array(4), 'tiny');
    expect(() => quantizeModel('tiny', tiny, { mode: 'int8' })).toThrow(/nothing to quantize/);
    expect(() => quantizeModel('junk', Uint8Array.of(1, 2, 3, 255), { mode: 'int8' })).toThrow(expect.objectContaining({ code: 'SHOAL_ERR_QUANTIZE_UNSUPPORTED' }));
    const once = quantizeModel('mlp', exportOnnx({ type: 'mlp', features: 8, layers: [16] }, initParams({ type: 'mlp', features: 8, layers: [16] }, 1)), { mode: 'int8' }).bytes;
    expect(() => quantizeModel('mlp', once, { mode: 'fp16' })).toThrow(/already quantized \(int8-integer\); quantize its float source instead/);
  });
});

describe('the verdict', () => {
  const lat = (batch: number, ratio: number, range: [number, number]): LatencyComparison => ({ batch, runs: 600, rounds: 3, floatMs: 1, quantizedMs: ratio, ratio, ratioRange: range, roundRatios: [range[0], ratio, range[1]] });

  it('accepts a faster model within a point of its main metric', () => {
    expect(judge([lat(1, 0.7, [0.65, 0.75]), lat(32, 0.5, [0.45, 0.55])], { metric: 'auc', source: 0.9, quantized: 0.895 })).toEqual({ rejected: false, reasons: [] });
  });

  it('rejects one slower in every round at some batch size, naming the batch and the ratio', () => {
    const v = judge([lat(1, 1.4, [1.3, 1.5]), lat(32, 0.6, [0.5, 0.7])], undefined);
    expect(v.rejected).toBe(true);
    expect(v.reasons).toEqual([expect.stringMatching(/^slower at batch 1: 1\.4× .*rounds 1\.3–1\.5/)]);
  });

  it('noise is not slowness: a round below 1, or a median within the tolerance', () => {
    expect(judge([lat(1, 1.2, [0.98, 1.3])], undefined).rejected).toBe(false);
    expect(judge([lat(1, 1.02, [1.01, 1.03])], undefined).rejected).toBe(false);
  });

  it('rejects a loss of more than one point of the main metric, not one of exactly one', () => {
    expect(judge([], { metric: 'auc', source: 0.9, quantized: 0.885 }).reasons).toEqual([expect.stringContaining('auc 0.885 vs 0.9 on the holdout: loses 1.50 points')]);
    expect(judge([], { metric: 'auc', source: 0.9, quantized: 0.8905 }).rejected).toBe(false);
    expect(judge([], { metric: 'auc', source: 0.9, quantized: 0.85 }, { slowerTolerance: 0.03, maxMetricLossPoints: 10 }).rejected).toBe(false);
  });
});
