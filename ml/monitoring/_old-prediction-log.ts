/**
 * A replica's prediction log (issue #15 item 1): sampled requests become {@link PredictionRecord}s
 * (one per row) in a bounded in-memory buffer, and a background flush publishes them in batches
 * ({@link PredictionBatch}, one JetStream message per batch) to `<prefix>.predictions.<model>`.
 *
 * Off the hot path by construction: a request only draws its sample, copies its own row values
 * out of its tensors (only when sampled, before the run takes the buffers) and pushes records
 * into the buffer; nothing here awaits, throws into, or slows a request. A full buffer drops the
 * record and counts it (`dropped`); a failed publish loses its batch and counts it
 * (`publishFailed`). Fields named in `logExclude` are skipped when the record is built, so their
 * values are never copied, let alone published.
 */
import { every, systemClock, type Clock } from '../../cluster/index.ts';
import { fromHalf, type Datatype, type TensorData } from '../tensor.ts';
import { MAX_COLUMNS_PER_INPUT, type FeatureValue, type MonitoringSpec, type OutputValue, type PredictionBatch, type PredictionRecord } from './records.ts';

/** Largest encoded batch message; a larger one is split (NATS' default max payload is 1 MiB). */
const MAX_BATCH_BYTES = 900 * 1024;

export interface PredictionLogOptions {
  model: string;
  version: number;
  spec: MonitoringSpec;
  /** Publishes one encoded batch (JetStream publish, resolving on the ack). */
  publish: (records: PredictionRecord[]) => Promise<void>;
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
}

/** A tensor as the log reads it. */
export interface LoggedTensor {
  name: string;
  datatype: Datatype;
  data: TensorData;
  dims: readonly number[];
}

/** A sampled request between its decode and its answer: its feature rows, taken before the run. */
export interface Pending {
  readonly id: string;
  readonly tenant: string | undefined;
  readonly rows: Record<string, FeatureValue>[];
  readonly t0: number;
}

export class PredictionLog {
  readonly #o: PredictionLogOptions;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #rate: number;
  readonly #exclude: Set<string>;
  readonly #capacity: number;
  readonly #batch: number;
  #buffer: PredictionRecord[] = [];
  #flushing = false;
  #drainAll = false;
  #failing = false;
  #closed = false;
  readonly #stopTimer: () => void;
  readonly #stats: PredictionLogStats = { sampled: 0, buffered: 0, published: 0, dropped: 0, publishFailed: 0, pending: 0, batches: 0 };

  constructor(o: PredictionLogOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#random = o.random ?? Math.random;
    this.#rate = o.spec.sampleRate ?? 1;
    this.#exclude = new Set(o.spec.logExclude ?? []);
    this.#capacity = o.spec.bufferRecords ?? 10_000;
    this.#batch = o.spec.batchRecords ?? 500;
    this.#stopTimer = every(this.#clock, o.spec.flushMs ?? 200, () => void this.flush());
  }

