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
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { ContentType, decode, encode, every, isCasConflict, resources, subjects as subjectsOf, systemClock, type Clock, type Logger, type NatsConnection } from '../../cluster/index.ts';
import { DatasetStore, type DatasetVersion } from '../datasets/store.ts';
import { MlErrors } from '../errors.ts';
import { aggregateTrainingRows } from './aggregate-offline.ts';
import { entityValues } from './online.ts';
import type { FeatureViewVersion, LoggedEvent, RawValue } from './schemas.ts';
import { encodeRows } from './transforms.ts';
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

/** One label row of a training set. */
export interface LabelRow {
  /** Entity key columns of every view joined (extra columns are ignored per view). */
  entity: Record<string, string>;
  /** The label time: ISO 8601 or epoch ms. */
  time: string | number;
  /** 0/1 (or false/true). */
  label: number | boolean;
}

/**
 * Label rows read from a push view's offline log (delayed labels pushed as events as they come
 * back): each event carrying the `label` feature is one row — its entity (the label view's key
 * columns must include every feature view's), its event time as the label time (the moment that
 * was predicted: features as known then), its value (0/1 or a boolean). A label pushed again for
 * the same entity and event time (a correction) replaces the earlier one. `since`/`until` bound
 * the label times (ISO 8601 or epoch ms, inclusive).
 */
export interface LabelsFromView {
  view: string;
  label: string;
  since?: string | number;
  until?: string | number;
}

export interface BuildRequest {
  /** Dataset name to store the training set under. */
  name: string;
  /** View names, `view` (latest version) or `view@N` (pinned). */
  views: string[];
  /** Inline label rows, or a label view's events. */
  labels: LabelRow[] | LabelsFromView;
}

export interface TrainingSetLineage {
  labels: number;
  /** Where the label rows came from when they were a label view's events. */
  labelsFrom?: { view: string; version: number; label: string; through: number };
  /** Per view, the log it read: its own, or for a streaming aggregate its source view's (`source`). */
  views: { name: string; version: number; digest: string; source?: string; through: number; files: { object: string; afterSeq: number; throughSeq: number }[] }[];
}

export interface BuildResult {
  dataset: DatasetVersion;
  lineage: TrainingSetLineage;
  /** Per view, how many (label row, feature) cells had a value as known at the label time. */
  found: Record<string, number>;
}

export const manifestKey = (view: string) => `${view}.offline`;
const objectName = (view: string, sha: string) => `features/${view}/${sha}.parquet`;
const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

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

function labelTime(t: unknown, i: number): number {
  const ms = typeof t === 'number' ? t : typeof t === 'string' && /^\d{4}-\d{2}-\d{2}/.test(t) ? Date.parse(t) : NaN;
  if (!Number.isFinite(ms) || ms < 0) throw MlErrors.BAD_INPUT(`labels[${i}].time: ${JSON.stringify(t)} is not an ISO 8601 time or epoch milliseconds`);
  return ms;
}

function labelValue(l: unknown, i: number): number {
  if (l === 0 || l === 1) return l;
  if (typeof l === 'boolean') return l ? 1 : 0;
  throw MlErrors.BAD_INPUT(`labels[${i}].label: ${JSON.stringify(l)} is not 0/1 or a boolean`);
}

/** `view` or `view@N` → the view version (unfitted views are refused: they cannot encode). */
async function resolveView(views: FeatureViews, ref: string): Promise<FeatureViewVersion> {
  const m = /^([A-Za-z0-9_-]{1,64})(?:@v?(\d+))?$/.exec(ref);
  if (!m) throw MlErrors.BAD_INPUT(`views: "${ref}" is not a view name or name@version`);
  const v = await views.require(m[1]!, m[2] === undefined ? undefined : Number(m[2]));
  if (!v.fitted) throw MlErrors.BAD_INPUT(`views: feature view ${v.name} v${v.version} has no fitted parameters (apply it with a snapshot)`);
  return v;
}

/**
 * Builds a point-in-time-correct training set and stores it as a dataset version. Compacts each
 * view first, so the set sees every event acknowledged before the call.
 */
