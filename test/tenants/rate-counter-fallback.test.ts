/**
 * The gateway's rate counter (gateway/quota-store.ts) keeps serving when its cluster-wide bucket
 * stops answering: counted in the shared bucket while it is there, then — the bucket gone, as
 * when the gateway's NATS server dies mid-request — counted by this gateway alone instead of
 * failing the request (the failure that made nats-cluster-load drop 1.6 % of requests).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { Role, WindowCounter, connectAs, credentialOf, ensureResources, resources, type NatsConnection } from '../../cluster/index.ts';
import { RATE_WINDOW_MS, RateCounter } from '../../gateway/quota-store.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

describe('RateCounter when the rate-window bucket does not answer', () => {
  let nats: TestNats;
  let sched: NatsConnection;
  let gw: NatsConnection;

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    gw = await nats.connect(Role.GATEWAY);
  }, 60_000);
  afterAll(async () => nats?.stop());

  it('counts in KV while the bucket is there, then locally (no throw) once it is gone', async () => {
    const warnings: string[] = [];
    const log = { warn: (_o: unknown, msg: string) => void warnings.push(msg) } as never;
    const counter = new RateCounter(gw, 'shoal', log);
    await counter.open();
    expect(counter.where).toBe('kv');
    expect((await counter.hit('tenant:acme', 100)).current).toBe(1);
    expect((await counter.hit('tenant:acme', 100)).current).toBe(2);

    // The bucket's stream removed: every KV add now fails.
    const jsm = await jetstreamManager(sched);
    await jsm.streams.delete(`KV_${resources('shoal').buckets.rateWindows}`);

    // Counted by this gateway alone from its own (fresh) window: 1, 2, 3 — and not thrown. (A
    // limit of 4: near it, so the request waits for the bucket's answer rather than going ahead.)
    expect((await counter.hit('tenant:acme', 4)).current).toBe(1);
    expect((await counter.hit('tenant:acme', 4)).current).toBe(2);
    const third = await counter.hit('tenant:acme', 2);
    expect(third.current).toBeGreaterThan(2); // over a limit of 2: the caller refuses it
    expect(warnings.filter((w) => /did not answer/.test(w))).toHaveLength(1); // once, not per request
  });

  it('a bucket that does not answer (its server gone): one short wait, then counted locally until the retry time, then asked again', async () => {
    const lone = await startTestNats();
    try {
      const sc = await lone.connect(Role.SCHEDULER);
      await ensureResources(sc);
      // A connection of its own that keeps reconnecting, as a gateway's does (the harness's do not).
      const conn = await connectAs({ servers: lone.url, role: Role.GATEWAY, credential: credentialOf(lone.credentials, Role.GATEWAY) });
      let now = 1_000_000;
      const warnings: string[] = [];
      const log = { warn: (_o: unknown, msg: string) => void warnings.push(msg) } as never;
      const counter = new RateCounter(conn, 'shoal', log, () => now, { sharedWaitMs: 100, sharedRetryMs: 2000 });
      expect((await counter.hit('tenant:acme', 100)).current).toBe(1);
      expect(counter.counted).toEqual({ shared: 1, ahead: 0, local: 0 });

      // The only server stops: the client keeps reconnecting, and a KV add would wait for its 5 s
      // timeout. Far under the limit, a request is admitted on the last known count at once.
      const disconnected = (async () => {
        for await (const st of conn.status()) if (st.type === 'disconnect') return;
      })();
      await lone.stop();
      await disconnected; // (a publish racing the socket's end trips nats.js: "write after end")
      expect((await counter.hit('tenant:acme', 100)).current).toBe(2);
      expect(counter.counted).toEqual({ shared: 1, ahead: 1, local: 0 });
      expect(warnings).toEqual([]);

      // That increment unanswered for longer than a request may wait: counted locally from now.
      now += 200;
      expect((await counter.hit('tenant:acme', 100)).current).toBe(1);
      expect(counter.counted).toEqual({ shared: 1, ahead: 1, local: 1 });
      expect(warnings.filter((w) => /did not answer/.test(w))).toHaveLength(1);

      // Within the retry time the bucket is not asked at all.
      now += 1999;
      expect((await counter.hit('tenant:acme', 100)).current).toBe(2);
      expect(counter.counted).toEqual({ shared: 1, ahead: 1, local: 2 });

      // After it, the bucket is asked again (still away: local again); a key with no known count
      // waits its short wait for the bucket, then counts locally too.
      now += 2;
      expect((await counter.hit('tenant:acme', 100)).current).toBe(3);
      expect((await counter.hit('tenant:other', 100)).current).toBe(1);
      expect(counter.counted).toEqual({ shared: 1, ahead: 1, local: 4 });
      expect(warnings.filter((w) => /did not answer/.test(w))).toHaveLength(1); // once a minute, not per request
      expect(conn.isClosed()).toBe(false); // still trying to reconnect: the wait was the counter's, not a closed connection's
      await conn.close().catch(() => undefined);
    } finally {
      await lone.stop().catch(() => undefined);
    }
  }, 60_000);

  it('admits far under the limit without waiting, waits for the exact position near it, and the bucket counts every request', async () => {
    await ensureResources(sched); // the bucket the first test removed
    const counter = new RateCounter(gw, 'shoal', undefined);
    await counter.open();
    expect(counter.where).toBe('kv');
    const currents: number[] = [];
    for (let i = 0; i < 10; i++) currents.push((await counter.hit('tenant:ahead', 8)).current);
    expect(currents).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]); // each request's own position: the 9th is refused
    expect(counter.counted.shared + counter.counted.ahead).toBe(10);
    // Only while count + 1 is at most half the limit: requests 2-4 at most.
    expect(counter.counted.ahead).toBeGreaterThanOrEqual(1);
    expect(counter.counted.ahead).toBeLessThanOrEqual(3);
    const kv = await new Kvm(gw).open(resources('shoal').buckets.rateWindows);
    const bucket = new WindowCounter(kv, { windowMs: RATE_WINDOW_MS, aligned: false });
    expect(await until(async () => ((await bucket.read('tenant:ahead')) === 10 ? 10 : undefined), 10_000, 'ten counted in the bucket')).toBe(10);
  });

  it('a burst admitted ahead gets its own positions and is counted exactly, in a few writes', async () => {
    const counter = new RateCounter(gw, 'shoal', undefined);
    expect((await counter.hit('tenant:burst', 1000)).current).toBe(1);
    const kv = await new Kvm(gw).open(resources('shoal').buckets.rateWindows);
    const key = WindowCounter.firstHitKey('tenant:burst');
    const rev0 = (await kv.get(key))!.revision;
    const burst = await Promise.all(Array.from({ length: 50 }, () => counter.hit('tenant:burst', 1000)));
    expect(burst.map((h) => h.current).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
    expect(counter.counted.ahead).toBe(50);
    const bucket = new WindowCounter(kv, { windowMs: RATE_WINDOW_MS, aligned: false });
    await until(async () => ((await bucket.read('tenant:burst')) === 51 ? true : undefined), 10_000, '51 counted in the bucket');
    // Nothing else writes this bucket now, so the revisions between are this key's writes.
    const writes = (await kv.get(key))!.revision - rev0;
    expect(writes).toBeGreaterThanOrEqual(1);
    expect(writes).toBeLessThanOrEqual(3);
  });
});
