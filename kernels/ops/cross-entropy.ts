/**
 * crossEntropy: softmax cross-entropy of logits [N, C] against integer labels [N] (i32), fused
 * with its gradient. Outputs: loss [1] (mean over rows) and dlogits [N, C] = (softmax − onehot)/N.
 * One workgroup per row computes the row's online (max, sum), its loss and its gradient; a
 * second one-workgroup dispatch averages the row losses.
 */
import { KernelErrors } from '../errors.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { expectCount, expectDim, expectDtype, expectRank, onlyKnown } from './common.ts';
import { onlineMerge, ROW_WG } from './softmax.ts';

export const meanProgram = `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < p.n; i += 256u) { s += X[i]; }
  red[lid.x] = s;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k >>= 1u) {
    if (lid.x < k) { red[lid.x] += red[lid.x + k]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Y[0] = red[0] / f32(p.n); }
}`;

export const crossEntropy = definePrimitive<Record<string, never>>({
  name: 'crossEntropy',
  inputs: ['logits', 'labels'],
  opClass: 'rowwise',
  parseAttributes(raw) {
    onlyKnown('crossEntropy', raw, []);
    return {};
  },
  validate(inputs) {
    expectCount('crossEntropy', this.inputs, inputs);
    const [z, y] = [inputs[0]!, inputs[1]!];
    expectDtype('crossEntropy', 'logits', z, 'f32');
    expectDtype('crossEntropy', 'labels', y, 'i32');
    expectRank('crossEntropy', 'logits', z, 2);
    expectRank('crossEntropy', 'labels', y, 1);
    expectDim('crossEntropy', 'labels', y, 0, 'logits', z, 0, 'N');
    return [
      { dtype: 'f32', shape: [1] },
      { dtype: 'f32', shape: [...z.shape] },
    ];
  },
  checkValues(values, infos) {
    const labels = values[1];
    const C = infos[0]!.shape[1]!;
    if (!labels) return;
    for (let i = 0; i < labels.length; i++) {
      const l = labels[i]!;
      if (!(l >= 0 && l < C)) throw KernelErrors.BAD_INPUT_VALUE('crossEntropy', 'labels', `holds ${l} at index ${i}, outside [0, C=${C})`);
    }
  },
  cost(inputs) {
    const n = inputs[0]!.shape[0]! * inputs[0]!.shape[1]!;
    return { flops: 6 * n, bytes: 8 * n };
  },
  gpu(ctx, inputs, outputs) {
    const [rows, cols] = [inputs[0]!.info.shape[0]!, inputs[0]!.info.shape[1]!];
    const rowLoss = ctx.temp({ dtype: 'f32', shape: [rows] });
    const pipeline = ctx.pipeline('crossEntropy:rows', () => `
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> L: array<i32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> R: array<f32>;
${wgsl.flatGroup}
${onlineMerge}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_group(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.cols;
  online_row(base, p.cols, lid.x);
  let m = m_s[0]; let s = s_s[0];
  let label = u32(L[row]);
  let inv_n = 1.0 / f32(p.rows);
  for (var c = lid.x; c < p.cols; c += ${ROW_WG}u) {
    let q = exp(X[base + c] - m) / s;
    G[base + c] = (q - select(0.0, 1.0, c == label)) * inv_n;
  }
  if (lid.x == 0u) { R[row] = log(s) + m - X[base + label]; }
}`);
    ctx.dispatch(pipeline, { u: [rows, cols] }, [inputs[0]!, inputs[1]!, outputs[1]!, rowLoss], ctx.grid(rows));
    ctx.dispatch(ctx.pipeline('mean:1wg', () => meanProgram), { u: [rows] }, [rowLoss, outputs[0]!], [1]);
  },
  cpu(inputs, outputs, infos) {
    const [rows, cols] = [infos[0]!.shape[0]!, infos[0]!.shape[1]!];
    const x = inputs[0]!;
    const labels = inputs[1]!;
    const g = outputs[1]!;
    let total = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let m = -Infinity;
      for (let c = 0; c < cols; c++) m = Math.max(m, x[o + c]!);
      let s = 0;
      for (let c = 0; c < cols; c++) s += Math.exp(x[o + c]! - m);
      const label = labels[r]!;
      for (let c = 0; c < cols; c++) g[o + c] = (Math.exp(x[o + c]! - m) / s - (c === label ? 1 : 0)) / rows;
      total += Math.log(s) + m - x[o + label]!;
    }
    outputs[0]![0] = total / rows;
  },
});
