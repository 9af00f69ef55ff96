/**
 * The process's one WebGPU device (Dawn through the `webgpu` package), its buffer pool and its
 * pipeline cache. The object returned by `create()` is kept in a module variable for the whole
 * process: dawn.node segfaults or hangs when it is garbage-collected while a device lives.
 * A node's capability probe reads the adapter's facts from here (`adapterInfo`,
 * `adapterFeatures`): there is no second Dawn instance.
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelErrors } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface GpuDeviceOptions {
  /**
   * Pin the adapter whose name (description/device string) contains this text, for machines
   * with several (a node passes its config's `gpu.adapter`).
   */
  adapter?: string;
  logger?: Logger;
}

/** The adapter's own description, as Dawn reports it. */
export interface GpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

export interface GpuFeatures {
  subgroups: boolean;
  shaderF16: boolean;
  timestampQuery: boolean;
}

/** Limits the kernels care about, as granted to the device (the adapter's real ones). */
export interface GpuLimits {
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minUniformBufferOffsetAlignment: number;
}

const LIMIT_NAMES = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
] as const;

const WANTED_FEATURES = ['subgroups', 'shader-f16', 'timestamp-query'] as const;

// Held for the life of the process on purpose (see the file comment): never deleted.
const gpuRoots = new Map<string, GPU>();

function gpuEntry(adapter: string | undefined): GPU {
  const flags = adapter ? `adapter=${adapter}` : '';
  let root = gpuRoots.get(flags);
  if (root) return root;
  // Mesa prints "XDG_RUNTIME_DIR is invalid" on every device open without it. It is the
  // environment of the Vulkan driver in this process, not a Shoal setting, so it stays here.
  process.env.XDG_RUNTIME_DIR ??= ensureXdg();
  // Imported lazily so CPU-only users never load dawn.node.
  const { create, globals } = webgpuModule();
  Object.assign(globalThis, globals);
  root = create(flags ? [flags] : []);
  gpuRoots.set(flags, root);
  return root;
}

