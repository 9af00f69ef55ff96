/**
 * Leader lease on a real nats-server (2.9, no per-key TTL): one leader among contenders, a
 * standby takes over when the leader stops renewing and its connection dies, never while the
 * leader is alive, and a clean release hands over without waiting for the TTL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { Role, VirtualClock, ensureResources, resources, type Logger, type NatsConnection } from '../../cluster/index.ts';
import { LeaderLease } from '../../scheduler/index.ts';
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
