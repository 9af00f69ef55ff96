/**
 * The latency gate (ml/pipelines/latency-gate.ts): its verdict and quantile on known values; the
 * replay's rows read back from a real prediction log on a real nats-server (columnar batches the
 * replica's PredictionLog wrote, mapped by position onto the dataset's columns, the latest kept);
 * and a replay through real ONNX Runtime sessions. No figure of the replay is asserted: timings
 * are this machine's, only their shape is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { jetstream } from '@nats-io/jetstream';
import { ContentType, ensureResources, encode, Role, subjects, type NatsConnection } from '../../cluster/index.ts';
import { PredictionLog } from '../../ml/monitoring/prediction-log.ts';
import { judgeLatency, loggedRows, nearestRank, replayLatency } from '../../ml/pipelines/latency-gate.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { scoreModel } from '../fixtures/monitoring.ts';

describe('latency gate: verdict', () => {
  it('nearest-rank quantiles of known lists', () => {
    const xs = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(nearestRank(xs, 0.99)).toBe(198);
    expect(nearestRank(xs, 0.5)).toBe(100);
    expect(nearestRank([5], 0.99)).toBe(5);
    expect(nearestRank([], 0.99)).toBeNaN();
  });

  it('passes within the ratio and the bound, fails past either, and says why with the sample size', () => {
    const replay = { requests: 300, source: 'log' as const, candidate: { p50: 0.4, p99: 1.2 }, production: { p50: 0.4, p99: 1.0 } };
    const ok = judgeLatency({ maxRatio: 1.5 }, replay);
    expect(ok).toMatchObject({ gate: 'latency', pass: true });
    expect(ok.message).toBe('p99 1.20 ms over 300 replayed requests (logged traffic), production 1.00 ms: 1.20× ≤ 1.5×');
    const slow = judgeLatency({ maxRatio: 1.1 }, replay);
    expect(slow.pass).toBe(false);
    expect(slow.message).toContain('1.20× > 1.1×');
    const bound = judgeLatency({ maxRatio: 2, maxP99Ms: 1 }, { ...replay, source: 'holdout' });
    expect(bound.pass).toBe(false);
    expect(bound.message).toBe('p99 1.20 ms over 300 replayed requests (holdout rows: no logged traffic), production 1.00 ms: 1.20× ≤ 2×, > 1 ms');
    // A first version: only the bound applies.
    expect(judgeLatency({ maxRatio: 1.5 }, { requests: 50, source: 'log', candidate: { p50: 1, p99: 9 } }).pass).toBe(true);
  });
});

describe('latency gate: replay of logged traffic (real nats-server, real onnxruntime)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  const s = subjects();

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
  }, 60_000);
  afterAll(async () => nats?.stop());

  it('no logged traffic: no rows (the gate then replays the holdout)', async () => {
    expect((await loggedRows(nc, 'shoal', 'never-served', ['a', 'b', 'c', 'd'], 100)).rows).toBe(0);
  });

  it('reads the latest logged rows, mapped by position onto the columns, and replays them to two sessions', async () => {
    const js = jetstream(nc);
    const log = new PredictionLog({ model: 'lat', version: 1, spec: { sampleRate: 1, batchRecords: 50 }, encode: (m) => encode(m, ContentType.MSGPACK), publish: async (b) => void (await js.publish(s.predictions('lat'), b)) });
    // 120 one-row requests; row i is [i, i+1, i+2, i+3].
    for (let i = 0; i < 120; i++) {
      const p = log.begin([{ name: 'X', datatype: 'FP32', data: Float32Array.of(i, i + 1, i + 2, i + 3), dims: [1, 4] }], `r${i}`, undefined, 0)!;
      log.end(p, [{ name: 'score', datatype: 'FP32', data: Float32Array.of(0.5), dims: [1, 1] }], 1);
    }
    await log.close();
    const got = await loggedRows(nc, 'shoal', 'lat', ['a', 'b', 'c', 'd'], 100);
    expect(got.rows).toBe(100);
    // The latest 100: rows 20…119, in order.
    expect(Array.from(got.x.subarray(0, 4))).toEqual([20, 21, 22, 23]);
    expect(Array.from(got.x.subarray(99 * 4))).toEqual([119, 120, 121, 122]);

    const open = async (seed: number) => ({ session: await ort.InferenceSession.create(scoreModel(seed), { intraOpNumThreads: 1 }), input: 'X' });
    const [a, b] = [await open(3), await open(4)];
    try {
      const r = await replayLatency(a, b, got.x, got.rows, 4, 'log');
      expect(r.requests).toBe(100);
      for (const f of [r.candidate, r.production!]) {
        expect(f.p50).toBeGreaterThan(0);
        expect(f.p99).toBeGreaterThanOrEqual(f.p50);
      }
    } finally {
      await a.session.release();
      await b.session.release();
    }
  }, 60_000);
});
