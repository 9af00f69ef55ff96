/**
 * The kernels facade: one object per node process — created by the node agent and handed to its
 * actors — that owns the WebGPU device (shared, ref-counted), the CPU worker pool, the autotune
 * table and the resident tensors, and runs steps where the measured crossover says they are
 * fastest. Scripts and tests outside a node create their own with `createKernels`.
 */
import { performance } from 'node:perf_hooks';
import { Errors } from '../cluster/index.ts';
import { crossovers, loadTable, predictMs, saveTable, tablePath, type AutotuneTable, type CurvePoint } from './autotune.ts';
import { executeCpuStep, type CpuStepTask } from './cpu/executor.ts';
import { releaseOrtSessions } from './cpu/ort.ts';
import { CpuPool } from './cpu/pool.ts';
import { KernelErrors } from './errors.ts';
import { GpuDevice, type GpuFeatures, type GpuLimits } from './gpu/device.ts';
import { readBuffers, runStepOnGpu } from './gpu/executor.ts';
import { resolveKernelsOptions, type KernelsOptions, type ResolvedKernelsOptions } from './kernels-options.ts';
import type { Attrs, OpClass, OpDef, PrimitiveOp } from './op.ts';
import { ops, type OpName } from './ops/index.ts';
import { ResidentTensor, type ResidentOwner } from './resident.ts';
import { type Backend, type RunOptions, StepBuilder, type StepResult, type StepRunner, type Value } from './step.ts';
import { type HostArray, type Tensor, tensor } from './tensor.ts';

// ---- one device per process -------------------------------------------------------------------

let shared: { key: string; device: Promise<GpuDevice>; refs: number } | undefined;

async function acquireDevice(o: ResolvedKernelsOptions): Promise<GpuDevice> {
  const key = o.adapter ?? '';
  if (shared && shared.key !== key) {
    throw KernelErrors.NO_GPU_ADAPTER(`this process already holds a device for adapter "${shared.key || 'default'}"; one device per process`);
  }
  if (!shared) shared = { key, device: GpuDevice.open({ adapter: o.adapter, logger: o.logger }), refs: 0 };
  const s = shared;
  s.refs++;
  try {
    return await s.device;
  } catch (err) {
    if (shared === s) shared = undefined;
    throw err;
  }
}

async function releaseDevice(): Promise<void> {
  if (!shared) return;
  if (--shared.refs > 0) return;
  const s = shared;
  shared = undefined;
  (await s.device.catch(() => undefined))?.destroy();
}

/** Open Kernels instances in this process: ONNX Runtime's inline sessions are shared by all. */
let openInstances = 0;

// ---- facade -------------------------------------------------------------------------------------

export interface KernelsInfo {
  backend: 'auto' | Backend;
  /** The WebGPU adapter's name, or undefined when running CPU-only. */
  adapter: string | undefined;
  features: GpuFeatures | undefined;
  limits: GpuLimits | undefined;
  /** Why the GPU is not used, when it is not. */
  gpuUnavailable: string | undefined;
}

export class Kernels implements StepRunner, ResidentOwner {
  private pool: CpuPool | undefined;
  private table: AutotuneTable | undefined;
  private tuning: Promise<AutotuneTable | undefined> | undefined;
  private closed = false;
  private readonly residents = new Set<ResidentTensor>();
  private residentCount = 0;
  /**
   * Called after every step with the backend it ran on and how long it took (seconds, from
   * `runStep` to results): the node agent turns it into `shoal_node_kernel_step_seconds`.
   */
  onStep: ((backend: Backend, seconds: number) => void) | undefined;

  /** @internal use {@link createKernels} */
  constructor(
    private readonly o: ResolvedKernelsOptions,
    /** The WebGPU device, when there is one. */
    readonly gpu: GpuDevice | undefined,
    private readonly gpuUnavailable: string | undefined,
  ) {
    openInstances++;
  }

  get checkInputs(): boolean {
    return this.o.checkInputs;
  }

  get info(): KernelsInfo {
    return { backend: this.o.backend, adapter: this.gpu?.adapterName, features: this.gpu?.features, limits: this.gpu?.limits, gpuUnavailable: this.gpuUnavailable };
  }

