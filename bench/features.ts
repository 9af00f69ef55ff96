/**
 * `npm run bench:features`: the feature store side by side with the plain thing it is built on,
 * in one run, BENCH_ROUNDS rounds in alternating order (this machine is shared: compare rows,
 * not machines; a cell is the median of its rounds, with the range of the per-round ratios).
 *
 * 1. Online lookup — a real nats-server (auth on) and the features service as the scheduler runs
 *    it; a client-role connection reads one entity (and 100 at once) through `OnlineStore.read`
 *    plus the view's encoder (what a replica does), against a raw `kv.get` of the same keys'
 *    bytes. Latency from sequential calls; throughput from BENCH_LOOKUP_C closed loops.
 * 2. Push ingestion — events/s acknowledged end to end (checked, appended to the offline stream,
 *    applied to the online store) at 1, 16 and 64 pushers over NATS.
 * 3. Training-set build — BENCH_LABELS label rows (default 1M) against BENCH_EVENTS feature events
 *    (default 5M, two features each) in Parquet files written by DuckDB: Shoal's point-in-time
 *    query (`pointInTimeRows`: event time ≤ t AND ingestion time ≤ t, TTL, late rows exact)
 *    plus decoding and encoding every row, against a plain `ASOF JOIN` (event time ≤ t only, which
 *    leaks late data) whose rows are read into JS, on the same files.
 * 4. Predict by entity vs predict by tensor at 64 connections (bench/features-predict.ts), when
 *    that module is present.
 *
 * Writes bench/results/features.md.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Role, createLogger, ensureResources, resources, subjects } from '../cluster/index.ts';
import { FeatureClient, compileEncoder, encodeOne, encodeRows, fitView, onlineKey, pointInTimeRows, startFeatureService, type FeatureViewDef, type RawValue } from '../ml/index.ts';
import { startTestNats } from '../test/harness/nats.ts';
import { median, writeResults } from './lib/results.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const LOOKUP_C = Number(process.env.BENCH_LOOKUP_C ?? 32);
const LOOKUPS = Number(process.env.BENCH_LOOKUPS ?? 3000);
const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 2000);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000_000);
const LABELS = Number(process.env.BENCH_LABELS ?? 1_000_000);
const BUILD_ENTITIES = Number(process.env.BENCH_BUILD_ENTITIES ?? 100_000);
const PUSHERS = (process.env.BENCH_PUSHERS ?? '1,16,64').split(',').map(Number);

const view: FeatureViewDef = {
  name: 'txn',
  entity: ['customer_id'],
  source: { type: 'push' },
  ttlSeconds: 86_400,
  features: [
    { name: 'amount', type: 'numeric', transforms: [{ op: 'log1p' }, { op: 'standardize' }] },
    { name: 'country', type: 'categorical', transforms: [{ op: 'onehot', vocabulary: ['DE', 'FR', 'US', 'GB'] }] },
    { name: 'card_present', type: 'boolean' },
  ],
};
const snapshot: Record<string, RawValue>[] = Array.from({ length: 200 }, (_, i) => ({ amount: (i * 37) % 500, country: ['DE', 'FR', 'US', 'GB', 'IT'][i % 5]!, card_present: i % 3 === 0 }));

const q = (xs: number[], p: number) => {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(p * a.length))]!;
};
const fmt = (x: number, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const ratioCell = (rs: number[]) => `${median(rs).toFixed(2)}× [${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}]`;

interface LatTput {
  p50: number;
  p99: number;
  perSec: number;
}

/** Sequential calls for latency, then C closed loops for SECONDS for throughput. */
async function measure(call: (i: number) => Promise<unknown>): Promise<LatTput> {
  for (let i = 0; i < 200; i++) await call(i);
  const lat: number[] = [];
  for (let i = 0; i < LOOKUPS; i++) {
    const t0 = performance.now();
    await call(i);
    lat.push(performance.now() - t0);
  }
  let done = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: LOOKUP_C }, async (_, k) => {
      for (let i = k; performance.now() < end; i += LOOKUP_C) {
        await call(i);
        done++;
      }
    }),
  );
  return { p50: q(lat, 0.5), p99: q(lat, 0.99), perSec: done / ((performance.now() - t0) / 1000) };
}