function ensureXdg(): string {
  const dir = join(tmpdir(), `shoal-xdg-${process.getuid?.() ?? 0}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

type WebgpuModule = typeof import('webgpu');
let webgpuMod: WebgpuModule | undefined;
function webgpuModule(): WebgpuModule {
  if (!webgpuMod) throw new Error('webgpu module not loaded');
  return webgpuMod;
}

/** A pooled storage buffer; `size` is the allocated (bucketed) size. */
interface PooledBuffer {
  buffer: GPUBuffer;
  size: number;
}

function bucket(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.ceil(Math.log2(b));
  // Power-of-two buckets waste up to half; 1.5·2^k steps keep it to a third.
  return p * 0.75 >= b && p >= 1024 ? p * 0.75 : p;
}

export class GpuDevice {
  readonly device: GPUDevice;
  readonly adapterName: string;
  readonly adapterInfo: GpuAdapterInfo;
  /** Every feature the adapter offers (the device enables only those the kernels use). */
  readonly adapterFeatures: readonly string[];
  readonly features: GpuFeatures;
  readonly limits: GpuLimits;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly free = new Map<string, PooledBuffer[]>();
  private pooledBytes = 0;
  /** Upper bound on idle pooled memory before buffers are destroyed instead of kept. */
  private readonly poolCapBytes = 512 * 1024 * 1024;
  private lostReason: string | undefined;
  private destroyed = false;

  private constructor(device: GPUDevice, adapterName: string, adapterInfo: GpuAdapterInfo, adapterFeatures: readonly string[], features: GpuFeatures) {
    this.device = device;
    this.adapterName = adapterName;
    this.adapterInfo = adapterInfo;
    this.adapterFeatures = adapterFeatures;
    this.features = features;
    const l = device.limits;
    this.limits = {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      minUniformBufferOffsetAlignment: l.minUniformBufferOffsetAlignment,
    };
    void device.lost.then((info) => {
      if (!this.destroyed) this.lostReason = `${info.reason}: ${info.message}`;
    });
  }

  /** Opens the adapter and device; throws SHOAL_ERR_NO_GPU_ADAPTER when there is none. */
  static async open(opts: GpuDeviceOptions = {}): Promise<GpuDevice> {
    const pin = opts.adapter;
    try {
      webgpuMod ??= await import('webgpu');
    } catch (err) {
      throw KernelErrors.NO_GPU_ADAPTER(`the webgpu package could not be loaded (${(err as Error).message})`);
    }
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpuEntry(pin).requestAdapter({ powerPreference: 'high-performance' });
    } catch (err) {
      const why = (err as Error).message.replace(/\s*\n\s*/g, '; ');
      throw KernelErrors.NO_GPU_ADAPTER(pin ? `no adapter matches "${pin}" (${why})` : `requestAdapter failed (${why})`);
    }
    if (!adapter) {
      throw KernelErrors.NO_GPU_ADAPTER(pin ? `no adapter matches "${pin}"` : 'requestAdapter() returned null (no Vulkan/Metal/D3D12 driver; on Linux install Mesa lavapipe)');
    }
    const info = adapter.info;
    const adapterName = [info.vendor, info.architecture, info.device, info.description].filter((s) => s).join(' | ') || 'unknown adapter';
    if (pin && !adapterName.toLowerCase().includes(pin.toLowerCase())) {
      throw KernelErrors.NO_GPU_ADAPTER(`adapter "${adapterName}" does not match the pinned name "${pin}"`);
    }
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
    const requiredLimits: Record<string, number> = {};
    for (const name of LIMIT_NAMES) {
      const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
    } catch (err) {
      throw KernelErrors.NO_GPU_ADAPTER(`requestDevice failed on "${adapterName}" (${(err as Error).message})`);
    }
    const features: GpuFeatures = {
      subgroups: device.features.has('subgroups'),
      shaderF16: device.features.has('shader-f16'),
      timestampQuery: device.features.has('timestamp-query'),
    };
    opts.logger?.debug({ adapter: adapterName, features, limits: requiredLimits }, 'WebGPU device opened');
    const adapterInfo: GpuAdapterInfo = { vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '' };
    return new GpuDevice(device, adapterName, adapterInfo, [...adapter.features].map(String).sort(), features);
  }

  get lost(): string | undefined {
    return this.lostReason;
  }

  /** Cached compute pipeline; `key` names every attribute the WGSL depends on, never a shape. */
  pipeline(key: string, wgsl: () => string): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: wgsl(), label: key });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  get pipelineCount(): number {
    return this.pipelines.size;
  }

  /** A storage buffer of at least `bytes` from the pool. */
  acquire(bytes: number, usage: 'storage' | 'uniform' | 'read'): GPUBuffer {
    const size = bucket(bytes);
    const key = `${usage}:${size}`;
    const list = this.free.get(key);
    const hit = list?.pop();
    if (hit) {
      this.pooledBytes -= hit.size;
      return hit.buffer;
    }
    const flags =
      usage === 'storage'
        ? GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC
        : usage === 'uniform'
          ? GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST
          : GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST;
    return this.device.createBuffer({ size, usage: flags, label: key });
  }

  release(buffer: GPUBuffer): void {
    if (this.destroyed) return;
    const usage = buffer.usage & GPUBufferUsage.MAP_READ ? 'read' : buffer.usage & GPUBufferUsage.UNIFORM ? 'uniform' : 'storage';
    if (this.pooledBytes + buffer.size > this.poolCapBytes) {
      buffer.destroy();
      return;
    }
    const key = `${usage}:${buffer.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push({ buffer, size: buffer.size });
    this.pooledBytes += buffer.size;
  }

  /** Drops every idle pooled buffer (the device keeps working). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.buffer.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.trim();
    this.destroyed = true;
    this.pipelines.clear();
    this.device.destroy();
  }
}
