/**
 * A step: a small graph of ops built ahead of running it, so that it runs as one GPU submission
 * (one command encoder, one submit, readback only of what `read()` asks for) or as one task on
 * the CPU backend's worker thread. Inputs are checked (shapes, dtypes, NaN, value ranges) while
 * the step is built, so a bad call fails before anything is queued.
 */
import { KernelErrors } from './errors.ts';
import type { Attrs, OpDef } from './op.ts';
import type { OpName } from './ops/index.ts';
import { ResidentTensor } from './resident.ts';
import { type HostArray, numel, type Tensor, type TensorInfo, tensor as makeTensor } from './tensor.ts';

export type Backend = 'gpu' | 'cpu';

export interface RunOptions {
  /** Where to run: a backend, or 'auto' for the measured crossover. @default the kernels' `backend` option */
  backend?: Backend | 'auto';
  /** Fill every output buffer with NaN before running (tests: catches unwritten elements). @default false */
  poison?: boolean;
}

export class Value implements TensorInfo {
  constructor(
    /** @internal */ readonly step: StepBuilder,
    readonly id: number,
    readonly dtype: TensorInfo['dtype'],
    readonly shape: readonly number[],
  ) {}
}

export interface StepNode {
  op: string;
  inputs: number[];
  outputs: number[];
  attrs: unknown;
}

export type Feed = { id: number; kind: 'host'; data: HostArray } | { id: number; kind: 'resident'; tensor: ResidentTensor };

/** Who uses a value first, for error messages (`matmul: A needs … bytes`). */
export interface ValueLabel {
  op: string;
  name: string;
}

export interface StepResult {
  /** The value of a tensor passed to `read()`. */
  get(v: Value): Tensor;
  /** Values in the order `read()` was called. */
  readonly values: Tensor[];
  readonly backend: Backend;
}

export interface StepRunner {
  resolveOp(name: string): OpDef<unknown>;
  runStep(step: StepBuilder, opts: RunOptions): Promise<StepResult>;
  readonly checkInputs: boolean;
}

export class StepBuilder {
  /** @internal */ readonly values: TensorInfo[] = [];
  /** @internal */ readonly labels: (ValueLabel | undefined)[] = [];
  /** @internal */ readonly feeds: Feed[] = [];
  /** @internal */ readonly nodes: StepNode[] = [];
  /** @internal */ readonly reads: number[] = [];
  /** @internal */ readonly assigns: { target: ResidentTensor; id: number }[] = [];
  private readonly hostData = new Map<number, HostArray>();
  private readonly checked = new Set<number>();
  private readonly producedBy = new Map<number, number>();
  private ran = false;

  constructor(private readonly runner: StepRunner) {}

  /** Feeds a host tensor or a resident tensor into the step. */
  input(t: Tensor | ResidentTensor): Value {
    if (t instanceof ResidentTensor) {
      if (t.disposed) throw KernelErrors.BAD_STEP(`resident tensor ${t.name} was disposed`);
      const v = this.newValue(t);
      this.feeds.push({ id: v.id, kind: 'resident', tensor: t });
      if (t.hostValid && t.host) this.hostData.set(v.id, t.host);
      return v;
    }
    const v = this.newValue(makeTensor(t.data, t.shape));
    this.feeds.push({ id: v.id, kind: 'host', data: t.data });
    this.hostData.set(v.id, t.data);
    return v;
  }

  /**
   * Adds an op. Validates inputs and attributes now (typed errors name the op and the
   * dimension); composite ops expand into primitives here.
   */
  op(name: OpName | (string & {}), inputs: readonly (Value | Tensor | ResidentTensor)[], attrs?: Attrs): Value[] {
    this.assertOpen();
    const def = this.runner.resolveOp(name);
    const values = inputs.map((x) => (x instanceof Value ? this.own(x, name) : this.input(x)));
    const parsed = def.parseAttributes(attrs);
    const outInfos = def.validate(values, parsed);
    values.forEach((v, i) => {
      const label = { op: name, name: (def.inputs[i] ?? `input${i}`).replace(/\?$/, '') };
      this.labels[v.id] ??= label;
      if (this.runner.checkInputs) this.checkFinite(v, label);
    });
    if (this.runner.checkInputs && def.checkValues) {
      def.checkValues(values.map((v) => this.hostData.get(v.id)), values, parsed);
    }
    if (def.kind === 'composite') return def.expand(this, values, parsed);
    const outs = outInfos.map((info, i) => {
      const v = this.newValue(info);
      this.labels[v.id] = { op: name, name: `output ${i}` };
      this.producedBy.set(v.id, this.nodes.length);
      return v;
    });
    this.nodes.push({ op: name, inputs: values.map((v) => v.id), outputs: outs.map((v) => v.id), attrs: parsed });
    return outs;
  }