async function onlineAndPush(): Promise<string[]> {
  const nats = await startTestNats();
  const sched = await nats.connect(Role.SCHEDULER);
  await ensureResources(sched);
  const s = subjects();
  const service = await startFeatureService({ nc: sched, subjects: s, log: createLogger({ level: 'silent', pretty: false }) });
  const cli = await nats.connect(Role.CLIENT);
  const features = await FeatureClient.open(cli, s);
  const out: string[] = [];
  try {
    await features.apply(view, snapshot);
    const now = Date.now();
    const entity = (i: number) => ({ customer_id: `c-${i % ENTITIES}` });
    // Every entity gets a row; the push rounds below measure ingestion.
    for (let i = 0; i < ENTITIES; i += 64)
      await Promise.all(
        Array.from({ length: Math.min(64, ENTITIES - i) }, (_, k) =>
          features.push('txn', { eventId: `seed-${i + k}`, entity: entity(i + k), values: { amount: ((i + k) * 13) % 900, country: ['DE', 'FR', 'US', 'GB', 'IT'][(i + k) % 5]!, card_present: (i + k) % 2 === 0 }, eventTime: now }),
        ),
      );

    const v = await features.show('txn');
    const enc = features.views.encoder(v);
    const kv = await new Kvm(cli).open(resources().buckets.online);
    const keys = Array.from({ length: ENTITIES }, (_, i) => onlineKey(view, entity(i)));
    const hundred = (i: number) => Array.from({ length: 100 }, (_, k) => entity(i * 100 + k));
    const targets = {
      'raw KV get, 1 entity': (i: number) => kv.get(keys[i % ENTITIES]!),
      'Shoal online read + encode, 1 entity': async (i: number) => {
        const [r] = await features.online.read(v.definition, [entity(i)]);
        return encodeOne(enc, r!.values);
      },
      'raw KV get, 100 entities': (i: number) => Promise.all(Array.from({ length: 100 }, (_, k) => kv.get(keys[(i * 100 + k) % ENTITIES]!))),
      'Shoal online read + encode, 100 entities': async (i: number) => encodeRows(enc, (await features.online.read(v.definition, hundred(i))).map((r) => r.values)),
    } as const;
    const names = Object.keys(targets) as (keyof typeof targets)[];
    const cells = new Map<string, LatTput[]>(names.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Pairs (raw, Shoal) measured back to back, the pair's order flipped every round.
      for (const pair of [[0, 1], [2, 3]] as const) {
        const order = round % 2 === 0 ? pair : ([pair[1], pair[0]] as const);
        for (const k of order) {
          const name = names[k]!;
          const c = await measure(targets[name]);
          cells.get(name)!.push(c);
          console.log(`[online] round ${round + 1} ${name}: p50 ${c.p50.toFixed(3)} ms, p99 ${c.p99.toFixed(3)} ms, ${fmt(c.perSec)}/s`);
        }
      }
    }
    out.push('## Online lookup', '', `${fmt(ENTITIES)} entities in the online store; latency from ${fmt(LOOKUPS)} sequential calls, throughput from ${LOOKUP_C} closed loops for ${SECONDS} s; a client-role connection to a local nats-server (auth on).`, '');
    out.push('| lookup | p50 ms | p99 ms | calls/s | Shoal/raw throughput |', '|---|---|---|---|---|');
    for (const [raw, shoal] of [[0, 1], [2, 3]] as const) {
      const rc = cells.get(names[raw]!)!;
      const sc = cells.get(names[shoal]!)!;
      const ratios = sc.map((c, i) => c.perSec / rc[i]!.perSec);
      for (const [n, cs, r] of [[names[raw]!, rc, ''], [names[shoal]!, sc, ratioCell(ratios)]] as const)
        out.push(`| ${n} | ${median(cs.map((c) => c.p50)).toFixed(3)} | ${median(cs.map((c) => c.p99)).toFixed(3)} | ${fmt(median(cs.map((c) => c.perSec)))} | ${r} |`);
    }
    out.push('');

    // Push ingestion: unique event ids, rotating over the entities.
    out.push('## Push ingestion (NATS, end to end)', '', 'One event per request: checked, appended to the offline stream (acknowledged), applied to the online store, then answered.', '');
    out.push('| pushers | events/s (median) | range | p99 ms |', '|---|---|---|---|');
    let seq = 0;
    for (const c of PUSHERS) {
      const rates: number[] = [];
      const p99s: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        let done = 0;
        const lat: number[] = [];
        const end = performance.now() + SECONDS * 1000;
        const t0 = performance.now();
        await Promise.all(
          Array.from({ length: c }, async () => {
            while (performance.now() < end) {
              const i = seq++;
              const s0 = performance.now();
              await features.push('txn', { eventId: `b-${i}`, entity: entity(i), values: { amount: i % 700, card_present: i % 2 === 1 }, eventTime: Date.now() });
              lat.push(performance.now() - s0);
              done++;
            }
          }),
        );
        rates.push(done / ((performance.now() - t0) / 1000));
        p99s.push(q(lat, 0.99));
        console.log(`[push] round ${round + 1} ${c} pushers: ${fmt(rates.at(-1)!)} events/s`);
      }
      out.push(`| ${c} | ${fmt(median(rates))} | ${fmt(Math.min(...rates))}–${fmt(Math.max(...rates))} | ${median(p99s).toFixed(2)} |`);
    }
    out.push('');
  } finally {
    await service.stop();
    await nats.stop();
  }
  return out;
}

