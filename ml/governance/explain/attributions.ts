/**
 * Feature attributions over a batched model evaluation: exact SHAP for linear (and logistic)
 * models, KernelSHAP for any model, integrated gradients by path evaluation, and Shapley values
 * by enumeration (the reference the tests check the others against).
 *
 * Every method builds all the rows it needs first and asks the evaluator ONCE (one batched
 * onnxruntime run in a replica), then reduces. Values are in the explained output's *link space*:
 * `logit` explains the log-odds of a probability output (each evaluation is mapped before it is
 * averaged, so a logistic model is exactly additive there), `identity` the output itself.
 * The SHAP value function is interventional: v(S) = mean over background rows b of f(x_S, b_rest).
 */
import { seededRandom } from '../../../cluster/index.ts';

/**
 * Evaluates `n` rows of `x` (row-major, D columns): the explained output per row, in [0,1] for
 * probabilities. It may take `x` (a replica transfers it to a session's worker thread): callers
 * never read `x` after handing it over.
 */
export type Evaluator = (x: Float32Array, n: number) => Promise<ArrayLike<number>>;

export type Link = 'identity' | 'logit';
export type Method = 'exact' | 'kernel' | 'ig' | 'enumerate';

/** One row's explanation. */
export interface Attribution {
  /** Per-feature attributions, in input column order, in link space. */
  values: number[];
  /** E[f(background)] (SHAP) or f(baseline) (IG), in link space. */
  base: number;
  /** f(x) in link space. */
  prediction: number;
  /** prediction − base − Σ values: 0 by construction for SHAP, the path integral's error for IG. */
  gap: number;
  /** The model's output for the row as evaluated in the same run (before the link), when the method ran it. */
  output?: number;
}

/** A dense background: `rows` rows of `d` columns. */
export interface Background {
  x: Float32Array;
  rows: number;
  d: number;
}

const EPS = 1e-7;
export function applyLink(link: Link, p: number): number {
  if (link === 'identity') return p;
  const q = Math.min(1 - EPS, Math.max(EPS, p));
  return Math.log(q / (1 - q));
}

function linked(link: Link, out: ArrayLike<number>): Float64Array {
  const r = new Float64Array(out.length);
  for (let i = 0; i < out.length; i++) r[i] = applyLink(link, out[i]!);
  return r;
}

function mean(b: Background): Float64Array {
  const m = new Float64Array(b.d);
  for (let r = 0; r < b.rows; r++) for (let j = 0; j < b.d; j++) m[j]! += b.x[r * b.d + j]!;
  for (let j = 0; j < b.d; j++) m[j]! /= b.rows;
  return m;
}

// ---- exact SHAP for linear models ---------------------------------------------------------------

/** A linear model in link space: g(x) = bias + Σ w_i x_i. */
export interface LinearModel {
  weights: Float64Array;
  bias: number;
}

/**
 * Reads a linear model's weights through the evaluator (one batched run: the background mean and
 * the mean moved by one along each feature, plus the background rows to check additivity), and
 * returns it, or why the model is not linear in link space (its largest residual).
 */
export async function probeLinear(f: Evaluator, bg: Background, link: Link, tolerance = 1e-3): Promise<LinearModel | { notLinear: string }> {
  const { d } = bg;
  const m = mean(bg);
  const check = Math.min(bg.rows, 16);
  const n = 1 + d + check;
  const x = new Float32Array(n * d);
  for (let r = 0; r <= d; r++) for (let j = 0; j < d; j++) x[r * d + j] = m[j]! + (r === j + 1 ? 1 : 0);
  x.set(bg.x.subarray(0, check * d), (1 + d) * d);
  const y = linked(link, await f(x, n));
  const weights = new Float64Array(d);
  for (let j = 0; j < d; j++) weights[j] = y[1 + j]! - y[0]!;
  let bias = y[0]!;
  for (let j = 0; j < d; j++) bias -= weights[j]! * Math.fround(m[j]!);
  let worst = 0;
  for (let r = 0; r < check; r++) {
    let g = bias;
    for (let j = 0; j < d; j++) g += weights[j]! * bg.x[r * d + j]!;
    const y0 = y[1 + d + r]!;
    worst = Math.max(worst, Math.abs(g - y0) / Math.max(1, Math.abs(y0)));
  }
  return worst <= tolerance ? { weights, bias } : { notLinear: `its ${link} output is not additive on the background (residual ${worst.toPrecision(3)})` };
}