  stats(): PredictionLogStats {
    return { ...this.#stats, pending: this.#buffer.length };
  }

  /**
   * Draws the sample for one request and, when it is in, copies its feature rows (call before
   * the run: the run takes the input buffers). `requestId` falls back to a random id.
   */
  begin(inputs: readonly LoggedTensor[], requestId: string | undefined, tenant: string | undefined, t0: number): Pending | undefined {
    if (this.#closed || this.#rate <= 0 || (this.#rate < 1 && this.#random() >= this.#rate)) return undefined;
    this.#stats.sampled++;
    return { id: requestId ?? randomId(), tenant, rows: featureRows(inputs, this.#exclude), t0 };
  }

  /** The request's answer: one record per row into the buffer (or counted as dropped). `t1` on the same clock as `t0`. */
  end(p: Pending, outputs: readonly LoggedTensor[], t1: number): void {
    const n = p.rows.length;
    const outs = outputRows(outputs, n, this.#exclude);
    const ts = this.#clock.now();
    const latencyMs = Math.max(0, t1 - p.t0);
    for (let i = 0; i < n; i++) {
      if (this.#buffer.length >= this.#capacity) {
        this.#stats.dropped += n - i;
        break;
      }
      const r: PredictionRecord = { id: n === 1 ? p.id : `${p.id}:${i}`, model: this.#o.model, version: this.#o.version, ts, features: p.rows[i]!, outputs: outs[i]!, latencyMs };
      if (p.tenant !== undefined) r.tenant = p.tenant;
      this.#buffer.push(r);
      this.#stats.buffered++;
    }
    if (this.#buffer.length >= this.#batch) queueMicrotask(() => void this.flush(false));
  }

  /**
   * Publishes full batches; with `all` (the flush timer, close) the partial one too. One flush
   * runs at a time: a call meanwhile only widens what the running one publishes.
   */
  async flush(all = true): Promise<void> {
    if (all) this.#drainAll = true;
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#buffer.length >= this.#batch || (this.#drainAll && this.#buffer.length > 0)) {
        const batch = this.#buffer.splice(0, this.#batch);
        await this.#send(batch);
      }
      this.#drainAll = false;
    } finally {
      this.#flushing = false;
    }
  }

  async #send(batch: PredictionRecord[]): Promise<void> {
    try {
      await this.#o.publish(batch);
      this.#stats.published += batch.length;
      this.#stats.batches++;
      this.#failing = false;
    } catch (err) {
      this.#stats.publishFailed += batch.length;
      if (!this.#failing) this.#o.onPublishError?.(err as Error, batch.length);
      this.#failing = true;
    }
  }

  /** Stops the timer and publishes what is left. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stopTimer();
    await this.flush();
  }
}

/** Splits records into messages under the size limit: `encode(batch)` for each part. */
export function encodeBatches(records: PredictionRecord[], encode: (b: PredictionBatch) => Uint8Array): Uint8Array[] {
  const bytes = encode({ records });
  if (bytes.length <= MAX_BATCH_BYTES || records.length === 1) return [bytes];
  const half = records.length >> 1;
  return [...encodeBatches(records.slice(0, half), encode), ...encodeBatches(records.slice(half), encode)];
}

const randomId = (): string => crypto.randomUUID();

/** The number of rows of a request: the shared first dimension of its inputs, else 1. */
export function rowCount(tensors: readonly LoggedTensor[]): number {
  const first = tensors[0]?.dims;
  if (!first || first.length === 0) return 1;
  const n = first[0]!;
  return n >= 1 && tensors.every((t) => t.dims.length > 0 && t.dims[0] === n) ? n : 1;
}

function valueOf(datatype: Datatype, data: TensorData, i: number): FeatureValue {
  const v = data[i];
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v === undefined) return null;
  if (datatype === 'BOOL') return v !== 0;
  if (datatype === 'FP16') return fromHalf(v);
  return Number.isFinite(v) ? v : null;
}

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

/** One output map per row (`n` rows when the output's first dimension is `n`, else the whole output in row 0… every row). */
export function outputRows(outputs: readonly LoggedTensor[], n: number, exclude: ReadonlySet<string>): Record<string, OutputValue>[] {
  const rows: Record<string, OutputValue>[] = Array.from({ length: n }, () => ({}));
  for (const t of outputs) {
    if (exclude.has(t.name)) continue;
    const split = n > 1 && t.dims.length > 0 && t.dims[0] === n;
    const per = split ? Math.floor(t.data.length / n) : t.data.length;
    for (let r = 0; r < n; r++) {
      const off = split ? r * per : 0;
      const vals: FeatureValue[] = [];
      for (let k = 0; k < per; k++) vals.push(valueOf(t.datatype, t.data, off + k));
      rows[r]![t.name] = outputValue(vals);
    }
  }
  return rows;
}

function outputValue(vals: FeatureValue[]): OutputValue {
  if (vals.length === 1) {
    const v = vals[0];
    return typeof v === 'string' ? v : typeof v === 'number' ? v : v === true ? 1 : v === false ? 0 : NaN;
  }
  if (vals.some((v) => typeof v === 'string')) return JSON.stringify(vals);
  return vals.map((v) => (typeof v === 'number' ? v : v === true ? 1 : v === false ? 0 : NaN));
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
export function observeBegin(log: PredictionLog | undefined, sig: SignatureLike, d: { inputs: TensorData[]; shapes: number[][] }, requestId: string | undefined, tenant: string | undefined, t0: number): Pending | undefined {
  if (!log) return undefined;
  try {
    return log.begin(
      sig.inputs.map((spec, i) => ({ name: spec.name, datatype: spec.datatype, data: d.inputs[i]!, dims: d.shapes[i]! })),
      requestId,
      tenant,
      t0,
    );
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
