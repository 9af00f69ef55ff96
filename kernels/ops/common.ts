/** Helpers every op uses: attribute parsing, shape checks, activations in JS. */
import { KernelErrors } from '../errors.ts';
import type { Attrs } from '../op.ts';
import type { DType, TensorInfo } from '../tensor.ts';

export const ACTIVATIONS = ['none', 'relu', 'sigmoid', 'tanh', 'gelu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export function attrBool(op: string, raw: Attrs | undefined, name: string, dflt: boolean): boolean {
  const v = raw?.[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw KernelErrors.BAD_ATTRIBUTE(op, name, `must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

export function attrNumber(op: string, raw: Attrs | undefined, name: string, dflt: number | undefined, check?: (v: number) => string | undefined): number {
  const v = raw?.[name];
  if (v === undefined) {
    if (dflt === undefined) throw KernelErrors.BAD_ATTRIBUTE(op, name, 'is required');
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw KernelErrors.BAD_ATTRIBUTE(op, name, `must be a finite number, got ${JSON.stringify(v)}`);
  const why = check?.(v);
  if (why) throw KernelErrors.BAD_ATTRIBUTE(op, name, why);
  return v;
}

export function attrEnum<T extends string>(op: string, raw: Attrs | undefined, name: string, allowed: readonly T[], dflt: T): T {
  const v = raw?.[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw KernelErrors.BAD_ATTRIBUTE(op, name, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

export function onlyKnown(op: string, raw: Attrs | undefined, known: readonly string[]): void {
  for (const k of Object.keys(raw ?? {})) {
    if (!known.includes(k)) throw KernelErrors.BAD_ATTRIBUTE(op, k, `is not an attribute of ${op} (known: ${known.join(', ') || 'none'})`);
  }
}

export function expectCount(op: string, names: readonly string[], inputs: readonly TensorInfo[]): void {
  const required = names.filter((n) => !n.endsWith('?')).length;
  if (inputs.length < required || inputs.length > names.length) {
    throw KernelErrors.SHAPE_MISMATCH(op, `expects ${required === names.length ? required : `${required}..${names.length}`} inputs (${names.join(', ')}), got ${inputs.length}`);
  }
}

export function expectDtype(op: string, name: string, t: TensorInfo, want: DType): void {
  if (t.dtype !== want) throw KernelErrors.BAD_DTYPE(op, name, t.dtype, want);
}

export function expectRank(op: string, name: string, t: TensorInfo, rank: number): void {
  if (t.shape.length !== rank) {
    throw KernelErrors.SHAPE_MISMATCH(op, `${name} must have rank ${rank}, got [${t.shape.join(', ')}]`);
  }
}

/** Checks `a.shape[ai] === b.shape[bi]` with a message naming both dimensions. */
export function expectDim(op: string, aName: string, a: TensorInfo, ai: number, bName: string, b: TensorInfo | number, bi = 0, label = ''): void {
  const av = a.shape[ai];
  const bv = typeof b === 'number' ? b : b.shape[bi];
  if (av !== bv) {
    const rhs = typeof b === 'number' ? `${b}` : `${bName}.shape[${bi}] (${bv})`;
    throw KernelErrors.SHAPE_MISMATCH(op, `${aName}.shape[${ai}] (${label ? `${label}=` : ''}${av}) != ${rhs}`);
  }
}

/** Rows × cols view of a tensor reduced over its last axis. */
export function rowsCols(shape: readonly number[]): [number, number] {
  const cols = shape[shape.length - 1] ?? 1;
  let rows = 1;
  for (let i = 0; i < shape.length - 1; i++) rows *= shape[i]!;
  return [rows, cols];
}

export function jsActivation(kind: Activation): (x: number) => number {
  switch (kind) {
    case 'none':
      return (x) => x;
    case 'relu':
      return (x) => (x > 0 ? x : 0);
    case 'sigmoid':
      return (x) => 1 / (1 + Math.exp(-x));
    case 'tanh':
      return Math.tanh;
    case 'gelu':
      return (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  }
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
