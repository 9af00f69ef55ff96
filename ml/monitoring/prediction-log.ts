/**
 * A replica's prediction log (issue #15 item 1): sampled requests become {@link PredictionRecord}s
 * (one per row), published in columnar batches ({@link ColumnarBatch}, one JetStream message per
 * batch) to `<prefix>.predictions.<model>`; with a reference profile, every request (sampled or
 * not) is also summarised into the replica's own mergeable profile (replica-profile.ts), whose
 * deltas go to the same subject.
 *
 * Off the hot path by construction: a request only draws its sample and copies its own tensors
 * (typed-array copies, taken before the run takes the buffers, outputs after) into a bounded
 * queue; nothing here awaits, throws into, or slows a request. Building the columns, profiling
 * and encoding happen once per publish batch, in the flush (a timer, or a microtask when a batch
 * is full), not in any request's path. A full buffer drops the request's records and counts them
 * (`dropped`); a failed publish loses its batch and counts it (`publishFailed`). Fields named in
 * `logExclude` are skipped when a request is copied, so their values never reach a message.
 */
import { every, systemClock, type Clock } from '../../cluster/index.ts';
import type { Datatype, TensorData } from '../tensor.ts';
import { buildBatch, elementValue, sameShape, type CapturedRequest, type CapturedTensor, type ColumnarBatch } from './columnar.ts';
import { locatable } from './prediction-lookup.ts';
import { splitProfile, type ProfileMessage, type ReplicaProfiler } from './replica-profile.ts';
import { MAX_COLUMNS_PER_INPUT, type FeatureValue, type MonitoringSpec } from './records.ts';

/**
 * What a published message holds, for readers that look at headers only (the label join,
 * feedback.ts): a record batch — its row count, and how many of its requests' ids may not be
 * found by their time (prediction-lookup.ts; such a batch is read whole and those ids indexed) —
 * or a profile delta.
 */
export type LogMessageMeta = { kind: 'records'; records: number; unlocatable: number } | { kind: 'profile' };

/**
 * An id is counted as unlocatable when its time is this close to the end of the window in which
 * the join looks for it, or past it: the batch is stored a little after it is published.
 */
const PUBLISH_SLACK_MS = 3000;

/** Largest encoded batch message; a larger one is split (NATS' default max payload is 1 MiB). */
export const MAX_BATCH_BYTES = 900 * 1024;

export interface PredictionLogOptions {
  model: string;
  version: number;
  spec: MonitoringSpec;
  /**
   * Publishes one encoded message (JetStream publish, resolving on the ack), with what it is
   * ({@link LogMessageMeta}: the replica puts it in headers for the label join).
   */
  publish: (bytes: Uint8Array, meta: LogMessageMeta) => Promise<void>;
  /** Encodes a batch or a profile delta (MessagePack). */
  encode: (m: ColumnarBatch | ProfileMessage) => Uint8Array;
  /** The replica's own profile of all its traffic (absent: no reference profile, or `profiles: false`). */
  profiler?: ReplicaProfiler;
  /** Record timestamps and the flush timer; `now()` in epoch ms. @default systemClock */
  clock?: Clock;
  /** The sample draw, uniform in [0, 1). @default Math.random */
  random?: () => number;
  /** Told once per failure streak (a log line), never per record. */
  onPublishError?: (err: Error, lost: number) => void;
}

export interface PredictionLogStats {
  /** Requests drawn into the sample. */
  sampled: number;
  /** Records accepted into the buffer. */
  buffered: number;
  /** Records published (acknowledged by the stream). */
  published: number;
  /** Records dropped because the buffer was full. */
  dropped: number;
  /** Records lost to failed publishes. */
  publishFailed: number;
  /** Records waiting in the buffer now. */
  pending: number;
  /** Batch messages published. */
  batches: number;
  /** Rows summarised into the replica's profile (every request's, sampled or not). */
  profiled: number;
  /** Rows left out of the profile because its queue was full. */
  unprofiled: number;
  /** Profile delta messages published. */
  profiles: number;
  /** Requests of hedged copies answered but not logged or profiled (their first copy was). */
  hedged: number;
}

