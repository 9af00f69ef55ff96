/**
 * The worker thread a processor module runs on (processor.ts has what a module is, its checks,
 * its storage and how a replica uses it): the module is imported by a worker of its own, and
 * `pre`/`post` calls go to it as messages. A worker that dies fails what it had in flight and is
 * started again on the next call; a call the module has not answered in time fails and restarts it.
 */
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ShoalError } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import type { TensorData } from '../tensor.ts';

/** A tensor as a processor module sees and gives it. */
export interface ProcessorTensor {
  datatype: string;
  shape: number[];
  data: TensorData;
}
export type ProcessorTensors = Record<string, ProcessorTensor>;

/** What preprocess gets besides the inputs (and postprocess as `request.ctx`). */
export interface ProcessorContext {
  model: string;
  version: number;
  id: string | undefined;
}

/** The file extensions tsx loads (TypeScript or JavaScript, ES modules). */
export const PROCESSOR_FILENAME = /^[A-Za-z0-9_.-]{1,128}\.(ts|mts|js|mjs)$/;

const LOAD_TIMEOUT_MS = 30_000;

type FromWorker =
  | { type: 'loaded'; signature: unknown; preprocess: boolean; postprocess: boolean; exports: string[] }
  | { type: 'result'; id: number; tensors: unknown }
  | { type: 'error'; id: number; code: string; message: string };

/** What a module exports, as the worker found it. */
export interface LoadedModule {
  signature: unknown;
  preprocess: boolean;
  postprocess: boolean;
  exports: string[];
}

/**
 * One worker thread running one processor module: `pre` and `post` calls go to it as messages
 * (tensors are copied, not transferred: a module may hand back arrays it keeps). A worker that
 * dies fails what it had in flight and is started again on the next call.
 */
export class ProcessorHost {
  readonly #file: string;
  #worker: Worker | undefined;
  #loaded: Promise<LoadedModule> | undefined;
  #seq = 0;
  /** Calls awaiting their answer, each with the worker it went to. */
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; code: string; worker: Worker }>();
  #closed = false;

  readonly #callTimeoutMs: number;

  /**
   * `label` names the version in errors (`preprocess of <label> failed: …`). A call the module
   * has not answered within `callTimeoutMs` fails, and the worker is restarted (a module stuck in
   * a loop would otherwise hold every later request of the replica).
   */
  constructor(
    file: string,
    readonly label = file,
    opts: { callTimeoutMs?: number } = {},
  ) {
    this.#file = file;
    this.#callTimeoutMs = opts.callTimeoutMs ?? 30_000;
  }

  /** A module's error as the request's: SHOAL_ERR_PREPROCESS / POSTPROCESS naming the version, or a 400. */
  #error(code: string, message: string): ShoalError {
    if (code === MlErrors.BAD_INPUT.code) return MlErrors.BAD_INPUT(message);
    return code === MlErrors.POSTPROCESS.code ? MlErrors.POSTPROCESS(this.label, message) : MlErrors.PREPROCESS(this.label, message);
  }

  /** Starts the worker and imports the module (once; again after the worker died). */
  load(): Promise<LoadedModule> {
    if (this.#closed) return Promise.reject(MlErrors.PREPROCESS(this.#file, 'the processor is closed'));
    this.#loaded ??= this.#start();
    return this.#loaded;
  }

  #start(): Promise<LoadedModule> {
    const w = new Worker(new URL('./processor-worker.mjs', import.meta.url));
    this.#worker = w;
    w.unref();
    return new Promise<LoadedModule>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(MlErrors.BAD_MODEL(this.#file, `the processor module did not load within ${LOAD_TIMEOUT_MS} ms`));
        void w.terminate();
      }, LOAD_TIMEOUT_MS);
      let loaded = false;
      w.on('message', (m: FromWorker) => {
        if (!loaded) {
          clearTimeout(timer);
          if (m.type === 'loaded') {
            loaded = true;
            resolve({ signature: m.signature, preprocess: m.preprocess, postprocess: m.postprocess, exports: m.exports });
          } else reject(new ShoalError('SHOAL_ERR_BAD_MODEL', m.type === 'error' ? m.message : 'unexpected message from the processor worker', 400));
          return;
        }
        if (m.type === 'loaded') return;
        const p = this.#pending.get(m.id);
        if (!p) return;
        this.#pending.delete(m.id);
        if (m.type === 'result') p.resolve(m.tensors);
        else p.reject(this.#error(m.code === MlErrors.BAD_INPUT.code ? m.code : p.code, m.message));
      });
      const died = (why: string) => {
        clearTimeout(timer);
        this.#detach(w);
        if (!loaded) reject(MlErrors.BAD_MODEL(this.#file, `the processor worker stopped while loading: ${why}`));
        for (const [id, p] of this.#pending) {
          if (p.worker !== w) continue;
          this.#pending.delete(id);
          p.reject(this.#error(p.code, `the processor's worker stopped: ${why}`));
        }
      };
      w.on('error', (err) => died(err.message));
      w.on('exit', (code) => died(`exit code ${code}`));
      w.postMessage({ type: 'load', url: pathToFileURL(this.#file).href });
    });
  }

  /** Stops sending to `w`: the next call starts a new worker. */
  #detach(w: Worker): void {
    if (this.#worker !== w) return;
    this.#worker = undefined;
    this.#loaded = undefined;
  }

  /** Runs the module's preprocess (identity if it has none); the worker keeps the request for `post`. */
  async pre(id: number, inputs: ProcessorTensors, ctx: ProcessorContext): Promise<unknown> {
    return this.#call({ type: 'pre', id, inputs, ctx }, id, 'SHOAL_ERR_PREPROCESS');
  }

  /** Runs the module's postprocess on request `id`'s model outputs (identity if it has none). */
  async post(id: number, outputs: ProcessorTensors): Promise<unknown> {
    return this.#call({ type: 'post', id, outputs }, id, 'SHOAL_ERR_POSTPROCESS');
  }

  /** Drops what the worker keeps for a request that will not reach `post` (its batch failed). */
  forget(id: number): void {
    this.#worker?.postMessage({ type: 'forget', id });
  }

  nextId(): number {
    return ++this.#seq;
  }

  async #call(msg: unknown, id: number, code: string): Promise<unknown> {
    await this.load();
    const w = this.#worker;
    if (!w) throw this.#error(code, 'the processor worker is not running');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.#pending.delete(id)) return;
        reject(this.#error(code, `the module did not answer within ${this.#callTimeoutMs} ms (its worker is restarted)`));
        // Later calls go to a new worker at once; what else waits on this one fails as it exits.
        this.#detach(w);
        void w.terminate();
      }, this.#callTimeoutMs);
      timer.unref();
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      this.#pending.set(id, { resolve: settle(resolve), reject: settle(reject), code, worker: w });
      w.postMessage(msg);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const w = this.#worker;
    this.#worker = undefined;
    if (w) await w.terminate();
  }
}