  resolveOp(name: string): OpDef<unknown> {
    const op = ops.get(name);
    if (!op) throw KernelErrors.UNKNOWN_OP(name);
    return op;
  }

  private primitive(name: string): PrimitiveOp<unknown> {
    const op = this.resolveOp(name);
    if (op.kind !== 'primitive') throw KernelErrors.UNKNOWN_OP(name);
    return op;
  }

  /** Starts a step: add inputs and ops, mark reads and assigns, then `run()`. */
  step(): StepBuilder {
    this.assertOpen();
    return new StepBuilder(this);
  }

  /** Runs one op and reads back all its outputs. */
  async run(op: OpName | (string & {}), inputs: readonly (Tensor | ResidentTensor)[], attrs?: Attrs, opts: RunOptions = {}): Promise<Tensor[]> {
    const s = this.step();
    const outs = s.op(op, inputs, attrs);
    for (const v of outs) s.read(v);
    const res = await s.run(opts);
    return res.values;
  }

  /** Keeps a tensor with the kernels between steps (parameters, optimizer state). */
  resident(t: Tensor, name = `resident${this.residentCount++}`): ResidentTensor {
    this.assertOpen();
    const r = new ResidentTensor(this, tensor(t.data, t.shape), name);
    this.residents.add(r);
    return r;
  }

  async readResident(r: ResidentTensor): Promise<Tensor> {
    if (r.disposed) throw KernelErrors.BAD_STEP(`resident tensor ${r.name} was disposed`);
    if (!r.hostValid) await this.download(r);
    return tensor(r.host!.slice(), r.shape);
  }

  disposeResident(r: ResidentTensor): void {
    if (r.gpu && this.gpu) this.gpu.release(r.gpu);
    r.gpu = undefined;
    r.host = undefined;
    r.gpuValid = r.hostValid = false;
    this.residents.delete(r);
  }

  private async download(r: ResidentTensor): Promise<void> {
    if (!this.gpu || !r.gpu || !r.gpuValid) throw KernelErrors.BAD_STEP(`resident tensor ${r.name} has no valid copy`);
    const [data] = await readBuffers(this.gpu, [{ buffer: r.gpu, info: r }]);
    r.host = data!;
    r.hostValid = true;
  }

  /** Which backend `step` would run on under `auto`, and the predicted times. */
  async choose(step: StepBuilder): Promise<{ backend: Backend; gpuMs?: number; cpuMs?: number; why: string }> {
    if (!this.gpu) return { backend: 'cpu', why: this.gpuUnavailable ?? 'no GPU' };
    const limit = this.gpu.limits.maxStorageBufferBindingSize;
    if (step.values.some((v) => v.shape.reduce((a, b) => a * b, 1) * 4 > limit)) return { backend: 'cpu', why: 'a tensor exceeds maxStorageBufferBindingSize' };
    const table = await this.ensureTable();
    if (!table) {
      const software = /llvmpipe|lavapipe|swiftshader|software/i.test(this.gpu.adapterName);
      return { backend: software ? 'cpu' : 'gpu', why: 'no autotune table (autotune disabled): adapter type' };
    }
    let gpuMs = 0;
    let cpuMs = 0;
    for (const node of step.nodes) {
      const op = this.primitive(node.op);
      const infos = node.inputs.map((id) => step.values[id]!);
      const c = op.cost(infos, node.attrs);
      const cost = op.opClass === 'matmul' ? c.flops : c.bytes;
      gpuMs += predictMs(table.classes[op.opClass], 'gpu', cost) ?? 0;
      cpuMs += predictMs(table.classes[op.opClass], 'cpu', cost) ?? 0;
    }
    return { backend: gpuMs < cpuMs ? 'gpu' : 'cpu', gpuMs, cpuMs, why: 'measured crossover' };
  }

