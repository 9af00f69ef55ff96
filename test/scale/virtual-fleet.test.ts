/**
 * Virtual nodes (nodes/virtual-fleet.ts) against the real scheduler over a real nats-server: the
 * leader sees them all, places echo actors on them spread one per node, an ask reaches an actor,
 * presence answers once per node, and a silenced node is declared dead with its actors re-placed
 * under a higher epoch. This is what `npm run bench:scale` measures at 1,000 and 5,000 nodes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory, Role, clusterStatus, connectAs, decode, openBucket, request, resources, subjects, type NatsConnection, type SpawnResult } from '../../cluster/index.ts';
import { VirtualFleet, virtualNodeIds } from '../../nodes/virtual-fleet.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const s = subjects();
const HEARTBEAT_MS = 200;
const N = 40;

describe('virtual fleet', () => {
  let cluster: TestCluster;
  let fleet: VirtualFleet;
  const conns: NatsConnection[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ args: ['--membership.heartbeatMs', String(HEARTBEAT_MS), '--membership.deadAfterMs', '1500'] });
    conns.push(await cluster.nats.connect(Role.SCHEDULER));
    // Every node's own NATS user first (one config reload), then one connection per node.
    await cluster.nats.addNodes(virtualNodeIds('vn', N));
    fleet = new VirtualFleet({
      connect: (nodeId) => connectAs({ servers: cluster.nats.url, role: Role.NODE, nodeId, credential: cluster.nats.nodeCredential(nodeId), reconnect: false }),
      subjects: s,
      prefix: 'shoal',
      count: N,
      idPrefix: 'vn',
      heartbeatMs: HEARTBEAT_MS,
      labels: (i) => ({ pool: i % 2 ? 'cpu-spot' : 'cpu-ondemand', zone: `zone-${i % 3}`, spot: i % 2 === 1, pricePerHour: i % 2 ? 0.012 : 0.04 }),
    });
    await fleet.start();
  }, 60_000);

  afterAll(async () => {
    await fleet?.stop();
    await cluster?.stop();
  });

  it('the leader sees every virtual node alive', async () => {
    const st = await cluster.untilNodes(fleet.nodeIds, 20_000);
    expect(st.nodes.filter((n) => n.alive)).toHaveLength(N);
    expect(fleet.heartbeatErrors).toBe(0);
  });

  it('presence: one answer per virtual node, besides the scheduler', async () => {
    const report = await clusterStatus(cluster.client, s, 500);
    const nodes = report.processes.filter((p) => p.role === 'node').map((p) => p.id).sort();
    expect(nodes).toEqual([...fleet.nodeIds].sort());
    expect(report.processes.some((p) => p.role === 'scheduler')).toBe(true);
  });

  it('places a service of echo actors one per node, and an ask reaches them', async () => {
    const res = await request<SpawnResult>(cluster.client, s.scheduler('actors'), { type: 'spawn', spec: { type: 'echo', service: 'echo-svc' }, replicas: 12 }, { timeoutMs: 20_000 });
    expect(res.actors).toHaveLength(12);
    expect(new Set(res.actors.map((a) => a.nodeId)).size).toBe(12);
    const counts = fleet.actorCounts();
    expect(Math.max(...Object.values(counts))).toBe(1);
    const reply = await cluster.actors.ref(res.actors[0]!.actorId).ask<{ hello: string }>({ hello: 'world' });
    expect(reply).toEqual({ hello: 'world' });
  });

  it('a silenced node is declared dead and its actor comes back elsewhere with a higher epoch', async () => {
    const victim = Object.entries(fleet.actorCounts()).find(([, n]) => n === 1)![0];
    const actorId = fleet.actorsOn(victim)[0]!;
    const dead = new Promise<string>((resolve) => {
      const sub = cluster.client.subscribe(s.event('node-dead'), {
        callback: (_e, m) => {
          const ev = decode(m.data) as { nodeId: string };
          if (ev.nodeId === victim) {
            sub.unsubscribe();
            resolve(ev.nodeId);
          }
        },
      });
    });
    const epochBefore = (await entryOf(actorId))!.epoch;
    fleet.silence(victim);
    expect(await dead).toBe(victim);
    const moved = await until(async () => {
      const e = await entryOf(actorId);
      return e && e.nodeId !== victim && e.state === 'running' ? e : undefined;
    }, 20_000, `${actorId} re-placed off ${victim}`);
    expect(moved.epoch).toBeGreaterThan(epochBefore);
    expect(await cluster.actors.ref(actorId).ask({ again: 1 })).toEqual({ again: 1 });
  });

  async function entryOf(actorId: string) {
    return (await new Directory(await openBucket(conns[0]!, resources('shoal').buckets.actors)).get(actorId))?.entry;
  }
});
