/**
 * Mergeable sketches (issue #15 item 5): merging N replicas' sketches gives one sketch of all the
 * traffic within each sketch's stated error — KLL quantiles within its rank error, Misra-Gries
 * counts within n/(capacity+1), moments exactly (float rounding) — and, end to end, replicas'
 * prediction logs (sampling 5 % of requests) publish profile deltas of ALL their traffic that the
 * monitor merges into the same window a monitor fed every record would test: same rows, same
 * column counts, the same features flagged.
 */
import { describe, expect, it } from 'vitest';
import { ContentType, VirtualClock, decode, seededRandom } from '../../cluster/index.ts';
import { MonitorCore, PROCESS_CHUNK, PredictionLog, ReplicaProfiler, batchRecords, isProfileMessage, type ProfileMessage, type PredictionRecord } from '../../ml/index.ts';
import { FrequentItems, KllSketch, Moments, RecordProfile } from '../../ml/monitoring/stats/index.ts';
import { FRAUD_COLUMNS } from '../../ml/datasets/fraud.ts';
import { fraudReference, fraudScore, fraudTraffic, records } from '../fixtures/monitoring-monitor.ts';
import { fp32, recordingPublisher } from '../fixtures/monitoring.ts';

/** KLL's rank error at k = 200 (Apache DataSketches' table, 99 % confidence): kll.ts states it. */
const KLL_EPS_200 = 0.0165;
const N = 6;

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** The exact fraction of `sorted` ≤ x. */
function rank(sorted: Float64Array, x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo / sorted.length;
}

describe('merging N replicas’ sketches equals one sketch of all the traffic, within the stated error', () => {
  it('KLL (k = 200): the merge of 6 replicas’ sketches answers every rank within 1.65 % of the exact one, as a single sketch does', () => {
    const r = seededRandom(11);
    const parts = Array.from({ length: N }, (_, p) => Float64Array.from({ length: 20_000 + 3_000 * p }, () => gaussian(r) * (1 + p / 3) + p));
    const merged = new KllSketch(200);
    const single = new KllSketch(200);
    for (const part of parts) {
      const s = new KllSketch(200);
      for (const v of part) {
        s.update(v);
        single.update(v);
      }
      merged.merge(s);
    }
    const all = Float64Array.from(parts.flatMap((p) => [...p])).sort();
    expect(merged.n).toBe(all.length);
    expect([merged.min, merged.max]).toEqual([all[0], all[all.length - 1]]);
    // The merge did compact: this is not an exact copy of the values.
    expect(merged.retained()).toBeLessThan(all.length / 50);
    let worstMerged = 0;
    let worstSingle = 0;
    for (let i = 1; i < 100; i++) {
      const x = all[Math.floor((i / 100) * all.length)]!;
      const exact = rank(all, x);
      worstMerged = Math.max(worstMerged, Math.abs(merged.cdf(x) - exact));
      worstSingle = Math.max(worstSingle, Math.abs(single.cdf(x) - exact));
    }
    expect(worstMerged).toBeLessThanOrEqual(KLL_EPS_200);
    expect(worstSingle).toBeLessThanOrEqual(KLL_EPS_200);
  });

  it('Misra-Gries (capacity 50): every merged count is an under-estimate by at most maxError() ≤ n/51, like a single summary’s', () => {
    const r = seededRandom(12);
    const cap = 50;
    const exact = new Map<string, number>();
    const merged = new FrequentItems(cap);
    const single = new FrequentItems(cap);
    for (let p = 0; p < N; p++) {
      const f = new FrequentItems(cap);
      for (let i = 0; i < 10_000; i++) {
        // Zipf-like over 400 values, each replica's ranking shifted: the heavy values differ by replica.
        const v = `c${(Math.floor(1 / (r() + 0.0025)) + p * 7) % 400}`;
        f.update(v);
        single.update(v);
        exact.set(v, (exact.get(v) ?? 0) + 1);
      }
      merged.merge(f);
    }
    const n = N * 10_000;
    expect(merged.n).toBe(n);
    expect(merged.maxError()).toBeGreaterThan(0); // the summary did overflow
    expect(merged.maxError()).toBeLessThanOrEqual(n / (cap + 1));
    for (const [v, c] of exact) {
      expect(merged.count(v), v).toBeLessThanOrEqual(c);
      expect(merged.count(v), v).toBeGreaterThanOrEqual(c - merged.maxError());
      expect(single.count(v), v).toBeGreaterThanOrEqual(c - single.maxError());
    }
  });

  it('moments: the merge equals the moments of all the values (Chan et al.), up to float rounding', () => {
    const r = seededRandom(13);
    const merged = new Moments();
    const single = new Moments();
    for (let p = 0; p < N; p++) {
      const m = new Moments();
      for (let i = 0; i < 5000; i++) {
        const v = gaussian(r) * 3 + p * 10;
        m.update(v);
        single.update(v);
      }
      merged.merge(m);
    }
    expect(merged.n).toBe(single.n);
    expect(merged.mean).toBeCloseTo(single.mean, 9);
    expect(merged.variance() / single.variance()).toBeCloseTo(1, 9);
    expect([merged.min, merged.max]).toEqual([single.min, single.max]);
  });
});