/** Exact (interventional) SHAP of a linear model: φ_i = w_i (x_i − E[x_i]); base = g(E[x]). */
export function linearShap(model: LinearModel, bg: Background, x: Float32Array, rows: number): Attribution[] {
  const { d } = bg;
  const m = mean(bg);
  let base = model.bias;
  for (let j = 0; j < d; j++) base += model.weights[j]! * m[j]!;
  const out: Attribution[] = [];
  for (let r = 0; r < rows; r++) {
    const values = new Array<number>(d);
    let prediction = model.bias;
    for (let j = 0; j < d; j++) {
      const xi = x[r * d + j]!;
      values[j] = model.weights[j]! * (xi - m[j]!);
      prediction += model.weights[j]! * xi;
    }
    out.push({ values, base, prediction, gap: prediction - base - values.reduce((a, b) => a + b, 0) });
  }
  return out;
}

// ---- coalitions -----------------------------------------------------------------------------------

function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

/** Deterministic (seeded) so an explanation of the same row is the same. */
const rng = seededRandom;

interface Coalitions {
  /** k masks of M bits (1 = the feature takes the explained row's value). */
  masks: Uint8Array[];
  weights: number[];
  /** True when every proper non-empty coalition is in (the regression is then exact). */
  complete: boolean;
}

/**
 * The coalitions KernelSHAP regresses on: all 2^M − 2 proper non-empty ones with the Shapley
 * kernel's weights when they fit in `samples`, else `samples` drawn (in complementary pairs) with
 * sizes in proportion to the kernel's mass per size, each weighted 1.
 */
export function coalitions(M: number, samples: number, seed = 1): Coalitions {
  const all = 2 ** M - 2;
  if (M <= 30 && all <= samples) {
    const masks: Uint8Array[] = [];
    const weights: number[] = [];
    for (let c = 1; c <= all; c++) {
      const z = new Uint8Array(M);
      let s = 0;
      for (let j = 0; j < M; j++) if ((c >> j) & 1) (z[j] = 1), s++;
      masks.push(z);
      weights.push((M - 1) / (binom(M, s) * s * (M - s)));
    }
    return { masks, weights, complete: true };
  }
  const sizeMass: number[] = [];
  let total = 0;
  for (let s = 1; s < M; s++) total += (sizeMass[s] = (M - 1) / (s * (M - s)));
  const r = rng(seed);
  const masks: Uint8Array[] = [];
  const idx = Array.from({ length: M }, (_, j) => j);
  while (masks.length < samples) {
    let u = r() * total;
    let s = 1;
    while (s < M - 1 && u > sizeMass[s]!) u -= sizeMass[s++]!;
    for (let j = 0; j < s; j++) {
      const k = j + Math.floor(r() * (M - j));
      [idx[j], idx[k]] = [idx[k]!, idx[j]!];
    }
    const z = new Uint8Array(M);
    for (let j = 0; j < s; j++) z[idx[j]!] = 1;
    masks.push(z, z.map((b) => 1 - b));
  }
  return { masks, weights: masks.map(() => 1), complete: false };
}

/** Solves A x = b (n×n, row-major) by Gaussian elimination with partial pivoting; a tiny ridge keeps a singular system solvable. */
function solve(A: Float64Array, b: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) A[i * n + i]! += 1e-12;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r * n + c]!) > Math.abs(A[p * n + c]!)) p = r;
    if (p !== c) {
      for (let k = 0; k < n; k++) [A[c * n + k], A[p * n + k]] = [A[p * n + k]!, A[c * n + k]!];
      [b[c], b[p]] = [b[p]!, b[c]!];
    }
    const piv = A[c * n + c]! || 1e-300;
    for (let r = c + 1; r < n; r++) {
      const f = A[r * n + c]! / piv;
      if (f === 0) continue;
      for (let k = c; k < n; k++) A[r * n + k]! -= f * A[c * n + k]!;
      b[r]! -= f * b[c]!;
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = b[r]!;
    for (let k = r + 1; k < n; k++) s -= A[r * n + k]! * x[k]!;
    x[r] = s / (A[r * n + r]! || 1e-300);
  }
  return x;
}

