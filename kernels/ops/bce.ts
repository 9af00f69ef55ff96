/**
 * bce: binary cross-entropy of probabilities p against targets y (same shape, y in [0, 1]),
 * fused with the gradient with respect to the *logits* z where p = sigmoid(z):
 * loss [1] = mean(−y·log p − (1−y)·log(1−p)), dz = (p − y)/N. Used by logistic regression.
 */
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel } from '../tensor.ts';
import { ceilDiv, expectCount, expectDtype, onlyKnown } from './common.ts';
import { KernelErrors } from '../errors.ts';
import { meanProgram } from './cross-entropy.ts';

/** p is clamped away from 0 and 1 so the loss stays finite (as PyTorch's BCELoss clamps log). */
export const BCE_EPS = 1e-7;

export const bce = definePrimitive<Record<string, never>>({
  name: 'bce',
  inputs: ['p', 'y'],
  opClass: 'elementwise',
  parseAttributes(raw) {
    onlyKnown('bce', raw, []);
    return {};
  },
  validate(inputs) {
    expectCount('bce', this.inputs, inputs);
    expectDtype('bce', 'p', inputs[0]!, 'f32');
    expectDtype('bce', 'y', inputs[1]!, 'f32');
    const [p, y] = [inputs[0]!, inputs[1]!];
    if (p.shape.length !== y.shape.length || p.shape.some((d, i) => d !== y.shape[i])) {
      throw KernelErrors.SHAPE_MISMATCH('bce', `y.shape [${y.shape.join(', ')}] != p.shape [${p.shape.join(', ')}]`);
    }
    return [
      { dtype: 'f32', shape: [1] },
      { dtype: 'f32', shape: [...p.shape] },
    ];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 8 * n, bytes: 12 * n };
  },
  gpu(ctx, inputs, outputs) {
    const n = numel(inputs[0]!.info.shape);
    const per = ctx.temp({ dtype: 'f32', shape: [n] });
    const pipeline = ctx.pipeline('bce', () => `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> P: array<f32>;
@group(0) @binding(2) var<storage, read> Yt: array<f32>;
@group(0) @binding(3) var<storage, read_write> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> L: array<f32>;
${wgsl.flatGroup}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_group(wid, nwg) * 256u + lid.x;
  if (i >= p.n) { return; }
  let q = clamp(P[i], ${BCE_EPS}, 1.0 - ${BCE_EPS});
  let y = Yt[i];
  L[i] = -(y * log(q) + (1.0 - y) * log(1.0 - q));
  G[i] = (P[i] - y) / f32(p.n);
}`);
    ctx.dispatch(pipeline, { u: [n] }, [inputs[0]!, inputs[1]!, outputs[1]!, per], ctx.grid(ceilDiv(n, 256)));
    ctx.dispatch(ctx.pipeline('mean:1wg', () => meanProgram), { u: [n] }, [per, outputs[0]!], [1]);
  },
  cpu(inputs, outputs) {
    const [p, y] = [inputs[0]!, inputs[1]!];
    const g = outputs[1]!;
    const n = p.length;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const q = Math.min(Math.max(p[i]!, BCE_EPS), 1 - BCE_EPS);
      total += -(y[i]! * Math.log(q) + (1 - y[i]!) * Math.log(1 - q));
      g[i] = (p[i]! - y[i]!) / n;
    }
    outputs[0]![0] = total / n;
  },
});
