/**
 * Optimizer updates. `sgd`: w' = w − lr·(g + weightDecay·w). `adam` (Kingma & Ba, with bias
 * correction; `weightDecay` decoupled as in AdamW): returns w', m', v'. Both write new tensors;
 * in a step, `assign` them back onto the resident parameters.
 */
import { KernelErrors } from '../errors.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel, type TensorInfo } from '../tensor.ts';
import { attrNumber, ceilDiv, expectCount, expectDtype, onlyKnown } from './common.ts';

function sameShape(op: string, names: readonly string[], inputs: readonly TensorInfo[]): void {
  const w = inputs[0]!;
  inputs.forEach((t, i) => {
    expectDtype(op, names[i]!, t, 'f32');
    if (t.shape.length !== w.shape.length || t.shape.some((d, j) => d !== w.shape[j])) {
      throw KernelErrors.SHAPE_MISMATCH(op, `${names[i]}.shape [${t.shape.join(', ')}] != ${names[0]}.shape [${w.shape.join(', ')}]`);
    }
  });
}

const positive = (v: number): string | undefined => (v > 0 ? undefined : 'must be > 0');
const nonNegative = (v: number): string | undefined => (v >= 0 ? undefined : 'must be ≥ 0');
const unit = (v: number): string | undefined => (v >= 0 && v < 1 ? undefined : 'must be in [0, 1)');

export interface SgdAttrs {
  lr: number;
  weightDecay: number;
}

export const sgd = definePrimitive<SgdAttrs>({
  name: 'sgd',
  inputs: ['w', 'g'],
  opClass: 'elementwise',
  parseAttributes(raw) {
    onlyKnown('sgd', raw, ['lr', 'weightDecay']);
    return { lr: attrNumber('sgd', raw, 'lr', undefined, positive), weightDecay: attrNumber('sgd', raw, 'weightDecay', 0, nonNegative) };
  },
  validate(inputs) {
    expectCount('sgd', this.inputs, inputs);
    sameShape('sgd', this.inputs, inputs);
    return [{ dtype: 'f32', shape: [...inputs[0]!.shape] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 3 * n, bytes: 12 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const n = numel(inputs[0]!.info.shape);
    const pipeline = ctx.pipeline('sgd', () => `
struct Params { n: u32, lr: f32, wd: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
${wgsl.flatGroup}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_group(wid, nwg) * 256u + lid.x;
  if (i < p.n) { O[i] = W[i] - p.lr * fma(p.wd, W[i], G[i]); }
}`);
    ctx.dispatch(pipeline, { u: [n], f: [attrs.lr, attrs.weightDecay] }, [inputs[0]!, inputs[1]!, outputs[0]!], ctx.grid(ceilDiv(n, 256)));
  },
  cpu(inputs, outputs, _infos, attrs) {
    const [w, g] = [inputs[0]!, inputs[1]!];
    const o = outputs[0]!;
    for (let i = 0; i < w.length; i++) o[i] = w[i]! - attrs.lr * (g[i]! + attrs.weightDecay * w[i]!);
  },
});

export interface AdamAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** 1-based step number, for bias correction. */
  step: number;
  weightDecay: number;
}

export const adam = definePrimitive<AdamAttrs>({
  name: 'adam',
  inputs: ['w', 'g', 'm', 'v'],
  opClass: 'elementwise',
  parseAttributes(raw) {
    onlyKnown('adam', raw, ['lr', 'beta1', 'beta2', 'eps', 'step', 'weightDecay']);
    return {
      lr: attrNumber('adam', raw, 'lr', 1e-3, positive),
      beta1: attrNumber('adam', raw, 'beta1', 0.9, unit),
      beta2: attrNumber('adam', raw, 'beta2', 0.999, unit),
      eps: attrNumber('adam', raw, 'eps', 1e-8, positive),
      step: attrNumber('adam', raw, 'step', undefined, (v) => (Number.isInteger(v) && v >= 1 ? undefined : 'must be an integer ≥ 1')),
      weightDecay: attrNumber('adam', raw, 'weightDecay', 0, nonNegative),
    };
  },
  validate(inputs) {
    expectCount('adam', this.inputs, inputs);
    sameShape('adam', this.inputs, inputs);
    const s = [...inputs[0]!.shape];
    return [
      { dtype: 'f32', shape: s },
      { dtype: 'f32', shape: s },
      { dtype: 'f32', shape: s },
    ];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 12 * n, bytes: 28 * n };
  },
  gpu(ctx, inputs, outputs, a) {
    const n = numel(inputs[0]!.info.shape);
    const pipeline = ctx.pipeline('adam', () => `
struct Params { n: u32, lr: f32, b1: f32, b2: f32, eps: f32, c1: f32, c2: f32, wd: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read> M: array<f32>;
@group(0) @binding(4) var<storage, read> V: array<f32>;
@group(0) @binding(5) var<storage, read_write> Wo: array<f32>;
@group(0) @binding(6) var<storage, read_write> Mo: array<f32>;
@group(0) @binding(7) var<storage, read_write> Vo: array<f32>;
${wgsl.flatGroup}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_group(wid, nwg) * 256u + lid.x;
  if (i >= p.n) { return; }
  let g = G[i];
  let m = p.b1 * M[i] + (1.0 - p.b1) * g;
  let v = p.b2 * V[i] + (1.0 - p.b2) * g * g;
  Mo[i] = m; Vo[i] = v;
  Wo[i] = W[i] - p.lr * (m / p.c1 / (sqrt(v / p.c2) + p.eps) + p.wd * W[i]);
}`);
    const c1 = 1 - a.beta1 ** a.step;
    const c2 = 1 - a.beta2 ** a.step;
    ctx.dispatch(pipeline, { u: [n], f: [a.lr, a.beta1, a.beta2, a.eps, c1, c2, a.weightDecay] }, [...inputs, ...outputs], ctx.grid(ceilDiv(n, 256)));
  },
  cpu(inputs, outputs, _infos, a) {
    const [w, g, m, v] = inputs as [Float32Array, Float32Array, Float32Array, Float32Array];
    const [wo, mo, vo] = outputs as [Float32Array, Float32Array, Float32Array];
    const c1 = 1 - a.beta1 ** a.step;
    const c2 = 1 - a.beta2 ** a.step;
    for (let i = 0; i < w.length; i++) {
      const gi = g[i]!;
      const mi = a.beta1 * m[i]! + (1 - a.beta1) * gi;
      const vi = a.beta2 * v[i]! + (1 - a.beta2) * gi * gi;
      mo[i] = mi;
      vo[i] = vi;
      wo[i] = w[i]! - a.lr * (mi / c1 / (Math.sqrt(vi / c2) + a.eps) + a.weightDecay * w[i]!);
    }
  },
});