// ---- KernelSHAP -------------------------------------------------------------------------------

export interface KernelOptions {
  /** Coalitions per row (all of them when 2^M − 2 fit). @default 2M + 2048, at most 2^M − 2 */
  samples?: number;
  link?: Link;
  /** @default 1 */
  seed?: number;
}

/**
 * KernelSHAP (Lundberg & Lee 2017) for `rows` rows of `x`: the rows, the background and every
 * coalition × background row of every explained row go to the evaluator in one batch; the
 * weighted least-squares fit has efficiency as a hard constraint (the last feature's value is
 * substituted out), so Σφ = f(x) − E[f(background)] exactly.
 */
export async function kernelShap(f: Evaluator, bg: Background, x: Float32Array, rows: number, o: KernelOptions = {}): Promise<Attribution[]> {
  const M = bg.d;
  const B = bg.rows;
  const link = o.link ?? 'identity';
  const co = coalitions(M, o.samples ?? 2 * M + 2048, o.seed ?? 1);
  const K = co.masks.length;
  // Layout: [background (B)] then per row: [x (1)] [K coalitions × B].
  const per = 1 + K * B;
  const n = B + rows * per;
  const X = new Float32Array(n * M);
  X.set(bg.x.subarray(0, B * M), 0);
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * M, (r + 1) * M);
    let at = (B + r * per) * M;
    X.set(xr, at);
    at += M;
    for (let k = 0; k < K; k++) {
      const z = co.masks[k]!;
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < M; j++) X[at + j] = z[j] ? xr[j]! : bg.x[b * M + j]!;
        at += M;
      }
    }
  }
  const raw = await f(X, n);
  const y = linked(link, raw);
  let base = 0;
  for (let b = 0; b < B; b++) base += y[b]!;
  base /= B;
  const out: Attribution[] = [];
  for (let r = 0; r < rows; r++) {
    const off = B + r * per;
    const fx = y[off]!;
    const delta = fx - base;
    if (M === 1) {
      out.push({ values: [delta], base, prediction: fx, gap: 0, output: Number(raw[off]) });
      continue;
    }
    // v(z) − base − z_M Δ = Σ_{i<M} φ_i (z_i − z_M)
    const P = M - 1;
    const A = new Float64Array(P * P);
    const rhs = new Float64Array(P);
    const row = new Float64Array(P);
    for (let k = 0; k < K; k++) {
      let v = 0;
      const s0 = off + 1 + k * B;
      for (let b = 0; b < B; b++) v += y[s0 + b]!;
      v /= B;
      const z = co.masks[k]!;
      const zl = z[M - 1]!;
      const t = v - base - zl * delta;
      const w = co.weights[k]!;
      for (let i = 0; i < P; i++) row[i] = z[i]! - zl;
      for (let i = 0; i < P; i++) {
        if (row[i] === 0) continue;
        rhs[i]! += w * row[i]! * t;
        for (let j = 0; j < P; j++) A[i * P + j]! += w * row[i]! * row[j]!;
      }
    }
    const phi = solve(A, rhs, P);
    const values = Array.from(phi);
    values.push(delta - values.reduce((a, b) => a + b, 0));
    out.push({ values, base, prediction: fx, gap: 0, output: Number(raw[off]) });
  }
  return out;
}

// ---- exact Shapley values by enumeration --------------------------------------------------------

/**
 * Shapley values by their definition (every coalition, the Shapley weights), with the same
 * interventional value function as {@link kernelShap}: the reference for small M (≤ 14).
 */
