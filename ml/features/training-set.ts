/**
 * Point-in-time-correct training sets (issue #14 item 3, labels from a label view, streaming
 * aggregates via aggregate-offline.ts): label rows — inline, or a label view's events — joined
 * by DuckDB with each view's compacted Parquet files as known at each label time, encoded by the
 * views' one encoder and stored as a content-addressed dataset version with its lineage. The
 * rule and the query are described in offline.ts's header and at `pointInTimeRows`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { NatsConnection } from '../../cluster/index.ts';
import { DatasetStore, type DatasetVersion } from '../datasets/store.ts';
import { MlErrors } from '../errors.ts';
import { aggregateTrainingRows } from './aggregate-offline.ts';
import { sqlString, type OfflineStore } from './offline.ts';
import { entityValues } from './online.ts';
import type { FeatureViewVersion, RawValue } from './schemas.ts';
import { encodeRows, sensitiveGroups } from './transforms.ts';
import type { FeatureViews } from './views.ts';

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
  // The views' sensitive features: kept out of the vector (unless useAsFeature), carried as the dataset's sensitive attributes.
  const sensitive: { name: string; values: Uint8Array; levels: string[] }[] = [];
  const groupsOf = (v: FeatureViewVersion, rows: readonly Record<string, RawValue>[]) => {
    for (const g of sensitiveGroups(v.definition, v.fitted)) {
      if (sensitive.some((x) => x.name === g.name)) throw MlErrors.BAD_INPUT(`views: sensitive feature "${g.name}" is declared by two of the views; a sensitive attribute is named by its feature, rename one`);
      sensitive.push({ name: g.name, values: Uint8Array.from(rows, (r) => g.groupOf(r)), levels: g.levels });
    }
  };
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
        groupsOf(v, a.rows);
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
      groupsOf(v, rows);
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
  const dataset = await store.put(req.name, { columns: blocks.flatMap((b) => b.columns), rows: n, features, labels, ...(sensitive.length ? { extraSensitive: sensitive } : {}) }, { source });
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

