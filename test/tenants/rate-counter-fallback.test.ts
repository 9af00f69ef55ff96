/**
 * The gateway's rate counter (gateway/quota-store.ts) keeps serving when its cluster-wide bucket
 * stops answering: counted in the shared bucket while it is there, then — the bucket gone, as
 * when the gateway's NATS server dies mid-request — counted by this gateway alone instead of
 * failing the request (the failure that made nats-cluster-load drop 1.6 % of requests).
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, ensureResources, resources, type NatsConnection } from '../../cluster/index.ts';
import { RateCounter } from '../../gateway/quota-store.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

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

    // Counted by this gateway alone from its own (fresh) window: 1, 2, 3 — and not thrown.
    expect((await counter.hit('tenant:acme', 100)).current).toBe(1);
    expect((await counter.hit('tenant:acme', 100)).current).toBe(2);
    const third = await counter.hit('tenant:acme', 2);
    expect(third.current).toBeGreaterThan(2); // over a limit of 2: the caller refuses it
    expect(warnings.filter((w) => /did not answer/.test(w))).toHaveLength(1); // once, not per request
  });
});