/** Writes the event files and the labels (Parquet, by DuckDB) once; both joins read the same files. */
async function writeBuildFiles(con: DuckDBConnection, dir: string): Promise<{ events: string[]; labels: string }> {
  const t0 = 1_767_225_600_000; // 2026-01-01
  const events: string[] = [];
  const files = 4;
  const per = Math.ceil(EVENTS / files);
  for (let f = 0; f < files; f++) {
    const path = join(dir, `events-${f}.parquet`);
    // Event i: customer (i·7919 mod N), every 100 ms; 5 % arrive 10 min late, the rest 50 ms after.
    await con.run(`COPY (
      SELECT i + 1 AS seq, 'ev-' || i AS event_id, '["c-' || (i * 7919 % ${BUILD_ENTITIES}) || '"]' AS entity, f AS feature,
             CASE f WHEN 'amount' THEN CAST(round((i * 13 % 100000) / 100.0, 2) AS VARCHAR) ELSE CASE WHEN i % 3 = 0 THEN 'true' ELSE 'false' END END AS value,
             CAST(${t0} + i * 100 AS BIGINT) AS event_time,
             CAST(${t0} + i * 100 + CASE WHEN i % 20 = 0 THEN 600000 ELSE 50 END AS BIGINT) AS ingest_time
      FROM range(${f * per}, ${Math.min(EVENTS, (f + 1) * per)}) t(i), (VALUES ('amount'), ('card_present')) v(f)
      ORDER BY seq, feature) TO '${path}' (FORMAT parquet)`);
    events.push(path);
  }
  const labels = join(dir, 'labels.parquet');
  await con.run(`COPY (SELECT CAST(i AS INTEGER) AS row_id, '["c-' || (i * 104729 % ${BUILD_ENTITIES}) || '"]' AS entity, CAST(${t0} + (i * 7 % ${EVENTS}) * 100 + 5 AS BIGINT) AS t FROM range(${LABELS}) t(i)) TO '${labels}' (FORMAT parquet)`);
  return { events, labels };
}