describe('replica profiles through the prediction log, merged by the monitor', () => {
  const reference = fraudReference();
  const T0 = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000);
  const WINDOW = 600_000;

  /** Three replicas serving `rows` round-robin in requests of 1–4 rows, logging 5 % of requests; returns everything they published. */
  async function serveThroughReplicas(rows: number[][]) {
    const clock = new VirtualClock(T0 + 1000);
    const draws = seededRandom(99);
    const replicas = Array.from({ length: 3 }, (_, k) => {
      const pub = recordingPublisher();
      const profiler = new ReplicaProfiler('fraud', 1, `replica-${k}`, reference, WINDOW);
      const log = new PredictionLog({ model: 'fraud', version: 1, spec: { sampleRate: 0.05, batchRecords: 200, flushMs: 100, profileMs: 500 }, publish: pub.publish, encode: pub.encode, profiler, clock, random: draws });
      return { pub, log, profiler };
    });
    let i = 0;
    let req = 0;
    while (i < rows.length) {
      const chunk = rows.slice(i, i + 1 + (req % 4));
      const { log } = replicas[req % 3]!;
      const p = log.begin([fp32('X', chunk)], `q${req}`, undefined, 0);
      if (p) log.end(p, [fp32('Y', chunk.map((x) => [fraudScore(x.map((v) => Math.fround(v)))]))], 1);
      i += chunk.length;
      req++;
      if (req % 50 === 0) {
        clock.advance(100);
        await new Promise((r) => setImmediate(r));
      }
    }
    for (const r of replicas) await r.log.close();
    const messages = replicas.flatMap((r) => r.pub.messages.map((m) => decode(m, ContentType.MSGPACK)));
    return { replicas, profiles: messages.filter(isProfileMessage) as ProfileMessage[], logged: messages.flatMap((m) => batchRecords(m) ?? []) as PredictionRecord[] };
  }

  it('a flush profiles its queue a chunk at a time, letting the event loop turn between chunks (a busy replica is never held for the whole queue)', async () => {
    const clock = new VirtualClock(T0 + 1000);
    const pub = recordingPublisher();
    const profiler = new ReplicaProfiler('fraud', 1, 'replica-0', reference, WINDOW);
    const log = new PredictionLog({ model: 'fraud', version: 1, spec: { sampleRate: 0, batchRecords: 10_000, flushMs: 100, profileMs: 500 }, publish: pub.publish, encode: pub.encode, profiler, clock });
    const { rows } = fraudTraffic({ rows: 3 * PROCESS_CHUNK + 1, seed: 5 });
    for (const [i, x] of rows.entries()) {
      const p = log.begin([fp32('X', [x])], `q${i}`, undefined, 0)!;
      log.end(p, [fp32('Y', [[fraudScore(x)]])], 1);
    }
    // What another callback (a request arriving) sees while the flush runs.
    const seen: number[] = [];
    const watch = () => {
      seen.push(log.stats().profiled);
      if (log.stats().profiled < rows.length) setImmediate(watch);
    };
    setImmediate(watch);
    await log.flush();
    expect(log.stats().profiled).toBe(rows.length);
    // The loop turned between chunks: other callbacks ran with part of the queue profiled.
    expect(seen.some((n) => n > 0 && n < rows.length)).toBe(true);
    expect(Math.max(...seen.filter((n) => n < rows.length))).toBeLessThanOrEqual(3 * PROCESS_CHUNK);
    await log.close();
  });

  it('the monitor’s merge of 3 replicas’ deltas profiles all the traffic (sampled at 5 %) as one profile of every row does, and flags the same features', async () => {
    const { rows } = fraudTraffic({ rows: 3000, seed: 32, drift: 1 });
    const { replicas, profiles, logged } = await serveThroughReplicas(rows);
    expect(replicas.reduce((n, r) => n + r.log.stats().profiled, 0)).toBe(3000);
    expect(new Set(profiles.map((p) => p.replica)).size).toBe(3);
    // Sampling kept only some of the rows as records.
    expect(logged.length).toBeGreaterThan(0);
    expect(logged.length).toBeLessThan(600);

    const merged = new MonitorCore('fraud', 1, reference, { windows: [WINDOW] });
    for (const m of profiles) merged.addProfile(m);
    for (const r of logged) merged.addPrediction(r);
    const all = new MonitorCore('fraud', 1, reference, { windows: [WINDOW] });
    for (const r of records('fraud', 1, rows, () => T0 + 1000)) all.addPrediction(r);
    const [wm] = merged.close(T0 + WINDOW + 20_000);
    const [wa] = all.close(T0 + WINDOW + 20_000);
    expect(wm).toMatchObject({ rows: 3000, source: 'replicas', logged: logged.length });
    expect(wa).toMatchObject({ rows: 3000, source: 'log' });
    expect(merged.counters.profiled).toBe(3000);

    // Column by column: counts and moments as one profile of all the rows; distances within the sketch error.
    const one = new RecordProfile(reference.schema);
    for (const r of records('fraud', 1, rows, () => 0)) one.update({ features: Object.fromEntries(Object.entries(r.features).map(([k, v]) => [FRAUD_COLUMNS[Number(k.slice(2))]!, v])), outputs: r.outputs });
    const m = new RecordProfile(reference.schema);
    for (const p of profiles) m.merge(RecordProfile.fromJSON(p.profile, reference.schema));
    for (const c of FRAUD_COLUMNS) {
      const a = one.features[c]!;
      const b = m.features[c]!;
      expect(b.count, c).toBe(a.count);
      expect(b.valid(), c).toBe(a.valid());
      if (a.moments) expect(b.moments!.mean, c).toBeCloseTo(a.moments.mean, 6);
      if (a.freq) expect(Object.fromEntries(b.freq!.counts), c).toEqual(Object.fromEntries(a.freq.counts));
    }
    expect(m.confidence.n).toBe(one.confidence.n);
    const byA = new Map(wa!.drift!.features.map((f) => [f.feature, f]));
    for (const f of wm!.drift!.features) {
      const a = byA.get(f.feature)!;
      expect(f.test, f.feature).toBe(a.test);
      expect(f.drifted, f.feature).toBe(a.drifted);
      expect(Math.abs(f.statistic - a.statistic), f.feature).toBeLessThanOrEqual(0.02);
    }
    expect(wm!.drift!.features.filter((f) => f.drifted).length).toBeGreaterThan(0);
  });
});
