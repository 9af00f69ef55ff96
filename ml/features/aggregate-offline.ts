/**
 * The offline path of streaming aggregates: a training set's aggregate view values, as known at
 * each label time, reproduced from the source view's Parquet files (offline.ts compacts them) by
 * DuckDB — the same definition as the aggregate actor's online records (aggregates.ts):
 *
 *     ingestTime ≤ t  AND  start(t, w) < eventTime ≤ t,  start(t, w) = g · ⌊(t − w) / g⌋
 *
 * DuckDB rebuilds each source event from its Parquet rows (one per feature, grouped by stream
 * sequence), takes its group-by key and the fields aggregated, range-joins the label rows to the
 * events of their entity within the largest window, and per window counts events, non-null
 * values and distinct values (FILTER clauses over one join). Sums are finished in JS: DuckDB's
 * SUM over DOUBLE depends on the order rows are scanned in, so the summed values come back as a
 * list and go through the same exact, correctly rounded sum as the online path (`valuesFromMeasures`)
 * — which is what makes a training set equal, to the bit, what the online store served.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { aggregateSourceOf } from './aggregate-store.ts';
import { aggregateValues, resolveAggregate, valuesFromMeasures, windowStart } from './aggregates.ts';
import type { OfflineFile, OfflineStore } from './offline.ts';
import type { FeatureViewVersion, RawValue } from './schemas.ts';
import type { FeatureViews } from './views.ts';

const sqlString = (s: string) => `'${s.replaceAll("'", "''")}'`;

export interface AggregateRows {
  /** Per label row, the view's features (nulls left out: missing, like an online read). */
  rows: Record<string, RawValue>[];
  /** Values present (not null). */
  hits: number;
  /** The source view and what of its log was read. */
  source: string;
  through: number;
  files: OfflineFile[];
}

/**
 * The aggregate view's values for label rows (entity key values in the view's key order, label
 * times in epoch ms), from the source view's offline log, compacted first so every acknowledged
 * event is seen.
 */
