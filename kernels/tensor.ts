/**
 * Host tensors: a typed array plus a shape. Row-major, no strides; kernels never see views.
 */
import { KernelErrors } from './errors.ts';

export type DType = 'f32' | 'i32' | 'u32';
export type HostArray = Float32Array | Int32Array | Uint32Array;

export interface TensorInfo {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface Tensor extends TensorInfo {
  readonly data: HostArray;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function dtypeOf(data: HostArray): DType {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Int32Array) return 'i32';
  return 'u32';
}

export function allocate(dtype: DType, n: number): HostArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array(n);
    case 'i32':
      return new Int32Array(n);
    case 'u32':
      return new Uint32Array(n);
  }
}

/**
 * Wraps a typed array as a tensor. `shape` defaults to 1-D; the element count must match.
 * @example tensor(new Float32Array(6), [2, 3])
 */
export function tensor(data: HostArray, shape: readonly number[] = [data.length]): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 1) throw KernelErrors.SHAPE_MISMATCH('tensor', `every dimension must be a positive integer, got [${shape.join(', ')}]`);
  }
  if (numel(shape) !== data.length) {
    throw KernelErrors.SHAPE_MISMATCH('tensor', `shape [${shape.join(', ')}] holds ${numel(shape)} elements but the data has ${data.length}`);
  }
  return { dtype: dtypeOf(data), shape: [...shape], data };
}

export function describe(t: TensorInfo): string {
  return `${t.dtype}[${t.shape.join(', ')}]`;
}

export const bytesPerElement = 4;
