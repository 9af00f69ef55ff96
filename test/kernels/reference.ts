/**
 * Float64 oracles for every op, written for clarity, not speed: each computes the op from its
 * definition another way than the kernels do (their WGSL and their CPU twins alike). Plus
 * helpers: fresh random inputs (never zeros) and the relative error ‖out − ref‖ / ‖ref‖.
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

// ---- references (oracles) --------------------------------------------------------------------------
//
// Each reference reaches the op's value from its definition by a different route than the kernels
// take (their WGSL and their CPU twins), so that a formula mistaken in the same way in both cannot
// pass: sums are exact (Shewchuk's partials) where the kernels use tree, Welford or plain running
// sums; the variance comes from raw moments where the kernels use two passes or Welford; log-sum-exp
// is accumulated over the sorted values with logaddexp where the kernels subtract the row max;
// derivatives are numeric; activations go through identities (σ(x) = (1 + tanh(x/2))/2, tanh through
// expm1, gelu = x·σ(2u)); histogram bins come from explicit edges and a sorted sweep; matmul is the
// naive triple loop where the kernels tile. exp, log, sqrt, abs, neg, square and the arithmetic
// binaries are their own definition: float64 libm is the oracle there.

/** The sum of `xs`, exact up to the final rounding (Shewchuk's algorithm, as Python's math.fsum). */
export function fsum(xs: ArrayLike<number>): number {
  const partials: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    let x = xs[i]!;
    let j = 0;
    for (let k = 0; k < partials.length; k++) {
      let y = partials[k]!;
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[j++] = lo;
      x = hi;
    }
    partials.length = j;
    partials.push(x);
  }
  // The partials are non-overlapping and increasing in magnitude: add the small ones first.
  let total = 0;
  for (const p of partials) total += p;
  return total;
}

/** log Σ exp(x): over the values sorted in decreasing order, acc ← acc + log1p(exp(x − acc)). */
export function logSumExp(xs: ArrayLike<number>): number {
  const v = Float64Array.from(xs).sort().reverse();
  let acc = v[0]!;
  for (let i = 1; i < v.length; i++) acc += Math.log1p(Math.exp(v[i]! - acc));
  return acc;
}

/** d/dx f at x by central differences (float64; h relative to the scale of x). */
export function numericDerivative(f: (x: number) => number, x: number, h = 1e-5 * Math.max(1, Math.abs(x))): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

/** Population mean and variance from exact raw moments: Var = (Σx² − (Σx)²/n) / n. */
function moments(xs: ArrayLike<number>): { mean: number; variance: number } {
  const n = xs.length;
  const s1 = fsum(xs);
  // x² of a float32 value is exact in float64 (48 significant bits), so Σx² is exact too.
  const s2 = fsum(Float64Array.from(xs, (x) => x * x));
  return { mean: s1 / n, variance: Math.max(0, (s2 - (s1 * s1) / n) / n) };
}

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

/** tanh through expm1 (the kernels call tanh): tanh x = e/(e + 2) with e = expm1(2x). */
function tanhOracle(x: number): number {
  if (Math.abs(x) > 20) return Math.sign(x);
  const e = Math.expm1(2 * x);
  return e / (e + 2);
}

export function refAct(kind: string, x: number): number {
  switch (kind) {
    case 'none':
      return x;
    case 'relu':
      return (x + Math.abs(x)) / 2;
    case 'sigmoid':
      return (1 + tanhOracle(x / 2)) / 2;
    case 'tanh':
      return tanhOracle(x);
    case 'gelu': {
      // The tanh form the op documents, through ½(1 + tanh u) = σ(2u).
      const u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3);
      return x / (1 + Math.exp(-2 * u));
    }
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

/**
 * The binary op `fn` on one pair. The activation gradients take b as the activation's output
 * (what the kernels are given) and differentiate the activation numerically at its preimage:
 * reluGrad(a, b) = a·relu′(b), sigmoidGrad(a, σ(z)) = a·σ′(z), tanhGrad(a, tanh z) = a·tanh′(z).
 */
export function refBinary(fn: string, a: number, b: number): number {
  switch (fn) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
    case 'max':
      return Math.max(a, b);
    case 'min':
      return Math.min(a, b);
    case 'reluGrad':
      return a * numericDerivative((z) => refAct('relu', z), b, Math.abs(b) / 4);
    case 'sigmoidGrad':
      return a * numericDerivative((z) => refAct('sigmoid', z), Math.log(b / (1 - b)));
    case 'tanhGrad':
      return a * numericDerivative(tanhOracle, Math.atanh(b));
    default:
      throw new Error(fn);
  }
}

