import { Errors, type Config } from '../cluster/index.ts';
import { defaultCacheDir } from './autotune.ts';
import { defaultKernelsLogger, type Logger } from './log.ts';

export type BackendChoice = 'auto' | 'gpu' | 'cpu';

export interface KernelsOptions {
  /**
   * Where steps run: 'gpu' (WebGPU, fails if there is no adapter), 'cpu' (worker threads +
   * ONNX Runtime), or 'auto' (per step, by the measured crossover; CPU when there is no adapter).
   * A node passes its config's `kernels.backend`. @default 'auto'
   */
  backend?: BackendChoice;
  /** Pin the WebGPU adapter by (part of) its name (a node passes its config's `gpu.adapter`). */
  adapter?: string;
  /** CPU backend worker threads; 0 runs CPU steps on the calling thread. @default 1 */
  cpuWorkers?: number;
  /**
   * CPU steps of at most this many flops (and 4 MiB of inputs) run on the calling thread: they
   * block it for less than a worker round trip (~0.2 ms) would cost. 0 sends every step to the
   * worker. @default 4194304 (a 128³ matmul)
   */
  cpuInlineMaxFlops?: number;
  /** ONNX Runtime intra-op threads for matmul-class ops; 0 keeps ORT's default (physical cores). @default 0 */
  cpuThreads?: number;
  /** Route matmul/gemm on the CPU backend to ONNX Runtime (MLAS). @default true */
  ort?: boolean;
  /** In 'auto' mode, measure (or load) the GPU/CPU crossover table. @default true */
  autotune?: boolean;
  /** Directory for the autotune table. @default $XDG_CACHE_HOME/shoal/kernels (~/.cache/shoal/kernels) */
  cacheDir?: string;
  /**
   * K-depth of matmul's big WebGPU tile: 16, or 32 where the adapter grants the 24 KiB of
   * workgroup memory it needs (else 16). @default 16
   */
  matmulBk?: 16 | 32;
  /** Check inputs known on the host for NaN/Infinity and out-of-range values. @default true */
  checkInputs?: boolean;
  /** Where the kernels log (a node passes its process logger). @default JSON lines at info */
  logger?: Logger;
}

export interface ResolvedKernelsOptions {
  backend: BackendChoice;
  adapter: string | undefined;
  cpuWorkers: number;
  cpuInlineMaxFlops: number;
  cpuThreads: number;
  ort: boolean;
  autotune: boolean;
  cacheDir: string;
  matmulBk: 16 | 32;
  checkInputs: boolean;
  logger: Logger;
}

/** The kernels options a config gives (`kernels.*`, `gpu.adapter`); the caller adds the rest. */
export function kernelsOptionsFrom(config: Pick<Config, 'kernels' | 'gpu'>): KernelsOptions {
  const k = config.kernels;
  return {
    backend: k.backend,
    ...(config.gpu.adapter !== undefined ? { adapter: config.gpu.adapter } : {}),
    ...(k.cache !== undefined ? { cacheDir: k.cache } : {}),
    matmulBk: k.matmulBk === 32 ? 32 : 16,
  };
}

export function resolveKernelsOptions(o: KernelsOptions = {}): ResolvedKernelsOptions {
  const backend = o.backend ?? 'auto';
  if (!['auto', 'gpu', 'cpu'].includes(backend)) throw Errors.BAD_CONFIG('kernels.backend', `must be auto, gpu or cpu, got ${JSON.stringify(backend)}`);
  const cpuWorkers = o.cpuWorkers ?? 1;
  if (!Number.isInteger(cpuWorkers) || cpuWorkers < 0) throw Errors.BAD_CONFIG('kernels.cpuWorkers', `must be an integer ≥ 0, got ${cpuWorkers}`);
  const cpuThreads = o.cpuThreads ?? 0;
  if (!Number.isInteger(cpuThreads) || cpuThreads < 0) throw Errors.BAD_CONFIG('kernels.cpuThreads', `must be an integer ≥ 0, got ${cpuThreads}`);
  const cpuInlineMaxFlops = o.cpuInlineMaxFlops ?? 4_194_304;
  if (!(cpuInlineMaxFlops >= 0)) throw Errors.BAD_CONFIG('kernels.cpuInlineMaxFlops', `must be ≥ 0, got ${cpuInlineMaxFlops}`);
  const matmulBk = o.matmulBk ?? 16;
  if (matmulBk !== 16 && matmulBk !== 32) throw Errors.BAD_CONFIG('kernels.matmulBk', `must be 16 or 32, got ${JSON.stringify(matmulBk)}`);
  return {
    backend,
    adapter: o.adapter,
    cpuWorkers,
    cpuInlineMaxFlops,
    cpuThreads,
    ort: o.ort ?? true,
    autotune: o.autotune ?? true,
    cacheDir: o.cacheDir ?? defaultCacheDir(),
    matmulBk,
    checkInputs: o.checkInputs ?? true,
    logger: o.logger ?? defaultKernelsLogger(),
  };
}
