/**
 * One active scheduler, a standby that takes over: two real scheduler processes contend for
 * the lease; SIGKILL the leader and the standby places actors (and re-places a dead node's).
 * Control modules run in both, leader-only ones on the leader only, and move with the lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, discover, request, requestAll, subjects, type NatsConnection, type ProcessInfo, type SchedulerStatus } from '../../cluster/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestProcess } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--scheduler.leaseTtlMs', '1500', '--actors.modules', '["test/fixtures/actors.ts"]', '--scheduler.modules', '["shoal:ml/control.ts", "test/fixtures/control.ts"]'];
const s = subjects();


describe('scheduler leader lease and failover (real processes)', () => {
  let c: TestCluster;
  let nc: NatsConnection;
  let client: ActorClient;
  /** The fixture control modules answer on subjects only the scheduler role may use. */
  let admin: NatsConnection;
  const schedulers: Record<string, TestProcess> = {};
  const leaders = async () => (await discover(nc, s, 300)).filter((p: ProcessInfo) => p.role === 'scheduler' && p.details.leader === true);

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, schedulers: ['sched-one', 'sched-two'], nodes: ['n1'] });
    schedulers.one = c.schedulers['sched-one']!;
    schedulers.two = c.schedulers['sched-two']!;
    nc = c.client;
    client = c.actors;
    admin = await c.nats.connect(Role.SCHEDULER);
  }, 90_000);

  afterAll(async () => c?.stop());

  it('exactly one scheduler leads, and it serves placement', async () => {
    const l = await until(async () => {
      const x = await leaders();
      return x.length === 1 ? x : undefined;
    }, 10_000, 'one leader');
    expect(l[0]!.id).toBe('sched-one');
    const all = (await discover(nc, s, 300)).filter((p) => p.role === 'scheduler');
    expect(all.map((p) => p.id).sort()).toEqual(['sched-one', 'sched-two']);
    const r = await client.spawn({ type: 'echo', id: 'before' });
    expect(r.actors[0]!.state).toBe('running');
  });

  it('control modules run in every scheduler process; a leaderOnly one on the leader only', async () => {
    const every = await requestAll<{ schedulerId: string }>(admin, `${s.prefix}.fixture.every`, {}, 500);
    expect(every.map((x) => x.schedulerId).sort()).toEqual(['sched-one', 'sched-two']);
    const leader = await requestAll<{ schedulerId: string; leader: boolean }>(admin, `${s.prefix}.fixture.leader`, {}, 500);
    expect(leader).toEqual([{ schedulerId: 'sched-one', leader: true }]);
  });

  it('SIGKILL the leader: the standby takes over and places actors', async () => {
    schedulers.one!.kill('SIGKILL');
    const l = await until(async () => {
      const x = await leaders();
      return x.length === 1 && x[0]!.id === 'sched-two' ? x : undefined;
    }, 15_000, 'sched-two leading');
    expect(l).toHaveLength(1);
    // The new leader knows the fleet and the actors placed by the old one.
    const st = await until(async () => {
      const r = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
      return r.schedulerId === 'sched-two' && r.nodes.length === 1 ? r : undefined;
    }, 10_000, 'status from the new leader');
    expect(st.actors).toBeGreaterThanOrEqual(1);
    const r = await client.spawn({ type: 'echo', id: 'after' }, { timeoutMs: 10_000 });
    expect(r.actors[0]!.state).toBe('running');
    expect((await client.ref('before').ask<{ actorId: string }>({ type: 'where' })).actorId).toBe('before');
    // The leader-only control module moved with the lease.
    const leader = await until(async () => {
      const x = await requestAll<{ schedulerId: string }>(admin, `${s.prefix}.fixture.leader`, {}, 300);
      return x.length === 1 && x[0]!.schedulerId === 'sched-two' ? x : undefined;
    }, 10_000, 'the leader-only module on sched-two');
    expect(leader).toHaveLength(1);
  });

  it('an actor that can never start stays pending with the reason, and is retried with backoff, not in a loop', async () => {
    const r = await client.spawn({ type: 'broken-start', id: 'never' }, { timeoutMs: 10_000 });
    expect(r.actors[0]!.state).toBe('pending');
    // Tried again after a refusal (the spacing — 250 ms doubling to 5 s, not a loop — is the
    // PendingBackoff unit test's business: test/scheduler/pending-backoff.test.ts).
    const refusals = () => schedulers.two!.lines.filter((l) => l.includes('"actorId":"never"') && l.includes('refused')).length;
    await until(() => (refusals() >= 2 ? true : undefined), 15_000, 'a second refused try');
    const st = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
    expect(st.pending?.find((p) => p.actorId === 'never')?.reason).toMatch(/broken on purpose/);
    await client.stop('never');
  });
});
