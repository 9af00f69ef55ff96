/**
 * reduce: sum, mean or (population) variance of a 2-D tensor along rows (axis 1, → [R]) or
 * columns (axis 0, → [C]). Threads keep Welford (n, mean, M2) triples and merge them with
 * Chan's formula, so the variance never cancels catastrophically.
 */
import { KernelErrors } from '../errors.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel, type TensorInfo } from '../tensor.ts';
import { attrEnum, ceilDiv, expectCount, expectDtype, onlyKnown } from './common.ts';

export const REDUCE_FNS = ['sum', 'mean', 'variance'] as const;
export type ReduceFn = (typeof REDUCE_FNS)[number];

export interface ReduceAttrs {
  fn: ReduceFn;
  /** 1 (or -1): reduce each row → [R]; 0: reduce each column → [C]. @default 1 */
  axis: 0 | 1;
}

function dims(t: TensorInfo): [number, number] {
  if (t.shape.length === 1) return [1, t.shape[0]!];
  if (t.shape.length === 2) return [t.shape[0]!, t.shape[1]!];
  throw KernelErrors.SHAPE_MISMATCH('reduce', `X must have rank 1 or 2, got [${t.shape.join(', ')}]`);
}

const welford = `
struct W { n: f32, mean: f32, m2: f32 }
fn w_push(w: W, x: f32) -> W {
  let n = w.n + 1.0; let d = x - w.mean; let mean = w.mean + d / n;
  return W(n, mean, fma(d, x - mean, w.m2));
}
fn w_merge(a: W, b: W) -> W {
  let n = a.n + b.n;
  if (n == 0.0) { return a; }
  let d = b.mean - a.mean; let f = b.n / n;
  return W(n, fma(d, f, a.mean), a.m2 + b.m2 + d * d * a.n * f);
}
fn w_out(w: W, fn_: u32) -> f32 {
  if (fn_ == 0u) { return w.mean * w.n; }
  if (fn_ == 1u) { return w.mean; }
  return w.m2 / w.n;
}
var<workgroup> rn: array<f32, 256>;
var<workgroup> rm: array<f32, 256>;
var<workgroup> rq: array<f32, 256>;
`;

export const reduce = definePrimitive<ReduceAttrs>({
  name: 'reduce',
  inputs: ['X'],
  opClass: 'reduce',
  parseAttributes(raw) {
    onlyKnown('reduce', raw, ['fn', 'axis']);
    const fn = attrEnum('reduce', raw, 'fn', REDUCE_FNS, 'sum');
    const a = raw?.axis ?? 1;
    if (a !== 0 && a !== 1 && a !== -1) throw KernelErrors.BAD_ATTRIBUTE('reduce', 'axis', `must be 0, 1 or -1, got ${JSON.stringify(a)}`);
    return { fn, axis: a === 0 ? 0 : 1 };
  },
  validate(inputs, attrs) {
    expectCount('reduce', this.inputs, inputs);
    expectDtype('reduce', 'X', inputs[0]!, 'f32');
    const [r, c] = dims(inputs[0]!);
    return [{ dtype: 'f32', shape: [attrs.axis === 1 ? r : c] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 3 * n, bytes: 4 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const [rows, cols] = dims(inputs[0]!.info);
    const fnId = REDUCE_FNS.indexOf(attrs.fn);
    if (attrs.axis === 1) {
      // One 256-thread workgroup per row.
      const pipeline = ctx.pipeline('reduce:rows', () => `
struct Params { rows: u32, cols: u32, fn_: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${wgsl.flatGroup}
${welford}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  var w = W(0.0, 0.0, 0.0);
  for (var c = lid.x; c < p.cols; c += 256u) { w = w_push(w, X[row * p.cols + c]); }
  rn[lid.x] = w.n; rm[lid.x] = w.mean; rq[lid.x] = w.m2;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid.x < s) {
      let m = w_merge(W(rn[lid.x], rm[lid.x], rq[lid.x]), W(rn[lid.x + s], rm[lid.x + s], rq[lid.x + s]));
      rn[lid.x] = m.n; rm[lid.x] = m.mean; rq[lid.x] = m.m2;
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Y[row] = w_out(W(rn[0], rm[0], rq[0]), p.fn_); }
}`);
      ctx.dispatch(pipeline, { u: [rows, cols, fnId] }, [inputs[0]!, outputs[0]!], ctx.grid(rows));
    } else {
      // 16 columns × 16 row-slices per workgroup: coalesced along columns, parallel along rows.
      const pipeline = ctx.pipeline('reduce:cols', () => `
struct Params { rows: u32, cols: u32, fn_: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${wgsl.flatGroup}
${welford}
@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let col = flat_group(wid, nwg) * 16u + lid.x;
  let t = lid.y * 16u + lid.x;
  var w = W(0.0, 0.0, 0.0);
  if (col < p.cols) {
    for (var r = lid.y; r < p.rows; r += 16u) { w = w_push(w, X[r * p.cols + col]); }
  }
  rn[t] = w.n; rm[t] = w.mean; rq[t] = w.m2;
  workgroupBarrier();
  for (var s = 8u; s > 0u; s >>= 1u) {
    if (lid.y < s) {
      let o = t + s * 16u;
      let m = w_merge(W(rn[t], rm[t], rq[t]), W(rn[o], rm[o], rq[o]));
      rn[t] = m.n; rm[t] = m.mean; rq[t] = m.m2;
    }
    workgroupBarrier();
  }
  if (lid.y == 0u && col < p.cols) { Y[col] = w_out(W(rn[t], rm[t], rq[t]), p.fn_); }
}`);
      ctx.dispatch(pipeline, { u: [rows, cols, fnId] }, [inputs[0]!, outputs[0]!], ctx.grid(ceilDiv(cols, 16)));
    }
  },
  cpu(inputs, outputs, infos, attrs) {
    const [rows, cols] = dims(infos[0]!);
    const x = inputs[0]!;
    const y = outputs[0]!;
    const outer = attrs.axis === 1 ? rows : cols;
    const inner = attrs.axis === 1 ? cols : rows;
    const sum = new Float64Array(outer);
    if (attrs.axis === 1) {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sum[r]! += x[r * cols + c]!;
    } else {
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) sum[c]! += x[r * cols + c]!;
    }
    if (attrs.fn !== 'variance') {
      for (let o = 0; o < outer; o++) y[o] = attrs.fn === 'sum' ? sum[o]! : sum[o]! / inner;
      return;
    }
    const q = new Float64Array(outer);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const o = attrs.axis === 1 ? r : c;
        const d = x[r * cols + c]! - sum[o]! / inner;
        q[o]! += d * d;
      }
    }
    for (let o = 0; o < outer; o++) y[o] = q[o]! / inner;
  },
});
