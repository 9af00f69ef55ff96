/**
 * Dynamic batching with Triton's semantics: requests (each with a row count) queue up; a batch
 * is dispatched at once when the queue holds `maxBatchSize` rows, otherwise when the oldest
 * request has waited `maxQueueDelayMs` — so the batcher waits only when a full batch cannot be
 * formed. A batch takes as many queued requests (in arrival order, same shape key) as fit in
 * `maxBatchSize` rows; a single request larger than that runs alone. At most `maxInflight`
 * batches run at once (one model instance = 1), so while one runs the next one fills up.
 *
 * With `maxQueueDelayMs = 0` the dispatch still happens on `setImmediate`, after the messages
 * that arrived in the same socket read have been queued: batching at no added latency.
 *
 * The queue is bounded by `maxQueueRows`; past it `submit` refuses at once.
 */
import { monotonicClock, type Clock } from '../../cluster/index.ts';

export interface BatcherOptions {
  /** @default 32 */
  maxBatchSize?: number;
  /** @default 0 */
  maxQueueDelayMs?: number;
  /** @default 1 */
  maxInflight?: number;
  /** @default 4096 */
  maxQueueRows?: number;
  /** The error `submit` throws when the queue is full. */
  onFull?: (queuedRows: number) => Error;
  /** Time and timers (tests pass a `VirtualClock`). @default monotonicClock */
  clock?: Clock;
}

interface Pending<I, O> {
  input: I;
  rows: number;
  key: string;
  at: number;
  resolve: (o: BatchOutput<O>) => void;
  reject: (e: unknown) => void;
}

export interface BatchOutput<O> {
  value: O;
  /** Rows in the batch this request ran in. */
  batch: number;
}

/** Runs one batch: returns one output per input, in order. */
export type RunBatch<I, O> = (inputs: I[], rows: number) => Promise<O[]>;

export interface BatcherStats {
  batches: number;
  requests: number;
  rows: number;
  avgBatchSize: number;
  maxBatchSeen: number;
  queueRows: number;
  inflight: number;
}

export class DynamicBatcher<I, O> {
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  readonly #maxInflight: number;
  readonly #maxQueueRows: number;
  readonly #onFull: (rows: number) => Error;
  readonly #clock: Clock;
  readonly #run: RunBatch<I, O>;
  #queue: Pending<I, O>[] = [];
  #queueRows = 0;
  #inflight = 0;
  /** Cancels the pending delay timer. */
  #timer: (() => void) | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #closed = false;
  #batches = 0;
  #requests = 0;
  #rows = 0;
  #maxBatchSeen = 0;

  constructor(run: RunBatch<I, O>, opts: BatcherOptions = {}) {
    this.#run = run;
    this.maxBatchSize = opts.maxBatchSize ?? 32;
    this.maxQueueDelayMs = opts.maxQueueDelayMs ?? 0;
    this.#maxInflight = opts.maxInflight ?? 1;
    this.#maxQueueRows = opts.maxQueueRows ?? 4096;
    this.#onFull = opts.onFull ?? ((rows) => new Error(`batch queue full (${rows} rows)`));
    this.#clock = opts.clock ?? monotonicClock;
    if (!(this.maxBatchSize >= 1)) throw new RangeError('maxBatchSize must be ≥ 1');
  }

  /** Queues a request of `rows` rows; `key` groups requests whose tensors can be concatenated. */
  submit(input: I, rows: number, key = ''): Promise<BatchOutput<O>> {
    if (this.#closed) return Promise.reject(new Error('batcher closed'));
    if (this.#queueRows + rows > this.#maxQueueRows && this.#queue.length > 0) return Promise.reject(this.#onFull(this.#queueRows));
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, rows, key, at: this.#clock.now(), resolve, reject });
      this.#queueRows += rows;
      this.#schedule();
    });
  }

  stats(): BatcherStats {
    return {
      batches: this.#batches,
      requests: this.#requests,
      rows: this.#rows,
      avgBatchSize: this.#batches ? this.#rows / this.#batches : 0,
      maxBatchSeen: this.#maxBatchSeen,
      queueRows: this.#queueRows,
      inflight: this.#inflight,
    };
  }

  get queueRows(): number {
    return this.#queueRows;
  }

  /** Refuses what is queued and stops scheduling. */
  close(err: Error = new Error('batcher closed')): void {
    this.#closed = true;
    this.#clearTimers();
    for (const p of this.#queue.splice(0)) p.reject(err);
    this.#queueRows = 0;
  }

  #clearTimers(): void {
    this.#timer?.();
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  #schedule(): void {
    if (this.#closed || this.#queue.length === 0 || this.#inflight >= this.#maxInflight) return;
    if (this.#queueRows >= this.maxBatchSize) {
      this.#clearTimers();
      this.#dispatch();
      return;
    }
    const oldest = this.#queue[0]!;
    const waitMs = oldest.at + this.maxQueueDelayMs - this.#clock.now();
    if (waitMs <= 0) {
      // Due now; still let the messages of this I/O turn join the batch.
      if (!this.#immediate) {
        this.#immediate = setImmediate(() => {
          this.#immediate = undefined;
          this.#timer?.();
          this.#timer = undefined;
          this.#dispatchAll();
        });
      }
      return;
    }
    if (!this.#timer) {
      this.#timer = this.#clock.after(Math.max(1, Math.ceil(waitMs)), () => {
        this.#timer = undefined;
        this.#schedule();
      });
    }
  }

  #dispatchAll(): void {
    while (this.#queue.length > 0 && this.#inflight < this.#maxInflight) this.#dispatch();
  }

  /** Takes the largest batch that fits (same key as the oldest request) and runs it. */
  #dispatch(): void {
    const first = this.#queue[0];
    if (!first) return;
    const taken: Pending<I, O>[] = [];
    let rows = 0;
    const rest: Pending<I, O>[] = [];
    for (const p of this.#queue) {
      if (p.key === first.key && (taken.length === 0 || rows + p.rows <= this.maxBatchSize)) {
        taken.push(p);
        rows += p.rows;
      } else rest.push(p);
      if (rows >= this.maxBatchSize) {
        // Keep the remainder in order without scanning further.
        rest.push(...this.#queue.slice(taken.length + rest.length));
        break;
      }
    }
    this.#queue = rest;
    this.#queueRows -= rows;
    this.#inflight++;
    this.#batches++;
    this.#requests += taken.length;
    this.#rows += rows;
    if (rows > this.#maxBatchSeen) this.#maxBatchSeen = rows;
    void this.#run(
      taken.map((p) => p.input),
      rows,
    )
      .then(
        (outs) => {
          for (let i = 0; i < taken.length; i++) taken[i]!.resolve({ value: outs[i]!, batch: rows });
        },
        (err: unknown) => {
          for (const p of taken) p.reject(err);
        },
      )
      .finally(() => {
        this.#inflight--;
        this.#schedule();
      });
  }
}