/** A tensor as the log reads it. */
export interface LoggedTensor {
  name: string;
  datatype: Datatype;
  data: TensorData;
  dims: readonly number[];
}

/** A request between its decode and its answer: its copied inputs, taken before the run. */
export interface Pending {
  readonly id: string;
  readonly tenant: string | undefined;
  readonly rows: number;
  readonly inputs: CapturedTensor[];
  readonly sampled: boolean;
  readonly t0: number;
  /** Per row, the hashed entity keys of a prediction by entity (for erasure). */
  entityRefs?: string[][];
  /** Per row, the groups of a prediction by entity (the views' sensitive features). */
  groups?: (Record<string, string> | null)[];
}

/** Requests profiled and moved per turn of the event loop when a flush drains its queue. */
export const PROCESS_CHUNK = 64;

export class PredictionLog {
  readonly #o: PredictionLogOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #rate: number;
  readonly #exclude: Set<string>;
  readonly #capacity: number;
  readonly #batch: number;
  readonly #profileMs: number;
  /** Answered requests not processed yet (profile, records). */
  #queue: CapturedRequest[] = [];
  /** Rows in `#queue` that are sampled (records) and that are profile-only. */
  #queuedRecords = 0;
  #queuedProfile = 0;
  /** Sampled requests processed, waiting for their batch to be published. */
  #records: CapturedRequest[] = [];
  #recordRows = 0;
  #profiledAt = 0;
  #flushing = false;
  #drainAll = false;
  #failing = false;
  #closed = false;
  readonly #stopTimer: () => void;
  readonly #stats: PredictionLogStats = { sampled: 0, buffered: 0, published: 0, dropped: 0, publishFailed: 0, pending: 0, batches: 0, profiled: 0, unprofiled: 0, profiles: 0, hedged: 0 };

  constructor(o: PredictionLogOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#random = o.random ?? Math.random;
    this.#rate = o.spec.sampleRate ?? 1;
    this.#exclude = new Set(o.spec.logExclude ?? []);
    this.#capacity = o.spec.bufferRecords ?? 10_000;
    this.#batch = o.spec.batchRecords ?? 500;
    this.#profileMs = o.spec.profileMs ?? 5000;
    this.#profiledAt = this.#clock.now();
    this.#stopTimer = every(this.#clock, o.spec.flushMs ?? 200, () => void this.flush());
  }

  /** Counts requests of a hedged copy, answered without the log. */
  countHedged(requests: number): void {
    this.#stats.hedged += requests;
  }

