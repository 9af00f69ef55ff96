/**
 * The offline store (issue #14 item 3): the feature events stream compacted to Parquet files in
 * the artifacts object store, and point-in-time-correct training sets built from them by DuckDB.
 *
 * Compaction (`materialize`, the features service in the scheduler: only it may read the stream)
 * reads one view's events after the sequence its manifest has reached, through an ephemeral pull
 * consumer filtered on `<prefix>.featlog.<view>`, writes them as one Parquet file (one row per
 * event and feature: `seq, event_id, entity, feature, value, event_time, ingest_time`; `entity`
 * is the JSON array of key values, `value` the raw value as JSON), stores it content-addressed
 * as `features/<view>/<sha256>.parquet`, and then records it in the view's manifest (features
 * bucket, key `<view>.offline`) by compare-and-swap. The manifest's `through` is the last stream
 * sequence scanned: compacting again reads only what came after, so it never duplicates rows.
 *
 * A streaming aggregate view has no events of its own: its values come from its source view's
 * files (aggregate-offline.ts, the same windows as the aggregate actor's online records).
 *
 * A training set compacts every view first (so every acknowledged event is in a Parquet file)
 * and then asks DuckDB, per view, for each label row and feature: the value with the greatest
 * (event time, sequence) among that entity's events with event time ≤ label time AND ingestion
 * time ≤ label time — exactly what the online store held at that moment, as it keeps per feature
 * the newest event time, the later arrival winning a tie — and drops it when older than the TTL
 * (label time − event time > ttl), as the online store does on read. Missing values get the
 * feature's fill in the view's one encoder (`encodeRows`). The one case where the two differ: an
 * event dated ahead of its ingestion (the service allows 5 minutes) is served online from its
 * ingestion on, but used here only from its event time, as "event time ≤ label time" says.
 * The query (`pointInTimeRows`) is an `ASOF JOIN` on (event time, sequence), with an exact range
 * join only for the rows whose ASOF candidate had not yet arrived at the label time (late data):
 * an ASOF join matches on one inequality, and "as known at" needs two.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { DuckDBInstance } from '@duckdb/node-api';
import { ContentType, decode, encode, every, isCasConflict, resources, subjects as subjectsOf, systemClock, type Clock, type Logger, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import type { LoggedEvent } from './schemas.ts';
import { FeatureViews } from './views.ts';

/** One compacted Parquet file: the view's events with stream sequence in (`afterSeq`, `throughSeq`]. */
export interface OfflineFile {
  object: string;
  sha256: string;
  afterSeq: number;
  throughSeq: number;
  /** Events in the file (and rows: one per event and feature). */
  events: number;
  rows: number;
}

/** Per view, what has been compacted (features bucket, key `<view>.offline`). */
export interface OfflineManifest {
  view: string;
  /** Last stream sequence scanned: every event of the view up to it is in `files`. */
  through: number;
  files: OfflineFile[];
  updatedAt: string;
}

export interface MaterializeResult {
  view: string;
  /** The file written by this call; null when there was nothing new. */
  file: OfflineFile | null;
  manifest: OfflineManifest;
}

export const manifestKey = (view: string) => `${view}.offline`;
const objectName = (view: string, sha: string) => `features/${view}/${sha}.parquet`;
/** A SQL string literal. */
export const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

export class OfflineStore {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #kv: KV;
  readonly #store: ObjectStore;

  private constructor(nc: NatsConnection, prefix: string, kv: KV, store: ObjectStore) {
    this.#nc = nc;
    this.#prefix = prefix;
    this.#kv = kv;
    this.#store = store;
  }

  /** Needs the scheduler's rights (the stream is the scheduler's; the artifacts store and the features bucket are written). */
  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<OfflineStore> {
    const r = resources(prefix);
    return new OfflineStore(nc, prefix, await new Kvm(nc).open(r.buckets.features), await new Objm(nc).open(r.stores.artifacts));
  }

  async manifest(view: string): Promise<{ manifest: OfflineManifest; revision: number }> {
    const e = await this.#kv.get(manifestKey(view));
    if (!e || e.operation !== 'PUT') return { manifest: { view, through: 0, files: [], updatedAt: '' }, revision: 0 };
    return { manifest: decode(e.value) as OfflineManifest, revision: e.revision };
  }

  /** Compacts the view's events logged since its manifest's `through` into one Parquet file. */
  async materialize(view: string): Promise<MaterializeResult> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { manifest, revision } = await this.manifest(view);
      const events = await this.#readLog(view, manifest.through);
      if (events.list.length === 0 && events.through <= manifest.through) return { view, file: null, manifest };
      let file: OfflineFile | null = null;
      if (events.list.length > 0) {
        const bytes = await toParquet(events.list);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const object = objectName(view, sha256);
        const info = await this.#store.info(object);
        if (!info || info.deleted) await this.#store.putBlob({ name: object, description: `feature events of ${view}, seq ${manifest.through + 1}-${events.through}` }, bytes);
        const rows = events.list.reduce((n, e) => n + Object.keys(e.event.values).length, 0);
        file = { object, sha256, afterSeq: manifest.through, throughSeq: events.through, events: events.list.length, rows };
      }
      const next: OfflineManifest = { view, through: events.through, files: file ? [...manifest.files, file] : manifest.files, updatedAt: new Date().toISOString() };
      try {
        if (revision === 0) await this.#kv.create(manifestKey(view), encode(next));
        else await this.#kv.update(manifestKey(view), encode(next), revision);
        return { view, file, manifest: next };
      } catch (err) {
        // Another compaction of this view won: start again from its manifest.
        if (!isCasConflict(err)) throw err;
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(`offline manifest of feature view ${view}`);
  }

