/**
 * A node agent that is SIGKILLed and restarted under the same id before the heartbeat timeout
 * (what `shoal up`'s supervisor does in ~1 s) must not keep its old actors "running" in the
 * directory: the new process is a new incarnation, and the scheduler re-places the old one's
 * actors at once. `deadAfterMs` is a minute here, so only the incarnation can explain a recovery
 * within the test's waits (the heartbeat timeout would take longer than they allow).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, decode, openBucket, resources, subjects, type DirectoryEntry } from '../../cluster/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '60000', '--actors.modules', '["test/fixtures/actors.ts"]'];
const s = subjects();

describe('a node restarted under the same id (real processes)', () => {
  let c: TestCluster;
  const events: { nodeId: string; why?: string }[] = [];

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: ['n1'] });
    c.client.subscribe(s.event('node-dead'), { callback: (_e, m) => void events.push(decode(m.data) as { nodeId: string; why?: string }) });
  }, 90_000);

  afterAll(async () => c?.stop());

  it('re-places the old process\'s actors at once: pinned ones on the new process, free ones anywhere', async () => {
    const { actors } = c;
    await actors.spawn({ type: 'tally', id: 'pinned', constraints: { nodeId: 'n1' } });
    await actors.spawn({ type: 'echo', id: 'roamer' });
    const before = await actors.ref('pinned').ask<{ nodeId: string }>({ type: 'get' });
    expect(before.nodeId).toBe('n1');
    expect((await actors.ref('roamer').ask<{ nodeId: string; pid: number }>({ type: 'where' })).pid).toBe(c.nodes.n1!.pid);
    // A second node only now, so the roamer started on n1 and may move.
    await c.startNode('n2');

    const oldPid = c.nodes.n1!.pid;
    c.nodes.n1!.kill('SIGKILL');
    await c.nodes.n1!.exited;
    await c.startNode('n1');

    const pinned = await until(() => actors.ref('pinned').ask<{ nodeId: string; sum: number }>({ type: 'get' }, { timeoutMs: 1000 }), 20_000, 'the pinned actor running again on the restarted n1', 200);
    expect(pinned.nodeId).toBe('n1');
    const roamer = await until(() => actors.ref('roamer').ask<{ pid: number }>({ type: 'where' }, { timeoutMs: 1000 }), 20_000, 'the free actor running again', 200);
    expect(roamer.pid).not.toBe(oldPid);
    // The directory tells the truth: both entries belong to live processes' incarnations.
    const st = await c.status();
    const incarnations = new Map(st.nodes.map((n) => [n.nodeId, n.incarnation]));
    const directory = await openBucket(await c.nats.connect(Role.SCHEDULER), resources().buckets.actors);
    for (const id of ['pinned', 'roamer']) {
      const e = decode((await directory.get(id))!.value) as DirectoryEntry;
      expect(e.state).toBe('running');
      expect(e.incarnation).toBe(incarnations.get(e.nodeId));
    }
    expect(events).toContainEqual(expect.objectContaining({ nodeId: 'n1', why: 'restarted' }));
  });
});

describe('replicas spread over nodes by default (real processes)', () => {
  let c: TestCluster;

  // Three idle nodes of one profile: one pool, so only anti-affinity can tell them apart.
  beforeAll(async () => void (c = await startCluster({ args: ARGS, nodes: ['s1', 's2', 's3'] })), 90_000);
  afterAll(async () => c?.stop());

  it('a service\'s three replicas, and a gang of one group, land on three different nodes', async () => {
    const svc = await c.actors.spawn({ type: 'echo', service: 'spread-svc' }, { replicas: 3 });
    expect(new Set(svc.actors.map((a) => a.nodeId)).size).toBe(3);
    const gang = await c.actors.spawn({ type: 'echo', id: 'job-x-w', group: 'job-x' }, { replicas: 3, gang: true });
    expect(new Set(gang.actors.map((a) => a.nodeId)).size).toBe(3);
  });
});
