/**
 * histogram: counts of a tensor's values in `bins` equal-width bins over [min, max] (numpy's
 * rule: values outside are ignored, `max` itself lands in the last bin). Output u32[bins].
 * Workgroups count into workgroup-memory atomics and add their partial histogram to the
 * global one once, so contention stays inside the workgroup.
 */
import { KernelErrors } from '../errors.ts';
import { wgsl } from '../gpu/context.ts';
import { definePrimitive } from '../op.ts';
import { numel } from '../tensor.ts';
import { attrNumber, ceilDiv, expectCount, expectDtype, onlyKnown } from './common.ts';

export interface HistogramAttrs {
  bins: number;
  min: number;
  max: number;
}

const WG = 256;
/** Bins that fit the workgroup-memory path (16 KiB of u32 atomics, the default limit). */
const LOCAL_BINS = 4096;
export const MAX_BINS = 65536;

/** The bin of x, computed in f32 exactly as the shader does (so GPU and CPU agree). */
export function binOf(x: number, min: number, max: number, scale: number, bins: number): number {
  if (!(x >= min && x <= max)) return -1;
  if (x === max) return bins - 1;
  const t = Math.fround(Math.fround(x - min) * scale);
  return Math.min(Math.floor(t), bins - 1);
}

export const histogram = definePrimitive<HistogramAttrs>({
  name: 'histogram',
  inputs: ['X'],
  opClass: 'reduce',
  parseAttributes(raw) {
    onlyKnown('histogram', raw, ['bins', 'min', 'max']);
    const bins = attrNumber('histogram', raw, 'bins', undefined, (v) => (Number.isInteger(v) && v >= 1 && v <= MAX_BINS ? undefined : `must be an integer in 1..${MAX_BINS}, got ${v}`));
    const min = attrNumber('histogram', raw, 'min', undefined);
    const max = attrNumber('histogram', raw, 'max', undefined);
    if (!(max > min)) throw KernelErrors.BAD_ATTRIBUTE('histogram', 'max', `must be greater than min (${min}), got ${max}`);
    return { bins, min: Math.fround(min), max: Math.fround(max) };
  },
  validate(inputs, attrs) {
    expectCount('histogram', this.inputs, inputs);
    expectDtype('histogram', 'X', inputs[0]!, 'f32');
    return [{ dtype: 'u32', shape: [attrs.bins] }];
  },
  cost(inputs) {
    const n = numel(inputs[0]!.shape);
    return { flops: 3 * n, bytes: 4 * n };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const n = numel(inputs[0]!.info.shape);
    const local = attrs.bins <= LOCAL_BINS && ctx.limits.maxComputeWorkgroupStorageSize >= LOCAL_BINS * 4;
    const scale = Math.fround(attrs.bins / (attrs.max - attrs.min));
    const pipeline = ctx.pipeline(`histogram:${local ? 'local' : 'global'}`, () => `
struct Params { n: u32, bins: u32, lo: f32, hi: f32, scale: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> H: array<atomic<u32>>;
${local ? `var<workgroup> L: array<atomic<u32>, ${LOCAL_BINS}>;` : ''}
${wgsl.flatGroup}
fn bin_of(x: f32) -> i32 {
  if (!(x >= p.lo && x <= p.hi)) { return -1; }
  if (x == p.hi) { return i32(p.bins) - 1; }
  return min(i32(floor((x - p.lo) * p.scale)), i32(p.bins) - 1);
}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = flat_group(wid, nwg);
  let groups = nwg.x * nwg.y;
  ${local ? `for (var b = lid.x; b < p.bins; b += ${WG}u) { atomicStore(&L[b], 0u); }
  workgroupBarrier();` : ''}
  for (var i = g * ${WG}u + lid.x; i < p.n; i += groups * ${WG}u) {
    let b = bin_of(X[i]);
    if (b >= 0) { ${local ? 'atomicAdd(&L[u32(b)], 1u);' : 'atomicAdd(&H[u32(b)], 1u);'} }
  }
  ${local ? `workgroupBarrier();
  for (var b = lid.x; b < p.bins; b += ${WG}u) {
    let c = atomicLoad(&L[b]);
    if (c > 0u) { atomicAdd(&H[b], c); }
  }` : ''}
}`);
    ctx.clear(outputs[0]!);
    // Enough workgroups to fill the device; each walks the input with a grid stride.
    const groups = Math.max(1, Math.min(ceilDiv(n, WG * 8), 512));
    ctx.dispatch(pipeline, { u: [n, attrs.bins], f: [attrs.min, attrs.max, scale] }, [inputs[0]!, outputs[0]!], ctx.grid(groups));
  },
  cpu(inputs, outputs, _infos, attrs) {
    const x = inputs[0]!;
    const h = outputs[0]!;
    h.fill(0);
    const scale = Math.fround(attrs.bins / (attrs.max - attrs.min));
    for (let i = 0; i < x.length; i++) {
      const b = binOf(x[i]!, attrs.min, attrs.max, scale, attrs.bins);
      if (b >= 0) h[b]!++;
    }
  },
});
