/**
 * layerNorm over the last axis: y = (x − mean) / sqrt(var + eps) · gamma + beta. One workgroup
 * per row; the mean and the variance are two tree reductions over the row (two reads of the
 * row, which keeps the variance accurate where E[x²] − E[x]² would cancel).
 */
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel } from '../tensor.ts';
import { attrNumber, expectCount, expectDim, expectDtype, expectRank, onlyKnown, rowsCols } from './common.ts';

const WG = 128;

export interface LayerNormAttrs {
  eps: number;
}

export const layerNorm = definePrimitive<LayerNormAttrs>({
  name: 'layerNorm',
  inputs: ['X', 'gamma', 'beta'],
  opClass: 'rowwise',
  parseAttributes(raw) {
    onlyKnown('layerNorm', raw, ['eps']);
    return { eps: attrNumber('layerNorm', raw, 'eps', 1e-5, (v) => (v > 0 ? undefined : 'must be > 0')) };
  },
  validate(inputs) {
    expectCount('layerNorm', this.inputs, inputs);
    const [x, g, b] = inputs as [typeof inputs[0] & object, typeof inputs[0] & object, typeof inputs[0] & object];
    expectDtype('layerNorm', 'X', x, 'f32');
    expectDtype('layerNorm', 'gamma', g, 'f32');
    expectDtype('layerNorm', 'beta', b, 'f32');
    expectRank('layerNorm', 'gamma', g, 1);
    expectRank('layerNorm', 'beta', b, 1);
    const last = x.shape.length - 1;
    expectDim('layerNorm', 'gamma', g, 0, 'X', x, last, 'C');
    expectDim('layerNorm', 'beta', b, 0, 'X', x, last, 'C');
    return [{ dtype: 'f32', shape: [...x.shape] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 8 * n, bytes: 8 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const [rows, cols] = rowsCols(inputs[0]!.info.shape);
    const pipeline = ctx.pipeline('layerNorm', () => `
struct Params { rows: u32, cols: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> Bt: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
var<workgroup> red: array<f32, ${WG}>;
${wgsl.flatGroup}
fn reduce_sum(tid: u32, v: f32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (tid < s) { red[tid] += red[tid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  var s = 0.0;
  for (var c = lid.x; c < p.cols; c += ${WG}u) { s += X[base + c]; }
  let mean = reduce_sum(lid.x, s) / f32(p.cols);
  var q = 0.0;
  for (var c = lid.x; c < p.cols; c += ${WG}u) { let d = X[base + c] - mean; q = fma(d, d, q); }
  let rstd = inverseSqrt(reduce_sum(lid.x, q) / f32(p.cols) + p.eps);
  for (var c = lid.x; c < p.cols; c += ${WG}u) { Y[base + c] = fma((X[base + c] - mean) * rstd, G[c], Bt[c]); }
}`);
    ctx.dispatch(pipeline, { u: [rows, cols], f: [attrs.eps] }, [inputs[0]!, inputs[1]!, inputs[2]!, outputs[0]!], ctx.grid(rows));
  },
  cpu(inputs, outputs, infos, attrs) {
    const [rows, cols] = rowsCols(infos[0]!.shape);
    const [x, g, b] = inputs as [Float32Array, Float32Array, Float32Array];
    const y = outputs[0]!;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let s = 0;
      for (let c = 0; c < cols; c++) s += x[o + c]!;
      const mean = s / cols;
      let q = 0;
      for (let c = 0; c < cols; c++) q += (x[o + c]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(q / cols + attrs.eps);
      for (let c = 0; c < cols; c++) y[o + c] = (x[o + c]! - mean) * rstd * g[c]! + b[c]!;
    }
  },
});
