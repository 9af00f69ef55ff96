/**
 * The kernels layer's error codes. Every message names the op and, where there is one, the
 * offending input and dimension, so a caller can fix the call without reading WGSL.
 */
import { defineError } from '../cluster/index.ts';

const where = 'kernels';

export const KernelErrors = {
  SHAPE_MISMATCH: defineError(
    'SHOAL_ERR_KERNEL_SHAPE_MISMATCH',
    400,
    (op: string, what: string) => `${op}: shape mismatch: ${what}`,
    where,
  ),
  BAD_DTYPE: defineError(
    'SHOAL_ERR_KERNEL_BAD_DTYPE',
    400,
    (op: string, input: string, got: string, want: string) => `${op}: input ${input} has dtype ${got}, expected ${want}`,
    where,
  ),
  BUFFER_TOO_LARGE: defineError(
    'SHOAL_ERR_KERNEL_BUFFER_TOO_LARGE',
    413,
    (op: string, tensor: string, bytes: number, limit: number) =>
      `${op}: ${tensor} needs ${bytes} bytes, over the adapter's maxStorageBufferBindingSize of ${limit} bytes`,
    where,
  ),
  NAN_INPUT: defineError(
    'SHOAL_ERR_KERNEL_NAN_INPUT',
    400,
    (op: string, input: string, index: number) => `${op}: input ${input} holds NaN or Infinity at flat index ${index}`,
    where,
  ),
  BAD_ATTRIBUTE: defineError(
    'SHOAL_ERR_KERNEL_BAD_ATTRIBUTE',
    400,
    (op: string, attr: string, why: string) => `${op}: attribute ${attr} ${why}`,
    where,
  ),
  BAD_INPUT_VALUE: defineError(
    'SHOAL_ERR_KERNEL_BAD_INPUT_VALUE',
    400,
    (op: string, input: string, why: string) => `${op}: input ${input} ${why}`,
    where,
  ),
  UNKNOWN_OP: defineError('SHOAL_ERR_KERNEL_UNKNOWN_OP', 400, (op: string) => `unknown kernel op "${op}"`, where),
  NO_GPU_ADAPTER: defineError(
    'SHOAL_ERR_NO_GPU_ADAPTER',
    503,
    (why: string) => `no WebGPU adapter: ${why}`,
    where,
  ),
  GPU_FAILED: defineError(
    'SHOAL_ERR_KERNEL_GPU_FAILED',
    500,
    (op: string, why: string) => `${op}: the GPU reported an error: ${why}`,
    where,
  ),
  CPU_FAILED: defineError(
    'SHOAL_ERR_KERNEL_CPU_FAILED',
    500,
    (op: string, why: string) => `${op}: the CPU backend failed: ${why}`,
    where,
  ),
  BAD_STEP: defineError('SHOAL_ERR_KERNEL_BAD_STEP', 400, (why: string) => `invalid kernel step: ${why}`, where),
  CLOSED: defineError('SHOAL_ERR_KERNEL_CLOSED', 503, (what: string) => `${what} is closed`, where),
} as const;
