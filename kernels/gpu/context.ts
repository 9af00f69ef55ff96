/**
 * Records one step's dispatches into one command encoder. Ops call `dispatch()` while the step
 * is built; `finish()` writes every dispatch's uniforms into one buffer, encodes all passes and
 * the readback copies, and the executor submits once.
 */
import type { TensorInfo } from '../tensor.ts';
import { numel } from '../tensor.ts';
import type { GpuDevice, GpuFeatures, GpuLimits } from './device.ts';

export interface GpuValue {
  readonly buffer: GPUBuffer;
  readonly info: TensorInfo;
  /** Bytes in use (the buffer itself may be larger: it comes from a bucketed pool). */
  readonly bytes: number;
}

/** Uniform values for a dispatch: the shader's `Params` struct lists the u32s, then the f32s. */
export interface Params {
  u?: readonly number[];
  f?: readonly number[];
}

type Command =
  | { type: 'dispatch'; pipeline: GPUComputePipeline; params: Params; buffers: readonly GpuValue[]; groups: readonly [number, number, number]; label: string }
  | { type: 'clear'; value: GpuValue }
  | { type: 'copy'; from: GpuValue; to: GPUBuffer };

const SLOT = 256;

export class GpuContext {
  private readonly commands: Command[] = [];
  private readonly temps: GpuValue[] = [];
  /** The op currently recording, for error messages and labels. */
  currentOp = '';

  constructor(
    readonly dev: GpuDevice,
    /** K-depth of matmul's big tile the kernels were configured with (16 or 32). */
    readonly matmulBk: 16 | 32 = 16,
  ) {}

  get device(): GPUDevice {
    return this.dev.device;
  }
  get limits(): GpuLimits {
    return this.dev.limits;
  }
  get features(): GpuFeatures {
    return this.dev.features;
  }

  pipeline(key: string, wgsl: () => string): GPUComputePipeline {
    return this.dev.pipeline(key, wgsl);
  }

  /** Records a dispatch. Binding 0 is the `Params` uniform; bindings 1… are `buffers`. */
  dispatch(pipeline: GPUComputePipeline, params: Params, buffers: readonly GpuValue[], groups: readonly [number, number?, number?]): void {
    const [x, y = 1, z = 1] = groups;
    if (x === 0 || y === 0 || z === 0) return;
    this.commands.push({ type: 'dispatch', pipeline, params, buffers, groups: [x, y, z], label: this.currentOp });
  }

  /** Zero-fills a buffer before the next dispatch (ends and reopens the compute pass). */
  clear(value: GpuValue): void {
    this.commands.push({ type: 'clear', value });
  }

  copy(from: GpuValue, to: GPUBuffer): void {
    this.commands.push({ type: 'copy', from, to });
  }

  /** A scratch tensor that lives until the step is submitted. */
  temp(info: TensorInfo): GpuValue {
    const bytes = Math.max(4, numel(info.shape) * 4);
    const v: GpuValue = { buffer: this.dev.acquire(bytes, 'storage'), info, bytes };
    this.temps.push(v);
    return v;
  }

  /**
   * Splits a 1-D workgroup count over x and y (each ≤ maxComputeWorkgroupsPerDimension).
   * Shaders rebuild the flat index as `wid.y * nwg.x + wid.x`.
   */
  grid(groups: number): [number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= max) return [groups, 1];
    const y = Math.ceil(groups / max);
    return [Math.ceil(groups / y), y];
  }

  /** Encodes everything; returns the command buffer and the buffers to give back after submit. */
  finish(): { commandBuffer: GPUCommandBuffer; release: GPUBuffer[] } {
    const device = this.dev.device;
    const dispatches = this.commands.filter((c) => c.type === 'dispatch').length;
    const release: GPUBuffer[] = this.temps.map((t) => t.buffer);
    let uniform: GPUBuffer | undefined;
    if (dispatches > 0) {
      const data = new ArrayBuffer(dispatches * SLOT);
      const u32 = new Uint32Array(data);
      const f32 = new Float32Array(data);
      let slot = 0;
      for (const c of this.commands) {
        if (c.type !== 'dispatch') continue;
        let w = (slot * SLOT) / 4;
        for (const v of c.params.u ?? []) u32[w++] = v >>> 0;
        for (const v of c.params.f ?? []) f32[w++] = v;
        slot++;
      }
      uniform = this.dev.acquire(data.byteLength, 'uniform');
      device.queue.writeBuffer(uniform, 0, data);
      release.push(uniform);
    }
    const encoder = device.createCommandEncoder();
    let pass: GPUComputePassEncoder | undefined;
    let slot = 0;
    for (const c of this.commands) {
      if (c.type === 'dispatch') {
        pass ??= encoder.beginComputePass();
        const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform!, offset: slot * SLOT, size: SLOT } }];
        c.buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: { buffer: b.buffer, offset: 0, size: b.bytes } }));
        const bindGroup = device.createBindGroup({ layout: c.pipeline.getBindGroupLayout(0), entries });
        pass.setPipeline(c.pipeline);
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(c.groups[0], c.groups[1], c.groups[2]);
        slot++;
      } else {
        if (pass) {
          pass.end();
          pass = undefined;
        }
        if (c.type === 'clear') encoder.clearBuffer(c.value.buffer, 0, align4(c.value.bytes));
        else encoder.copyBufferToBuffer(c.from.buffer, 0, c.to, 0, align4(c.from.bytes));
      }
    }
    pass?.end();
    return { commandBuffer: encoder.finish(), release };
  }
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** WGSL helpers shared by ops. */
export const wgsl = {
  /** Flat workgroup index for 1-D grids split by `GpuContext.grid`. */
  flatGroup: 'fn flat_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }',
  activation(kind: string): string {
    switch (kind) {
      case 'none':
        return 'fn act(x: f32) -> f32 { return x; }';
      case 'relu':
        return 'fn act(x: f32) -> f32 { return max(x, 0.0); }';
      case 'sigmoid':
        return 'fn act(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }';
      case 'tanh':
        // Clamped: some drivers compute tanh through exp and return NaN for large |x|.
        return 'fn act(x: f32) -> f32 { return tanh(clamp(x, -20.0, 20.0)); }';
      case 'gelu':
        return 'fn act(x: f32) -> f32 { let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -20.0, 20.0); return 0.5 * x * (1.0 + tanh(u)); }';
      default:
        throw new Error(`unknown activation ${kind}`);
    }
  },
};
