/**
 * What an op is. Every op follows the same four steps (as in ONNX Runtime Web's WebGPU ops):
 * validate its inputs, parse its attributes, build the program, run it. A *primitive* op has a
 * WGSL program and a CPU twin; a *composite* op (a training step piece) expands into primitives
 * inside the caller's step, so it still runs as one GPU submission or one worker task.
 */
import type { HostArray, TensorInfo } from './tensor.ts';
import type { GpuContext, GpuValue } from './gpu/context.ts';
import type { StepBuilder, Value } from './step.ts';

export type Attrs = Record<string, unknown>;

/** How an op is costed for the dispatcher and the benchmark. */
export interface OpCost {
  flops: number;
  bytes: number;
}

/** Op classes share one measured GPU/CPU crossover curve in the autotune table. */
export type OpClass = 'matmul' | 'rowwise' | 'elementwise' | 'reduce';

interface OpBase<A> {
  readonly name: string;
  /** Names of the inputs, for error messages; a trailing `?` marks an optional one. */
  readonly inputs: readonly string[];
  /** Step 2: parse and default the attributes (throws SHOAL_ERR_KERNEL_BAD_ATTRIBUTE). */
  parseAttributes(raw: Attrs | undefined): A;
  /** Step 1: check inputs (shapes, dtypes) and return the outputs' shapes and dtypes. */
  validate(inputs: readonly TensorInfo[], attrs: A): TensorInfo[];
  /**
   * Optional value checks on inputs whose data is known on the host when the step is built
   * (e.g. labels in range); entries are undefined for values produced inside the step.
   */
  checkValues?(inputs: readonly (HostArray | undefined)[], infos: readonly TensorInfo[], attrs: A): void;
}

export interface PrimitiveOp<A = Attrs> extends OpBase<A> {
  readonly kind: 'primitive';
  readonly opClass: OpClass;
  cost(inputs: readonly TensorInfo[], attrs: A): OpCost;
  /** Steps 3 and 4 on WebGPU: build (cached) pipelines and record dispatches. */
  gpu(ctx: GpuContext, inputs: readonly GpuValue[], outputs: readonly GpuValue[], attrs: A): void;
  /** The CPU twin: writes every element of `outputs` (pre-allocated, maybe NaN-poisoned). */
  cpu(inputs: readonly HostArray[], outputs: HostArray[], infos: readonly TensorInfo[], attrs: A): void;
}

export interface CompositeOp<A = Attrs> extends OpBase<A> {
  readonly kind: 'composite';
  /** Step 3: the program is a small graph of primitives added to the caller's step. */
  expand(step: StepBuilder, inputs: readonly Value[], attrs: A): Value[];
}

export type OpDef<A = Attrs> = PrimitiveOp<A> | CompositeOp<A>;

export function definePrimitive<A>(op: Omit<PrimitiveOp<A>, 'kind'>): PrimitiveOp<A> {
  return { kind: 'primitive', ...op };
}

export function defineComposite<A>(op: Omit<CompositeOp<A>, 'kind'>): CompositeOp<A> {
  return { kind: 'composite', ...op };
}
