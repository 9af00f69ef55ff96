/**
 * Which axis of each tensor is the batch axis — decided once, when a replica loads its model,
 * from the signature's symbolic dimension names and the deployment's options — and the
 * concatenation and splitting of requests along it.
 *
 * A model is batchable when one symbolic dimension (the same NAME, e.g. `N` or `batch_size`) is
 * the batch axis of every input and every output. Without options that axis is 0 for all of them
 * (what exporters write and what Triton assumes with `max_batch_size > 0`); a model that does
 * not have it — a scalar input, an input with a fixed first dimension, outputs whose first
 * dimension is another symbol — is served unbatched, each request alone with its shapes as sent
 * (Triton's `max_batch_size: 0`). `batchAxes` names the batch axis of tensors where it is not 0
 * (a recurrent state [layers, batch, hidden] has it at 1); the tensors it does not name take
 * the axis where the same symbolic dimension sits. `batching: false` turns batching off.
 */
import { Errors } from '../../cluster/index.ts';
import type { Signature } from '../registry/schemas.ts';
import type { TensorData, TensorSpec, TypedArray } from '../tensor.ts';

/** The deployment options that decide batching. */
export interface BatchingOptions {
  /** `false`: serve every request alone, shapes as sent. @default true (when the model is batchable) */
  batching?: boolean;
  /** The batch axis of tensors (inputs or outputs, by name) where it is not 0. */
  batchAxes?: Record<string, number>;
}

/** How a replica batches: along `dim` at these axes (signature order), or not at all, and why. */
export type BatchPlan = { batched: true; dim: string; inputAxes: number[]; outputAxes: number[] } | { batched: false; reason: string };

/** What metadata and status say about batching (Triton: `max_batch_size` 0 = unbatched). */
export interface BatchingInfo {
  batched: boolean;
  /** Most rows in one run; 0 when unbatched. */
  maxBatchSize: number;
  /** The symbolic dimension requests are concatenated along. */
  dim?: string;
  /** Batch axis of each input and output, by name. */
  axes?: Record<string, number>;
  /** Why the model is served unbatched. */
  reason?: string;
}

/** A tensor spec with its symbolic dimension names ('' where a dimension is fixed or unnamed). */
type Spec = TensorSpec & { dimParams?: string[] };

const symbol = (t: Spec, axis: number): string => t.dimParams?.[axis] ?? '';
const describeDims = (t: Spec): string => `[${t.shape.map((d, i) => symbol(t, i) || (d < 0 ? '?' : String(d))).join(', ')}]`;

/**
 * The batching plan of a signature under the deployment's options. Options that cannot hold —
 * an axis outside a tensor, a name the model lacks, axes that are not one symbolic dimension —
 * throw a usage error naming them; a model that is simply not batchable gets an unbatched plan
 * with the reason.
 */
export function planBatching(sig: Signature, o: BatchingOptions = {}): BatchPlan {
  if (o.batching === false) return { batched: false, reason: 'batching is off (deploy option batching: false)' };
  const inputs = sig.inputs as Spec[];
  const outputs = sig.outputs as Spec[];
  const all = [...inputs.map((t) => ['input', t] as const), ...outputs.map((t) => ['output', t] as const)];
  const axes = o.batchAxes ?? {};
  const named = Object.keys(axes);
  if (named.length === 0) {
    // The default: axis 0 of everything, one symbolic dimension.
    const first = inputs[0];
    if (!first) return { batched: false, reason: 'the model has no inputs' };
    for (const [kind, t] of all) {
      if (t.shape.length === 0) return { batched: false, reason: `${kind} "${t.name}" is a scalar (shape [])` };
      if (t.shape[0]! >= 0) return { batched: false, reason: `${kind} "${t.name}" has a fixed first dimension (${describeDims(t)})` };
      if (!symbol(t, 0)) return { batched: false, reason: `${kind} "${t.name}" has no name for its first dimension (${describeDims(t)}), so it cannot be matched with the others` };
    }
    const dim = symbol(first, 0);
    const other = all.find(([, t]) => symbol(t, 0) !== dim);
    if (other) return { batched: false, reason: `the first dimensions differ: input "${first.name}" has "${dim}", ${other[0]} "${other[1].name}" has "${symbol(other[1], 0)}"` };
    return { batched: true, dim, inputAxes: inputs.map(() => 0), outputAxes: outputs.map(() => 0) };
  }
  // Stated axes: each must be a symbolic dimension of its tensor, all the same one.
  let dim: string | undefined;
  for (const name of named) {
    const axis = axes[name]!;
    const t = all.find(([, x]) => x.name === name)?.[1];
    if (!t) throw Errors.USAGE(`batchAxes names "${name}", which is neither an input nor an output of the model (inputs: ${inputs.map((x) => x.name).join(', ')}; outputs: ${outputs.map((x) => x.name).join(', ')})`);
    if (!Number.isInteger(axis) || axis < 0 || axis >= t.shape.length) throw Errors.USAGE(`batchAxes.${name} is ${axis}, outside "${name}" ${describeDims(t)} (rank ${t.shape.length})`);
    const s = symbol(t, axis);
    if (!s) throw Errors.USAGE(`batchAxes.${name} is ${axis}, but that dimension of "${name}" ${describeDims(t)} is not a named dynamic dimension`);
    if (dim !== undefined && s !== dim) throw Errors.USAGE(`batchAxes disagree: "${named[0]}" is batched along "${dim}", "${name}" along "${s}"`);
    dim = s;
  }
  const axisOf = (kind: string, t: Spec): number => {
    if (axes[t.name] !== undefined) return axes[t.name]!;
    const at = t.shape.map((_, i) => i).filter((i) => symbol(t, i) === dim);
    if (at.length === 1) return at[0]!;
    throw Errors.USAGE(
      at.length === 0
        ? `${kind} "${t.name}" ${describeDims(t)} has no "${dim}" dimension to batch along: give its axis in batchAxes, or deploy with batching: false`
        : `${kind} "${t.name}" ${describeDims(t)} has "${dim}" at several axes: give its batch axis in batchAxes`,
    );
  };
  return { batched: true, dim: dim!, inputAxes: inputs.map((t) => axisOf('input', t)), outputAxes: outputs.map((t) => axisOf('output', t)) };
}

