/**
 * matmul: C[M,N] = alpha · op(A) · op(B), op = optional transpose. Also the program generator
 * behind `gemm` (bias + activation fused into the epilogue).
 *
 * Paths (chosen per shape; the pipeline key holds the path and attributes, never the shape):
 * - `tiled-aligned`: 64×128 workgroup tile, 8×8 outputs per thread in registers, vec4 loads and
 *   stores, no bounds checks; used when M%64, N%128, K%BK are 0 and nothing is transposed
 *   (BK = 32 when the device grants 24 KiB of workgroup memory, else 16).
 * - `tiled`: the same tiling with bounds checks and transposed loads, for every other large shape.
 * - `small`: 16×16 tile, one output per thread, for shapes smaller than two big tiles.
 * - `gemv-row` (N = 1): one workgroup per output row, tree reduction over K.
 * - `gemv-col` (M = 1): one thread per output column, A's row staged in workgroup memory.
 */
import { KernelErrors } from '../errors.ts';
import type { GpuContext, GpuValue } from '../gpu/context.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive, type Attrs } from '../op.ts';
import type { HostArray, TensorInfo } from '../tensor.ts';
import { type Activation, attrBool, attrNumber, ceilDiv, expectCount, expectDtype, expectRank, jsActivation, onlyKnown } from './common.ts';

export interface MatmulAttrs {
  transA: boolean;
  transB: boolean;
  alpha: number;
}

export interface GemmConfig extends MatmulAttrs {
  beta: number;
  activation: Activation;
  bias: 'none' | 'vec' | 'scalar';
}

export type MatmulPath = 'tiled-aligned' | 'tiled' | 'small' | 'gemv-row' | 'gemv-col';

export interface MatmulDims {
  M: number;
  K: number;
  N: number;
}

/** Shared shape check for matmul and gemm. */
export function matmulDims(op: string, a: TensorInfo, b: TensorInfo, attrs: MatmulAttrs): MatmulDims {
  expectDtype(op, 'A', a, 'f32');
  expectDtype(op, 'B', b, 'f32');
  expectRank(op, 'A', a, 2);
  expectRank(op, 'B', b, 2);
  const M = attrs.transA ? a.shape[1]! : a.shape[0]!;
  const K = attrs.transA ? a.shape[0]! : a.shape[1]!;
  const Kb = attrs.transB ? b.shape[1]! : b.shape[0]!;
  const N = attrs.transB ? b.shape[0]! : b.shape[1]!;
  if (K !== Kb) {
    throw KernelErrors.SHAPE_MISMATCH(
      op,
      `A.shape[${attrs.transA ? 0 : 1}] (K=${K}) != B.shape[${attrs.transB ? 1 : 0}] (${Kb})${attrs.transA || attrs.transB ? ` with transA=${attrs.transA}, transB=${attrs.transB}` : ''}`,
    );
  }
  return { M, K, N };
}

export function parseMatmulAttrs(op: string, raw: Attrs | undefined): MatmulAttrs {
  return {
    transA: attrBool(op, raw, 'transA', false),
    transB: attrBool(op, raw, 'transB', false),
    alpha: attrNumber(op, raw, 'alpha', 1),
  };
}

export function matmulPath(d: MatmulDims, cfg: MatmulAttrs, bk = 16): MatmulPath {
  if (d.N === 1) return 'gemv-row';
  if (d.M === 1) return 'gemv-col';
  if (d.M < 32 || d.N < 32 || d.M * d.N < 2 * 64 * 128) return 'small';
  if (!cfg.transA && !cfg.transB && d.M % 64 === 0 && d.N % 128 === 0 && d.K % bk === 0) return 'tiled-aligned';
  return 'tiled';
}

/**
 * K-depth of the big tile. 16 (12 KiB of workgroup memory, within the 16 KiB default) unless
 * the kernels were configured with `matmulBk: 32` (config `kernels.matmulBk`, env
 * `SHOAL_KERNELS_MATMUL_BK`), which needs 24 KiB and so the adapter's real limit (lavapipe
 * grants 32 KiB when asked). On lavapipe 32 measured no faster and compiles slower; the knob is
 * there for tuning on real GPUs (bench/gpu/).
 */
export function tileDepth(workgroupStorage: number, wanted: 16 | 32 = 16): number {
  return wanted === 32 && workgroupStorage >= (32 * 64 + 32 * 128) * 4 ? 32 : 16;
}