  stats(): PredictionLogStats {
    return { ...this.#stats, pending: this.#queuedRecords + this.#recordRows };
  }

  /**
   * Draws the sample for one request and copies its inputs when it is in the sample or the
   * replica profiles its traffic (call before the run: the run takes the input buffers).
   * `requestId` falls back to a random id.
   */
  begin(inputs: readonly LoggedTensor[], requestId: string | undefined, tenant: string | undefined, t0: number): Pending | undefined {
    if (this.#closed) return undefined;
    const sampled = this.#rate > 0 && (this.#rate >= 1 || this.#random() < this.#rate);
    if (!sampled && !this.#o.profiler) return undefined;
    if (sampled) this.#stats.sampled++;
    const rows = rowCount(inputs);
    return { id: requestId ?? randomId(), tenant, rows, inputs: capture(inputs, rows, this.#exclude, true), sampled, t0 };
  }

  /** The request's answer: its records (and profile rows) queued, or counted as dropped. `t1` on the same clock as `t0`. */
  end(p: Pending, outputs: readonly LoggedTensor[], t1: number): void {
    const n = p.rows;
    const held = this.#queuedRecords + this.#recordRows;
    let sampled = p.sampled;
    if (sampled && held + n > this.#capacity) {
      this.#stats.dropped += n;
      sampled = false;
    }
    const profiled = this.#o.profiler !== undefined && this.#queuedProfile + n <= this.#capacity;
    if (this.#o.profiler && !profiled) this.#stats.unprofiled += n;
    if (!sampled && !profiled) return;
    const req: CapturedRequest = { id: p.id, tenant: p.tenant, rows: n, ts: this.#clock.now(), latencyMs: Math.max(0, t1 - p.t0), inputs: p.inputs, outputs: capture(outputs, n, this.#exclude, false), sampled, profiled, ...(p.entityRefs ? { entityRefs: p.entityRefs } : {}), ...(p.groups ? { groups: p.groups } : {}) };
    this.#queue.push(req);
    if (sampled) {
      this.#queuedRecords += n;
      this.#stats.buffered += n;
    }
    if (profiled) this.#queuedProfile += n;
    if (this.#queuedRecords + this.#recordRows >= this.#batch || this.#queuedProfile >= this.#batch) queueMicrotask(() => void this.flush(false));
  }

  /**
   * Processes the queue (profile, records) and publishes: the profile deltas of ended slices
   * (and of the open one every `profileMs`, or with `all`), then full record batches; with `all`
   * (the flush timer, close) the partial batch too. One flush runs at a time: a call meanwhile
   * only widens what the running one publishes.
   */
  async flush(all = true): Promise<void> {
    if (all) this.#drainAll = true;
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      await this.#drain();
      const now = this.#clock.now();
      const profiler = this.#o.profiler;
      if (profiler) {
        const periodic = this.#drainAll && now - this.#profiledAt >= this.#profileMs;
        if (periodic || this.#closed) this.#profiledAt = now;
        for (const m of profiler.take(now, periodic || this.#closed)) await this.#sendProfile(m);
      }
      while (this.#recordRows >= this.#batch || (this.#drainAll && this.#recordRows > 0)) {
        await this.#send(this.#takeBatch());
        await this.#drain();
      }
      this.#drainAll = false;
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * Moves the requests queued now into the profile and the record list, {@link PROCESS_CHUNK} at
   * a time with a turn of the event loop between chunks: profiling a flush's worth of requests in
   * one go held a busy replica's loop for milliseconds (~10 µs a request, 1,000 requests a flush),
   * and every request waiting on that replica — and the processes waiting on them — stalled.
   */
  async #drain(): Promise<void> {
    let left = this.#queue.length;
    while (left > 0) {
      const n = Math.min(left, PROCESS_CHUNK);
      this.#process(n);
      left -= n;
      if (left > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Moves the first `n` queued requests into the profile and the record list. */
  #process(n: number): void {
    const q = this.#queue;
    let take: CapturedRequest[];
    if (n >= q.length) {
      take = q;
      this.#queue = [];
    } else take = q.splice(0, n);
    const profiler = this.#o.profiler;
    for (const r of take) {
      if (r.sampled) this.#queuedRecords -= r.rows;
      if (r.profiled) this.#queuedProfile -= r.rows;
      if (profiler && r.profiled) {
        try {
          profiler.add(r);
          this.#stats.profiled += r.rows;
        } catch {
          this.#stats.unprofiled += r.rows;
        }
      }
      if (r.sampled) {
        this.#records.push(r);
        this.#recordRows += r.rows;
      }
    }
  }

  /** The next batch: requests in order, up to `batchRecords` rows, all of one shape. */
  #takeBatch(): CapturedRequest[] {
    const list = this.#records;
    let rows = 0;
    let n = 0;
    while (n < list.length) {
      const r = list[n]!;
      if (n > 0 && (rows + r.rows > this.#batch || !sameShape(r, list[0]!))) break;
      n++;
      rows += r.rows;
    }
    this.#recordRows -= rows;
    // One splice for the batch (shift() per request copies the rest of the list each time).
    return list.splice(0, n);
  }

  async #send(reqs: CapturedRequest[]): Promise<void> {
    let rows = 0;
    for (const r of reqs) rows += r.rows;
    try {
      const storedBy = this.#clock.now() + PUBLISH_SLACK_MS;
      const parts = splitEncoded(reqs, (part) => this.#o.encode(buildBatch(this.#o.model, this.#o.version, part)));
      for (const part of parts) {
        let records = 0;
        let unlocatable = 0;
        for (const r of part.items) {
          records += r.rows;
          if (!locatable(r.id, storedBy)) unlocatable++;
        }
        await this.#o.publish(part.bytes, { kind: 'records', records, unlocatable });
      }
      this.#stats.published += rows;
      this.#stats.batches += parts.length;
      this.#failing = false;
    } catch (err) {
      this.#stats.publishFailed += rows;
      if (!this.#failing) this.#o.onPublishError?.(err as Error, rows);
      this.#failing = true;
    }
  }

  async #sendProfile(m: ProfileMessage): Promise<void> {
    try {
      for (const bytes of splitProfile(m, this.#o.encode, MAX_BATCH_BYTES)) await this.#o.publish(bytes, { kind: 'profile' });
      this.#stats.profiles++;
    } catch (err) {
      if (!this.#failing) this.#o.onPublishError?.(err as Error, 0);
      this.#failing = true;
    }
  }

  /** Stops the timer and publishes what is left (the profile's open slices too). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopTimer();
    await this.flush();
  }
}

/** Encodes `items` as one message, or splits them in halves until each part is under the size limit. */
export function encodeSplit<T>(items: T[], encode: (items: T[]) => Uint8Array, maxBytes = MAX_BATCH_BYTES): Uint8Array[] {
  return splitEncoded(items, encode, maxBytes).map((p) => p.bytes);
}

/** {@link encodeSplit}, each message with the items it holds. */
export function splitEncoded<T>(items: T[], encode: (items: T[]) => Uint8Array, maxBytes = MAX_BATCH_BYTES): { bytes: Uint8Array; items: T[] }[] {
  const bytes = encode(items);
  if (bytes.length <= maxBytes || items.length === 1) return [{ bytes, items }];
  const half = items.length >> 1;
  return [...splitEncoded(items.slice(0, half), encode, maxBytes), ...splitEncoded(items.slice(half), encode, maxBytes)];
}

/**
 * Copies the tensors a request logs: inputs (`rows` per request) by rows, wider ones (images) and
 * excluded names left out; outputs (`inputs` false) split by rows when their first dimension is
 * `rows`, else whole (every row gets the whole output).
 */
function capture(tensors: readonly LoggedTensor[], rows: number, exclude: ReadonlySet<string>, inputs: boolean): CapturedTensor[] {
  const out: CapturedTensor[] = [];
  for (const t of tensors) {
    if (exclude.has(t.name)) continue;
    const split = inputs || (rows > 1 && t.dims.length > 0 && t.dims[0] === rows);
    const per = !split || rows === 1 ? t.data.length : Math.floor(t.data.length / rows);
    if (per === 0 || (inputs && per > MAX_COLUMNS_PER_INPUT)) continue;
    let cols: number[] | undefined;
    if (inputs && exclude.size > 0 && per > 1) {
      const kept = Array.from({ length: per }, (_, k) => k).filter((k) => !exclude.has(`${t.name}_${k}`));
      if (kept.length === 0) continue;
      if (kept.length < per) cols = kept;
    }
    // The values are copied (the run takes the inputs' buffers); excluded columns are zeroed in the copy, never read again.
    const data = (cols ? maskedCopy(t.data, per, cols) : t.data.slice(0, split ? per * rows : t.data.length)) as TensorData;
    out.push({ name: t.name, datatype: t.datatype, data, per, cols, whole: !split });
  }
  return out;
}

/** A copy of `data` (rows of `per`) with the elements not in `cols` blanked: an excluded value never leaves the request. */
function maskedCopy(data: TensorData, per: number, cols: number[]): TensorData {
  const copy = data.slice() as TensorData;
  const keep = new Set(cols);
  for (let i = 0; i < copy.length; i++) {
    if (keep.has(i % per)) continue;
    if (Array.isArray(copy)) copy[i] = '';
    else if (copy instanceof BigInt64Array || copy instanceof BigUint64Array) copy[i] = 0n;
    else (copy as Float32Array)[i] = 0;
  }
  return copy;
}

const randomId = (): string => crypto.randomUUID();

/** The number of rows of a request: the shared first dimension of its inputs, else 1. */
export function rowCount(tensors: readonly LoggedTensor[]): number {
  const first = tensors[0]?.dims;
  if (!first || first.length === 0) return 1;
  const n = first[0]!;
  return n >= 1 && tensors.every((t) => t.dims.length > 0 && t.dims[0] === n) ? n : 1;
}

const valueOf = elementValue;

/** One feature map per row: `<input>` for a one-element row, `<input>_<i>` otherwise; excluded names skipped. */
export function featureRows(inputs: readonly LoggedTensor[], exclude: ReadonlySet<string>): Record<string, FeatureValue>[] {
  const n = rowCount(inputs);
  const rows: Record<string, FeatureValue>[] = Array.from({ length: n }, () => ({}));
  for (const t of inputs) {
    if (exclude.has(t.name)) continue;
    const per = n === 1 ? t.data.length : Math.floor(t.data.length / n);
    if (per > MAX_COLUMNS_PER_INPUT || per === 0) continue;
    const names = per === 1 ? [t.name] : Array.from({ length: per }, (_, k) => `${t.name}_${k}`);
    for (let r = 0; r < n; r++) {
      const row = rows[r]!;
      for (let k = 0; k < per; k++) {
        const name = names[k]!;
        if (exclude.has(name)) continue;
        row[name] = valueOf(t.datatype, t.data, r * per + k);
      }
    }
  }
  return rows;
}

/** The shape a serving actor hands the log: its public signature's tensor specs. */
interface SignatureLike {
  inputs: readonly { name: string; datatype: Datatype }[];
  outputs: readonly { name: string; datatype: Datatype }[];
}

/**
 * Starts observing one decoded request for `log` (none: monitoring off). Never throws: a record
 * that cannot be built is a request not logged, not a request failed.
 */
export function observeBegin(log: PredictionLog | undefined, sig: SignatureLike, d: { inputs: TensorData[]; shapes: number[][]; entityRefs?: string[][]; groups?: (Record<string, string> | null)[] }, requestId: string | undefined, tenant: string | undefined, t0: number): Pending | undefined {
  if (!log) return undefined;
  try {
    const p = log.begin(
      sig.inputs.map((spec, i) => ({ name: spec.name, datatype: spec.datatype, data: d.inputs[i]!, dims: d.shapes[i]! })),
      requestId,
      tenant,
      t0,
    );
    if (p && d.entityRefs) p.entityRefs = d.entityRefs;
    if (p && d.groups) p.groups = d.groups;
    return p;
  } catch {
    return undefined;
  }
}

/** Ends observing a request with its outputs (by name); never throws. */
export function observeEnd(log: PredictionLog | undefined, p: Pending | undefined, sig: SignatureLike, outputs: ReadonlyMap<string, { data: TensorData; dims: readonly number[] }>): void {
  if (!log || !p) return;
  try {
    const outs: LoggedTensor[] = [];
    for (const spec of sig.outputs) {
      const t = outputs.get(spec.name);
      if (t) outs.push({ name: spec.name, datatype: spec.datatype, data: t.data, dims: t.dims });
    }
    log.end(p, outs, performance.now());
  } catch {
    /* a record not logged, never a request failed */
  }
}
