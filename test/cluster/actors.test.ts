/**
 * The actor runtime across real processes: a real nats-server, a real scheduler process and
 * real node-agent processes hosting the fixture actors; nodes are SIGKILLed and SIGTERMed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Directory, Errors, Role, decode, openBucket, request, resources, subjects, type NatsConnection, type SpawnResult } from '../../cluster/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestNats } from '../harness/nats.ts';
import type { TestProcess } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["test/fixtures/actors.ts"]', '--actors.drainTimeoutMs', '10000'];
const s = subjects();


describe('actors across real node processes', () => {
  let c: TestCluster;
  let nats: TestNats;
  let client: ActorClient;
  let clientNc: NatsConnection;
  let directory: Directory;
  /** The directory with the scheduler's rights (only the scheduler and nodes write it). */
  let adminDirectory: Directory;
  /** Node processes by short name (a, b, c …). */
  const nodes: Record<string, TestProcess> = {};
  const status = () => c.status();
  const where = async (actorId: string) => (await directory.get(actorId))?.entry;
  const startNode = async (short: string, profile = 'cpu-spot') => (nodes[short] = await c.startNode({ id: `node-${short}`, profile }));

  beforeAll(async () => {
    // `spread` makes replica placement predictable here; the cost-aware default is covered by test/scheduler.
    c = await startCluster({ args: ARGS, schedulerArgs: ['--scheduler.strategy', 'spread'], nodes: ['node-a', { id: 'node-b', profile: 'cpu-ondemand' }] });
    nats = c.nats;
    nodes.a = c.nodes['node-a']!;
    nodes.b = c.nodes['node-b']!;
    clientNc = c.client;
    directory = new Directory(await openBucket(clientNc, resources().buckets.actors));
    adminDirectory = new Directory(await openBucket(await nats.connect(Role.SCHEDULER), resources().buckets.actors));
    client = new ActorClient(clientNc, s, directory);
  }, 90_000);

  afterAll(async () => c?.stop());

  it('ask and tell reach an actor on another process; refs travel as data', async () => {
    const r = await client.spawn({ type: 'echo', id: 'greeter' });
    expect(r.actors[0]).toMatchObject({ actorId: 'greeter', state: 'running' });
    const ref = await client.lookup('greeter');
    const reply = await ref.ask<{ text: string; nodeId: string }>({ type: 'echo', text: 'hello' });
    expect(reply.text).toBe('hello');
    expect(['node-a', 'node-b']).toContain(reply.nodeId);
    // A ref serialises to plain data and works when rebuilt elsewhere.
    const again = client.fromJSON(JSON.parse(JSON.stringify(ref)) as { actorId: string });
    expect((await again.ask<{ nodeId: string }>({ type: 'where' })).nodeId).toBe(reply.nodeId);
  });

  it('processes one message at a time, in arrival order per sender, under concurrent senders', async () => {
    await client.spawn({ type: 'recorder', id: 'rec' });
    const senders = await Promise.all([nats.connect(Role.CLIENT), nats.connect(Role.CLIENT), nats.connect(Role.CLIENT)]);
    const N = 300;
    senders.forEach((nc, i) => {
      const ref = new ActorClient(nc, s).ref('rec');
      for (let seq = 0; seq < N; seq++) ref.tell({ type: 'append', sender: `s${i}`, seq });
    });
    await Promise.all(senders.map((nc) => nc.flush()));
    const out = await until(async () => {
      const r = await client.ref('rec').ask<{ log: [string, number][]; overlaps: number }>({ type: 'log' });
      return r.log.length === 3 * N ? r : undefined;
    }, 20_000, 'all tells processed');
    expect(out.overlaps).toBe(0);
    for (let i = 0; i < 3; i++) {
      const seqs = out.log.filter(([sn]) => sn === `s${i}`).map(([, q]) => q);
      expect(seqs).toEqual([...Array(N).keys()]);
    }
  });

  it('an ask to an actor that does not exist fails fast, not after the timeout', async () => {
    // ACTOR_NOT_FOUND (NATS no-responders), not TIMEOUT: the error type is the proof.
    const err = await client.ref('nobody-home').ask({ type: 'echo', text: 'x' }, { timeoutMs: 20_000 }).catch((e: unknown) => e);
    expect(Errors.ACTOR_NOT_FOUND.is(err)).toBe(true);
    expect(Errors.ACTOR_NOT_FOUND.is(await client.lookup('nobody-home').catch((e: unknown) => e))).toBe(true);
  });

  it('bad input gets typed errors and the actor keeps serving', async () => {
    const ref = client.ref('greeter');
    expect(Errors.BAD_MESSAGE.is(await ref.ask({ type: 'echo', text: 42 }).catch((e: unknown) => e))).toBe(true);
    expect(Errors.UNKNOWN_MESSAGE_TYPE.is(await ref.ask({ type: 'shout' }).catch((e: unknown) => e))).toBe(true);
    expect(Errors.UNKNOWN_ACTOR_TYPE.is(await client.spawn({ type: 'no-such-type', id: 'x1' }).catch((e: unknown) => e))).toBe(true);
    expect(Errors.ACTOR_ALREADY_RUNNING.is(await client.spawn({ type: 'echo', id: 'greeter' }).catch((e: unknown) => e))).toBe(true);
    expect(Errors.BAD_MESSAGE.is(await client.spawn({ type: 'echo', id: 'bad id!' }).catch((e: unknown) => e))).toBe(true);
    expect((await ref.ask<{ text: string }>({ type: 'echo', text: 'still up' })).text).toBe('still up');
    // The runtime's own system subject checks its messages too (a TypeBox schema like every wire message).
    const sys = await request(client.nc, s.actorSys('greeter'), { type: 'child-failed', actorId: 42 }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(Errors.BAD_MESSAGE.is(sys)).toBe(true);
    expect((await ref.ask<{ text: string }>({ type: 'echo', text: 'still up' })).text).toBe('still up');
  });

  it('a bounded mailbox refuses when full with the typed error; refused tells are counted', async () => {
    await client.spawn({ type: 'slow', id: 'sloth' }); // mailbox capacity 2
    const ref = client.ref('sloth');
    const asks = Array.from({ length: 6 }, () => ref.ask({ type: 'work', ms: 300 }, { timeoutMs: 10_000 }).then(() => 'ok', (e: unknown) => e));
    const results = await Promise.all(asks);
    const full = results.filter((r) => Errors.MAILBOX_FULL.is(r));
    expect(full.length).toBeGreaterThanOrEqual(3);
    expect(results.filter((r) => r === 'ok').length).toBeGreaterThanOrEqual(2);
    for (let i = 0; i < 10; i++) ref.tell({ type: 'work', ms: 300 });
    await clientNc.flush();
    const owner = (await where('sloth'))!.nodeId;
    await until(async () => {
      const n = (await status()).nodes.find((x) => x.nodeId === owner);
      return (n?.load.rejectedTells ?? 0) >= 7 ? true : undefined;
    }, 10_000, 'rejected tells counted in the node load');
  });

  it('an ask whose reply comes after the asker gave up gets a typed timeout; the actor keeps serving', async () => {
    await client.spawn({ type: 'slow', id: 'tortoise' });
    const ref = client.ref('tortoise');
    const err = await ref.ask({ type: 'work', ms: 800 }, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(Errors.TIMEOUT.is(err)).toBe(true);
    expect(await ref.ask({ type: 'work', ms: 0 }, { timeoutMs: 5000 })).toMatchObject({ done: true });
  });

  it('a throwing actor is restarted up to its limit, then failed and its supervisor told', async () => {
    await client.spawn({ type: 'parent', id: 'guardian' });
    await client.spawn({ type: 'crashy', id: 'fragile', supervisor: 'guardian' });
    const ref = client.ref('fragile');
    for (let i = 0; i < 2; i++) {
      expect(Errors.ACTOR_FAILED.is(await ref.ask({ type: 'boom' }).catch((e: unknown) => e))).toBe(true);
      // Restarted: a fresh instance answers, and knows how many restarts it has had.
      expect(await ref.ask({ type: 'ping' })).toEqual({ restarts: i + 1 });
    }
    expect(Errors.ACTOR_FAILED.is(await ref.ask({ type: 'boom' }).catch((e: unknown) => e))).toBe(true);
    const failures = await until(async () => {
      const f = await client.ref('guardian').ask<{ actorId: string; code: string }[]>({ type: 'failures' });
      return f.length > 0 ? f : undefined;
    }, 10_000, 'supervisor told');
    expect(failures[0]).toMatchObject({ actorId: 'fragile', code: 'SHOAL_ERR_ACTOR_FAILED' });
    expect((await where('fragile'))?.state).toBe('failed');
    const after = await ref.ask({ type: 'ping' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(Errors.ACTOR_NOT_FOUND.is(after)).toBe(true);
  });

  it('runs CPU work on the node worker pool, off the event loop thread', async () => {
    await client.spawn({ type: 'cpu', id: 'cruncher' });
    const r = await client.ref('cruncher').ask<{ sum: number; threadId: number }>({ type: 'sum', n: 100_000 }, { timeoutMs: 30_000 });
    expect(r.sum).toBe((100_000 * 100_001) / 2);
    expect(r.threadId).toBeGreaterThan(0);
  });

  it('replicated service actors share one subject and the load', async () => {
    const r: SpawnResult = await client.spawn({ type: 'echo', service: 'echo-svc' }, { replicas: 4 });
    expect(r.actors.map((a) => a.actorId)).toEqual(['echo-svc-1', 'echo-svc-2', 'echo-svc-3', 'echo-svc-4']);
    expect(new Set(r.actors.map((a) => a.nodeId)).size).toBe(2); // spread over both nodes
    const svc = client.service('echo-svc');
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) seen.add((await svc.ask<{ actorId: string }>({ type: 'where' })).actorId);
    expect(seen.size).toBeGreaterThanOrEqual(3);
  });

  it('an autoscaled service grows on its load signals and shrinks back when idle', async () => {
    await client.spawn({ type: 'slow', service: 'elastic', autoscale: { minReplicas: 1, maxReplicas: 3, targetOngoingPerReplica: 1, upscaleDelayMs: 0, downscaleDelayMs: 500 } }, { replicas: 1 });
    const replicas = async () => (await directory.list()).filter((v) => v.entry.spec.service === 'elastic' && v.entry.state === 'running').length;
    expect(await replicas()).toBe(1);
    // Keep the service busy: three callers, each with one 300 ms request outstanding at a time.
    let stop = false;
    const svc = client.service('elastic');
    const load = Promise.all(
      [0, 1, 2].map(async () => {
        while (!stop) await svc.ask({ type: 'work', ms: 300 }, { timeoutMs: 10_000 }).catch(() => undefined);
      }),
    );
    const grown = await until(async () => ((await replicas()) >= 2 ? replicas() : undefined), 20_000, 'more replicas under load');
    stop = true;
    await load;
    expect(grown).toBeGreaterThanOrEqual(2);
    expect(grown).toBeLessThanOrEqual(3);
    await until(async () => ((await replicas()) === 1 ? true : undefined), 20_000, 'back to one replica when idle');
  });

  it('gang spawn is all or nothing', async () => {
    const ok = await client.spawn({ type: 'echo', service: 'gang-ok' }, { replicas: 3, gang: true });
    expect(ok.actors.map((a) => a.state)).toEqual(['running', 'running', 'running']);
    // Nothing fits now (pinned to a node that is not there): refused at once, nothing left pending.
    const err = await client.spawn({ type: 'echo', service: 'gang-no', constraints: { nodeId: 'ghost-node' } }, { replicas: 2, gang: true }).catch((e: unknown) => e);
    expect(Errors.NO_NODE_AVAILABLE.is(err)).toBe(true);
    expect(await directory.get('gang-no-1')).toBeUndefined();
    expect(await directory.get('gang-no-2')).toBeUndefined();
    // The second member cannot start (its id is taken): the first, already running, is stopped again.
    await client.spawn({ type: 'echo', id: 'gang-x-2' });
    const err2 = await client.spawn({ type: 'echo', id: 'gang-x' }, { replicas: 3, gang: true }).catch((e: unknown) => e);
    expect(Errors.ACTOR_ALREADY_RUNNING.is(err2)).toBe(true);
    expect(await directory.get('gang-x-1')).toBeUndefined();
    expect(Errors.ACTOR_NOT_FOUND.is(await client.ref('gang-x-1').ask({ type: 'where' }).catch((e: unknown) => e))).toBe(true);
    expect(await directory.get('gang-x-3')).toBeUndefined();
  });

  it('an impossible request is refused at spawn with the reason, not left pending', async () => {
    const gpus = await client.spawn({ type: 'echo', id: 'greedy', resources: { gpu: 8 } }).catch((e: unknown) => e);
    expect(gpus).toMatchObject({ code: 'SHOAL_ERR_UNSCHEDULABLE' });
    expect((gpus as Error).message).toMatch(/GPU/i);
    const label = await client.spawn({ type: 'echo', id: 'picky', constraints: { labels: { pool: 'gpu-h100' } } }).catch((e: unknown) => e);
    expect(label).toMatchObject({ code: 'SHOAL_ERR_UNSCHEDULABLE' });
    expect((label as Error).message).toMatch(/gpu-h100/);
    expect(await directory.get('greedy')).toBeUndefined();
    expect(await directory.get('picky')).toBeUndefined();
  });

  it('SIGKILL a node: it is declared dead and its actors start again on a survivor; callers that retry succeed', async () => {
    await startNode('c');
    await client.spawn({ type: 'echo', id: 'survivor', constraints: { nodeId: 'node-c' } });
    expect((await where('survivor'))?.nodeId).toBe('node-c');
    // Unpin so it may move: rewrite the spec's constraint the way an operator would re-spawn it
    // (with the scheduler's rights: a client may read the directory, not write it).
    const v = (await directory.get('survivor'))!;
    await adminDirectory.update({ ...v.entry, spec: { ...v.entry.spec, constraints: {} } }, v.revision);

    const deadEvents: string[] = [];
    clientNc.subscribe(s.event('node-dead'), { callback: (_e, m) => void deadEvents.push((decode(m.data) as { nodeId: string }).nodeId) });
    await clientNc.flush();
    nodes.c!.kill('SIGKILL');
    const dead = await until(async () => ((await status()).nodes.find((n) => n.nodeId === 'node-c')?.alive === false ? true : undefined), 15_000, 'node-c dead');
    expect(dead).toBe(true);
    const reply = await client.ref('survivor').ask<{ nodeId: string }>({ type: 'where' }, { timeoutMs: 2000, retry: { attempts: 30, delayMs: 200 } });
    expect(['node-a', 'node-b']).toContain(reply.nodeId);
    // The event comes from the scheduler's sweep, which may lag the status view a little.
    await until(async () => (deadEvents.includes('node-c') ? true : undefined), 10_000, 'node-dead event');
    const e = await where('survivor');
    expect(e?.state).toBe('running');
    expect(e?.epoch).toBeGreaterThan(v.entry.epoch);
  });

  it('drain: SIGTERM a node while its actors hold work — onDrain runs, the work finishes, no actor is lost', async () => {
    await startNode('d');
    await client.spawn({ type: 'tally', id: 'ledger', constraints: { nodeId: 'node-d' } });
    const ledger = client.ref('ledger');
    await ledger.ask({ type: 'add', n: 5 });
    const v = (await directory.get('ledger'))!;
    await adminDirectory.update({ ...v.entry, spec: { ...v.entry.spec, constraints: {} } }, v.revision);
    // Work in flight and queued when the node is told to stop.
    const inflight = [ledger.ask<{ sum: number }>({ type: 'add', n: 10, workMs: 500 }, { timeoutMs: 10_000 }), ledger.ask<{ sum: number }>({ type: 'add', n: 100, workMs: 100 }, { timeoutMs: 10_000 })];
    await clientNc.flush();
    await new Promise((r) => setTimeout(r, 100));
    nodes.d!.kill('SIGTERM');
    const done = await Promise.all(inflight);
    expect(done.map((d) => d.sum)).toEqual([15, 115]);
    expect((await nodes.d!.exited).code).toBe(0);
    // Re-placed elsewhere with its checkpointed state: nothing lost, and onDrain ran once.
    const after = await ledger.ask<{ sum: number; drains: number; nodeId: string }>({ type: 'get' }, { timeoutMs: 2000, retry: { attempts: 30, delayMs: 200 } });
    expect(after.sum).toBe(115);
    expect(after.drains).toBe(1);
    expect(after.nodeId).not.toBe('node-d');
  });

  it('a spawn on a draining node is refused with NODE_DRAINING', async () => {
    await startNode('e');
    const ctl = await nats.connect(Role.SCHEDULER);
    await client.spawn({ type: 'slow', id: 'busy-e', constraints: { nodeId: 'node-e' } });
    const slowWork = client.ref('busy-e').ask({ type: 'work', ms: 1500 }, { timeoutMs: 10_000 });
    await clientNc.flush();
    await new Promise((r) => setTimeout(r, 100));
    await request(ctl, s.nodeCtl('node-e'), { type: 'drain' });
    const err = await request(ctl, s.nodeCtl('node-e'), { type: 'spawn', actorId: 'late', spec: { type: 'echo' }, revision: 0, epoch: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Errors.NODE_DRAINING.code });
    await slowWork;
    expect((await nodes.e!.exited).code).toBe(0);
  });
});