export async function aggregateTrainingRows(
  con: DuckDBConnection,
  views: FeatureViews,
  offline: OfflineStore,
  v: FeatureViewVersion,
  keys: readonly string[][],
  times: readonly number[],
  dir: string,
): Promise<AggregateRows> {
  const agg = resolveAggregate(v.definition);
  const keyFrom = await aggregateSourceOf(views, v.definition);
  const { manifest } = await offline.materialize(agg.source);
  const n = keys.length;
  const measures: (Parameters<typeof valuesFromMeasures>[1] | undefined)[] = new Array(n);
  if (manifest.files.length > 0) {
    const srcDir = join(dir, `agg-${v.name}`);
    mkdirSync(srcDir, { recursive: true });
    const paths = await offline.fetchFiles(manifest.files, srcDir);
    const g = agg.tileMs;
    const W = agg.windows.length;
    const labelsFile = join(dir, `agg-labels-${v.name}.jsonl`);
    writeFileSync(
      labelsFile,
      keys
        .map((key, i) => {
          const row: Record<string, unknown> = { row_id: i, t: times[i] };
          key.forEach((k, j) => (row[`k${j}`] = k));
          agg.windows.forEach((w, j) => (row[`s${j}`] = windowStart(times[i]!, w.ms, g)));
          row.smin = windowStart(times[i]!, agg.maxWindowMs, g);
          return JSON.stringify(row);
        })
        .join('\n') + '\n',
    );
    const fields = [...new Set([...agg.countFields, ...agg.sumFields, ...agg.distinctFields])];
    const fcol = (f: string) => `f${fields.indexOf(f)}`;
    const keyExprs = keyFrom.map((k, j) =>
      'entity' in k ? `json_extract_string(any_value(entity), '$[${k.entity}]') AS k${j}` : `any_value(CASE WHEN feature = ${sqlString(k.feature)} THEN json_extract_string(value, '$') END) AS k${j}`,
    );
    const fieldExprs = fields.map((f) => `any_value(CASE WHEN feature = ${sqlString(f)} AND value <> 'null' THEN value END) AS ${fcol(f)}`);
    const cols: string[] = [];
    for (let j = 0; j < W; j++) {
      const inW = `ev.et > lab.s${j}`;
      cols.push(`CAST(count(*) FILTER (WHERE ${inW}) AS INTEGER) AS n${j}`);
      for (const f of agg.countFields) cols.push(`CAST(count(ev.${fcol(f)}) FILTER (WHERE ${inW}) AS INTEGER) AS c${j}_${fcol(f)}`);
      for (const f of agg.sumFields) cols.push(`list(ev.${fcol(f)}) FILTER (WHERE ${inW} AND ev.${fcol(f)} IS NOT NULL) AS l${j}_${fcol(f)}`);
      for (const f of agg.distinctFields) cols.push(`CAST(count(DISTINCT ev.${fcol(f)}) FILTER (WHERE ${inW}) AS INTEGER) AS d${j}_${fcol(f)}`);
    }
    const labelCols = ['row_id: \'BIGINT\'', 't: \'BIGINT\'', 'smin: \'BIGINT\'', ...keyFrom.map((_, j) => `k${j}: 'VARCHAR'`), ...agg.windows.map((_, j) => `s${j}: 'BIGINT'`)].join(', ');
    const keyJoin = keyFrom.map((_, j) => `ev.k${j} = lab.k${j}`).join(' AND ');
    const keyPresent = keyFrom.map((_, j) => `k${j} IS NOT NULL AND k${j} <> ''`).join(' AND ');
    const sql = `
      WITH raw AS (SELECT * FROM read_parquet([${paths.map(sqlString).join(', ')}])),
           events AS (
             SELECT seq, any_value(event_time) AS et, any_value(ingest_time) AS it${keyExprs.map((e) => `, ${e}`).join('')}${fieldExprs.map((e) => `, ${e}`).join('')}
             FROM raw GROUP BY seq),
           ev AS (SELECT * FROM events WHERE ${keyPresent}),
           lab AS (SELECT * FROM read_json(${sqlString(labelsFile)}, format = 'newline_delimited', columns = {${labelCols}}))
      SELECT CAST(lab.row_id AS INTEGER) AS row_id, ${cols.join(', ')}
      FROM lab JOIN ev ON ${keyJoin} AND ev.it <= lab.t AND ev.et <= lab.t AND ev.et > lab.smin
      GROUP BY lab.row_id`;
    const r = await con.runAndReadAll(sql);
    const names = r.columnNames();
    for (const row of r.getRowsJS() as unknown[][]) {
      const get = (name: string) => row[names.indexOf(name)];
      const rowId = get('row_id') as number;
      measures[rowId] = agg.windows.map((_, j) => {
        const c: Record<string, number> = {};
        const sums: Record<string, number[]> = {};
        const distinct: Record<string, number> = {};
        for (const f of agg.countFields) c[f] = get(`c${j}_${fcol(f)}`) as number;
        for (const f of agg.sumFields) sums[f] = ((get(`l${j}_${fcol(f)}`) as string[] | null) ?? []).map((text) => JSON.parse(text) as unknown).filter((x): x is number => typeof x === 'number');
        for (const f of agg.distinctFields) distinct[f] = get(`d${j}_${fcol(f)}`) as number;
        return { n: get(`n${j}`) as number, c, sums, distinct };
      });
    }
  }
  let hits = 0;
  const rows = keys.map((_, i) => {
    const m = measures[i];
    const values = m ? valuesFromMeasures(agg, m) : aggregateValues(agg, undefined, times[i]!);
    const out: Record<string, RawValue> = {};
    for (const [k, val] of Object.entries(values)) {
      if (val === null) continue;
      out[k] = val;
      hits++;
    }
    return out;
  });
  return { rows, hits, source: agg.source, through: manifest.through, files: manifest.files };
}
