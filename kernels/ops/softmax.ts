/**
 * softmax over the last axis. One workgroup per row; each thread keeps a running (max, sum) pair
 * in one pass over its elements (online softmax), the pairs are merged in workgroup memory, and
 * a second sweep writes exp(x − max) / sum.
 */
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel } from '../tensor.ts';
import { expectCount, expectDtype, onlyKnown, rowsCols } from './common.ts';

const WG = 128;

/** WGSL for a workgroup merge of (max, sum) pairs; leaves the row's pair in m_s[0], s_s[0]. */
export const onlineMerge = `
var<workgroup> m_s: array<f32, ${WG}>;
var<workgroup> s_s: array<f32, ${WG}>;
fn merge_row(tid: u32, m_in: f32, s_in: f32) {
  m_s[tid] = m_in; s_s[tid] = s_in;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (tid < s) {
      let m1 = m_s[tid]; let m2 = m_s[tid + s];
      let m = max(m1, m2);
      s_s[tid] = s_s[tid] * exp(m1 - m) + s_s[tid + s] * exp(m2 - m);
      m_s[tid] = m;
    }
    workgroupBarrier();
  }
}
fn online_row(base: u32, cols: u32, tid: u32) {
  var m = -3.0e38; var s = 0.0;
  for (var c = tid; c < cols; c += ${WG}u) {
    let x = X[base + c];
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  merge_row(tid, m, s);
}
`;
export const ROW_WG = WG;

export const softmax = definePrimitive<Record<string, never>>({
  name: 'softmax',
  inputs: ['X'],
  opClass: 'rowwise',
  parseAttributes(raw) {
    onlyKnown('softmax', raw, []);
    return {};
  },
  validate(inputs) {
    expectCount('softmax', this.inputs, inputs);
    expectDtype('softmax', 'X', inputs[0]!, 'f32');
    return [{ dtype: 'f32', shape: [...inputs[0]!.shape] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 5 * n, bytes: 8 * n };
  },
  gpu(ctx, inputs, outputs) {
    const [rows, cols] = rowsCols(inputs[0]!.info.shape);
    const pipeline = ctx.pipeline('softmax', () => `
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${wgsl.flatGroup}
${onlineMerge}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  online_row(base, p.cols, lid.x);
  let m = m_s[0]; let inv = 1.0 / s_s[0];
  for (var c = lid.x; c < p.cols; c += ${WG}u) { Y[base + c] = exp(X[base + c] - m) * inv; }
}`);
    ctx.dispatch(pipeline, { u: [rows, cols] }, [inputs[0]!, outputs[0]!], ctx.grid(rows));
  },
  cpu(inputs, outputs, infos) {
    const [rows, cols] = rowsCols(infos[0]!.shape);
    const x = inputs[0]!;
    const y = outputs[0]!;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      let s = 0;
      for (let c = 0; c < cols; c++) {
        const v = x[o + c]!;
        if (v > m) {
          s = s * Math.exp(m - v) + 1;
          m = v;
        } else s += Math.exp(v - m);
      }
      for (let c = 0; c < cols; c++) y[o + c] = Math.exp(x[o + c]! - m) / s;
    }
  },
});
