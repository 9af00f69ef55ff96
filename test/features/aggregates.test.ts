/**
 * Streaming aggregates, the pure part (aggregates.ts): the per-entity tile records the actor
 * keeps, read at a time t, equal an independent brute-force recomputation of the definition on
 * random event streams (late events, events dated ahead of their ingestion, window edges); the
 * offline finisher gives the same values from measures; replaying after a crash neither double
 * counts nor misses; sums are exact (correctly rounded) whatever the order; bad definitions are
 * refused naming the field.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import {
  addExact,
  aggregateValues,
  applyEvent,
  checkAggregateSource,
  emptyRecord,
  exactSum,
  groupKey,
  parseViewDef,
  resolveAggregate,
  roundExact,
  valuesFromMeasures,
  windowStart,
  type AggregateRecord,
  type FeatureViewDef,
  type RawValue,
  type ResolvedAggregate,
} from '../../ml/index.ts';
import { bigExactSum, bruteForce, merchantStatsView, refSpecOf, transactionsView, txnStatsView, type RefEvent } from '../fixtures/feature-aggregates.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.parse('2026-05-01T00:00:00Z');

const sourceShape = { name: 'transactions', sourceType: 'push', entity: transactionsView.entity, features: transactionsView.features };

/** A random stream in ingestion (= sequence) order: on-time, late (minutes to hours) and ahead-dated events. */
function randomStream(seed: number, n: number, customers: number): RefEvent[] {
  const r = seededRandom(seed);
  const out: RefEvent[] = [];
  let ingest = T0;
  for (let i = 0; i < n; i++) {
    ingest += Math.floor(r() * 90_000);
    const kind = r();
    // 70 % on time (a few seconds old), 20 % late (up to 30 h), 10 % dated up to 5 min ahead.
    const eventTime = kind < 0.7 ? ingest - Math.floor(r() * 5000) : kind < 0.9 ? ingest - Math.floor(r() * 30 * HOUR) : ingest + 1 + Math.floor(r() * 5 * MIN);
    const values: Record<string, RawValue> = {};
    if (r() < 0.9) values.amount = r() < 0.5 ? Math.round(r() * 100_000) / 100 : (r() - 0.3) * 10 ** Math.floor(r() * 12 - 4);
    else if (r() < 0.5) values.amount = null;
    if (r() < 0.95) values.merchant_id = `m-${Math.floor(r() * 6)}`;
    if (r() < 0.8) values.channel = r() < 0.9 ? ['online', 'in-store', 'phone'][Math.floor(r() * 3)]! : null;
    out.push({ seq: i + 1, key: [`c-${Math.floor(r() * customers)}`], eventTime, ingestTime: ingest, values });
  }
  return out;
}