export async function buildTrainingSet(nc: NatsConnection, prefix: string, views: FeatureViews, offline: OfflineStore, req: BuildRequest): Promise<BuildResult> {
  if (!Array.isArray(req.views) || req.views.length === 0) throw MlErrors.BAD_INPUT('views: at least one feature view is needed');
  const fromView = req.labels && !Array.isArray(req.labels) ? await labelsFromView(views, offline, req.labels) : undefined;
  const labelRows = fromView ? fromView.rows : (req.labels as LabelRow[]);
  if (!Array.isArray(labelRows) || labelRows.length === 0) throw MlErrors.BAD_INPUT(fromView ? `labels: feature view ${fromView.from.view} has no "${fromView.from.label}" events in the range asked` : 'labels: no label rows');
  const versions = await Promise.all(req.views.map((r) => resolveView(views, r)));
  const names = new Set<string>();
  for (const v of versions) {
    if (names.has(v.name)) throw MlErrors.BAD_INPUT(`views: ${v.name} appears twice`);
    names.add(v.name);
  }
  if (fromView) {
    for (const v of versions)
      for (const col of v.definition.entity)
        if (!fromView.entity.includes(col)) throw MlErrors.BAD_INPUT(`labels.view: label view ${fromView.from.view} is keyed by ${fromView.entity.join(', ')}; feature view ${v.name} needs ${col}`);
  }
  const times = labelRows.map((l, i) => labelTime(l?.time, i));
  const labels = Uint8Array.from(labelRows.map((l, i) => labelValue(l?.label, i)));
  const n = labelRows.length;
  const dir = mkdtempSync(join(tmpdir(), 'shoal-trainset-'));
  const db = await DuckDBInstance.create(':memory:');
  const lineage: TrainingSetLineage = { labels: n, ...(fromView ? { labelsFrom: fromView.from } : {}), views: [] };
  const found: Record<string, number> = {};
  const blocks: { width: number; matrix: Float32Array; columns: string[] }[] = [];
  try {
    const con = await db.connect();
    for (const v of versions) {
      const def = v.definition;
      const keys = labelRows.map((l, i) => entityValues({ name: def.name, entity: def.entity }, pick(l?.entity, def.entity, i), `labels[${i}].entity`));
      if (def.source.type === 'aggregate') {
        // A streaming aggregate: its windows as known at each label time, from its source view's log (aggregate-offline.ts).
        const a = await aggregateTrainingRows(con, views, offline, v, keys, times, dir);
        lineage.views.push({ name: v.name, version: v.version, digest: v.digest, source: a.source, through: a.through, files: a.files.map((f) => ({ object: f.object, afterSeq: f.afterSeq, throughSeq: f.throughSeq })) });
        found[v.name] = a.hits;
        blocks.push({ width: v.fitted!.width, matrix: encodeRows(views.encoder(v), a.rows), columns: v.fitted!.columns.map((c) => `${v.name}.${c}`) });
        continue;
      }
      const entities = keys.map((k) => JSON.stringify(k));
      const { manifest } = await offline.materialize(def.name);
      lineage.views.push({ name: v.name, version: v.version, digest: v.digest, through: manifest.through, files: manifest.files.map((f) => ({ object: f.object, afterSeq: f.afterSeq, throughSeq: f.throughSeq })) });
      const rows: Record<string, RawValue>[] = Array.from({ length: n }, () => ({}));
      let hits = 0;
      if (manifest.files.length > 0) {
        const paths = await offline.fetchFiles(manifest.files, dir);
        const table = `lab_${blocks.length}`;
        await con.run(`CREATE TEMP TABLE ${table} (row_id INTEGER, entity VARCHAR, t BIGINT)`);
        const app = await con.createAppender(table);
        for (let i = 0; i < n; i++) {
          app.appendInteger(i);
          app.appendVarchar(entities[i]!);
          app.appendBigInt(BigInt(times[i]!));
          app.endRow();
        }
        app.closeSync();
        for (const [rowId, feature, value] of await pointInTimeRows(con, { paths, labels: table, features: def.features.map((f) => f.name), ttlMs: def.ttlSeconds * 1000 })) {
          rows[rowId]![feature] = JSON.parse(value) as RawValue;
          hits++;
        }
      }
      found[v.name] = hits;
      const fitted = v.fitted!;
      blocks.push({ width: fitted.width, matrix: encodeRows(views.encoder(v), rows), columns: fitted.columns.map((c) => `${v.name}.${c}`) });
    }
    con.closeSync();
  } finally {
    db.closeSync();
    rmSync(dir, { recursive: true, force: true });
  }
  const width = blocks.reduce((w, b) => w + b.width, 0);
  const features = new Float32Array(n * width);
  for (let i = 0; i < n; i++) {
    let at = i * width;
    for (const b of blocks) {
      features.set(b.matrix.subarray(i * b.width, (i + 1) * b.width), at);
      at += b.width;
    }
  }
  const store = await DatasetStore.open(nc, prefix);
  const source = `feature-views ${JSON.stringify(lineage.views.map((v) => ({ view: `${v.name}@${v.version}`, through: v.through, seq: v.files.map((f) => `${f.afterSeq + 1}-${f.throughSeq}`) })))}`;
  const dataset = await store.put(req.name, { columns: blocks.flatMap((b) => b.columns), rows: n, features, labels }, { source });
  return { dataset, lineage, found };
}

