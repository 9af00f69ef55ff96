/**
 * What a node can do: CPU cores, memory, the WebGPU adapter and onnxruntime. Probed once at
 * start. The adapter's facts come from the node's own kernels (the one WebGPU device the node
 * opens), so the probe never starts a second Dawn instance.
 */
import { availableParallelism, totalmem } from 'node:os';
import { createRequire } from 'node:module';
import type { Capabilities, GpuInfo } from '../cluster/index.ts';
import type { GpuDevice, Kernels } from '../kernels/index.ts';

/** Limits advertised to the scheduler (the device is opened with the adapter's own values). */
const LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** The advertised description of a WebGPU device. */
export function gpuInfo(dev: GpuDevice): GpuInfo {
  const info = dev.adapterInfo;
  const limits: Record<string, number> = {};
  for (const k of LIMITS) limits[k] = Number((dev.device.limits as unknown as Record<string, number>)[k]);
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: /llvmpipe|lavapipe|swiftshader/i.test(`${info.description} ${info.device} ${info.architecture}`),
    features: [...dev.adapterFeatures],
    limits,
  };
}

/** The GPU as the node's kernels see it, or why there is none. */
export function probeGpu(kernels: Kernels): { gpu: GpuInfo | null; reason?: string } {
  if (kernels.gpu) return { gpu: gpuInfo(kernels.gpu) };
  return { gpu: null, reason: `WebGPU unavailable: ${kernels.info.gpuUnavailable ?? 'unknown reason'}` };
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

export interface ProbeOptions {
  /** The node's kernels, already created (with backend `cpu` when the profile has `gpu: false`). */
  kernels: Kernels;
  /** The node profile's `gpu`: false reports the GPU as disabled rather than missing. */
  gpu: boolean;
}

export async function probeCapabilities(opts: ProbeOptions): Promise<Capabilities> {
  const gpu = opts.gpu ? probeGpu(opts.kernels) : { gpu: null, reason: 'disabled by the node profile (gpu: false)' };
  const onnxruntime = await probeOnnxRuntime();
  return {
    cpus: availableParallelism(),
    memoryBytes: totalmem(),
    gpu: gpu.gpu,
    ...(gpu.reason ? { gpuUnavailableReason: gpu.reason } : {}),
    onnxruntime,
  };
}