export async function enumeratedShapley(f: Evaluator, bg: Background, x: Float32Array, rows: number, link: Link = 'identity'): Promise<Attribution[]> {
  const M = bg.d;
  const B = bg.rows;
  const C = 2 ** M;
  const n = rows * C * B;
  const X = new Float32Array(n * M);
  let at = 0;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < C; c++)
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < M; j++) X[at + j] = (c >> j) & 1 ? x[r * M + j]! : bg.x[b * M + j]!;
        at += M;
      }
  const y = linked(link, await f(X, n));
  const fact = (k: number): number => (k <= 1 ? 1 : k * fact(k - 1));
  const out: Attribution[] = [];
  for (let r = 0; r < rows; r++) {
    const v = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += y[(r * C + c) * B + b]!;
      v[c] = s / B;
    }
    const values = new Array<number>(M).fill(0);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let j = 0; j < M; j++) s += (c >> j) & 1;
      for (let i = 0; i < M; i++) {
        if ((c >> i) & 1) continue;
        values[i]! += ((fact(s) * fact(M - s - 1)) / fact(M)) * (v[c | (1 << i)]! - v[c]!);
      }
    }
    out.push({ values, base: v[0]!, prediction: v[C - 1]!, gap: v[C - 1]! - v[0]! - values.reduce((a, b) => a + b, 0) });
  }
  return out;
}

// ---- integrated gradients ---------------------------------------------------------------------

export interface IgOptions {
  /** Path steps (midpoint rule). @default 64 */
  steps?: number;
  link?: Link;
  /** The path's start; @default the background mean */
  baseline?: Float64Array;
}

/**
 * Integrated gradients (Sundararajan et al. 2017) from the background mean to each row, by batched
 * path evaluation: at each of `steps` midpoints p_k of the straight path, feature i's partial
 * derivative times its step (x_i − x'_i)/steps is the central difference of f over that step
 * along i — 2·M·steps rows per explained row, all in one run with the rows and the baseline.
 * `gap` is the path integral's quadrature error (prediction − base − Σ values).
 */
export async function integratedGradients(f: Evaluator, bg: Background, x: Float32Array, rows: number, o: IgOptions = {}): Promise<Attribution[]> {
  const M = bg.d;
  const m = o.steps ?? 64;
  const link = o.link ?? 'identity';
  const x0 = o.baseline ?? mean(bg);
  const per = 1 + 2 * M * m;
  const n = 1 + rows * per;
  const X = new Float32Array(n * M);
  for (let j = 0; j < M; j++) X[j] = x0[j]!;
  let at = M;
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * M, (r + 1) * M);
    X.set(xr, at);
    at += M;
    for (let k = 0; k < m; k++) {
      const a = (k + 0.5) / m;
      for (let i = 0; i < M; i++) {
        const half = (xr[i]! - x0[i]!) / (2 * m);
        for (const sgn of [1, -1]) {
          for (let j = 0; j < M; j++) X[at + j] = x0[j]! + a * (xr[j]! - x0[j]!);
          X[at + i]! += sgn * half;
          at += M;
        }
      }
    }
  }
  const raw = await f(X, n);
  const y = linked(link, raw);
  const base = y[0]!;
  const out: Attribution[] = [];
  for (let r = 0; r < rows; r++) {
    const off = 1 + r * per;
    const fx = y[off]!;
    const values = new Array<number>(M).fill(0);
    for (let k = 0; k < m; k++) for (let i = 0; i < M; i++) {
      const s = off + 1 + (k * M + i) * 2;
      values[i]! += y[s]! - y[s + 1]!;
    }
    out.push({ values, base, prediction: fx, gap: fx - base - values.reduce((p, q) => p + q, 0), output: Number(raw[off]) });
  }
  return out;
}

/** Sums attributions per group (one-hot columns → their raw feature): names in first-seen order. */
export function groupAttributions(a: Attribution, columns: readonly string[], group: (column: string) => string): { names: string[]; values: number[] } {
  const names: string[] = [];
  const at = new Map<string, number>();
  const values: number[] = [];
  columns.forEach((c, j) => {
    const g = group(c);
    let k = at.get(g);
    if (k === undefined) {
      at.set(g, (k = names.length));
      names.push(g);
      values.push(0);
    }
    values[k]! += a.values[j]!;
  });
  return { names, values };
}