export interface PointInTimeQuery {
  /** The view's Parquet files (`seq, event_id, entity, feature, value, event_time, ingest_time`). */
  paths: readonly string[];
  /** A table of label rows: `row_id INTEGER, entity VARCHAR` (the JSON array of key values), `t BIGINT` (epoch ms). */
  labels: string;
  features: readonly string[];
  /** 0 = no TTL. */
  ttlMs: number;
}

/**
 * Per label row and feature, the value as known at the label time: the greatest (event time,
 * sequence) among the entity's events with event time ≤ t and ingestion time ≤ t, dropped when
 * t − its event time exceeds the TTL. Returns `[row_id, feature, value JSON]`.
 *
 * Done as an `ASOF JOIN` on one ordered key — (event time, sequence) packed into a BIGINT when the
 * files' ranges fit, else a HUGEINT — which finds the greatest event with event time ≤ t. When
 * that event had also arrived by t (nearly always), it is the answer. The rest — rows whose
 * candidate arrived after t, i.e. late data — get an exact range join restricted to those rows.
 * Same result as joining every event with both inequalities and ranking, at the cost of one ASOF
 * join plus a join over the few late rows (bench/features.ts measures it against a plain ASOF).
 */
export async function pointInTimeRows(con: DuckDBConnection, q: PointInTimeQuery): Promise<[number, string, string][]> {
  const files = `read_parquet([${q.paths.map(sqlString).join(', ')}])`;
  const wanted = q.features.map(sqlString).join(', ');
  const range = await con.runAndReadAll(`SELECT min(event_time), max(event_time), min(seq), max(seq) FROM ${files}`);
  const [minEt, maxEt, minSeq, maxSeq] = (range.getRowsJS()[0] as (bigint | number | null)[]).map((x) => (x === null ? undefined : BigInt(x)));
  if (minEt === undefined || maxEt === undefined || minSeq === undefined || maxSeq === undefined) return [];
  const span = maxSeq - minSeq + 1n;
  // (event time, seq) → one integer whose order is theirs; the label side takes the largest key at t.
  const packed = (maxEt - minEt + 2n) * span < 1n << 62n;
  const evKey = packed ? `(event_time - ${minEt}) * ${span} + (seq - ${minSeq})` : `CAST(event_time AS HUGEINT) * 9223372036854775808 + seq`;
  const labKey = packed ? `(least(greatest(lab.t, ${minEt - 1n}), ${maxEt}) - ${minEt}) * ${span} + ${span - 1n}` : `CAST(lab.t AS HUGEINT) * 9223372036854775808 + 9223372036854775807`;
  const ttl = q.ttlMs > 0 ? `WHERE t - event_time <= ${q.ttlMs}` : '';
  const r = await con.runAndReadAll(`
    WITH ev AS (SELECT entity, feature, value, event_time, ingest_time, ${evKey} AS k FROM ${files} WHERE feature IN (${wanted})),
         probe AS (SELECT lab.row_id, lab.entity, lab.t, f.feature, ${labKey} AS k FROM ${q.labels} lab, (VALUES ${q.features.map((f) => `(${sqlString(f)})`).join(', ')}) f(feature)),
         cand AS (SELECT p.row_id, p.entity, p.t, p.feature, ev.value, ev.event_time, ev.ingest_time FROM probe p ASOF JOIN ev ON ev.entity = p.entity AND ev.feature = p.feature AND ev.k <= p.k),
         late AS (
           SELECT c.row_id, c.t, c.feature, ev.value, ev.event_time
           FROM (SELECT * FROM cand WHERE ingest_time > t) c
           JOIN ev ON ev.entity = c.entity AND ev.feature = c.feature AND ev.event_time <= c.t AND ev.ingest_time <= c.t
           QUALIFY row_number() OVER (PARTITION BY c.row_id, c.feature ORDER BY ev.k DESC) = 1),
         known AS (SELECT row_id, t, feature, value, event_time FROM cand WHERE ingest_time <= t UNION ALL SELECT * FROM late)
    SELECT CAST(row_id AS INTEGER) AS row_id, feature, value FROM known ${ttl}`);
  return r.getRowsJS() as [number, string, string][];
}