/** The plan as metadata and status report it. */
export function batchingInfo(sig: Signature, plan: BatchPlan, maxBatchSize: number): BatchingInfo {
  if (!plan.batched) return { batched: false, maxBatchSize: 0, reason: plan.reason };
  const axes: Record<string, number> = {};
  sig.inputs.forEach((t, i) => (axes[t.name] = plan.inputAxes[i]!));
  sig.outputs.forEach((t, i) => (axes[t.name] = plan.outputAxes[i]!));
  return { batched: true, maxBatchSize, dim: plan.dim, axes };
}

/** One line for `shoal models status`. */
export function describeBatching(b: BatchingInfo): string {
  if (!b.batched) return `unbatched (each request runs alone): ${b.reason ?? 'no batch axis'}`;
  const off = Object.entries(b.axes ?? {}).filter(([, a]) => a !== 0);
  return `batched along "${b.dim}" up to ${b.maxBatchSize} rows${off.length ? ` (batch axis ${off.map(([n, a]) => `${n}:${a}`).join(', ')}; others 0)` : ''}`;
}

const product = (dims: readonly number[], from: number, to: number): number => {
  let n = 1;
  for (let i = from; i < to; i++) n *= dims[i]!;
  return n;
};

/** A new array of `data`'s kind with `n` elements. */
function like(data: TensorData, n: number): TensorData {
  if (Array.isArray(data)) return new Array<string>(n);
  return new (data.constructor as new (n: number) => TypedArray)(n);
}

/** Copies `n` elements of `src` from `at` into `dst` at `to`. */
function copy(dst: TensorData, to: number, src: TensorData, at: number, n: number): void {
  if (Array.isArray(dst)) {
    for (let i = 0; i < n; i++) dst[to + i] = (src as string[])[at + i]!;
    return;
  }
  const s = src as TypedArray;
  (dst as Float32Array).set((at === 0 && n === s.length ? s : s.subarray(at, at + n)) as Float32Array, to);
}

/**
 * Concatenates tensors along `axis` (their shapes equal but there): rows of the first, then of
 * the second, … within each slice before the axis. Returns the data and its dims.
 */
export function concatAlong(parts: readonly TensorData[], shapes: readonly (readonly number[])[], axis: number): { data: TensorData; dims: number[] } {
  const first = shapes[0]!;
  const rows = shapes.reduce((a, s) => a + s[axis]!, 0);
  const dims = first.map((d, i) => (i === axis ? rows : d));
  const outer = product(first, 0, axis);
  const inner = product(first, axis + 1, first.length);
  const out = like(parts[0]!, outer * rows * inner);
  let to = 0;
  for (let o = 0; o < outer; o++) {
    for (let p = 0; p < parts.length; p++) {
      const block = shapes[p]![axis]! * inner;
      copy(out, to, parts[p]!, o * block, block);
      to += block;
    }
  }
  return { data: out, dims };
}

/**
 * Splits a tensor along `axis` into parts of `counts` rows each (in order). Along axis 0 a part
 * is a view of `data`; along another axis a copy.
 */
export function splitAlong(data: TensorData, dims: readonly number[], axis: number, counts: readonly number[]): { data: TensorData; dims: number[] }[] {
  const total = counts.reduce((a, b) => a + b, 0);
  if (dims[axis] !== total) throw new RangeError(`axis ${axis} of the output has ${dims[axis]} rows, the batch had ${total}`);
  const outer = product(dims, 0, axis);
  const inner = product(dims, axis + 1, dims.length);
  let start = 0;
  return counts.map((rows) => {
    const partDims = dims.map((d, i) => (i === axis ? rows : d));
    let part: TensorData;
    if (outer === 1) part = Array.isArray(data) ? data.slice(start * inner, (start + rows) * inner) : (data as TypedArray).subarray(start * inner, (start + rows) * inner);
    else {
      part = like(data, outer * rows * inner);
      for (let o = 0; o < outer; o++) copy(part, o * rows * inner, data, (o * total + start) * inner, rows * inner);
    }
    start += rows;
    return { data: part, dims: partDims };
  });
}
