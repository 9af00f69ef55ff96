/**
 * Elementwise ops. `unary` applies one function (activations, exp, log, …, affine αx+β);
 * `binary` combines two tensors, the second either the same shape, one row broadcast over the
 * last axis, or a scalar. The activation gradients take the activation's *output* as `b`.
 */
import { KernelErrors } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel, type TensorInfo } from '../tensor.ts';
import { attrEnum, attrNumber, ceilDiv, expectCount, expectDtype, jsActivation, onlyKnown } from './common.ts';

export const UNARY_FNS = ['relu', 'sigmoid', 'tanh', 'gelu', 'exp', 'log', 'abs', 'neg', 'sqrt', 'square', 'affine'] as const;
export type UnaryFn = (typeof UNARY_FNS)[number];

export const BINARY_FNS = ['add', 'sub', 'mul', 'div', 'max', 'min', 'reluGrad', 'sigmoidGrad', 'tanhGrad'] as const;
export type BinaryFn = (typeof BINARY_FNS)[number];

export interface UnaryAttrs {
  fn: UnaryFn;
  alpha: number;
  beta: number;
}

const WG = 256;

function unaryWgsl(fn: UnaryFn): string {
  switch (fn) {
    case 'relu':
    case 'sigmoid':
    case 'tanh':
    case 'gelu':
      return `${wgsl.activation(fn)}\nfn f(x: f32) -> f32 { return act(x); }`;
    case 'exp':
      return 'fn f(x: f32) -> f32 { return exp(x); }';
    case 'log':
      return 'fn f(x: f32) -> f32 { return log(x); }';
    case 'abs':
      return 'fn f(x: f32) -> f32 { return abs(x); }';
    case 'neg':
      return 'fn f(x: f32) -> f32 { return -x; }';
    case 'sqrt':
      return 'fn f(x: f32) -> f32 { return sqrt(x); }';
    case 'square':
      return 'fn f(x: f32) -> f32 { return x * x; }';
    case 'affine':
      return 'fn f(x: f32) -> f32 { return fma(p.alpha, x, p.beta); }';
  }
}

function jsUnary(fn: UnaryFn, alpha: number, beta: number): (x: number) => number {
  switch (fn) {
    case 'relu':
    case 'sigmoid':
    case 'tanh':
    case 'gelu':
      return jsActivation(fn);
    case 'exp':
      return Math.exp;
    case 'log':
      return Math.log;
    case 'abs':
      return Math.abs;
    case 'neg':
      return (x) => -x;
    case 'sqrt':
      return Math.sqrt;
    case 'square':
      return (x) => x * x;
    case 'affine':
      return (x) => alpha * x + beta;
  }
}

function launch1d(ctx: GpuContext, n: number): [number, number] {
  return ctx.grid(ceilDiv(n, WG));
}

