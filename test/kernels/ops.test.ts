import { describe, expect, it } from 'vitest';
import { BINARY_FNS, tensor } from '../../kernels/index.ts';
import { BACKENDS, hasNaN, rand, randn, refAct, refBinary, refHistogram, refLayerNorm, refReduce, refSoftmax, relErr, useKernels } from './reference.ts';

const k = useKernels();

const ROWS_COLS: [number, number][] = [
  [1, 1],
  [1, 1000],
  [1000, 1],
  [3, 5],
  [17, 129],
  [128, 128],
  [257, 300],
  [64, 4099],
  [2000, 64],
];

describe.each(BACKENDS)('row-wise ops on %s', (backend) => {
  it.each(ROWS_COLS)('softmax [%i, %i]', async (r, c) => {
    const x = randn(r * c, 4);
    const [y] = await k[backend]().run('softmax', [tensor(x, [r, c])], {}, { backend, poison: true });
    expect(hasNaN(y!.data)).toBe(false);
    expect(relErr(y!.data, refSoftmax(x, r, c))).toBeLessThan(1e-4);
  });

  it('softmax is stable for large logits and works on rank 3', async () => {
    const x = randn(2 * 3 * 50, 80);
    const [y] = await k[backend]().run('softmax', [tensor(x, [2, 3, 50])], {}, { backend, poison: true });
    expect(y!.shape).toEqual([2, 3, 50]);
    expect(relErr(y!.data, refSoftmax(x, 6, 50))).toBeLessThan(1e-4);
  });

  it.each(ROWS_COLS)('layerNorm [%i, %i]', async (r, c) => {
    // An offset mean checks that the variance does not cancel.
    const x = randn(r * c).map((v) => v + 3);
    const g = randn(c);
    const b = randn(c);
    const [y] = await k[backend]().run('layerNorm', [tensor(x, [r, c]), tensor(g, [c]), tensor(b, [c])], { eps: 1e-5 }, { backend, poison: true });
    expect(hasNaN(y!.data)).toBe(false);
    // A constant row (c = 1) normalises to beta exactly; the reference agrees.
    expect(relErr(y!.data, refLayerNorm(x, g, b, r, c, 1e-5))).toBeLessThan(1e-4);
  });

  for (const fn of ['sum', 'mean', 'variance'] as const) {
    for (const axis of [0, 1] as const) {
      it.each(ROWS_COLS)(`reduce ${fn} axis=${axis} [%i, %i]`, async (r, c) => {
        const x = randn(r * c).map((v) => v + 1.5);
        const [y] = await k[backend]().run('reduce', [tensor(x, [r, c])], { fn, axis }, { backend, poison: true });
        expect(y!.shape).toEqual([axis === 1 ? r : c]);
        expect(hasNaN(y!.data)).toBe(false);
        const ref = refReduce(x, r, c, fn, axis);
        // Variance of a single element is exactly 0: compare absolutely there.
        if (ref.every((v) => v === 0)) expect(Math.max(...Array.from(y!.data, Math.abs))).toBeLessThan(1e-6);
        else expect(relErr(y!.data, ref)).toBeLessThan(1e-4);
      });
    }
  }
});