/** A label view's events as label rows (see `LabelsFromView`), read by DuckDB from its Parquet files after compacting it. */
async function labelsFromView(views: FeatureViews, offline: OfflineStore, src: LabelsFromView): Promise<{ rows: LabelRow[]; entity: string[]; from: NonNullable<TrainingSetLineage['labelsFrom']> }> {
  if (!src || typeof src.view !== 'string' || typeof src.label !== 'string') throw MlErrors.BAD_INPUT('labels: an array of label rows, or {view, label[, since, until]}');
  const v = await views.require(src.view);
  const spec = v.definition.features.find((f) => f.name === src.label);
  if (!spec) throw MlErrors.BAD_INPUT(`labels.label: feature view ${v.name} has no feature "${src.label}" (its features: ${v.definition.features.map((f) => f.name).join(', ')})`);
  if (spec.type !== 'boolean' && spec.type !== 'numeric') throw MlErrors.BAD_INPUT(`labels.label: ${v.name}.${src.label} is ${spec.type}; a label is boolean or numeric 0/1`);
  const since = src.since === undefined ? undefined : labelTime(src.since, 0);
  const until = src.until === undefined ? undefined : labelTime(src.until, 0);
  const { manifest } = await offline.materialize(v.name);
  const from = { view: v.name, version: v.version, label: src.label, through: manifest.through };
  if (manifest.files.length === 0) return { rows: [], entity: v.definition.entity, from };
  const dir = mkdtempSync(join(tmpdir(), 'shoal-labels-'));
  const db = await DuckDBInstance.create(':memory:');
  try {
    const paths = await offline.fetchFiles(manifest.files, dir);
    const con = await db.connect();
    const r = await con.runAndReadAll(`
      SELECT entity, event_time, value FROM read_parquet([${paths.map(sqlString).join(', ')}])
      WHERE feature = ${sqlString(src.label)}${since === undefined ? '' : ` AND event_time >= ${since}`}${until === undefined ? '' : ` AND event_time <= ${until}`}
      QUALIFY row_number() OVER (PARTITION BY entity, event_time ORDER BY seq DESC) = 1
      ORDER BY event_time, entity`);
    const cols = v.definition.entity;
    const rows = (r.getRowsJS() as [string, bigint | number, string][]).map(([entity, t, value], i): LabelRow => {
      const keys = JSON.parse(entity) as string[];
      const label = JSON.parse(value) as unknown;
      if (label !== 0 && label !== 1 && typeof label !== 'boolean') throw MlErrors.BAD_INPUT(`labels: ${v.name}.${src.label} of entity ${cols.map((c, k) => `${c}=${keys[k]}`).join(',')} at ${Number(t)} is ${JSON.stringify(label)}, not 0/1 or a boolean (row ${i})`);
      return { entity: Object.fromEntries(cols.map((c, k) => [c, keys[k]!])), time: Number(t), label };
    });
    con.closeSync();
    return { rows, entity: cols, from };
  } finally {
    db.closeSync();
    rmSync(dir, { recursive: true, force: true });
  }
}

function pick(entity: unknown, cols: readonly string[], i: number): Record<string, string> {
  if (!entity || typeof entity !== 'object' || Array.isArray(entity)) throw MlErrors.BAD_INPUT(`labels[${i}].entity: must be an object of entity key columns`);
  const out: Record<string, string> = {};
  for (const c of cols) if (c in entity) out[c] = (entity as Record<string, string>)[c]!;
  return out;
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
