/**
 * One piscina pool per node for CPU-heavy work, so actors' event loop stays free. Tasks name a
 * module and an exported function; the worker imports it (TypeScript through tsx, which the
 * worker registers itself).
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { Errors, ShoalError } from '../cluster/index.ts';

export interface WorkerPoolOptions {
  /** 0 = cores − 1, at least 1. @default 0 */
  threads?: number;
  /** Tasks waiting beyond this are refused (no unbounded queue). @default 1000 */
  maxQueue?: number;
}

export class WorkerPool {
  readonly #pool: Piscina;
  /** Tasks running or queued in the pool now, and done since start. */
  #active = 0;
  #completed = 0;

  constructor(opts: WorkerPoolOptions = {}) {
    const threads = opts.threads && opts.threads > 0 ? opts.threads : Math.max(1, availableParallelism() - 1);
    this.#pool = new Piscina({
      filename: new URL('./task-worker.mjs', import.meta.url).href,
      minThreads: 0,
      maxThreads: threads,
      maxQueue: opts.maxQueue ?? 1000,
      idleTimeout: 30_000,
    });
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  get queueSize(): number {
    return this.#pool.queueSize;
  }

  /** Most threads the pool grows to. */
  get maxThreads(): number {
    return this.#pool.options.maxThreads as number;
  }

  /** Tasks running on a thread now (submitted, not finished, not queued). */
  get busy(): number {
    return Math.max(0, this.#active - this.#pool.queueSize);
  }

  get completed(): number {
    return this.#completed;
  }

  async run<R = unknown>(moduleUrl: string, fn: string, args: unknown): Promise<R> {
    this.#active++;
    try {
      return (await this.#pool.run({ moduleUrl, fn, args })) as R;
    } catch (err) {
      if (err instanceof ShoalError) throw err;
      const e = err as { code?: string; message?: string };
      if (/queue is at limit/i.test(e.message ?? '')) throw Errors.MAILBOX_FULL('worker-pool', this.#pool.options.maxQueue as number);
      throw Errors.INTERNAL(`worker task ${fn} failed: ${e.message ?? String(err)}`);
    } finally {
      this.#active--;
      this.#completed++;
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
