/**
 * A node agent that is SIGKILLed and restarted under the same id before the heartbeat timeout
 * (what `shoal up`'s supervisor does in ~1 s) must not keep its old actors "running" in the
 * directory: the new process is a new incarnation, and the scheduler re-places the old one's
 * actors at once. `deadAfterMs` is a minute here, so only the incarnation can explain a recovery
 * within the test's waits (the heartbeat timeout would take longer than they allow).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, decode, openBucket, request, resources, subjects, type DirectoryEntry, type NatsConnection, type SchedulerStatus } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { ProcessSet, type TestProcess } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '60000', '--actors.modules', '["test/fixtures/actors.ts"]'];
const s = subjects();

describe('a node restarted under the same id (real processes)', () => {
  let nats: TestNats;
  let procs: ProcessSet;
  let nc: NatsConnection;
  let client: ActorClient;
  let n1: TestProcess;
  const events: { nodeId: string; why?: string }[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    procs = new ProcessSet(nats);
    await procs.startScheduler(ARGS).ready;
    n1 = await procs.startNode('n1', 'cpu-spot', ARGS);
    await n1.ready;
    nc = await nats.connect(Role.CLIENT);
    client = new ActorClient(nc, s);
    nc.subscribe(s.event('node-dead'), { callback: (_e, m) => void events.push(decode(m.data) as { nodeId: string; why?: string }) });
    await until(async () => {
      const st = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
      return st.nodes.some((n) => n.nodeId === 'n1' && n.alive) ? true : undefined;
    }, 20_000, 'n1 registered');
  }, 90_000);

  afterAll(async () => {
    await procs?.stopAll();
    await nats?.stop();
  });

  it('re-places the old process\'s actors at once: pinned ones on the new process, free ones anywhere', async () => {
    await client.spawn({ type: 'tally', id: 'pinned', constraints: { nodeId: 'n1' } });
    await client.spawn({ type: 'echo', id: 'roamer' });
    const before = await client.ref('pinned').ask<{ nodeId: string }>({ type: 'get' });
    expect(before.nodeId).toBe('n1');
    expect((await client.ref('roamer').ask<{ nodeId: string; pid: number }>({ type: 'where' })).pid).toBe(n1.pid);
    // A second node only now, so the roamer started on n1 and may move.
    await (await procs.startNode('n2', 'cpu-spot', ARGS)).ready;

    const oldPid = n1.pid;
    n1.kill('SIGKILL');
    await n1.exited;
    n1 = await procs.startNode('n1', 'cpu-spot', ARGS);
    await n1.ready;

    const pinned = await until(
      () => client.ref('pinned').ask<{ nodeId: string; sum: number }>({ type: 'get' }, { timeoutMs: 1000 }),
      20_000,
      'the pinned actor running again on the restarted n1',
      200,
    );
    expect(pinned.nodeId).toBe('n1');
    const roamer = await until(
      () => client.ref('roamer').ask<{ pid: number }>({ type: 'where' }, { timeoutMs: 1000 }),
      20_000,
      'the free actor running again',
      200,
    );
    expect(roamer.pid).not.toBe(oldPid);
    // The directory tells the truth: both entries belong to live processes' incarnations.
    const st = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
    const incarnations = new Map(st.nodes.map((n) => [n.nodeId, n.incarnation]));
    const actors = await openBucket(await nats.connect(Role.SCHEDULER), resources().buckets.actors);
    for (const id of ['pinned', 'roamer']) {
      const e = decode((await actors.get(id))!.value) as DirectoryEntry;
      expect(e.state).toBe('running');
      expect(e.incarnation).toBe(incarnations.get(e.nodeId));
    }
    expect(events).toContainEqual(expect.objectContaining({ nodeId: 'n1', why: 'restarted' }));
  });
});

describe('replicas spread over nodes by default (real processes)', () => {
  let nats: TestNats;
  let procs: ProcessSet;
  let client: ActorClient;

  beforeAll(async () => {
    nats = await startTestNats();
    procs = new ProcessSet(nats);
    await procs.startScheduler(ARGS).ready;
    // Three idle nodes of one profile: one pool, so only anti-affinity can tell them apart.
    await Promise.all(['s1', 's2', 's3'].map((id) => procs.startNode(id, 'cpu-spot', ARGS).then((p) => p.ready)));
    const nc = await nats.connect(Role.CLIENT);
    client = new ActorClient(nc, s);
    await until(async () => {
      const st = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
      return st.nodes.filter((n) => n.alive).length === 3 ? true : undefined;
    }, 20_000, 'three nodes registered');
  }, 90_000);

  afterAll(async () => {
    await procs?.stopAll();
    await nats?.stop();
  });

  it('a service\'s three replicas, and a gang of one group, land on three different nodes', async () => {
    const svc = await client.spawn({ type: 'echo', service: 'spread-svc' }, { replicas: 3 });
    expect(new Set(svc.actors.map((a) => a.nodeId)).size).toBe(3);
    const gang = await client.spawn({ type: 'echo', id: 'job-x-w', group: 'job-x' }, { replicas: 3, gang: true });
    expect(new Set(gang.actors.map((a) => a.nodeId)).size).toBe(3);
  });
});
