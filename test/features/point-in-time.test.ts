/**
 * The point-in-time query (ml/features/offline.ts `pointInTimeRows`) against a brute-force
 * reading of its rule on random event logs: per label row and feature, the event with the
 * greatest (event time, sequence) among those with event time ≤ t and ingestion time ≤ t, dropped
 * past the TTL. The logs are built to hit the query's shortcuts' edges: many events sharing one
 * event time (the sequence breaks the tie), late arrivals (the ASOF candidate not yet known at t),
 * events dated ahead of their arrival, label times before the first and after the last event, and
 * both key encodings (packed BIGINT, and HUGEINT when the ranges do not fit 62 bits).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DuckDBInstance } from '@duckdb/node-api';
import { seededRandom } from '../../cluster/index.ts';
import { pointInTimeRows } from '../../ml/features/training-set.ts';

interface Ev { seq: number; entity: string; feature: string; value: string; et: number; it: number }
interface Lab { row: number; entity: string; t: number }

const dir = mkdtempSync(join(tmpdir(), 'shoal-pit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bruteForce(events: readonly Ev[], labels: readonly Lab[], features: readonly string[], ttlMs: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of labels)
    for (const f of features) {
      let best: Ev | undefined;
      for (const e of events) {
        if (e.entity !== l.entity || e.feature !== f || e.et > l.t || e.it > l.t) continue;
        if (!best || e.et > best.et || (e.et === best.et && e.seq > best.seq)) best = e;
      }
      if (best && (ttlMs === 0 || l.t - best.et <= ttlMs)) out.set(`${l.row}|${f}`, best.value);
    }
  return out;
}

async function viaDuckDb(name: string, events: readonly Ev[], labels: readonly Lab[], features: readonly string[], ttlMs: number): Promise<Map<string, string>> {
  const db = await DuckDBInstance.create(':memory:');
  try {
    const con = await db.connect();
    await con.run('CREATE TABLE ev (seq BIGINT, event_id VARCHAR, entity VARCHAR, feature VARCHAR, value VARCHAR, event_time BIGINT, ingest_time BIGINT)');
    const a = await con.createAppender('ev');
    for (const e of events) {
      a.appendBigInt(BigInt(e.seq));
      a.appendVarchar(`ev-${e.seq}`);
      a.appendVarchar(e.entity);
      a.appendVarchar(e.feature);
      a.appendVarchar(e.value);
      a.appendBigInt(BigInt(e.et));
      a.appendBigInt(BigInt(e.it));
      a.endRow();
    }
    a.closeSync();
    // Two files, split by sequence, as compaction writes them.
    const mid = events[Math.floor(events.length / 2)]!.seq;
    const p1 = join(dir, `${name}-1.parquet`);
    const p2 = join(dir, `${name}-2.parquet`);
    await con.run(`COPY (SELECT * FROM ev WHERE seq <= ${mid}) TO '${p1}' (FORMAT parquet)`);
    await con.run(`COPY (SELECT * FROM ev WHERE seq > ${mid}) TO '${p2}' (FORMAT parquet)`);
    await con.run('CREATE TEMP TABLE lab (row_id INTEGER, entity VARCHAR, t BIGINT)');
    const b = await con.createAppender('lab');
    for (const l of labels) {
      b.appendInteger(l.row);
      b.appendVarchar(l.entity);
      b.appendBigInt(BigInt(l.t));
      b.endRow();
    }
    b.closeSync();
    const rows = await pointInTimeRows(con, { paths: [p1, p2], labels: 'lab', features, ttlMs });
    con.closeSync();
    const out = new Map<string, string>();
    for (const [row, f, v] of rows) {
      expect(out.has(`${row}|${f}`), `one value per (row, feature): ${row}|${f}`).toBe(false);
      out.set(`${row}|${f}`, v);
    }
    return out;
  } finally {
    db.closeSync();
  }
}

function randomLog(seed: number, opts: { events: number; entities: number; t0: number; stepMs: number; firstSeq: number; seqStep: number }) {
  const rnd = seededRandom(seed);
  const features = ['amount', 'count'];
  const events: Ev[] = [];
  let seq = opts.firstSeq;
  for (let i = 0; i < opts.events; i++) {
    // Coarse event times so that ties are common; a third arrive late, some are dated ahead of arrival.
    const et = opts.t0 + Math.floor(rnd() * 40) * opts.stepMs;
    const r = rnd();
    const it = r < 0.33 ? et + Math.floor(rnd() * 10) * opts.stepMs : r < 0.43 ? et - opts.stepMs : et;
    events.push({ seq, entity: `["e${Math.floor(rnd() * opts.entities)}"]`, feature: features[Math.floor(rnd() * 2)]!, value: JSON.stringify(Math.round(rnd() * 1000) / 10), et, it });
    seq += opts.seqStep;
  }
  const labels: Lab[] = [];
  for (let i = 0; i < 300; i++) labels.push({ row: i, entity: `["e${Math.floor(rnd() * (opts.entities + 1))}"]`, t: opts.t0 + Math.floor(rnd() * 52 - 4) * opts.stepMs + (rnd() < 0.5 ? 0 : 1) });
  return { events, labels, features };
}

describe('pointInTimeRows', () => {
  it.each([
    { name: 'packed', seed: 1, ttlMs: 0, t0: Date.parse('2026-03-01T00:00:00Z'), stepMs: 1000, firstSeq: 1, seqStep: 1 },
    { name: 'packed-ttl', seed: 2, ttlMs: 7000, t0: Date.parse('2026-03-01T00:00:00Z'), stepMs: 1000, firstSeq: 500, seqStep: 3 },
    // Event times 2^44 ms apart times a sequence span of 2^20: past 62 bits, so the HUGEINT key.
    { name: 'hugeint', seed: 3, ttlMs: 0, t0: 0, stepMs: 2 ** 38, firstSeq: 1, seqStep: 2 ** 12 },
  ])('equals the brute-force rule ($name)', async ({ name, seed, ttlMs, t0, stepMs, firstSeq, seqStep }) => {
    const { events, labels, features } = randomLog(seed, { events: 400, entities: 12, t0, stepMs, firstSeq, seqStep });
    const want = bruteForce(events, labels, features, ttlMs);
    const got = await viaDuckDb(name, events, labels, features, ttlMs);
    expect(want.size).toBeGreaterThan(100);
    expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
  });

  it('a late arrival is not used before it arrived, even when it is the newest by event time', async () => {
    const events: Ev[] = [
      { seq: 1, entity: '["a"]', feature: 'x', value: '1', et: 100, it: 100 },
      { seq: 2, entity: '["a"]', feature: 'x', value: '2', et: 200, it: 900 },
    ];
    const labels: Lab[] = [{ row: 0, entity: '["a"]', t: 500 }, { row: 1, entity: '["a"]', t: 900 }, { row: 2, entity: '["a"]', t: 99 }];
    const got = await viaDuckDb('late', events, labels, ['x'], 0);
    expect(Object.fromEntries(got)).toEqual({ '0|x': '1', '1|x': '2' });
  });
});
