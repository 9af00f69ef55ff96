/**
 * Runs a step on the WebGPU device: upload feeds, record every node into one encoder, submit
 * once, map only the buffers the caller reads. Device errors are caught in error scopes and
 * surface as SHOAL_ERR_KERNEL_GPU_FAILED (inputs are validated first, so this means a bug).
 */
import { KernelErrors } from '../errors.ts';
import type { PrimitiveOp } from '../op.ts';
import type { ResidentTensor } from '../resident.ts';
import type { StepBuilder } from '../step.ts';
import { allocate, type HostArray, numel, type TensorInfo } from '../tensor.ts';
import { GpuContext, type GpuValue } from './context.ts';
import type { GpuDevice } from './device.ts';

const POISON = new Uint32Array([0x7fc00000]); // a quiet NaN as f32; -4194304 as i32

function byteSize(info: TensorInfo): number {
  return Math.max(4, numel(info.shape) * 4);
}

/** Throws SHOAL_ERR_KERNEL_BUFFER_TOO_LARGE for the first value over the binding limit. */
export function checkGpuLimits(dev: GpuDevice, step: StepBuilder): void {
  const limit = dev.limits.maxStorageBufferBindingSize;
  step.values.forEach((info, id) => {
    const bytes = numel(info.shape) * 4;
    if (bytes > limit) {
      const label = step.labels[id] ?? { op: 'step', name: `value ${id}` };
      throw KernelErrors.BUFFER_TOO_LARGE(label.op, `${label.name} [${info.shape.join(', ')}]`, bytes, limit);
    }
  });
}

export async function uploadResident(dev: GpuDevice, r: ResidentTensor): Promise<GPUBuffer> {
  if (r.gpuValid && r.gpu) return r.gpu;
  const bytes = byteSize(r);
  r.gpu ??= dev.acquire(bytes, 'storage');
  dev.device.queue.writeBuffer(r.gpu, 0, r.host!.buffer, r.host!.byteOffset, r.host!.byteLength);
  r.gpuValid = true;
  return r.gpu;
}

export async function readBuffers(dev: GpuDevice, sources: readonly { buffer: GPUBuffer; info: TensorInfo }[]): Promise<HostArray[]> {
  const encoder = dev.device.createCommandEncoder();
  const staging = sources.map((s) => {
    const bytes = numel(s.info.shape) * 4;
    const st = dev.acquire(bytes, 'read');
    encoder.copyBufferToBuffer(s.buffer, 0, st, 0, bytes);
    return st;
  });
  dev.device.queue.submit([encoder.finish()]);
  return mapAll(dev, staging, sources.map((s) => s.info));
}

async function mapAll(dev: GpuDevice, staging: GPUBuffer[], infos: TensorInfo[]): Promise<HostArray[]> {
  await Promise.all(staging.map((b) => b.mapAsync(GPUMapMode.READ)));
  return staging.map((b, i) => {
    const info = infos[i]!;
    const out = allocate(info.dtype, numel(info.shape));
    new Uint8Array(out.buffer).set(new Uint8Array(b.getMappedRange(0, out.byteLength)));
    b.unmap();
    dev.release(b);
    return out;
  });
}

export async function runStepOnGpu(dev: GpuDevice, step: StepBuilder, resolve: (op: string) => PrimitiveOp<unknown>, poison: boolean, matmulBk: 16 | 32 = 16): Promise<Map<number, HostArray>> {
  if (dev.lost) throw KernelErrors.GPU_FAILED('step', `device lost (${dev.lost})`);
  checkGpuLimits(dev, step);
  const queue = dev.device.queue;
  const gv: (GpuValue | undefined)[] = new Array(step.values.length);
  const owned = new Set<GPUBuffer>();
  for (const f of step.feeds) {
    const info = step.values[f.id]!;
    if (f.kind === 'resident') {
      gv[f.id] = { buffer: await uploadResident(dev, f.tensor), info, bytes: byteSize(info) };
    } else {
      const buffer = dev.acquire(byteSize(info), 'storage');
      queue.writeBuffer(buffer, 0, f.data.buffer, f.data.byteOffset, f.data.byteLength);
      gv[f.id] = { buffer, info, bytes: byteSize(info) };
      owned.add(buffer);
    }
  }
  const ctx = new GpuContext(dev, matmulBk);
  // Error scopes cover pipeline creation, encoding and the submit: a device-side validation or
  // out-of-memory error becomes one typed error instead of an uncaptured-error log line.
  dev.device.pushErrorScope('out-of-memory');
  dev.device.pushErrorScope('validation');
  let staging: GPUBuffer[] = [];
  let release: GPUBuffer[] = [];
  let thrown: unknown;
  try {
    for (const node of step.nodes) {
      const op = resolve(node.op);
      const outs = node.outputs.map((id) => {
        const info = step.values[id]!;
        const buffer = dev.acquire(byteSize(info), 'storage');
        owned.add(buffer);
        if (poison) queue.writeBuffer(buffer, 0, poisonBytes(byteSize(info)));
        const v: GpuValue = { buffer, info, bytes: byteSize(info) };
        gv[id] = v;
        return v;
      });
      ctx.currentOp = node.op;
      op.gpu(ctx, node.inputs.map((id) => gv[id]!), outs, node.attrs);
    }
    staging = step.reads.map((id) => {
      const v = gv[id]!;
      const st = dev.acquire(v.bytes, 'read');
      ctx.copy(v, st);
      return st;
    });
    const finished = ctx.finish();
    release = finished.release;
    queue.submit([finished.commandBuffer]);
  } catch (err) {
    thrown = err;
  }
  const validation = await dev.device.popErrorScope();
  const oom = await dev.device.popErrorScope();
  if (thrown) {
    for (const b of [...owned, ...staging]) dev.release(b);
    throw thrown;
  }
  const err = validation ?? oom;
  if (err) {
    // Nothing is assigned: resident tensors keep their previous values.
    for (const b of [...owned, ...release, ...staging]) dev.release(b);
    throw KernelErrors.GPU_FAILED(step.nodes.map((n) => n.op).join('+') || 'step', err.message);
  }
  // The queue orders later writes after this submission, so buffers can go back to the pool now.
  for (const a of step.assigns) {
    const v = gv[a.id]!;
    owned.delete(v.buffer);
    if (a.target.gpu && a.target.gpu !== v.buffer) dev.release(a.target.gpu);
    a.target.gpu = v.buffer;
    a.target.gpuValid = true;
    a.target.hostValid = false;
  }
  for (const b of owned) dev.release(b);
  for (const b of release) dev.release(b);
  const results = await mapAll(dev, staging, step.reads.map((id) => step.values[id]!));
  return new Map(step.reads.map((id, i) => [id, results[i]!]));
}

const poisonCache = new Map<number, Uint32Array>();
function poisonBytes(bytes: number): Uint32Array {
  let p = poisonCache.get(bytes);
  if (!p) {
    p = new Uint32Array(bytes / 4).fill(POISON[0]!);
    poisonCache.set(bytes, p);
  }
  return p;
}