function header(cfg: GemmConfig, vec4io: boolean): string {
  const t = vec4io ? 'vec4<f32>' : 'f32';
  const bias = cfg.bias === 'none' ? '' : '@group(0) @binding(3) var<storage, read> bias: array<f32>;';
  const out = cfg.bias === 'none' ? 3 : 4;
  const biasTerm = cfg.bias === 'vec' ? ' + p.beta * bias[n]' : cfg.bias === 'scalar' ? ' + p.beta * bias[0]' : '';
  return `
struct Params { M: u32, K: u32, N: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<${t}>;
@group(0) @binding(2) var<storage, read> B: array<${t}>;
${bias}
@group(0) @binding(${out}) var<storage, read_write> C: array<${t}>;
${wgsl.activation(cfg.activation)}
${wgsl.flatGroup}
fn epi(v: f32, n: u32) -> f32 { return act(p.alpha * v${biasTerm}); }
fn epi4(v: vec4<f32>, n: u32) -> vec4<f32> { return vec4<f32>(epi(v.x, n), epi(v.y, n + 1u), epi(v.z, n + 2u), epi(v.w, n + 3u)); }
`;
}

function aIndex(cfg: MatmulAttrs, m: string, k: string): string {
  return cfg.transA ? `(${k}) * p.M + (${m})` : `(${m}) * p.K + (${k})`;
}
function bIndex(cfg: MatmulAttrs, k: string, n: string): string {
  return cfg.transB ? `(${n}) * p.K + (${k})` : `(${k}) * p.N + (${n})`;
}

/** The FMA block of the 8×8 register tile for one k (unrolled: lavapipe does not unroll). */
function fmaBlock(): string {
  const lines: string[] = [];
  for (let i = 0; i < 8; i++) {
    const a = `a${i >> 2}.${'xyzw'[i & 3]}`;
    lines.push(`acc[${i * 2}] = fma(vec4<f32>(${a}), b0, acc[${i * 2}]); acc[${i * 2 + 1}] = fma(vec4<f32>(${a}), b1, acc[${i * 2 + 1}]);`);
  }
  return lines.join('\n      ');
}

function tiledProgram(cfg: GemmConfig, aligned: boolean, BK: number): string {
  let loads: string;
  let store: string;
  if (aligned) {
    loads = `
    for (var r = 0u; r < ${BK / 8}u; r++) {
      let idx = tid + r * 128u;
      let m = idx / ${BK / 4}u; let kq = idx % ${BK / 4}u;
      let v = A[(row0 + m) * (p.K / 4u) + k0 / 4u + kq];
      let base = (kq * 4u) * 16u + m / 4u; let c = m % 4u;
      As[base][c] = v.x; As[base + 16u][c] = v.y; As[base + 32u][c] = v.z; As[base + 48u][c] = v.w;
    }
    for (var r = 0u; r < ${BK / 4}u; r++) {
      let idx = tid + r * 128u;
      let k = idx / 32u; let nq = idx % 32u;
      Bs[k * 32u + nq] = B[(k0 + k) * (p.N / 4u) + col0 / 4u + nq];
    }`;
    store = `
  for (var i = 0u; i < 8u; i++) {
    let gm = row0 + ty * 8u + i;
    let n = col0 + tx * 8u;
    C[(gm * p.N + n) / 4u] = epi4(acc[i * 2u], n);
    C[(gm * p.N + n) / 4u + 1u] = epi4(acc[i * 2u + 1u], n + 4u);
  }`;
  } else {
    loads = `
    for (var r = 0u; r < ${BK / 2}u; r++) {
      let idx = tid + r * 128u;
      ${cfg.transA ? 'let m = idx % 64u; let k = idx / 64u;' : `let m = idx / ${BK}u; let k = idx % ${BK}u;`}
      let gm = row0 + m; let gk = k0 + k;
      var v = 0.0;
      if (gm < p.M && gk < p.K) { v = A[${aIndex(cfg, 'gm', 'gk')}]; }
      As[k * 16u + m / 4u][m % 4u] = v;
    }
    for (var r = 0u; r < ${BK}u; r++) {
      let idx = tid + r * 128u;
      ${cfg.transB ? `let k = idx % ${BK}u; let n = idx / ${BK}u;` : 'let n = idx % 128u; let k = idx / 128u;'}
      let gn = col0 + n; let gk = k0 + k;
      var v = 0.0;
      if (gn < p.N && gk < p.K) { v = B[${bIndex(cfg, 'gk', 'gn')}]; }
      Bs[k * 32u + n / 4u][n % 4u] = v;
    }`;
    store = `
  for (var i = 0u; i < 8u; i++) {
    let gm = row0 + ty * 8u + i;
    if (gm < p.M) {
      for (var j = 0u; j < 8u; j++) {
        let gn = col0 + tx * 8u + j;
        if (gn < p.N) { C[gm * p.N + gn] = epi(acc[i * 2u + j / 4u][j % 4u], gn); }
      }
    }
  }`;
  }
  return `${header(cfg, aligned)}
var<workgroup> As: array<vec4<f32>, ${BK * 16}>;
var<workgroup> Bs: array<vec4<f32>, ${BK * 32}>;
@compute @workgroup_size(16, 8, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid.x; let ty = lid.y; let tid = ty * 16u + tx;
  let row0 = wid.y * 64u; let col0 = wid.x * 128u;
  var acc: array<vec4<f32>, 16>;
  for (var k0 = 0u; k0 < p.K; k0 += ${BK}u) {${loads}
    workgroupBarrier();
    for (var k = 0u; k < ${BK}u; k++) {
      let a0 = As[k * 16u + ty * 2u]; let a1 = As[k * 16u + ty * 2u + 1u];
      let b0 = Bs[k * 32u + tx * 2u]; let b1 = Bs[k * 32u + tx * 2u + 1u];
      ${fmaBlock()}
    }
    workgroupBarrier();
  }${store}
}`;
}