export const unary = definePrimitive<UnaryAttrs>({
  name: 'unary',
  inputs: ['X'],
  opClass: 'elementwise',
  parseAttributes(raw) {
    onlyKnown('unary', raw, ['fn', 'alpha', 'beta']);
    if (raw?.fn === undefined) throw KernelErrors.BAD_ATTRIBUTE('unary', 'fn', `is required (one of ${UNARY_FNS.join(', ')})`);
    return { fn: attrEnum('unary', raw, 'fn', UNARY_FNS, 'relu'), alpha: attrNumber('unary', raw, 'alpha', 1), beta: attrNumber('unary', raw, 'beta', 0) };
  },
  validate(inputs) {
    expectCount('unary', this.inputs, inputs);
    expectDtype('unary', 'X', inputs[0]!, 'f32');
    return [{ dtype: 'f32', shape: [...inputs[0]!.shape] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: n, bytes: 8 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const n = numel(inputs[0]!.info.shape);
    const pipeline = ctx.pipeline(`unary:${attrs.fn}`, () => `
struct Params { n: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
${unaryWgsl(attrs.fn)}
${wgsl.flatGroup}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_group(wid, nwg) * ${WG}u + lid.x;
  if (i < p.n) { Y[i] = f(X[i]); }
}`);
    ctx.dispatch(pipeline, { u: [n], f: [attrs.alpha, attrs.beta] }, [inputs[0]!, outputs[0]!], launch1d(ctx, n));
  },
  cpu(inputs, outputs, _infos, attrs) {
    const x = inputs[0]!;
    const y = outputs[0]!;
    const f = jsUnary(attrs.fn, attrs.alpha, attrs.beta);
    for (let i = 0; i < x.length; i++) y[i] = f(x[i]!);
  },
});

export interface BinaryAttrs {
  fn: BinaryFn;
}

type Broadcast = 'same' | 'row' | 'scalar';

function broadcastOf(a: TensorInfo, b: TensorInfo): Broadcast {
  const na = numel(a.shape);
  const nb = numel(b.shape);
  if (nb === na && b.shape.length === a.shape.length && b.shape.every((d, i) => d === a.shape[i])) return 'same';
  if (nb === 1) return 'scalar';
  const last = a.shape[a.shape.length - 1]!;
  if (b.shape.length === 1 && nb === last) return 'row';
  throw KernelErrors.SHAPE_MISMATCH('binary', `B.shape [${b.shape.join(', ')}] must equal A.shape [${a.shape.join(', ')}], be [A.shape[${a.shape.length - 1}]=${last}] (row broadcast) or hold one element`);
}

const BINARY_WGSL: Record<BinaryFn, string> = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  max: 'max(a, b)',
  min: 'min(a, b)',
  reluGrad: 'select(0.0, a, b > 0.0)',
  sigmoidGrad: 'a * b * (1.0 - b)',
  tanhGrad: 'a * (1.0 - b * b)',
};

const BINARY_JS: Record<BinaryFn, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  max: Math.max,
  min: Math.min,
  reluGrad: (a, b) => (b > 0 ? a : 0),
  sigmoidGrad: (a, b) => a * b * (1 - b),
  tanhGrad: (a, b) => a * (1 - b * b),
};

export const binary = definePrimitive<BinaryAttrs>({
  name: 'binary',
  inputs: ['A', 'B'],
  opClass: 'elementwise',
  parseAttributes(raw) {
    onlyKnown('binary', raw, ['fn']);
    if (raw?.fn === undefined) throw KernelErrors.BAD_ATTRIBUTE('binary', 'fn', `is required (one of ${BINARY_FNS.join(', ')})`);
    return { fn: attrEnum('binary', raw, 'fn', BINARY_FNS, 'add') };
  },
  validate(inputs) {
    expectCount('binary', this.inputs, inputs);
    expectDtype('binary', 'A', inputs[0]!, 'f32');
    expectDtype('binary', 'B', inputs[1]!, 'f32');
    broadcastOf(inputs[0]!, inputs[1]!);
    return [{ dtype: 'f32', shape: [...inputs[0]!.shape] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: n, bytes: 12 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const a = inputs[0]!.info;
    const bc = broadcastOf(a, inputs[1]!.info);
    const n = numel(a.shape);
    const cols = a.shape[a.shape.length - 1]!;
    const bIdx = bc === 'same' ? 'i' : bc === 'row' ? 'i % p.cols' : '0u';
    const pipeline = ctx.pipeline(`binary:${attrs.fn}:${bc}`, () => `
struct Params { n: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
${wgsl.flatGroup}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_group(wid, nwg) * ${WG}u + lid.x;
  if (i < p.n) { let a = A[i]; let b = B[${bIdx}]; Y[i] = ${BINARY_WGSL[attrs.fn]}; }
}`);
    ctx.dispatch(pipeline, { u: [n, cols] }, [inputs[0]!, inputs[1]!, outputs[0]!], launch1d(ctx, n));
  },
  cpu(inputs, outputs, infos, attrs) {
    const a = inputs[0]!;
    const b = inputs[1]!;
    const y = outputs[0]!;
    const f = BINARY_JS[attrs.fn];
    const bc = broadcastOf(infos[0]!, infos[1]!);
    const cols = infos[0]!.shape[infos[0]!.shape.length - 1]!;
    // One loop per broadcast mode: no per-element branch or modulo.
    if (bc === 'same') for (let i = 0; i < a.length; i++) y[i] = f(a[i]!, b[i]!);
    else if (bc === 'scalar') {
      const s = b[0]!;
      for (let i = 0; i < a.length; i++) y[i] = f(a[i]!, s);
    } else {
      for (let o = 0; o < a.length; o += cols) for (let c = 0; c < cols; c++) y[o + c] = f(a[o + c]!, b[c]!);
    }
  },
});