function applyAll(agg: ResolvedAggregate, keyOf: (e: RefEvent) => string[] | undefined, events: readonly RefEvent[], recs = new Map<string, AggregateRecord>()): Map<string, AggregateRecord> {
  for (const e of events) {
    const key = keyOf(e);
    if (!key) continue;
    const id = JSON.stringify(key);
    let rec = recs.get(id);
    if (!rec) recs.set(id, (rec = emptyRecord(key)));
    applyEvent(agg, rec, { seq: e.seq, eventTime: e.eventTime, ingestTime: e.ingestTime, values: e.values });
  }
  return recs;
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('streaming aggregates: window math and per-entity state', () => {
  const agg = resolveAggregate(parseViewDef(txnStatsView));
  const spec = refSpecOf(txnStatsView);
  const byCustomer = (e: RefEvent) => e.key;
  const every = (values: Record<string, RawValue>) => Object.fromEntries(txnStatsView.features.map((f) => [f.name, values[f.name] ?? null]));

  it('equals a brute-force recomputation on random streams, at every checkpoint and at later times', () => {
    for (const seed of [1, 2, 3]) {
      const events = randomStream(seed, 1500, 8);
      const recs = new Map<string, AggregateRecord>();
      let compared = 0;
      let nonZero = 0;
      const r = seededRandom(seed * 7);
      for (let i = 0; i < events.length; i += 100) {
        const prefix = events.slice(0, i + 100);
        applyAll(agg, byCustomer, events.slice(i, i + 100), recs);
        // Any time from the last ingestion applied up to just before the next one, and a few later ones.
        const lastIngest = prefix[prefix.length - 1]!.ingestTime;
        const next = events[i + 100]?.ingestTime ?? lastIngest + 30 * HOUR;
        const times = [lastIngest, lastIngest + Math.floor(r() * (next - lastIngest)), next - 1];
        for (const t of times) {
          for (let c = 0; c < 8; c++) {
            const key = [`c-${c}`];
            const want = bruteForce(spec, prefix, key, t);
            expect(aggregateValues(agg, recs.get(JSON.stringify(key)), t), `seed ${seed}, ${i + 100} events, c-${c} at ${t}`).toEqual(every(want));
            compared++;
            if ((want.txn_count_1h as number) > 0) nonZero++;
          }
        }
      }
      // Reads far after the stream: windows slide past the data.
      const end = events[events.length - 1]!.ingestTime;
      for (const dt of [0, 7 * MIN, 59 * MIN, 3 * HOUR, 23 * HOUR, 24 * HOUR + 30_000, 26 * HOUR]) {
        for (let c = 0; c < 8; c++) expect(aggregateValues(agg, recs.get(JSON.stringify([`c-${c}`])), end + dt), `c-${c} at end+${dt}`).toEqual(every(bruteForce(spec, events, [`c-${c}`], end + dt)));
      }
      expect(compared).toBeGreaterThan(300);
      expect(nonZero).toBeGreaterThan(50);
    }
  });

  it('window edges: the oldest edge snaps down to a tile boundary (excluded), the newest is exact (included)', () => {
    const t = T0 + 10 * HOUR + 30_500; // not on a tile boundary
    const start10m = windowStart(t, 10 * MIN, MIN);
    expect(start10m).toBe(T0 + 9 * HOUR + 50 * MIN);
    // All ingested at 10:00:00, before t (events 3 and 4 are dated ahead of their ingestion).
    const ev = (seq: number, eventTime: number, amount = 1): RefEvent => ({ seq, key: ['c-1'], eventTime, ingestTime: T0 + 10 * HOUR, values: { amount, merchant_id: `m-${seq}` } });
    const events = [ev(1, start10m), ev(2, start10m + 1), ev(3, t), ev(4, t + 1), ev(5, start10m - MIN + 1), ev(6, T0 + 9 * HOUR + 30_500)];
    const recs = applyAll(agg, byCustomer, events);
    const got = aggregateValues(agg, recs.get('["c-1"]'), t);
    // 10m: (start, t] holds events 2 and 3 (1 is on the edge, 4 is after t); 1h snaps to 9:00 and also holds 1, 5 and 6.
    expect(got.txn_count_10m).toBe(2);
    expect(got.txn_count_1h).toBe(5);
    expect(got).toEqual(every(bruteForce(spec, events, ['c-1'], t)));
    // One millisecond later event 4 counts; one tile later event 1 and the tile below leave the 1 h window.
    expect(aggregateValues(agg, recs.get('["c-1"]'), t + 1).txn_count_10m).toBe(3);
    expect(aggregateValues(agg, recs.get('["c-1"]'), T0 + 10 * HOUR + MIN + 30_500).txn_count_1h).toBe(bruteForce(spec, events, ['c-1'], T0 + 10 * HOUR + MIN + 30_500).txn_count_1h);
  });

  it('a late event counts from its ingestion on, never before; an event dated ahead counts from its event time', () => {
    const on = (seq: number, eventTime: number, ingestTime: number): RefEvent => ({ seq, key: ['c-1'], eventTime, ingestTime, values: { amount: 10, merchant_id: 'm-1' } });
    const events = [on(1, T0, T0), on(2, T0 + MIN, T0 + 2 * HOUR), on(3, T0 + 2 * HOUR + 3 * MIN, T0 + 2 * HOUR + 1000)];
    const before = applyAll(agg, byCustomer, events.slice(0, 1));
    const after = applyAll(agg, byCustomer, events);
    // Before the late event arrived (t < its ingestion) it is not known; after, it counts in 24h (not in 1h: too old).
    expect(aggregateValues(agg, before.get('["c-1"]'), T0 + HOUR).txn_count_24h).toBe(1);
    expect(bruteForce(spec, events, ['c-1'], T0 + HOUR).txn_count_24h).toBe(1);
    const t = T0 + 2 * HOUR + 2000;
    expect(aggregateValues(agg, after.get('["c-1"]'), t)).toEqual(every(bruteForce(spec, events, ['c-1'], t)));
    expect(aggregateValues(agg, after.get('["c-1"]'), t).txn_count_24h).toBe(2); // event 3 is dated ahead of t
    expect(after.get('["c-1"]')!.f).toHaveLength(1); // kept raw until the record's ingestion passes it
    expect(aggregateValues(agg, after.get('["c-1"]'), T0 + 2 * HOUR + 3 * MIN).txn_count_10m).toBe(1);
  });

  it('old tiles are dropped once no later read can reach them; the values stay exact', () => {
    const events = randomStream(9, 3000, 2);
    const recs = applyAll(agg, byCustomer, events);
    const rec = recs.get('["c-0"]')!;
    const span = (rec.k[rec.k.length - 1]!.k - rec.k[0]!.k) * MIN;
    expect(span).toBeLessThanOrEqual(24 * HOUR + 5 * MIN);
    const end = events[events.length - 1]!.ingestTime;
    expect(aggregateValues(agg, rec, end)).toEqual(every(bruteForce(spec, events, ['c-0'], end)));
  });

  it('replay after a crash: events at or below a record’s sequence change nothing, the rest are applied once', () => {
    const events = randomStream(4, 800, 5);
    const once = applyAll(agg, byCustomer, events);
    // The actor wrote records through seq 600 but checkpointed 400, then died: the next one replays 401….
    const crashed = applyAll(agg, byCustomer, events.slice(0, 600));
    const replayed = applyAll(agg, byCustomer, events.slice(400), crashed);
    expect(clone([...replayed.entries()].sort())).toEqual(clone([...once.entries()].sort()));
    // And a full replay on top of the final records is a no-op.
    const before = clone([...once.entries()]);
    applyAll(agg, byCustomer, events, once);
    expect(clone([...once.entries()])).toEqual(before);
  });

  it('the offline finisher gives the same values from measures (counts, distinct counts, value lists)', () => {
    const events = randomStream(5, 600, 4);
    const recs = applyAll(agg, byCustomer, events);
    const end = events[events.length - 1]!.ingestTime;
    for (const t of [end, end + 20 * MIN, end + 5 * HOUR]) {
      for (let c = 0; c < 4; c++) {
        const key = [`c-${c}`];
        const perWindow = agg.windows.map((w) => {
          const start = windowStart(t, w.ms, agg.tileMs);
          const inW = events.filter((e) => e.key[0] === key[0] && e.ingestTime <= t && e.eventTime <= t && e.eventTime > start);
          const has = (f: string) => inW.filter((e) => e.values[f] !== null && e.values[f] !== undefined);
          return {
            n: inW.length,
            c: Object.fromEntries(agg.countFields.map((f) => [f, has(f).length])),
            // Shuffled: the order of the list must not matter.
            sums: Object.fromEntries(agg.sumFields.map((f) => [f, has(f).map((e) => e.values[f] as number).reverse()])),
            distinct: Object.fromEntries(agg.distinctFields.map((f) => [f, new Set(has(f).map((e) => JSON.stringify(e.values[f]))).size])),
          };
        });
        expect(valuesFromMeasures(agg, perWindow)).toEqual(aggregateValues(agg, recs.get(JSON.stringify(key)), t));
      }
    }
  });

  it('groups by a categorical feature of the source when the view is keyed by it (events without it are skipped)', () => {
    const m = resolveAggregate(parseViewDef(merchantStatsView));
    const keyFrom = checkAggregateSource(m, sourceShape);
    expect(keyFrom).toEqual([{ feature: 'merchant_id' }]);
    const events = randomStream(6, 1000, 5);
    const keyOf = (e: RefEvent) => groupKey(keyFrom, e.key, e.values);
    const recs = applyAll(m, keyOf, events);
    const mspec = refSpecOf(merchantStatsView);
    const byMerchant = events.filter((e) => keyOf(e)).map((e) => ({ ...e, key: keyOf(e)! }));
    expect(byMerchant.length).toBeLessThan(events.length);
    const end = events[events.length - 1]!.ingestTime;
    for (let i = 0; i < 6; i++) {
      const want = bruteForce(mspec, byMerchant, [`m-${i}`], end);
      const got = aggregateValues(m, recs.get(JSON.stringify([`m-${i}`])), end);
      expect(got).toEqual({ count_1h: want.count_1h, amount_sum_24h: want.amount_sum_24h, with_channel_24h: want.with_channel_24h });
    }
  });
});

describe('streaming aggregates: exact sums', () => {
  it('the sum is the correctly rounded exact sum, whatever the order or the grouping into partials', () => {
    expect(exactSum([1e16, 1, -1e16])).toBe(1);
    expect(exactSum(Array.from({ length: 10 }, () => 0.1))).toBe(1);
    expect(exactSum([])).toBe(0);
    expect(Object.is(exactSum([-0]), 0)).toBe(true);
    const r = seededRandom(11);
    for (let trial = 0; trial < 200; trial++) {
      const xs = Array.from({ length: 1 + Math.floor(r() * 60) }, () => (r() - 0.5) * 10 ** Math.floor(r() * 30 - 10));
      if (trial % 3 === 0) xs.push(-xs[0]!, xs[0]! * 3);
      const want = bigExactSum(xs);
      expect(exactSum(xs)).toBe(want);
      expect(exactSum([...xs].reverse())).toBe(want);
      // Split into two groups of partials and merged (as tiles are).
      const a: number[] = [];
      const b: number[] = [];
      xs.forEach((x, i) => addExact(i % 2 ? a : b, x));
      const merged: number[] = [];
      for (const p of [...b, ...a]) addExact(merged, p);
      expect(roundExact(merged)).toBe(want);
    }
  });
});

describe('streaming aggregates: definitions', () => {
  const withSpec = (spec: object, rest: Partial<FeatureViewDef> = {}) => ({ ...txnStatsView, ...rest, source: { type: 'aggregate', spec: { ...(txnStatsView.source as { spec: object }).spec, ...spec } } });

  it('refuses what cannot work, naming the field', () => {
    expect(() => parseViewDef(withSpec({ windows: ['10m', '90s'] }))).toThrow(/source\.spec\.windows\[1\] 90s is not a multiple of the tile \(60 s\)/);
    expect(() => parseViewDef(withSpec({ windows: ['10x'] }))).toThrow(/\/source/);
    expect(() => parseViewDef(withSpec({ windows: ['60m', '1h'] }))).toThrow(/windows\[1\] 1h repeats a window/);
    expect(() => parseViewDef(withSpec({ aggregations: [{ function: 'mean' }] }))).toThrow(/aggregations\[0\] mean needs a field/);
    expect(() => parseViewDef(withSpec({}, { ttlSeconds: 60 }))).toThrow(/ttlSeconds must be 0 for an aggregate view/);
    expect(() => parseViewDef(withSpec({}, { features: [{ name: 'txn_count_2h', type: 'numeric' }] }))).toThrow(/features\[0\] \(txn_count_2h\) is not an output of the aggregations/);
    expect(() => parseViewDef(withSpec({}, { features: [{ name: 'txn_count_1h', type: 'categorical', transforms: [{ op: 'ordinal' }] }] }))).toThrow(/must be numeric/);
    expect(() => parseViewDef(withSpec({ view: 'txn_stats' }))).toThrow(/names the view itself/);
    const agg = resolveAggregate(parseViewDef(txnStatsView));
    expect(() => checkAggregateSource(agg, undefined)).toThrow(/"transactions", which is not a feature view/);
    expect(() => checkAggregateSource(agg, { ...sourceShape, sourceType: 'aggregate' })).toThrow(/an aggregate reads the events of a push view/);
    expect(() => checkAggregateSource(agg, { ...sourceShape, features: [{ name: 'amount', type: 'categorical' }, { name: 'merchant_id', type: 'categorical' }] })).toThrow(/aggregations\[1\]\.field "amount" is categorical; sum needs a numeric feature/);
    expect(() => checkAggregateSource(agg, { ...sourceShape, entity: ['account_id'] })).toThrow(/entity column "customer_id" is neither an entity column nor a categorical feature of transactions/);
  });

  it('versions that differ only in transforms share one aggregation (actor and records); other changes do not', () => {
    const a = resolveAggregate(parseViewDef(txnStatsView));
    const b = resolveAggregate(parseViewDef({ ...txnStatsView, features: txnStatsView.features.map((f) => ({ ...f, transforms: [{ op: 'clip', max: 5 }] })) }));
    const c = resolveAggregate(parseViewDef(withSpec({ windows: ['10m', '1h', '12h'] }, { features: [{ name: 'txn_count_12h', type: 'numeric' }] })));
    expect(b.digest).toBe(a.digest);
    expect(c.digest).not.toBe(a.digest);
  });
});