function smallProgram(cfg: GemmConfig): string {
  return `${header(cfg, false)}
var<workgroup> As: array<f32, 256>;
var<workgroup> Bs: array<f32, 256>;
@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let gm = wid.y * 16u + lid.y; let gn = wid.x * 16u + lid.x;
  var sum = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += 16u) {
    let ka = k0 + lid.x; let kb = k0 + lid.y;
    var va = 0.0; var vb = 0.0;
    if (gm < p.M && ka < p.K) { va = A[${aIndex(cfg, 'gm', 'ka')}]; }
    if (gn < p.N && kb < p.K) { vb = B[${bIndex(cfg, 'kb', 'gn')}]; }
    As[lid.y * 16u + lid.x] = va; Bs[lid.y * 16u + lid.x] = vb;
    workgroupBarrier();
    for (var k = 0u; k < 16u; k++) { sum = fma(As[lid.y * 16u + k], Bs[k * 16u + lid.x], sum); }
    workgroupBarrier();
  }
  if (gm < p.M && gn < p.N) { C[gm * p.N + gn] = epi(sum, gn); }
}`;
}

function gemvRowProgram(cfg: GemmConfig): string {
  // N = 1: B(k, 0) is B[k] whether or not B is transposed.
  return `${header(cfg, false)}
var<workgroup> red: array<f32, 64>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let m = flat_group(wid, nwg);
  if (m >= p.M) { return; }
  var sum = 0.0;
  for (var k = lid.x; k < p.K; k += 64u) { sum = fma(A[${aIndex(cfg, 'm', 'k')}], B[k], sum); }
  red[lid.x] = sum;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { C[m] = epi(red[0], 0u); }
}`;
}

function gemvColProgram(cfg: GemmConfig): string {
  // M = 1: A(0, k) is A[k] whether or not A is transposed.
  return `${header(cfg, false)}
var<workgroup> a: array<f32, 256>;
@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = flat_group(wid, nwg) * 64u + lid.x;
  var sum = 0.0;
  for (var k0 = 0u; k0 < p.K; k0 += 256u) {
    for (var i = lid.x; i < 256u; i += 64u) { a[i] = select(0.0, A[min(k0 + i, p.K - 1u)], k0 + i < p.K); }
    workgroupBarrier();
    if (n < p.N) {
      let kn = min(256u, p.K - k0);
      for (var k = 0u; k < kn; k++) { sum = fma(a[k], B[${bIndex(cfg, 'k0 + k', 'n')}], sum); }
    }
    workgroupBarrier();
  }
  if (n < p.N) { C[n] = epi(sum, n); }
}`;
}

