/**
 * The cluster-wide window counter (cluster/window-counter.ts) on a real nats-server: two
 * processes' worth of counters (two connections with the gateway's rights) share one count per
 * window, concurrent increments each get a distinct position, a new window (injected clock)
 * starts at zero, a negative amount gives back, and the bucket ages keys out by its TTL.
 */
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, WindowCounter, ensureResources, resources, type NatsConnection } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('WindowCounter over NATS KV', () => {
  let nats: TestNats;
  let a: NatsConnection;
  let b: NatsConnection;
  let now = 1_000 * 60_000 + 5;
  const clock = () => now;

  beforeAll(async () => {
    nats = await startTestNats();
    await ensureResources(await nats.connect(Role.SCHEDULER));
    a = await nats.connect(Role.GATEWAY);
    b = await nats.connect(Role.GATEWAY);
  }, 60_000);
  afterAll(async () => nats?.stop());

  const counter = async (nc: NatsConnection, windowMs = 60_000) => new WindowCounter(await new Kvm(nc).open(resources().buckets.rateWindows), { windowMs, now: clock });

  it('two counters on two connections share one count: 40 concurrent adds get positions 1..40', async () => {
    const [x, y] = [await counter(a), await counter(b)];
    const got = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? x : y).add('tenant:acme')));
    expect(got.map((g) => g.current).sort((p, q) => p - q)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(await x.read('tenant:acme')).toBe(40);
    expect(got[0]!.ttlMs).toBe(60_000 - 5);
    // Another key is counted apart.
    expect((await y.add('tenant:globex')).current).toBe(1);
  });

  it('the next window starts at zero; the old window key is left alone', async () => {
    const x = await counter(a);
    const before = await x.read('tenant:acme');
    now += 60_000;
    expect(await x.read('tenant:acme')).toBe(0);
    expect((await x.add('tenant:acme')).current).toBe(1);
    const kv = await new Kvm(a).open(resources().buckets.rateWindows);
    const old = await kv.get(WindowCounter.kvKey(1000, 'tenant:acme'));
    expect(Number(new TextDecoder().decode(old!.value))).toBe(before);
  });

  it('a window started by the first hit (the rate limit) lasts windowMs from that hit, then starts again at 1', async () => {
    const [x, y] = [new WindowCounter(await new Kvm(a).open(resources().buckets.rateWindows), { windowMs: 60_000, now: clock, aligned: false }), new WindowCounter(await new Kvm(b).open(resources().buckets.rateWindows), { windowMs: 60_000, now: clock, aligned: false })];
    const t0 = now;
    expect(await x.add('tenant:tiny')).toEqual({ current: 1, ttlMs: 60_000 });
    now = t0 + 59_999;
    expect(await y.add('tenant:tiny')).toEqual({ current: 2, ttlMs: 1 });
    expect(await x.read('tenant:tiny')).toBe(2);
    now = t0 + 60_000;
    expect(await x.read('tenant:tiny')).toBe(0);
    expect(await y.add('tenant:tiny')).toEqual({ current: 1, ttlMs: 60_000 });
  });

  it('adds amounts and gives them back (a refused reservation)', async () => {
    const x = await counter(a, 86_400_000);
    expect((await x.add('acme', 300)).current).toBe(300);
    expect((await x.add('acme', 250)).current).toBe(550);
    expect((await x.add('acme', -250)).current).toBe(300);
  });

  it('the windows bucket keeps one value per key and ages keys out (TTL twice the window)', async () => {
    const kv = await new Kvm(a).open(resources().buckets.rateWindows);
    const st = await kv.status();
    expect(st.history).toBe(1);
    expect(st.ttl).toBe(120_000);
    const spend = await (await new Kvm(a).open(resources().buckets.tenantSpend)).status();
    expect(spend.ttl).toBe(2 * 86_400_000);
  });
});
