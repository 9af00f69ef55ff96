/**
 * The autoscaler in the running scheduler, with the local provider: pending actors make it
 * start real node-agent processes; idle launched nodes are stopped; a spot preemption notice
 * drains the node, the actor checkpoints and comes back on another node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, request, subjects, type NatsConnection, type SchedulerStatus } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { ProcessSet } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

const NODES = JSON.stringify([{ name: 'auto-spot', labels: { pool: 'auto-spot', zone: 'z1', spot: true, pricePerHour: 0.01 }, gpu: false, replicas: 0 }]);
const ARGS = [
  '--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000',
  '--actors.modules', '["test/fixtures/actors.ts"]',
  '--nodes', NODES,
  '--autoscaler.enabled', 'true', '--autoscaler.intervalMs', '300', '--autoscaler.idleTimeoutMs', '1500', '--autoscaler.maxPerPool', '3', '--autoscaler.noticeMs', '5000',
];
const s = subjects();


describe('autoscaling with the local provider (real processes)', () => {
  let nats: TestNats;
  let procs: ProcessSet;
  let nc: NatsConnection;
  let client: ActorClient;
  const status = () => request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' }, { timeoutMs: 3000 });

  beforeAll(async () => {
    nats = await startTestNats();
    procs = new ProcessSet(nats);
    // The launched nodes' users (slots auto-spot-auto-1…3) exist on the server; the scheduler
    // gets the node secret to derive each one's credentials.
    await nats.addNodes(['auto-spot-auto-1', 'auto-spot-auto-2', 'auto-spot-auto-3']);
    await procs.start('scheduler', 'scheduler/main.ts', 'scheduler', ARGS, { SHOAL_NATS_NODE_SECRET: nats.credentials.nodeSecret }).ready;
    nc = await nats.connect(Role.CLIENT);
    client = new ActorClient(nc, s);
  }, 60_000);

  afterAll(async () => {
    await procs?.stopAll(10_000);
    await nats?.stop();
  });

  it('a pending actor makes the autoscaler start a node agent, and the actor runs there', async () => {
    expect((await status()).nodes).toHaveLength(0);
    const r = await client.spawn({ type: 'tally', id: 'acc' });
    expect(r.actors[0]!.state).toBe('pending');
    const st = await until(async () => {
      const x = await status();
      return x.nodes.some((n) => n.alive) && x.pending?.length === 0 ? x : undefined;
    }, 60_000, 'a launched node and no pending actor');
    expect(st.nodes[0]!.labels.pool).toBe('auto-spot');
    const reply = await client.ref('acc').ask<{ sum: number; nodeId: string }>({ type: 'add', n: 7 }, { retry: { attempts: 20, delayMs: 200 } });
    expect(reply.sum).toBe(7);
    expect(reply.nodeId).toBe(st.nodes[0]!.nodeId);
  });

  it('a spot preemption notice drains the node: the actor checkpoints and resumes on a new node', async () => {
    const before = (await status()).nodes.find((n) => n.alive)!.nodeId;
    await request(nc, s.scheduler('nodes'), { type: 'preempt', nodeId: before, noticeMs: 5000 });
    // The notice is delivered asynchronously: until the drain starts the actor still answers there.
    const after = await until(async () => {
      const r = await client.ref('acc').ask<{ sum: number; drains: number; nodeId: string }>({ type: 'get' }, { timeoutMs: 2000 });
      return r.nodeId !== before ? r : undefined;
    }, 60_000, 'the actor on another node');
    expect(after.sum).toBe(7);
    expect(after.drains).toBe(1);
    const unknown = await request(nc, s.scheduler('nodes'), { type: 'preempt', nodeId: 'no-such-node' }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'SHOAL_ERR_UNKNOWN_NODE' });
  });

  it('a gang that cannot be placed counts as demand: the autoscaler adds nodes and a retry succeeds', async () => {
    const gang = () => client.spawn({ type: 'echo', id: 'crew', kind: 'training', resources: { cpu: 1.5 } }, { replicas: 2, gang: true });
    // Each member wants most of a node: two nodes are needed.
    const first = await gang().catch((e: unknown) => e);
    expect(first).toMatchObject({ code: 'SHOAL_ERR_NO_NODE_AVAILABLE' });
    const placed = await until(async () => gang(), 60_000, 'the gang placed on new nodes');
    expect(new Set(placed.actors.map((a) => a.nodeId)).size).toBe(2);
    for (const a of placed.actors) await client.stop(a.actorId);
  });

  it('stops a launched node once it is idle', async () => {
    await client.stop('acc');
    await until(async () => ((await status()).nodes.filter((n) => n.alive).length === 0 ? true : undefined), 60_000, 'idle nodes stopped');
  });
});