/** Records a (fused) matmul into the step. Shared by `matmul` and `gemm`. */
export function encodeGemm(ctx: GpuContext, a: GpuValue, b: GpuValue, bias: GpuValue | undefined, c: GpuValue, d: MatmulDims, cfg: GemmConfig): void {
  const bk = tileDepth(ctx.limits.maxComputeWorkgroupStorageSize, ctx.matmulBk);
  const path = matmulPath(d, cfg, bk);
  const key = `gemm:${path}:bk${bk}:tA${+cfg.transA}:tB${+cfg.transB}:bias=${cfg.bias}:act=${cfg.activation}`;
  const pipeline = ctx.pipeline(key, () => {
    switch (path) {
      case 'tiled-aligned':
        return tiledProgram(cfg, true, bk);
      case 'tiled':
        return tiledProgram(cfg, false, bk);
      case 'small':
        return smallProgram(cfg);
      case 'gemv-row':
        return gemvRowProgram(cfg);
      case 'gemv-col':
        return gemvColProgram(cfg);
    }
  });
  const buffers = bias ? [a, b, bias, c] : [a, b, c];
  const params = { u: [d.M, d.K, d.N], f: [cfg.alpha, cfg.beta] };
  switch (path) {
    case 'tiled-aligned':
    case 'tiled':
      ctx.dispatch(pipeline, params, buffers, [ceilDiv(d.N, 128), ceilDiv(d.M, 64)]);
      break;
    case 'small':
      ctx.dispatch(pipeline, params, buffers, [ceilDiv(d.N, 16), ceilDiv(d.M, 16)]);
      break;
    case 'gemv-row':
      ctx.dispatch(pipeline, params, buffers, ctx.grid(d.M));
      break;
    case 'gemv-col':
      ctx.dispatch(pipeline, params, buffers, ctx.grid(ceilDiv(d.N, 64)));
      break;
  }
}

/** JS twin: i-k-j loop with a float64 row accumulator (the fast CPU path is ONNX Runtime). */
export function cpuGemm(a: Float32Array, b: Float32Array, bias: Float32Array | undefined, c: Float32Array, d: MatmulDims, cfg: GemmConfig): void {
  const { M, K, N } = d;
  const row = new Float64Array(N);
  const f = jsActivation(cfg.activation);
  for (let m = 0; m < M; m++) {
    row.fill(0);
    for (let k = 0; k < K; k++) {
      const av = cfg.transA ? a[k * M + m]! : a[m * K + k]!;
      if (cfg.transB) {
        for (let n = 0; n < N; n++) row[n]! += av * b[n * K + k]!;
      } else {
        const off = k * N;
        for (let n = 0; n < N; n++) row[n]! += av * b[off + n]!;
      }
    }
    for (let n = 0; n < N; n++) {
      const bv = bias === undefined ? 0 : cfg.bias === 'scalar' ? bias[0]! : bias[n]!;
      c[m * N + n] = f(cfg.alpha * row[n]! + cfg.beta * bv);
    }
  }
}

export const matmul = definePrimitive<MatmulAttrs>({
  name: 'matmul',
  inputs: ['A', 'B'],
  opClass: 'matmul',
  parseAttributes(raw) {
    onlyKnown('matmul', raw, ['transA', 'transB', 'alpha']);
    return parseMatmulAttrs('matmul', raw);
  },
  validate(inputs, attrs) {
    expectCount('matmul', this.inputs, inputs);
    const d = matmulDims('matmul', inputs[0]!, inputs[1]!, attrs);
    return [{ dtype: 'f32', shape: [d.M, d.N] }];
  },
  cost(inputs, attrs) {
    const d = matmulDims('matmul', inputs[0]!, inputs[1]!, attrs);
    return { flops: 2 * d.M * d.N * d.K, bytes: 4 * (d.M * d.K + d.K * d.N + d.M * d.N) };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const d = matmulDims('matmul', inputs[0]!.info, inputs[1]!.info, attrs);
    encodeGemm(ctx, inputs[0]!, inputs[1]!, undefined, outputs[0]!, d, { ...attrs, beta: 0, activation: 'none', bias: 'none' });
  },
  cpu(inputs, outputs, infos, attrs) {
    const d = matmulDims('matmul', infos[0]!, infos[1]!, attrs);
    cpuGemm(inputs[0] as Float32Array, inputs[1] as Float32Array, undefined, outputs[0] as Float32Array, d, { ...attrs, beta: 0, activation: 'none', bias: 'none' });
  },
});

export type { HostArray };
