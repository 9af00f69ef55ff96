/**
 * How the label join (feedback.ts) finds a logged prediction again without writing an index
 * entry for every request — the KV put per record was what logging at 100 % cost serving
 * (one JetStream write per request on nats-server, one encode and put on the scheduler; see
 * bench/results/monitoring.md).
 *
 * - **Request ids carry their time.** The gateway makes UUIDv7 ids (RFC 9562: the first 48 bits
 *   are the epoch ms). A record whose batch was stored close to its id's time
 *   ({@link locatable}) is found by reading the model's prediction log from a little before that
 *   time ({@link locateByTime}); only the others — a caller's own ids, batches stored late (a
 *   replica that lagged, records republished by erasure) — get an index entry.
 * - **Recent batches stay in memory.** Most labels of a live product come while their batch is
 *   among the last {@link RecentPredictions} the join consumed, so the common case reads nothing.
 *   A record found there is joined only after its batch is confirmed still stored (erasure deletes
 *   batches; a cached copy must not bring an erased record back).
 * - **The join reads headers, not batches.** A replica's message says in its headers what it is
 *   ({@link logHeaders}: records and how many, or a profile delta) and how many of its requests'
 *   ids cannot be found by their time. The join's consumer takes headers only; it reads a batch
 *   whole ({@link readBatch}) only when it must index some of its ids, when labels are waiting
 *   for a prediction, or when the headers are missing (another writer; erasure's republished
 *   batches). At 100 % logging, delivering and decoding every batch to the join was ~10 µs of
 *   CPU per request on a 2-core machine (bench/results/monitoring.md).
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { ContentType, decode, type NatsConnection } from '../../cluster/index.ts';
import type { LogMessageMeta } from './prediction-log.ts';
import { batchRecords } from './columnar.ts';
import { isProfileMessage } from './replica-profile.ts';
import type { PredictionRecord } from './records.ts';

/** A batch may be stored this long before its id's time (clocks of the gateway and nats-server differ a little). */
export const LOCATE_BEFORE_MS = 2_000;
/** …and at most this long after (a replica flushes every `flushMs`, 200 ms by default; a busy one later). */
export const LOCATE_AFTER_MS = 10_000;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** The epoch ms a UUIDv7 request id carries (`<uuid>` or `<uuid>:<row>`), else undefined. */
export function idTime(id: string): number | undefined {
  const colon = id.indexOf(':');
  const u = colon < 0 ? id : id.slice(0, colon);
  if (u.length !== 36 || !UUID_V7.test(u)) return undefined;
  return parseInt(u.slice(0, 8) + u.slice(9, 13), 16);
}

/** Whether a record stored at `storedMs` will be found by {@link locateByTime} (so it needs no index entry). */
export function locatable(id: string, storedMs: number): boolean {
  const t = idTime(id);
  return t !== undefined && storedMs >= t - LOCATE_BEFORE_MS && storedMs <= t + LOCATE_AFTER_MS;
}

/** A prediction-log message's records, read lazily (a batch is expanded only when one of its records is joined). */
export class LoggedBatch {
  #records: PredictionRecord[] | undefined;
  constructor(
    readonly seq: number,
    readonly model: string,
    readonly ids: readonly string[],
    readonly storedMs: number,
    private readonly msg: unknown,
  ) {}

  /** The message's records (undefined for a replica's profile delta or a foreign message). */
  static of(seq: number, storedMs: number, data: Uint8Array): LoggedBatch | undefined {
    const msg = decode(data, ContentType.MSGPACK) as { model?: unknown; ids?: unknown; records?: PredictionRecord[] };
    if (isProfileMessage(msg)) return undefined;
    if (Array.isArray(msg.ids) && typeof msg.model === 'string') return new LoggedBatch(seq, msg.model, msg.ids as string[], storedMs, msg);
    if (Array.isArray(msg.records)) {
      const b = new LoggedBatch(seq, String(msg.records[0]?.model ?? ''), msg.records.map((r) => r.id), storedMs, msg);
      b.#records = msg.records;
      return b;
    }
    throw new Error('not a prediction batch');
  }

  record(row: number): PredictionRecord {
    this.#records ??= batchRecords(this.msg) ?? [];
    return this.#records[row]!;
  }
}

const keyOf = (model: string, id: string) => `${model}\u0000${id}`;

/** The last `max` records the join consumed, by model and id, whole batches evicted oldest first. */
export class RecentPredictions {
  readonly #byId = new Map<string, { batch: LoggedBatch; row: number }>();
  readonly #batches: LoggedBatch[] = [];
  #head = 0;
  #size = 0;

  constructor(private readonly max = 100_000) {}

  get size(): number {
    return this.#size;
  }