  /** `op()` for ops with a single output. */
  op1(name: OpName | (string & {}), inputs: readonly (Value | Tensor | ResidentTensor)[], attrs?: Attrs): Value {
    const outs = this.op(name, inputs, attrs);
    if (outs.length !== 1) throw KernelErrors.BAD_STEP(`${name} has ${outs.length} outputs; use op()`);
    return outs[0]!;
  }

  /** Asks for a value to be read back to the host when the step runs. */
  read(v: Value): this {
    this.own(v, 'read');
    if (!this.reads.includes(v.id)) this.reads.push(v.id);
    return this;
  }

  /** Replaces a resident tensor's value with `v` (an op output of this step) when the step runs. */
  assign(target: ResidentTensor, v: Value): this {
    this.own(v, 'assign');
    if (target.dtype !== v.dtype || target.shape.length !== v.shape.length || target.shape.some((d, i) => d !== v.shape[i])) {
      throw KernelErrors.BAD_STEP(`assign to ${target.name}: ${v.dtype}[${v.shape.join(', ')}] does not match ${target.dtype}[${target.shape.join(', ')}]`);
    }
    if (!this.producedBy.has(v.id)) throw KernelErrors.BAD_STEP(`assign to ${target.name}: the value must be an op output of this step`);
    if (this.assigns.some((a) => a.id === v.id || a.target === target)) throw KernelErrors.BAD_STEP(`assign to ${target.name}: each value and each target may be assigned once per step`);
    this.assigns.push({ target, id: v.id });
    return this;
  }

  /** Runs the step (once). */
  async run(opts: RunOptions = {}): Promise<StepResult> {
    this.assertOpen();
    this.ran = true;
    return this.runner.runStep(this, opts);
  }

  /** Total flops/bytes are computed by the runner; this is the raw element count of the graph. */
  get size(): number {
    return this.values.reduce((n, v) => n + numel(v.shape), 0);
  }

  private newValue(info: TensorInfo): Value {
    const v = new Value(this, this.values.length, info.dtype, [...info.shape]);
    this.values.push({ dtype: info.dtype, shape: [...info.shape] });
    this.labels.push(undefined);
    return v;
  }

  private own(v: Value, what: string): Value {
    if (v.step !== this) throw KernelErrors.BAD_STEP(`${what}: the value belongs to another step`);
    return v;
  }

  private assertOpen(): void {
    if (this.ran) throw KernelErrors.BAD_STEP('the step has already run; build a new one');
  }

  private checkFinite(v: Value, label: ValueLabel): void {
    if (this.checked.has(v.id)) return;
    this.checked.add(v.id);
    const data = this.hostData.get(v.id);
    if (!data || !(data instanceof Float32Array)) return;
    const bad = firstNonFinite(data);
    if (bad >= 0) throw KernelErrors.NAN_INPUT(label.op, label.name, bad);
  }
}

/**
 * Index of the first NaN or ±Infinity, or -1. `x - x` is NaN exactly for those; four at a time
 * keeps the common all-finite case at about 0.7 ms per million elements.
 */
export function firstNonFinite(d: Float32Array): number {
  const len = d.length;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    const s = d[i]! - d[i]! + (d[i + 1]! - d[i + 1]!) + (d[i + 2]! - d[i + 2]!) + (d[i + 3]! - d[i + 3]!);
    if (s !== 0) break;
  }
  for (; i < len; i++) {
    const x = d[i]!;
    if (x - x !== 0) return i;
  }
  return -1;
}