export function refSoftmax(x: ArrayLike<number>, rows: number, cols: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.prototype.slice.call(x, r * cols, (r + 1) * cols) as number[];
    const lse = logSumExp(row);
    for (let c = 0; c < cols; c++) y[r * cols + c] = Math.exp(row[c]! - lse);
  }
  return y;
}

export function refLayerNorm(x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number, eps: number): F64 {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.prototype.slice.call(x, r * cols, (r + 1) * cols) as number[];
    const { mean, variance } = moments(row);
    const scale = 1 / Math.sqrt(variance + eps);
    for (let c = 0; c < cols; c++) y[r * cols + c] = (row[c]! - mean) * scale * g[c]! + b[c]!;
  }
  return y;
}

export function refReduce(x: ArrayLike<number>, rows: number, cols: number, fn: string, axis: 0 | 1): F64 {
  const outer = axis === 1 ? rows : cols;
  const inner = axis === 1 ? cols : rows;
  const y = new Float64Array(outer);
  for (let o = 0; o < outer; o++) {
    const line = Float64Array.from({ length: inner }, (_, i) => (axis === 1 ? x[o * cols + i]! : x[i * cols + o]!));
    if (fn === 'sum') y[o] = fsum(line);
    else if (fn === 'mean') y[o] = fsum(line) / inner;
    else y[o] = moments(line).variance;
  }
  return y;
}

/**
 * Histogram over `bins` equal bins of [lo, hi] (the last one closed), from explicit float64 edges
 * and one sweep over the sorted values. `ambiguous` counts values within 1e-3 of a bin's width
 * of an inner edge, where float32 arithmetic may put them on either side.
 */
export function refHistogram(x: ArrayLike<number>, bins: number, lo: number, hi: number): { counts: F64; inRange: number; ambiguous: number } {
  const width = (hi - lo) / bins;
  const edge = (k: number): number => (k === bins ? hi : lo + k * width);
  const v = Float64Array.from(x).sort();
  const counts = new Float64Array(bins);
  let i = 0;
  while (i < v.length && v[i]! < lo) i++;
  let inRange = 0;
  let ambiguous = 0;
  for (let k = 0; k < bins; k++) {
    const [left, right] = [edge(k), edge(k + 1)];
    for (; i < v.length && (v[i]! < right || (k === bins - 1 && v[i]! === hi)); i++) {
      counts[k]!++;
      inRange++;
      const near = (e: number, inner: boolean) => inner && Math.abs(v[i]! - e) < 1e-3 * width;
      if (near(left, k > 0) || near(right, k < bins - 1)) ambiguous++;
    }
  }
  return { counts, inRange, ambiguous };
}

/** Mean softmax cross-entropy: mean over rows of logSumExp(z_r) − z_r[label]. */
export function refCrossEntropy(z: ArrayLike<number>, labels: ArrayLike<number>, rows: number, cols: number): number {
  const perRow = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = Array.prototype.slice.call(z, r * cols, (r + 1) * cols) as number[];
    perRow[r] = logSumExp(row) - row[labels[r]!]!;
  }
  return fsum(perRow) / rows;
}

/** Mean binary cross-entropy, log(1 − p) through log1p. */
export function refBce(p: ArrayLike<number>, y: ArrayLike<number>): number {
  return fsum(Float64Array.from({ length: p.length }, (_, i) => -(y[i]! * Math.log(p[i]!) + (1 - y[i]!) * Math.log1p(-p[i]!)))) / p.length;
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