  add(b: LoggedBatch): void {
    for (let i = 0; i < b.ids.length; i++) this.#byId.set(keyOf(b.model, b.ids[i]!), { batch: b, row: i });
    this.#batches.push(b);
    this.#size += b.ids.length;
    while (this.#size > this.max && this.#head < this.#batches.length - 1) {
      const old = this.#batches[this.#head]!;
      this.#batches[this.#head++] = undefined as unknown as LoggedBatch;
      this.#size -= old.ids.length;
      for (const id of old.ids) {
        const k = keyOf(old.model, id);
        if (this.#byId.get(k)?.batch === old) this.#byId.delete(k);
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#batches.length) {
      this.#batches.splice(0, this.#head);
      this.#head = 0;
    }
  }

  get(model: string, id: string): { batch: LoggedBatch; row: number } | undefined {
    return this.#byId.get(keyOf(model, id));
  }

  /** Forgets a batch (its message is gone from the stream). */
  drop(b: LoggedBatch): void {
    for (const id of b.ids) {
      const k = keyOf(b.model, id);
      if (this.#byId.get(k)?.batch === b) this.#byId.delete(k);
    }
  }
}

/** Header: `records` or `profile` (absent: a message from another writer). */
export const LOG_KIND_HEADER = 'Shoal-Log';
/** Header: rows in a record batch. */
export const LOG_RECORDS_HEADER = 'Shoal-Records';
/** Header: requests in a record batch whose ids cannot be located by their time (index them). */
export const LOG_UNLOCATABLE_HEADER = 'Shoal-Unlocatable';

/** The headers a replica's prediction-log message carries. */
export function logHeaders(meta: LogMessageMeta): MsgHdrs {
  const h = natsHeaders();
  h.set(LOG_KIND_HEADER, meta.kind);
  if (meta.kind === 'records') {
    h.set(LOG_RECORDS_HEADER, String(meta.records));
    h.set(LOG_UNLOCATABLE_HEADER, String(meta.unlocatable));
  }
  return h;
}

/** What a message's headers say: {@link LogMessageMeta}, or `unknown` (no or unreadable headers: read the message). */
export function logMetaOf(h: MsgHdrs | undefined): LogMessageMeta | { kind: 'unknown' } {
  const kind = h?.get(LOG_KIND_HEADER);
  if (kind === 'profile') return { kind };
  if (kind !== 'records') return { kind: 'unknown' };
  const records = Number(h!.get(LOG_RECORDS_HEADER));
  const unlocatable = Number(h!.get(LOG_UNLOCATABLE_HEADER));
  return Number.isInteger(records) && records >= 0 && Number.isInteger(unlocatable) && unlocatable >= 0 ? { kind, records, unlocatable } : { kind: 'unknown' };
}

/** The prediction-log message `seq` as a batch: undefined when it is gone (erased) or holds no records (a profile delta). */
export async function readBatch(nc: NatsConnection, stream: string, seq: number): Promise<LoggedBatch | undefined> {
  const jsm = await jetstreamManager(nc);
  const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
  if (!m) return undefined;
  return LoggedBatch.of(seq, m.time.getTime(), m.data);
}

/** Whether the prediction-log message `seq` is still stored (not erased). */
export async function stillStored(nc: NatsConnection, stream: string, seq: number): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  return jsm.streams.getMessage(stream, { seq }).then(
    (m) => m !== null,
    () => false,
  );
}

/**
 * Reads `subject`'s messages stored from {@link LOCATE_BEFORE_MS} before the id's time to
 * {@link LOCATE_AFTER_MS} after it, adding each batch to `recent`, until the id is found. An
 * ephemeral consumer, deleted afterwards. Resolves the record, or undefined (not stored yet, or
 * never logged, or not locatable by time).
 */
export async function locateByTime(nc: NatsConnection, stream: string, subject: string, id: string, recent: RecentPredictions): Promise<PredictionRecord | undefined> {
  const t = idTime(id);
  if (t === undefined) return undefined;
  const jsm = await jetstreamManager(nc);
  const ci = await jsm.consumers.add(stream, {
    filter_subject: subject,
    deliver_policy: DeliverPolicy.StartTime,
    opt_start_time: new Date(t - LOCATE_BEFORE_MS).toISOString(),
    ack_policy: AckPolicy.None,
    inactive_threshold: 30_000_000_000,
  });
  try {
    if (ci.num_pending === 0) return undefined;
    const c = await jetstream(nc).consumers.get(stream, ci.name);
    for (;;) {
      const msgs = await c.fetch({ max_messages: 64, expires: 2000 });
      let got = 0;
      for await (const m of msgs) {
        got++;
        const storedMs = Math.floor(m.info.timestampNanos / 1e6);
        if (storedMs > t + LOCATE_AFTER_MS) return undefined;
        let b: LoggedBatch | undefined;
        try {
          b = LoggedBatch.of(m.seq, storedMs, m.data);
        } catch {
          continue;
        }
        if (!b) continue;
        recent.add(b);
        const row = b.ids.indexOf(id);
        if (row >= 0) return b.record(row);
        if (m.info.pending === 0) return undefined;
      }
      if (got === 0) return undefined;
    }
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
}
