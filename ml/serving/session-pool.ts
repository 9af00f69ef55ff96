/**
 * A replica's onnxruntime sessions, each on its own worker thread (Triton's instance group:
 * `instances` sessions per replica). onnxruntime-node's `session.run` runs on the thread that
 * calls it, so a run on the actor's thread would stop its event loop — heartbeats, NATS I/O,
 * every other actor on the node — for as long as the batch takes. Here the event loop only posts
 * the feeds to an idle worker and gets the outputs back.
 *
 * Tensors cross the thread boundary without copies where they can: a typed array that is the
 * whole of its buffer (a batch the replica concatenated, an input decoded from JSON, an output
 * onnxruntime allocated) is transferred; a view into a larger buffer (an input read straight out
 * of a NATS message) is first copied to its own buffer, since transferring the larger one would
 * take it from whoever else holds it. String tensors (BYTES) are structured-cloned.
 *
 * The protocol (`WorkerRequest` / `WorkerReply`) is a discriminated union on `type`; errors cross
 * as plain `{ message }` data. The worker's entry (session-worker.mjs) registers tsx, so the
 * worker may load TypeScript modules.
 */
import type { Worker } from 'node:worker_threads';
import { keepSpareWorkers, takeWorker } from './spare-workers.ts';
import type { TensorData } from '../tensor.ts';

/** A tensor as it crosses the thread boundary: onnxruntime's element type name, dims and data. */
export interface PoolTensor {
  /** onnxruntime's type name (`float32`, `int64`, `string`, …). */
  type: string;
  dims: readonly number[];
  data: TensorData;
}

/** An input or output as the loaded session describes it: dims numbers, or symbolic names. */
export interface SessionValueInfo {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: (number | string)[];
}

export interface SessionOptions {
  /** onnxruntime intra-op threads of each session. @default 1 */
  intraOpThreads?: number;
}

/** Parent → worker. */
export type WorkerRequest =
  | { type: 'load'; model: Uint8Array | string; options: Required<SessionOptions> }
  | { type: 'run'; id: number; feeds: Record<string, PoolTensor> }
  | { type: 'release' };

/** Worker → parent. */
export type WorkerReply =
  | { type: 'loaded'; inputs: SessionValueInfo[]; outputs: SessionValueInfo[] }
  | { type: 'ran'; id: number; outputs: Record<string, PoolTensor> }
  | { type: 'failed'; id?: number; message: string }
  | { type: 'released' };

/** Buffers that can move to the other thread: those a typed array spans whole. */
export function transferables(tensors: Iterable<PoolTensor>): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const t of tensors) {
    const d = t.data;
    if (Array.isArray(d)) continue;
    const buf = d.buffer;
    if (buf instanceof ArrayBuffer && d.byteOffset === 0 && d.byteLength === buf.byteLength && !out.includes(buf)) out.push(buf);
  }
  return out;
}

/** A typed array that is a view into a larger buffer, copied to one of its own (so it can be transferred, and only its bytes travel). */
export function ownBuffer(t: PoolTensor): PoolTensor {
  const d = t.data;
  if (Array.isArray(d) || (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.buffer instanceof ArrayBuffer)) return t;
  return { ...t, data: d.slice() };
}

const WORKER_URL = new URL('./session-worker.mjs', import.meta.url);

/** Keeps `n` booted session workers ready in this process (spare-workers.ts): the next pool starts faster. */
export function keepSpareSessionWorkers(n: number): void {
  keepSpareWorkers(WORKER_URL, n);
}

/** One worker and its session. */
class Instance {
  readonly worker: Worker;
  /** Runs posted to the worker and not answered yet (at most {@link PIPELINE_DEPTH}). */
  inflight = 0;
  #next = 0;
  readonly #pending = new Map<number, { resolve: (o: Record<string, PoolTensor>) => void; reject: (e: Error) => void }>();
  #loaded: { resolve: (r: Extract<WorkerReply, { type: 'loaded' }>) => void; reject: (e: Error) => void } | undefined;
  #released: (() => void) | undefined;
  /** Set once the worker is gone: every later run fails with it. */
  dead: Error | undefined;

  constructor(
    readonly index: number,
    onExit: (i: Instance, err: Error) => void,
  ) {
    this.worker = takeWorker(WORKER_URL);
    this.worker.unref();
    this.worker.on('message', (m: WorkerReply) => this.#onMessage(m));
    const die = (err: Error) => {
      if (this.dead) return;
      this.dead = err;
      this.#loaded?.reject(err);
      this.#loaded = undefined;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
      this.#released?.();
      onExit(this, err);
    };
    this.worker.on('error', (err) => die(new Error(`session worker ${index} failed: ${err.message}`)));
    this.worker.on('exit', (code) => die(new Error(`session worker ${index} exited (code ${code})`)));
  }

  load(model: Uint8Array | string, options: Required<SessionOptions>): Promise<Extract<WorkerReply, { type: 'loaded' }>> {
    return new Promise((resolve, reject) => {
      this.#loaded = { resolve, reject };
      this.#post({ type: 'load', model, options });
    });
  }

  run(feeds: Record<string, PoolTensor>): Promise<Record<string, PoolTensor>> {
    if (this.dead) return Promise.reject(this.dead);
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const own: Record<string, PoolTensor> = {};
      for (const [k, t] of Object.entries(feeds)) own[k] = ownBuffer(t);
      this.#post({ type: 'run', id, feeds: own }, transferables(Object.values(own)));
    });
  }

  async release(): Promise<void> {
    if (this.dead) return;
    await new Promise<void>((resolve) => {
      this.#released = resolve;
      this.#post({ type: 'release' });
      // A worker stuck in a long run is not waited for.
      setTimeout(resolve, 5000).unref();
    });
    this.#released = undefined;
    await this.worker.terminate();
  }

  #post(m: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    try {
      this.worker.postMessage(m, transfer);
    } catch (err) {
      // Not transferable after all (a buffer the runtime keeps): send a copy.
      if (transfer.length === 0) throw err;
      this.worker.postMessage(m);
    }
  }

  #onMessage(m: WorkerReply): void {
    switch (m.type) {
      case 'loaded':
        this.#loaded?.resolve(m);
        this.#loaded = undefined;
        return;
      case 'ran': {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        p?.resolve(m.outputs);
        return;
      }
      case 'failed': {
        const err = new Error(m.message);
        if (m.id === undefined) {
          this.#loaded?.reject(err);
          this.#loaded = undefined;
          return;
        }
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        p?.reject(err);
        return;
      }
      case 'released':
        this.#released?.();
    }
  }
}