  /** The view's logged events with sequence > `after`, up to the stream's last sequence now. */
  async #readLog(view: string, after: number): Promise<{ list: { seq: number; event: LoggedEvent }[]; through: number }> {
    const stream = resources(this.#prefix).streams.featureEvents;
    const jsm = await jetstreamManager(this.#nc);
    const last = (await jsm.streams.info(stream)).state.last_seq;
    if (last <= after) return { list: [], through: after };
    const ci = await jsm.consumers.add(stream, {
      filter_subject: subjectsOf(this.#prefix).featureLog(view),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1,
      ack_policy: AckPolicy.None,
      inactive_threshold: 60_000_000_000,
    });
    const list: { seq: number; event: LoggedEvent }[] = [];
    try {
      // Everything up to `last`; events appended since then wait for the next compaction.
      const want = ci.num_pending;
      if (want > 0) {
        const c = await jetstream(this.#nc).consumers.get(stream, ci.name);
        const msgs = await c.consume({ max_messages: 1000 });
        for await (const m of msgs) {
          if (m.seq <= last) list.push({ seq: m.seq, event: decode(m.data, ContentType.MSGPACK) as LoggedEvent });
          if (m.seq >= last || m.info.pending === 0) break;
        }
        await msgs.close();
      }
    } finally {
      await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    }
    return { list, through: last };
  }

  /** Downloads the view's Parquet files into `dir` (each checked against its sha256); returns their paths. */
  async fetchFiles(files: readonly OfflineFile[], dir: string): Promise<string[]> {
    return Promise.all(
      files.map(async (f, i) => {
        const bytes = await this.#store.getBlob(f.object);
        if (!bytes) throw MlErrors.ARTIFACT_MISSING(`offline features ${f.object}`, f.sha256);
        const got = createHash('sha256').update(bytes).digest('hex');
        if (got !== f.sha256) throw MlErrors.ARTIFACT_CORRUPT(`offline features ${f.object}`, f.sha256, got);
        const path = join(dir, `f${i}.parquet`);
        writeFileSync(path, bytes);
        return path;
      }),
    );
  }
}

/** Events → one Parquet file's bytes (DuckDB in process, through a temporary JSON-lines file). */
async function toParquet(events: readonly { seq: number; event: LoggedEvent }[]): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-offline-'));
  try {
    const lines: string[] = [];
    for (const { seq, event: e } of events) {
      const entity = JSON.stringify(e.entity);
      for (const [feature, value] of Object.entries(e.values)) {
        lines.push(JSON.stringify({ seq, event_id: e.eventId, entity, feature, value: JSON.stringify(value), event_time: e.eventTime, ingest_time: e.ingestTime }));
      }
    }
    const src = join(dir, 'events.jsonl');
    const out = join(dir, 'events.parquet');
    writeFileSync(src, lines.join('\n') + '\n');
    const db = await DuckDBInstance.create(':memory:');
    try {
      const con = await db.connect();
      await con.run(
        `COPY (SELECT * FROM read_json(${sqlString(src)}, format = 'newline_delimited', columns = {seq: 'BIGINT', event_id: 'VARCHAR', entity: 'VARCHAR', feature: 'VARCHAR', value: 'VARCHAR', event_time: 'BIGINT', ingest_time: 'BIGINT'}) ORDER BY seq, feature) TO ${sqlString(out)} (FORMAT parquet)`,
      );
      con.closeSync();
    } finally {
      db.closeSync();
    }
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface CompactorOptions {
  /** A connection with the scheduler's rights. */
  nc: NatsConnection;
  prefix: string;
  log: Logger;
  /** @default systemClock */
  clock?: Clock;
  /** How often every view is compacted; 0 = never (only on request). @default 600000 (10 min) */
  everyMs?: number;
  /** Called after each round (tests wait on it). */
  onRound?: (results: MaterializeResult[]) => void;
}

export interface Compactor {
  /** One round now: every view's new events to Parquet. A view that fails is logged and skipped. */
  compactAll(): Promise<MaterializeResult[]>;
  stop(): void;
}

/** Periodic compaction of every view (the scheduler leader's `features-compactor` control module). */
export async function startFeatureCompactor(o: CompactorOptions): Promise<Compactor> {
  const views = await FeatureViews.open(o.nc, o.prefix);
  const offline = await OfflineStore.open(o.nc, o.prefix);
  let running: Promise<MaterializeResult[]> | undefined;
  const compactAll = async (): Promise<MaterializeResult[]> => {
    const out: MaterializeResult[] = [];
    for (const v of await views.list()) {
      try {
        const r = await offline.materialize(v.name);
        if (r.file) o.log.info({ view: v.name, events: r.file.events, through: r.manifest.through }, 'feature events compacted');
        out.push(r);
      } catch (err) {
        o.log.warn({ view: v.name, err: (err as Error).message }, 'feature compaction failed; retried next round');
      }
    }
    return out;
  };
  const everyMs = o.everyMs ?? 600_000;
  const stop =
    everyMs > 0
      ? every(o.clock ?? systemClock, everyMs, () => {
          // One round at a time: a slow round is not overlapped by the next tick.
          if (running) return;
          running = compactAll().finally(() => (running = undefined));
          void running.then((r) => o.onRound?.(r)).catch(() => undefined);
        })
      : () => undefined;
  return { compactAll, stop };
}
