/**
 * Measured GPU/CPU crossover. Once per adapter (and CPU count) the autotune pass times each op
 * class on both backends at a few sizes and caches the curves on disk; the dispatcher then
 * predicts a step's time on each backend by interpolating the curves (log-log in the op's cost)
 * and runs it where it is predicted faster.
 */
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import type { OpClass } from './op.ts';
import type { Backend } from './step.ts';

export interface CurvePoint {
  /** Flops for matmul, bytes for the memory-bound classes. */
  cost: number;
  gpuMs: number;
  cpuMs: number;
}

export interface AutotuneTable {
  version: 1;
  adapter: string;
  cpus: number;
  createdAt: string;
  classes: Partial<Record<OpClass, CurvePoint[]>>;
}

/**
 * Where autotune tables go unless the caller says (`kernels.cache` in the config). Follows the
 * XDG base-directory convention, a property of the user's desktop session rather than a Shoal
 * setting, so it is read here and not through the config.
 */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'shoal', 'kernels');
}

export function tablePath(cacheDir: string, adapter: string): string {
  const slug = adapter.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
  return join(cacheDir, `autotune-v1-${slug}-${availableParallelism()}cpu.json`);
}

export async function loadTable(path: string): Promise<AutotuneTable | undefined> {
  try {
    const t = JSON.parse(await readFile(path, 'utf8')) as AutotuneTable;
    return t.version === 1 ? t : undefined;
  } catch {
    return undefined;
  }
}

export async function saveTable(path: string, t: AutotuneTable): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(t, null, 2));
  await rename(tmp, path);
}

/** Predicted milliseconds for `cost` on `backend`, from the class's measured curve. */
export function predictMs(points: readonly CurvePoint[] | undefined, backend: Backend, cost: number): number | undefined {
  if (!points || points.length === 0) return undefined;
  const ms = (p: CurvePoint): number => Math.max(1e-4, backend === 'gpu' ? p.gpuMs : p.cpuMs);
  const sorted = [...points].sort((a, b) => a.cost - b.cost);
  const first = sorted[0]!;
  const last = sorted[sorted.length - 1]!;
  if (cost <= first.cost) return ms(first);
  if (cost >= last.cost) return ms(last) * (cost / last.cost); // constant throughput beyond
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (cost <= b.cost) {
      const t = (Math.log(cost) - Math.log(a.cost)) / (Math.log(b.cost) - Math.log(a.cost));
      return Math.exp(Math.log(ms(a)) + t * (Math.log(ms(b)) - Math.log(ms(a))));
    }
  }
  return ms(last);
}

/** The smallest measured cost at which the GPU beat the CPU, per class (for logs and reports). */
export function crossovers(t: AutotuneTable): Partial<Record<OpClass, number | null>> {
  const out: Partial<Record<OpClass, number | null>> = {};
  for (const [cls, pts] of Object.entries(t.classes) as [OpClass, CurvePoint[]][]) {
    const win = [...pts].sort((a, b) => a.cost - b.cost).find((p) => p.gpuMs < p.cpuMs);
    out[cls] = win ? win.cost : null;
  }
  return out;
}