/**
 * Runs a session may have posted at once: one running, one waiting in its worker's queue, so the
 * worker starts the next batch as soon as it posts the last one's outputs instead of idling for
 * a round trip to the event loop (measured: a replica of a small model served ~20 % fewer
 * requests with one run at a time).
 */
export const PIPELINE_DEPTH = 2;

/**
 * `instances` sessions of one model, each on a worker thread. `run` takes the least busy one (or
 * waits for one: callers bound what runs at once — the batcher runs at most `instances ×
 * PIPELINE_DEPTH` batches).
 */
export class SessionPool {
  readonly #instances: Instance[];
  readonly #waiting: { resolve: (i: Instance) => void; reject: (e: Error) => void }[] = [];
  #closed = false;

  private constructor(
    instances: Instance[],
    readonly inputs: SessionValueInfo[],
    readonly outputs: SessionValueInfo[],
  ) {
    this.#instances = instances;
  }

  /**
   * Starts `instances` workers and loads the model in each (its bytes, or the path of a package's
   * graph); rejects with onnxruntime's message when a session cannot be created.
   * `onExit` hears of a worker that died after loading (the pool then fails every run on it).
   */
  static async create(model: Uint8Array | string, o: SessionOptions & { instances?: number; onExit?: (err: Error) => void } = {}): Promise<SessionPool> {
    const n = Math.max(1, o.instances ?? 1);
    let pool: SessionPool | undefined;
    const instances = Array.from({ length: n }, (_, i) =>
      new Instance(i, (_inst, err) => {
        if (!pool || pool.#closed) return;
        // No session left to wait for: the callers waiting for one fail now.
        if (pool.#instances.every((x) => x.dead)) for (const w of pool.#waiting.splice(0)) w.reject(err);
        o.onExit?.(err);
      }),
    );
    try {
      const loaded = await Promise.all(instances.map((inst) => inst.load(model, { intraOpThreads: o.intraOpThreads ?? 1 })));
      pool = new SessionPool(instances, loaded[0]!.inputs, loaded[0]!.outputs);
      return pool;
    } catch (err) {
      await Promise.all(instances.map((i) => i.worker.terminate().catch(() => undefined)));
      throw err;
    }
  }

  get size(): number {
    return this.#instances.length;
  }

  /** Sessions with a run posted to their worker and not answered yet. */
  get busy(): number {
    let n = 0;
    for (const i of this.#instances) if (i.inflight > 0) n++;
    return n;
  }

  /** Runs on the least busy session with room in its pipeline (waiting for one when all are full). */
  async run(feeds: Record<string, PoolTensor>): Promise<Record<string, PoolTensor>> {
    let inst: Instance | undefined;
    for (const i of this.#instances) if (!i.dead && i.inflight < PIPELINE_DEPTH && (!inst || i.inflight < inst.inflight)) inst = i;
    if (inst) inst.inflight++;
    else inst = await this.#idle();
    return this.#runOn(inst, feeds);
  }

  /** Runs the same feeds on every session, one after the other (warm-up: each session plans and allocates on its first runs). */
  async runEach(feeds: () => Record<string, PoolTensor>): Promise<void> {
    for (const inst of this.#instances) {
      while (inst.inflight > 0) await new Promise((r) => setImmediate(r));
      inst.inflight++;
      await this.#runOn(inst, feeds());
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.reject(new Error('the session pool is closed'));
    await Promise.all(this.#instances.map((i) => i.release().catch(() => undefined)));
  }

  /** Runs on `inst`, whose count the caller raised; then hands the place to the longest waiting caller, or frees it. */
  async #runOn(inst: Instance, feeds: Record<string, PoolTensor>): Promise<Record<string, PoolTensor>> {
    try {
      if (this.#closed) throw new Error('the session pool is closed');
      return await inst.run(feeds);
    } finally {
      const next = inst.dead ? undefined : this.#waiting.shift();
      if (next) next.resolve(inst);
      else inst.inflight--;
    }
  }

  #idle(): Promise<Instance> {
    const live = this.#instances.find((i) => !i.dead);
    if (!live) return Promise.reject(this.#instances[0]!.dead!);
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }
}
