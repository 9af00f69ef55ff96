/**
 * What a node can do: CPU cores, memory, the WebGPU adapter (when `webgpu` finds one) and
 * onnxruntime. Probed once at start.
 */
import { availableParallelism, totalmem } from 'node:os';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Capabilities, GpuInfo } from '../cluster/index.ts';

// dawn.node crashes if the object returned by create() is garbage-collected while a device or
// adapter lives: keep it for the whole process.
let gpuInstance: unknown;

const LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
] as const;

export async function probeGpu(): Promise<{ gpu: GpuInfo | null; reason?: string }> {
  if (!process.env.XDG_RUNTIME_DIR) {
    const dir = join(tmpdir(), `shoal-xdg-${process.getuid?.() ?? 0}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = dir;
  }
  try {
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    const adapterName = process.env.SHOAL_GPU_ADAPTER;
    const gpu = webgpu.create(adapterName ? [`adapter=${adapterName}`] : []);
    gpuInstance = gpu;
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { gpu: null, reason: 'no WebGPU adapter (no Vulkan driver? install mesa-vulkan-drivers >= 24 for lavapipe)' };
    const info = adapter.info;
    const limits: Record<string, number> = {};
    for (const k of LIMITS) limits[k] = Number((adapter.limits as unknown as Record<string, number>)[k]);
    const description = info.description ?? '';
    return {
      gpu: {
        vendor: info.vendor ?? '',
        architecture: info.architecture ?? '',
        device: info.device ?? '',
        description,
        software: /llvmpipe|lavapipe|swiftshader/i.test(`${description} ${info.device} ${info.architecture}`),
        features: [...adapter.features].map(String).sort(),
        limits,
      },
    };
  } catch (err) {
    return { gpu: null, reason: `WebGPU unavailable: ${(err as Error).message}` };
  }
}

export function keepGpuAlive(): unknown {
  return gpuInstance;
}

export async function probeOnnxRuntime(): Promise<Capabilities['onnxruntime']> {
  try {
    const require = createRequire(import.meta.url);
    const pkg = require('onnxruntime-node/package.json') as { version: string };
    const ort = (await import('onnxruntime-node')) as { listSupportedBackends?: () => { name: string; bundled?: boolean }[] };
    const backends = ort.listSupportedBackends?.().filter((b) => b.bundled !== false).map((b) => b.name) ?? ['cpu'];
    return { version: pkg.version, backends };
  } catch {
    return null;
  }
}

export async function probeCapabilities(opts: { gpu: boolean }): Promise<Capabilities> {
  const [gpu, onnxruntime] = await Promise.all([
    opts.gpu ? probeGpu() : Promise.resolve({ gpu: null, reason: 'disabled by the node profile (gpu: false)' }),
    probeOnnxRuntime(),
  ]);
  return {
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    gpu: gpu.gpu,
    ...(gpu.reason ? { gpuUnavailableReason: gpu.reason } : {}),
    onnxruntime,
  };
}
