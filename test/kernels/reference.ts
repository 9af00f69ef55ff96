/**
 * Float64 references for every op, written for clarity, not speed, and independent of the
 * kernels' own CPU twins. Plus helpers: fresh random inputs (never zeros) and the relative
 * error ‖out − ref‖ / ‖ref‖.
 */
import { afterAll, beforeAll } from 'vitest';
import { createKernels, type Kernels } from '../../kernels/index.ts';

export type F64 = Float64Array;

let seed = (Date.now() ^ (process.pid << 8)) >>> 0;
/** Mulberry32: reproducible per run when SHOAL_TEST_SEED is set, fresh otherwise. */
if (process.env.SHOAL_TEST_SEED) seed = Number(process.env.SHOAL_TEST_SEED) >>> 0;
export const testSeed = seed;
export function rand(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** Uniform in ±[0.1, 1] scaled: never zero, mixed signs. */
export function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const m = 0.1 + 0.9 * rand();
    a[i] = (rand() < 0.5 ? -m : m) * scale;
  }
  return a;
}

export function randLabels(n: number, classes: number): Int32Array {
  return Int32Array.from({ length: n }, () => Math.floor(rand() * classes));
}

export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (out.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = out[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

export function hasNaN(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i]!)) return true;
  return false;
}

// ---- references -----------------------------------------------------------------------------------

export function refGemm(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number, o: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; bias?: ArrayLike<number>; act?: string } = {}): F64 {
  const c = new Float64Array(M * N);
  const alpha = o.alpha ?? 1;
  const beta = o.beta ?? 1;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (o.transA ? a[k * M + m]! : a[m * K + k]!) * (o.transB ? b[n * K + k]! : b[k * N + n]!);
      let v = alpha * s;
      if (o.bias) v += beta * (o.bias.length === 1 ? o.bias[0]! : o.bias[n]!);
      c[m * N + n] = refAct(o.act ?? 'none', v);
    }
  }
  return c;
}

export function refAct(kind: string, x: number): number {
  switch (kind) {
    case 'none':
      return x;
    case 'relu':
      return Math.max(0, x);
    case 'sigmoid':
      return 1 / (1 + Math.exp(-x));
    case 'tanh':
      return Math.tanh(x);
    case 'gelu':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'abs':
      return Math.abs(x);
    case 'neg':
      return -x;
    case 'sqrt':
      return Math.sqrt(x);
    case 'square':
      return x * x;
    default:
      throw new Error(kind);
  }
}

export function refSoftmax(x: ArrayLike<number>, rows: number, cols: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(x[r * cols + c]! - m) / s;
  }
  return y;
}

export function refLayerNorm(x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number, eps: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += x[r * cols + c]!;
    mean /= cols;
    let v = 0;
    for (let c = 0; c < cols; c++) v += (x[r * cols + c]! - mean) ** 2;
    v /= cols;
    for (let c = 0; c < cols; c++) y[r * cols + c] = ((x[r * cols + c]! - mean) / Math.sqrt(v + eps)) * g[c]! + b[c]!;
  }
  return y;
}

export function refReduce(x: ArrayLike<number>, rows: number, cols: number, fn: string, axis: 0 | 1): F64 {
  const outer = axis === 1 ? rows : cols;
  const inner = axis === 1 ? cols : rows;
  const y = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    const at = (i: number): number => (axis === 1 ? x[o * cols + i]! : x[i * cols + o]!);
    let s = 0;
    for (let i = 0; i < inner; i++) s += at(i);
    if (fn === 'sum') y[o] = s;
    else if (fn === 'mean') y[o] = s / inner;
    else {
      const mean = s / inner;
      let q = 0;
      for (let i = 0; i < inner; i++) q += (at(i) - mean) ** 2;
      y[o] = q / inner;
    }
  }
  return y;
}

/** Mean softmax cross-entropy. */
export function refCrossEntropy(z: ArrayLike<number>, labels: ArrayLike<number>, rows: number, cols: number): number {
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, z[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(z[r * cols + c]! - m);
    total += Math.log(s) + m - z[r * cols + labels[r]!]!;
  }
  return total / rows;
}

export function refBce(p: ArrayLike<number>, y: ArrayLike<number>): number {
  let t = 0;
  for (let i = 0; i < p.length; i++) t += -(y[i]! * Math.log(p[i]!) + (1 - y[i]!) * Math.log(1 - p[i]!));
  return t / p.length;
}

/** Central finite differences of f at x (float64), for every coordinate. */
export function finiteDiff(f: (x: F64) => number, x0: ArrayLike<number>, h = 1e-6): F64 {
  const x = Float64Array.from(x0);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + h;
    const fp = f(x);
    x[i] = v - h;
    const fm = f(x);
    x[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// ---- backends ---------------------------------------------------------------------------------------

export const BACKENDS = ['gpu', 'cpu'] as const;
export type TestBackend = (typeof BACKENDS)[number];

/**
 * One kernels instance per backend for a test file: the real WebGPU adapter (lavapipe in CI)
 * and the CPU backend with its worker thread. Closed in afterAll so the fork exits.
 */
export function useKernels(): Record<TestBackend, () => Kernels> {
  const made: Partial<Record<TestBackend, Kernels>> = {};
  beforeAll(async () => {
    made.gpu = await createKernels({ backend: 'gpu', autotune: false });
    // Every CPU step goes through the worker thread here (small steps would otherwise run inline).
    made.cpu = await createKernels({ backend: 'cpu', cpuWorkers: 1, cpuInlineMaxFlops: 0 });
  });
  afterAll(async () => {
    await made.gpu?.close();
    await made.cpu?.close();
  });
  return {
    gpu: () => made.gpu!,
    cpu: () => made.cpu!,
  };
}
