import { describe, expect, it } from 'vitest';
import { tensor } from '../../kernels/index.ts';
import { BACKENDS, hasNaN, randn, refGemm, relErr, testSeed, useKernels } from './reference.ts';

const k = useKernels();

// Shapes hit every path: gemv-row (N=1), gemv-col (M=1), small, tiled (non-multiples, odd K),
// tiled-aligned (multiples of 64×128×16), and a large one.
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 1],
  [1, 300, 65],
  [129, 77, 1],
  [300, 700, 1],
  [7, 5, 3],
  [16, 16, 16],
  [31, 33, 35],
  [64, 16, 128],
  [128, 64, 256],
  [65, 17, 129],
  [100, 3, 200],
  [257, 129, 131],
  [200, 1, 300],
  [512, 512, 512],
  [384, 1000, 640],
];

describe.each(BACKENDS)('matmul on %s', (backend) => {
  it.each(SHAPES)(`[%i×%i]·[%i] matches float64 (seed ${testSeed})`, async (M, K, N) => {
    const a = randn(M * K);
    const b = randn(K * N);
    const [c] = await k[backend]().run('matmul', [tensor(a, [M, K]), tensor(b, [K, N])], {}, { backend, poison: true });
    expect(c!.shape).toEqual([M, N]);
    expect(hasNaN(c!.data)).toBe(false);
    expect(relErr(c!.data, refGemm(a, b, M, K, N))).toBeLessThan(1e-4);
  });

  it.each([
    [false, true, 70, 45, 150],
    [true, false, 70, 45, 150],
    [true, true, 129, 64, 257],
    [true, false, 1, 40, 50],
    [false, true, 40, 50, 1],
    [true, true, 20, 9, 11],
  ] as const)('transA=%s transB=%s [%i, %i, %i] with alpha', async (transA, transB, M, K, N) => {
    const a = randn(M * K);
    const b = randn(K * N);
    const A = tensor(a, transA ? [K, M] : [M, K]);
    const B = tensor(b, transB ? [N, K] : [K, N]);
    const [c] = await k[backend]().run('matmul', [A, B], { transA, transB, alpha: 0.5 }, { backend, poison: true });
    expect(hasNaN(c!.data)).toBe(false);
    expect(relErr(c!.data, refGemm(a, b, M, K, N, { transA, transB, alpha: 0.5 }))).toBeLessThan(1e-4);
  });

  it.each([
    ['relu', 'vec', 130, 70, 129],
    ['sigmoid', 'vec', 64, 32, 128],
    ['tanh', 'scalar', 33, 20, 40],
    ['gelu', 'vec', 1, 30, 70],
    ['none', 'vec', 90, 31, 1],
    ['relu', 'none', 256, 64, 256],
  ] as const)('gemm act=%s bias=%s [%i, %i, %i]', async (act, biasKind, M, K, N) => {
    const a = randn(M * K);
    const b = randn(K * N);
    const bias = biasKind === 'vec' ? randn(N) : biasKind === 'scalar' ? randn(1) : undefined;
    const inputs = [tensor(a, [M, K]), tensor(b, [K, N])];
    if (bias) inputs.push(tensor(bias, [bias.length]));
    const [c] = await k[backend]().run('gemm', inputs, { activation: act, beta: 0.75 }, { backend, poison: true });
    expect(hasNaN(c!.data)).toBe(false);
    const ref = refGemm(a, b, M, K, N, { bias, beta: 0.75, act });
    expect(relErr(c!.data, ref)).toBeLessThan(1e-4);
  });
});