  async runStep(step: StepBuilder, opts: RunOptions): Promise<StepResult> {
    this.assertOpen();
    const want = opts.backend ?? this.o.backend;
    let backend: Backend;
    if (want === 'auto') backend = (await this.choose(step)).backend;
    else backend = want;
    if (backend === 'gpu' && !this.gpu) throw KernelErrors.NO_GPU_ADAPTER(this.gpuUnavailable ?? 'the kernels were created with backend "cpu"');
    const t0 = this.onStep ? performance.now() : 0;
    const results = backend === 'gpu' ? await runStepOnGpu(this.gpu!, step, (n) => this.primitive(n), opts.poison ?? false, this.o.matmulBk) : await this.runOnCpu(step, opts.poison ?? false);
    this.onStep?.(backend, (performance.now() - t0) / 1000);
    const values = step.reads.map((id) => tensor(results.get(id)!, step.values[id]!.shape));
    const byId = new Map(step.reads.map((id, i) => [id, values[i]!]));
    return {
      backend,
      values,
      get(v: Value): Tensor {
        const t = byId.get(v.id);
        if (!t || v.step !== step) throw KernelErrors.BAD_STEP('get(): the value was not passed to read() in this step');
        return t;
      },
    };
  }

  private async runOnCpu(step: StepBuilder, poison: boolean): Promise<Map<number, HostArray>> {
    const inline = this.o.cpuWorkers === 0 || this.smallForWorker(step);
    const feeds: CpuStepTask['feeds'] = [];
    for (const f of step.feeds) {
      // The pool copies feeds into shared staging memory; inline runs read them in place.
      if (f.kind === 'host') feeds.push({ id: f.id, data: f.data });
      else {
        if (!f.tensor.hostValid) await this.download(f.tensor);
        feeds.push({ id: f.id, data: f.tensor.host! });
      }
    }
    const outputs = [...new Set([...step.reads, ...step.assigns.map((a) => a.id)])];
    const task: CpuStepTask = { type: 'step', values: step.values.map((v) => ({ dtype: v.dtype, shape: [...v.shape] })), nodes: step.nodes, feeds, outputs, poison, ort: this.o.ort, threads: this.o.cpuThreads };
    let arrays: HostArray[];
    if (inline) {
      arrays = await executeCpuStep(task);
    } else {
      this.pool ??= new CpuPool(this.o.cpuWorkers);
      arrays = await this.pool.run(task);
    }
    const byId = new Map(outputs.map((id, i) => [id, arrays[i]!]));
    for (const a of step.assigns) {
      const data = byId.get(a.id)!;
      a.target.host = step.reads.includes(a.id) ? data.slice() : data;
      a.target.hostValid = true;
      a.target.gpuValid = false;
    }
    return byId;
  }

  private smallForWorker(step: StepBuilder): boolean {
    if (this.o.cpuInlineMaxFlops <= 0) return false;
    let flops = 0;
    for (const node of step.nodes) {
      flops += this.primitive(node.op).cost(node.inputs.map((id) => step.values[id]!), node.attrs).flops;
      if (flops > this.o.cpuInlineMaxFlops) return false;
    }
    const feedBytes = step.feeds.reduce((n, f) => n + (f.kind === 'host' ? f.data.byteLength : f.tensor.size * 4), 0);
    return feedBytes <= 4 * 1024 * 1024;
  }

  // ---- autotune -----------------------------------------------------------------------------

  private ensureTable(): Promise<AutotuneTable | undefined> {
    if (this.table) return Promise.resolve(this.table);
    if (!this.o.autotune || !this.gpu) return Promise.resolve(undefined);
    this.tuning ??= this.autotune().catch((err: Error) => {
      this.o.logger.warn({ err: err.message }, 'kernels autotune failed; using the adapter type to choose');
      return undefined;
    });
    return this.tuning;
  }