async function trainingSetBuild(): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-features-'));
  const db = await DuckDBInstance.create(':memory:');
  const out: string[] = [];
  try {
    const con = await db.connect();
    const g0 = performance.now();
    const files = await writeBuildFiles(con, dir);
    console.log(`[build] wrote ${fmt(EVENTS)} events × 2 features and ${fmt(LABELS)} labels in ${((performance.now() - g0) / 1000).toFixed(1)} s`);
    // The label rows as the builder holds them (JS), read once outside the timings.
    const labelRows = (await con.runAndReadAll(`SELECT entity, t FROM '${files.labels}' ORDER BY row_id`)).getRowsJS() as [string, bigint][];
    const def: FeatureViewDef = { name: 'txn', entity: ['customer_id'], source: { type: 'push' }, ttlSeconds: 86_400, features: [{ name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] }, { name: 'card_present', type: 'boolean' }] };
    const enc = compileEncoder(def, fitView(def, [{ amount: 10, card_present: true }, { amount: 900, card_present: false }]));
    const paths = files.events.map((p) => `'${p}'`).join(', ');

    const phases: Record<string, number[]> = { append: [], query: [], decode: [], encode: [] };
    const shoal = async () => {
      // What buildTrainingSet does once the files are local: labels appended, the point-in-time query, decode, encode.
      let t = performance.now();
      const lap = (k: string) => {
        const now = performance.now();
        phases[k]!.push((now - t) / 1000);
        t = now;
      };
      await con.run('CREATE OR REPLACE TEMP TABLE lab (row_id INTEGER, entity VARCHAR, t BIGINT)');
      const app = await con.createAppender('lab');
      for (let i = 0; i < labelRows.length; i++) {
        app.appendInteger(i);
        app.appendVarchar(labelRows[i]![0]);
        app.appendBigInt(BigInt(labelRows[i]![1]));
        app.endRow();
      }
      app.closeSync();
      lap('append');
      const got = await pointInTimeRows(con, { paths: files.events, labels: 'lab', features: ['amount', 'card_present'], ttlMs: 86_400_000 });
      lap('query');
      const rows: Record<string, RawValue>[] = Array.from({ length: labelRows.length }, () => ({}));
      for (const [r, f, v] of got) rows[r]![f] = JSON.parse(v) as RawValue;
      lap('decode');
      encodeRows(enc, rows);
      lap('encode');
      return got.length;
    };
    const plain = async () => {
      const r = await con.runAndReadAll(`
        WITH ev AS (SELECT * FROM read_parquet([${paths}])),
             probe AS (SELECT lab.row_id, lab.entity, lab.t, f.feature FROM '${files.labels}' lab, (VALUES ('amount'), ('card_present')) f(feature))
        SELECT p.row_id, p.feature, ev.value FROM probe p ASOF JOIN ev ON ev.entity = p.entity AND ev.feature = p.feature AND ev.event_time <= p.t`);
      return r.getRowsJS().length;
    };
    const times: Record<'shoal' | 'plain', number[]> = { shoal: [], plain: [] };
    const counts: Record<'shoal' | 'plain', number> = { shoal: 0, plain: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      for (const k of round % 2 === 0 ? (['plain', 'shoal'] as const) : (['shoal', 'plain'] as const)) {
        const t0 = performance.now();
        counts[k] = await (k === 'shoal' ? shoal() : plain());
        times[k].push((performance.now() - t0) / 1000);
        console.log(`[build] round ${round + 1} ${k}: ${times[k].at(-1)!.toFixed(2)} s (${fmt(counts[k])} cells)`);
      }
    }
    con.closeSync();
    const ratios = times.shoal.map((t, i) => times.plain[i]! / t);
    out.push('## Training-set build', '', `${fmt(LABELS)} label rows against ${fmt(EVENTS)} feature events (two features each: ${fmt(EVENTS * 2)} Parquet rows in ${files.events.length} files, ${fmt(BUILD_ENTITIES)} customers; 5 % of events arrive 10 minutes late). DuckDB ${cpus().length} threads.`, '');
    out.push('| join | seconds (median) | label rows/s | cells with a value | Shoal/plain |', '|---|---|---|---|---|');
    out.push(`| plain \`ASOF JOIN\` (event time ≤ t only: leaks late rows), rows read into JS | ${median(times.plain).toFixed(2)} | ${fmt(LABELS / median(times.plain))} | ${fmt(counts.plain)} | |`);
    out.push(`| Shoal point-in-time (event time ≤ t AND ingest time ≤ t, TTL) + decode + encode | ${median(times.shoal).toFixed(2)} | ${fmt(LABELS / median(times.shoal))} | ${fmt(counts.shoal)} | ${ratioCell(ratios)} |`);
    out.push('', `Shoal's time by phase (median s): appending the label rows to DuckDB ${median(phases.append!).toFixed(2)}, the point-in-time query with its rows read into JS ${median(phases.query!).toFixed(2)}, decoding the values ${median(phases.decode!).toFixed(2)}, encoding the vectors ${median(phases.encode!).toFixed(2)}. Join against join (the query alone vs the plain ASOF with its rows read): ${ratioCell(phases.query!.map((q, i) => times.plain[i]! / q))}.`);
    out.push('', `The plain join finds ${fmt(counts.plain - counts.shoal)} more cells: values that had not yet arrived at the label time (late data) or had expired — exactly what a point-in-time join must not use.`, '');
  } finally {
    db.closeSync();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

async function predictRows(): Promise<string[]> {
  const mod = new URL('./features-predict.ts', import.meta.url);
  if (!existsSync(mod)) return ['## Predict by entity', '', 'Not measured: bench/features-predict.ts is not in this checkout.', ''];
  const { predictByEntityVsTensor } = (await import(mod.href)) as { predictByEntityVsTensor: (o: { connections: number; durationS: number; rounds?: number }) => Promise<{ entityRps: number; tensorRps: number; entityP99Ms: number; tensorP99Ms: number; ratios?: number[] }> };
  const r = await predictByEntityVsTensor({ connections: 64, durationS: SECONDS * 2, rounds: ROUNDS });
  const ratios = r.ratios ?? [r.entityRps / r.tensorRps];
  return [
    '## Predict by entity vs by tensor (64 connections)',
    '',
    '| request | req/s | p99 ms | entity/tensor |',
    '|---|---|---|---|',
    `| by tensor (the client sends the transformed vector) | ${fmt(r.tensorRps)} | ${r.tensorP99Ms.toFixed(1)} | |`,
    `| by entity (the replica reads the online store and transforms) | ${fmt(r.entityRps)} | ${r.entityP99Ms.toFixed(1)} | ${ratioCell(ratios)} |`,
    '',
  ];
}

const which = new Set((process.env.BENCH_PARTS ?? 'online,build,predict').split(','));
const lines = ['# Feature store benchmark', '', `\`npm run bench:features\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${ROUNDS} rounds in alternating order; a ratio is the median of the per-round ratios with their range.`, ''];
if (which.has('online')) lines.push(...(await onlineAndPush()));
if (which.has('build')) lines.push(...(await trainingSetBuild()));
if (which.has('predict')) lines.push(...(await predictRows()));
// A partial run (BENCH_PARTS) only prints: the results file always holds one whole run.
if (['online', 'build', 'predict'].every((p) => which.has(p))) writeResults(new URL('./results/features.md', import.meta.url).pathname, lines.join('\n'));
console.log(lines.join('\n'));