describe.each(BACKENDS)('elementwise ops on %s', (backend) => {
  const SIZES = [1, 7, 256, 1000, 65_537, 300_001];
  const UNARY = ['relu', 'sigmoid', 'tanh', 'gelu', 'exp', 'log', 'abs', 'neg', 'sqrt', 'square'] as const;
  it.each(UNARY)('unary %s on many sizes', async (fn) => {
    for (const n of SIZES) {
      let x = randn(n, 3);
      if (fn === 'log' || fn === 'sqrt') x = x.map(Math.abs);
      const [y] = await k[backend]().run('unary', [tensor(x)], { fn }, { backend, poison: true });
      expect(hasNaN(y!.data)).toBe(false);
      const ref = Float64Array.from(x, (v) => refAct(fn, v));
      expect(relErr(y!.data, ref), `n=${n}`).toBeLessThan(1e-4);
    }
  });

  it('unary affine', async () => {
    const x = randn(5000);
    const [y] = await k[backend]().run('unary', [tensor(x, [50, 100])], { fn: 'affine', alpha: -2.5, beta: 0.25 }, { backend, poison: true });
    expect(relErr(y!.data, Float64Array.from(x, (v) => -2.5 * v + 0.25))).toBeLessThan(1e-4);
  });

  // The activation gradients take the activation's output as B: σ(z) in (0, 1), tanh(z) in (−1, 1).
  const BIN_B: Record<string, (z: number) => number> = {
    sigmoidGrad: (z) => refAct('sigmoid', z),
    tanhGrad: (z) => refAct('tanh', z),
  };
  for (const fn of BINARY_FNS) {
    const cases: ['same' | 'row' | 'scalar', number[]][] = [
      ['same', [33, 70]],
      ['row', [33, 70]],
      ['scalar', [1001]],
      ['same', [1]],
    ];
    it.each(cases)(`binary ${fn} broadcast=%s %j`, async (mode, shape) => {
      const n = shape.reduce((x, y) => x * y, 1);
      const a = randn(n);
      const bShape = mode === 'same' ? [...shape] : mode === 'row' ? [shape[shape.length - 1]!] : [1];
      const b = randn(bShape.reduce((x, y) => x * y, 1)).map(BIN_B[fn] ?? ((z) => z));
      const [y] = await k[backend]().run('binary', [tensor(a, shape), tensor(b, bShape)], { fn }, { backend, poison: true });
      const cols = shape[shape.length - 1]!;
      const ref = Float64Array.from(a, (v, i) => refBinary(fn, v, mode === 'same' ? b[i]! : mode === 'row' ? b[i % cols]! : b[0]!));
      expect(hasNaN(y!.data)).toBe(false);
      expect(relErr(y!.data, ref)).toBeLessThan(1e-4);
    });
  }
});

describe.each(BACKENDS)('histogram on %s', (backend) => {
  it.each([
    [1, 1],
    [1000, 10],
    [100_003, 64],
    [50_000, 4096],
    [20_000, 10_000],
  ])('n=%i bins=%i', async (n, bins) => {
    const x = randn(n, 2);
    // Some values on the edges and outside the range.
    x[0] = -1.5;
    if (n > 2) x[1] = 1.5;
    if (n > 3) x[2] = 1.9;
    const [lo, hi] = [-1.5, 1.5];
    const [h] = await k[backend]().run('histogram', [tensor(x)], { bins, min: lo, max: hi }, { backend, poison: true });
    expect(h!.dtype).toBe('u32');
    // Float64 oracle. A value within 1e-3 of a bin's width from an inner edge may land on either
    // side in f32 arithmetic: those count as ambiguous and bound the allowed L1 difference.
    const { counts: ref, inRange, ambiguous } = refHistogram(x, bins, lo, hi);
    const total = Array.from(h!.data).reduce((s, v) => s + v, 0);
    expect(total).toBe(inRange);
    const l1 = Array.from(h!.data).reduce((s, v, i) => s + Math.abs(v - ref[i]!), 0);
    expect(l1).toBeLessThanOrEqual(2 * ambiguous);
    expect(relErr(h!.data, ref)).toBeLessThan(Math.max(1e-4, Math.sqrt((2 * ambiguous) / ref.reduce((s, v) => s + v * v, 0))));
  });

  it('matches the twin exactly for values spread over the bins', async () => {
    const x = Float32Array.from({ length: 30_000 }, () => rand() * 10 - 5);
    const [g] = await k[backend]().run('histogram', [tensor(x)], { bins: 37, min: -5, max: 5 }, { backend });
    const [c] = await k.cpu().run('histogram', [tensor(x)], { bins: 37, min: -5, max: 5 }, { backend: 'cpu' });
    expect(Array.from(g!.data)).toEqual(Array.from(c!.data));
  });
});