  /**
   * Measures the GPU/CPU crossover for every op class, or loads it from the cache
   * (`force` re-measures). Runs once per adapter; the table lands in `cacheDir`.
   */
  async autotune(force = false): Promise<AutotuneTable | undefined> {
    if (!this.gpu) return undefined;
    const path = tablePath(this.o.cacheDir, this.gpu.adapterName);
    if (!force) {
      const cached = await loadTable(path);
      if (cached) {
        this.table = cached;
        return cached;
      }
    }
    const t0 = performance.now();
    const classes: Partial<Record<OpClass, CurvePoint[]>> = {};
    const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
    const cases: Record<OpClass, { op: string; attrs?: Attrs; inputs: () => Tensor[] }[]> = {
      matmul: [32, 128, 512].map((n) => ({ op: 'matmul', inputs: () => [tensor(rnd(n * n), [n, n]), tensor(rnd(n * n), [n, n])] })),
      elementwise: [1 << 12, 1 << 16, 1 << 20].map((n) => ({ op: 'unary', attrs: { fn: 'relu' }, inputs: () => [tensor(rnd(n), [n])] })),
      rowwise: [16, 256, 4096].map((r) => ({ op: 'softmax', inputs: () => [tensor(rnd(r * 256), [r, 256])] })),
      reduce: [16, 256, 4096].map((r) => ({ op: 'reduce', attrs: { fn: 'sum', axis: 1 }, inputs: () => [tensor(rnd(r * 256), [r, 256])] })),
    };
    for (const [cls, list] of Object.entries(cases) as [OpClass, (typeof cases)[OpClass]][]) {
      const pts: CurvePoint[] = [];
      for (const c of list) {
        const inputs = c.inputs();
        const op = this.primitive(c.op);
        const cost = op.cost(inputs, op.parseAttributes(c.attrs));
        const time = async (backend: Backend): Promise<number> => {
          const samples: number[] = [];
          for (let i = 0; i < 4; i++) {
            const s = performance.now();
            await this.run(c.op, inputs, c.attrs, { backend });
            samples.push(performance.now() - s);
          }
          // The minimum of the warm runs: least disturbed by other load on the machine.
          return Math.min(...samples.slice(1));
        };
        pts.push({ cost: cls === 'matmul' ? cost.flops : cost.bytes, gpuMs: await time('gpu'), cpuMs: await time('cpu') });
      }
      classes[cls] = pts;
    }
    const table: AutotuneTable = { version: 1, adapter: this.gpu.adapterName, cpus: 0, createdAt: new Date().toISOString(), classes };
    table.cpus = (await import('node:os')).availableParallelism();
    await saveTable(path, table).catch((err: Error) => this.o.logger.warn({ err: err.message, path }, 'could not cache the autotune table'));
    this.table = table;
    this.o.logger.debug({ adapter: table.adapter, crossover: crossovers(table), ms: Math.round(performance.now() - t0), path }, 'kernels autotune done');
    return table;
  }

  /** Resolves when all GPU work submitted so far has finished (no readback). */
  async sync(): Promise<void> {
    await this.gpu?.device.queue.onSubmittedWorkDone();
  }

  /** The current autotune table, if measured or loaded. */
  get autotuneTable(): AutotuneTable | undefined {
    return this.table;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of [...this.residents]) r.dispose();
    await this.pool?.close();
    if (--openInstances === 0) await releaseOrtSessions();
    if (this.gpu) await releaseDevice();
  }

  private assertOpen(): void {
    if (this.closed) throw KernelErrors.CLOSED('the kernels instance');
  }
}

/**
 * The kernels of the node an actor runs on (`ctx.kernels`, which cluster/ types as opaque).
 * Throws when the actor's host was given none (a host started outside a node agent).
 */
export function nodeKernels(ctx: { readonly kernels?: unknown; readonly actorId?: string }): Kernels {
  if (ctx.kernels instanceof Kernels) return ctx.kernels;
  throw Errors.INTERNAL(`actor ${ctx.actorId ?? '?'} needs the node's kernels, but its host was started without them`);
}

/**
 * Creates the kernels. With `backend: 'auto'` (the default) a missing WebGPU adapter is not an
 * error: one log line says why and everything runs on the CPU backend.
 */
export async function createKernels(options: KernelsOptions = {}): Promise<Kernels> {
  const o = resolveKernelsOptions(options);
  if (o.backend === 'cpu') return new Kernels(o, undefined, 'backend "cpu" was chosen');
  try {
    const dev = await acquireDevice(o);
    return new Kernels(o, dev, undefined);
  } catch (err) {
    if (o.backend === 'gpu') throw err;
    const why = (err as Error).message;
    o.logger.info({ reason: why }, `WebGPU unavailable, kernels run on the CPU backend: ${why}`);
    return new Kernels(o, undefined, why);
  }
}
