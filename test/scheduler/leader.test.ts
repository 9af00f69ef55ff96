/**
 * Leader lease on a real nats-server (2.9, no per-key TTL): one leader among contenders, a
 * standby takes over when the leader stops renewing and its connection dies, never while the
 * leader is alive, and a clean release hands over without waiting for the TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { Role, VirtualClock, ensureResources, resources, type Logger, type NatsConnection } from '../../cluster/index.ts';
import { DUE_RETRY_MS, LeaderLease } from '../../scheduler/index.ts';
import { until } from '../harness/wait.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const TTL = 1200;

describe('leader lease (real nats-server)', () => {
  let nats: TestNats;
  const leases: LeaderLease[] = [];

  async function contender(id: string, key: string, clock?: VirtualClock, log?: Logger): Promise<{ lease: LeaderLease; nc: NatsConnection; kv: KV }> {
    const nc = await nats.connect(Role.SCHEDULER);
    const kv = await new Kvm(nc).open(resources().buckets.leases);
    const lease = new LeaderLease({ kv, holderId: id, key, ttlMs: TTL, ...(clock ? { clock } : {}), ...(log ? { log } : {}) });
    leases.push(lease);
    return { lease, nc, kv };
  }

  beforeAll(async () => {
    nats = await startTestNats();
    await ensureResources(await nats.connect(Role.SCHEDULER));
  });

  afterAll(async () => {
    await Promise.allSettled(leases.map((l) => l.stop({ release: false })));
    await nats?.stop();
  });

  it('exactly one of several simultaneous contenders wins', async () => {
    const cs = await Promise.all(['s1', 's2', 's3', 's4'].map((id) => contender(id, 'race')));
    await Promise.all(cs.map((c) => c.lease.tick()));
    expect(cs.filter((c) => c.lease.isLeader())).toHaveLength(1);
    const winner = cs.find((c) => c.lease.isLeader())!.lease;
    const loser = cs.find((c) => !c.lease.isLeader())!.lease;
    expect(() => loser.assertLeader()).toThrow(/is not the leader/);
    await loser.tick();
    expect(loser.leader()).toBe(winner.holderId);
  });

  it('the standby takes over when the leader dies, and not before', async () => {
    // Both contenders on one virtual clock: each step of time is taken by hand and both renew
    // or observe at it, so "never before" is checked at every step rather than by a sleep.
    const clock = new VirtualClock(0);
    const a = await contender('active', 'sched', clock);
    const b = await contender('standby', 'sched', clock);
    await a.lease.tick();
    expect(a.lease.isLeader()).toBe(true);
    await b.lease.tick();
    const changes: boolean[] = [];
    b.lease.onChange((l) => changes.push(l));
    const step = a.lease.renewEveryMs;
    // Three TTLs with the leader renewing: the standby never leads.
    for (let t = 0; t < 3 * TTL; t += step) {
      clock.advance(step);
      await a.lease.tick();
      await b.lease.tick();
      expect(b.lease.isLeader()).toBe(false);
      expect(a.lease.isLeader()).toBe(true);
    }
    expect(b.lease.leader()).toBe('active');
    const epochA = a.lease.epoch;
    // Kill the active one: it stops renewing and its connection goes away. The standby takes
    // over once it has seen the same revision for a TTL on its own clock — and not a step sooner.
    await a.lease.stop({ release: false });
    await a.nc.close();
    let waited = 0;
    while (!b.lease.isLeader()) {
      clock.advance(step);
      waited += step;
      await b.lease.tick();
      expect(waited).toBeLessThanOrEqual(TTL + 2 * step);
    }
    expect(waited).toBeGreaterThanOrEqual(TTL);
    expect(changes).toEqual([true]);
    expect(b.lease.epoch).toBeGreaterThan(epochA);
    const rec = await b.kv.get('sched');
    expect(rec?.revision).toBe(b.lease.epoch);
  });

  it('a standby takes over when the revision it saw has been quiet for exactly a TTL, not at a later renewal tick', async () => {
    const clock = new VirtualClock(0);
    const a = await contender('holder', 'expiry', clock);
    const b = await contender('waiter', 'expiry', clock);
    await a.lease.tick();
    await b.lease.tick(); // sees the holder's revision at t = 0
    await a.lease.stop({ release: false });
    const took = new Promise<number>((resolve) => b.lease.onChange((l) => l && resolve(clock.now())));
    // No periodic step runs (start() was never called): only the check due at t = TTL can act.
    clock.advance(TTL - 1);
    expect(b.lease.isLeader()).toBe(false);
    clock.advance(1);
    // Without the check the takeover never comes (the test's own timeout ends it).
    expect(await took).toBe(TTL);
  });

  it('a standby counts the TTL from when its read was answered: a slow read that shows a fresh renewal does not shorten the wait', async () => {
    const clock = new VirtualClock(0);
    const a = await contender('renewer', 'slow-read', clock);
    const b = await contender('slow', 'slow-read', clock);
    await a.lease.tick();
    // The standby's first read is sent at t = 0; the holder renews at t = 300 while it is on the
    // way, and the answer (showing that renewal) arrives at t = 400.
    let first = true;
    const slowGet = async (k: string) => {
      if (first) {
        first = false;
        clock.advance(300);
        await a.lease.tick();
        clock.advance(100);
      }
      return b.kv.get(k);
    };
    const slow = new LeaderLease({
      kv: { get: slowGet, update: b.kv.update.bind(b.kv), create: b.kv.create.bind(b.kv), delete: b.kv.delete.bind(b.kv) } as unknown as KV,
      holderId: 'slow',
      key: 'slow-read',
      ttlMs: TTL,
      clock,
    });
    leases.push(slow);
    await slow.tick();
    expect(clock.now()).toBe(400);
    await a.lease.stop({ release: false });
    const took = new Promise<number>((resolve) => slow.onChange((l) => l && resolve(clock.now())));
    // The holder leads until t = 300 + TTL. A step at t = TTL that counted from the read's start would take over.
    clock.advance(TTL - 400);
    await slow.tick();
    expect(slow.isLeader()).toBe(false);
    clock.advance(399);
    await slow.tick();
    expect(slow.isLeader()).toBe(false);
    clock.advance(1);
    expect(await took).toBe(400 + TTL);
  });

  it('a due takeover that JetStream refuses is tried again soon, not at the next step', async () => {
    const clock = new VirtualClock(0);
    const a = await contender('leaderless', 'due-retry', clock);
    const b = await contender('retrier', 'due-retry', clock);
    await a.lease.tick();
    // The lease stream has no leader for a while (its server died with the holder): the CAS fails twice.
    let refusals = 2;
    const updates: number[] = [];
    const kv = {
      get: b.kv.get.bind(b.kv),
      create: b.kv.create.bind(b.kv),
      delete: b.kv.delete.bind(b.kv),
      update: async (...args: Parameters<KV['update']>) => {
        updates.push(clock.now());
        if (refusals-- > 0) throw new Error('503 no responders');
        return b.kv.update(...args);
      },
    } as unknown as KV;
    const retrier = new LeaderLease({ kv, holderId: 'retrier', key: 'due-retry', ttlMs: TTL, clock });
    leases.push(retrier);
    await retrier.tick();
    await a.lease.stop({ release: false });
    const took = new Promise<number>((resolve) => retrier.onChange((l) => l && resolve(clock.now())));
    // No periodic step runs (start() was never called): only the due check and its retries act.
    clock.advance(TTL);
    await until(() => (updates.length === 1 ? true : undefined), 5000, 'the first CAS', 5);
    clock.advance(DUE_RETRY_MS);
    await until(() => (updates.length === 2 ? true : undefined), 5000, 'the second CAS', 5);
    clock.advance(DUE_RETRY_MS);
    expect(await took).toBe(TTL + 2 * DUE_RETRY_MS);
    expect(updates).toEqual([TTL, TTL + DUE_RETRY_MS, TTL + 2 * DUE_RETRY_MS]);
  });

  it('a running standby reads the lease every observeEveryMs: it takes over within that of the TTL after the last renewal', async () => {
    const clock = new VirtualClock(0);
    const a = await contender('renews-once', 'cadence', clock);
    await a.lease.tick();
    // Every read the standby makes is counted; the test moves time only when none is in flight.
    let inFlight = 0;
    const { kv: raw } = await contender('unused', 'cadence-unused', clock);
    const counted = <A extends unknown[], R>(f: (...x: A) => Promise<R>) => async (...x: A): Promise<R> => {
      inFlight++;
      try {
        return await f(...x);
      } finally {
        inFlight--;
      }
    };
    const kv = { get: counted(raw.get.bind(raw)), update: counted(raw.update.bind(raw)), create: counted(raw.create.bind(raw)), delete: counted(raw.delete.bind(raw)) } as unknown as KV;
    // Reads only (no watch): the fallback when a watch is broken.
    const b = new LeaderLease({ kv, holderId: 'watcher', key: 'cadence', ttlMs: TTL, clock, watch: false });
    leases.push(b);
    expect(b.observeEveryMs).toBe(TTL / 10);
    await b.start();
    const settle = () => until(() => (inFlight === 0 ? true : undefined), 5000, 'no read in flight', 1);
    // The holder renews once just after the standby's start, then dies.
    clock.advance(10);
    await settle();
    await a.lease.tick();
    await a.lease.stop({ release: false });
    let took: number | undefined;
    b.onChange((l) => void (l && (took = clock.now())));
    while (took === undefined && clock.now() < 10 + 2 * TTL) {
      clock.advance(10);
      await settle();
    }
    // Seen at the first read after t = 10 (t = 120), taken a TTL later; a read every renewEveryMs would have seen it at t = 400.
    expect(took).toBeGreaterThanOrEqual(10 + TTL);
    expect(took).toBeLessThanOrEqual(10 + TTL + b.observeEveryMs);
  });

  it('a watching standby learns of a renewal as it is written, and of a release at once', async () => {
    const clock = new VirtualClock(0);
    const a = await contender('watched', 'watch', clock);
    const b = await contender('watching', 'watch', clock);
    await a.lease.tick();
    await b.lease.start();
    expect(b.lease.leader()).toBe('watched');
    // A renewal at t = 10, long before the standby's next read (t = 120): the watch brings it while time stands still.
    clock.advance(10);
    await a.lease.tick();
    const renewed = a.lease.epoch;
    expect(await until(() => (b.lease.observed()?.revision === renewed ? b.lease.observed() : undefined), 10_000, 'the renewal seen by the watch', 5)).toEqual({ revision: renewed, since: 10, holder: 'watched' });
    // A clean release: the standby leads with no step of its clock.
    await a.lease.stop();
    await until(() => (b.lease.isLeader() ? true : undefined), 10_000, 'the standby leading after the release', 5);
    expect(clock.now()).toBe(10);
    await b.lease.stop({ release: false });
  });

  it('a clean release hands over at the standby’s next step', async () => {
    const a = await contender('first', 'handover');
    const b = await contender('second', 'handover');
    await a.lease.tick();
    await b.lease.tick();
    expect(a.lease.isLeader()).toBe(true);
    expect(b.lease.isLeader()).toBe(false);
    await a.lease.stop();
    await b.lease.tick();
    expect(b.lease.isLeader()).toBe(true);
    // The old leader coming back finds the lease taken and stays standby.
    const again = new LeaderLease({ kv: a.kv, holderId: 'first', key: 'handover', ttlMs: TTL });
    leases.push(again);
    await again.tick();
    expect(again.isLeader()).toBe(false);
  });

  it('a stopped contender takes no step again: a late nudge (a reconnect) does not take a released lease back', async () => {
    const a = await contender('gone', 'late-nudge');
    await a.lease.tick();
    expect(a.lease.isLeader()).toBe(true);
    await a.lease.stop();
    await a.lease.tick();
    expect(a.lease.isLeader()).toBe(false);
    // The release stands: the key holds a delete marker, not a fresh write by the stopped contender.
    expect((await a.kv.get('late-nudge'))?.operation).toBe('DEL');
  });

  it('a contender that cannot reach the lease bucket for longer than the TTL says so once, and is not leader', async () => {
    const clock = new VirtualClock(1_000_000);
    const warnings: string[] = [];
    const log = { info: () => undefined, debug: () => undefined, warn: (_o: unknown, msg: string) => void warnings.push(msg) } as unknown as Logger;
    const { lease, nc } = await contender('cut-off', 'unreachable', clock, log);
    await lease.tick();
    expect(lease.isLeader()).toBe(true);
    await nc.close();
    await lease.tick();
    clock.advance(TTL / 2);
    await lease.tick();
    expect(warnings).toEqual([]);
    clock.advance(TTL / 2);
    await lease.tick();
    expect(warnings).toEqual(['lease unreadable or unwritable for longer than its TTL']);
    expect(lease.isLeader()).toBe(false);
    clock.advance(TTL);
    await lease.tick();
    expect(warnings).toHaveLength(1);
  });
});
