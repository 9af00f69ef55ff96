/**
 * Fencing without the directory watch: a node's actor host checks its actors against the
 * directory every `fenceCheckMs` and stops a copy the directory placed again at a higher epoch
 * (only that: a read from a lagging replica of the bucket must not stop a live actor). The watch fences at once when it sees the change; the check is what catches a
 * change the watch missed — a host cut off from the cluster keeps its connection to its own
 * nats-server, and its watch is not guaranteed to resume after the heal (test/e2e/netns-hosts.test.ts).
 * Here the watch is off, so only the check can fence. A real nats-server; the host in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorRef, ActorTypeRegistry, Directory, Errors, Role, createLogger, ensureResources, openBucket, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { ActorHost, staleCopy } from '../../nodes/actor-host.ts';
import { WorkerPool } from '../../nodes/worker-pool.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const s = subjects();

describe('staleCopy (the fencing rule)', () => {
  const entry = (nodeId: string, epoch: number) => ({ entry: { actorId: 'a', spec: { type: 'echo' }, state: 'running', nodeId, epoch, updatedAt: 0 } as never });
  it('a copy is stale when its entry is gone, placed at a higher epoch, or on another node; a hand-back (no node) is not', () => {
    expect(staleCopy({ epoch: 3 }, 'n1', entry('n1', 3))).toBe(false);
    expect(staleCopy({ epoch: 3 }, 'n1', undefined)).toBe(true);
    expect(staleCopy({ epoch: 3 }, 'n1', entry('n1', 4))).toBe(true);
    expect(staleCopy({ epoch: 3 }, 'n1', entry('n2', 3))).toBe(true);
    expect(staleCopy({ epoch: 3 }, 'n1', entry('', 3))).toBe(false);
  });
});

describe('the actor host fences from its periodic directory check (real nats-server)', () => {
  let nats: TestNats;
  let nodeNc: NatsConnection;
  let sched: NatsConnection;
  let directory: Directory;
  const pool = new WorkerPool({ threads: 1 });
  const hosts: ActorHost[] = [];

  const host = async (nodeId: string, fenceCheckMs: number) => {
    const h = new ActorHost({
      nodeId,
      nc: nodeNc,
      subjects: s,
      registry: await new ActorTypeRegistry().load([new URL('../fixtures/actors.ts', import.meta.url).href]),
      directory: new Directory(await openBucket(nodeNc, resources().buckets.actors)),
      pool,
      checkpoints: await openBucket(nodeNc, resources().buckets.checkpoints),
      log: createLogger({ level: 'error', pretty: false }),
      fenceCheckMs,
      fenceWatch: false,
    });
    await h.start();
    hosts.push(h);
    return h;
  };
  /** Moves the actor's entry as a scheduler re-placing it would: CAS on its revision. */
  const move = async (actorId: string, to: { nodeId: string; epoch: number }) => {
    const v = (await directory.get(actorId))!;
    await directory.update({ ...v.entry, ...to, updatedAt: Date.now() }, v.revision);
  };

  beforeAll(async () => {
    nats = await startTestNats({ nodeIds: ['fence-a'] });
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    directory = new Directory(await openBucket(sched, resources().buckets.actors));
    nodeNc = await nats.connect(Role.NODE, { nodeId: 'fence-a' });
  }, 30_000);

  afterAll(async () => {
    for (const h of hosts) await h.close();
    await pool.close();
    await nats?.stop();
  });

  it('checkFencing() stops a copy re-placed elsewhere at a higher epoch, and only that one', async () => {
    const h = await host('fence-a', 0);
    await h.spawn('moved-1', { type: 'echo' }, 0, 1);
    await h.spawn('kept-1', { type: 'echo' }, 0, 1);
    const ref = new ActorRef(sched, 'moved-1', s.actor('moved-1'));
    expect(await ref.ask<{ nodeId: string }>({ type: 'where' })).toMatchObject({ nodeId: 'fence-a' });
    // Nothing moved: nothing stopped.
    expect(await h.checkFencing()).toBe(0);

    await move('moved-1', { nodeId: 'fence-b', epoch: 2 });
    // No watch: the copy still answers until the check runs.
    expect(h.list().map((a) => a.actorId).sort()).toEqual(['kept-1', 'moved-1']);
    expect(await h.checkFencing()).toBe(1);
    expect(h.list().map((a) => a.actorId)).toEqual(['kept-1']);
    const gone = await ref.ask({ type: 'where' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(Errors.ACTOR_NOT_FOUND.is(gone), String(gone)).toBe(true);
    // The directory still says where the actor lives now: fencing never writes it.
    expect((await directory.get('moved-1'))!.entry).toMatchObject({ nodeId: 'fence-b', epoch: 2 });
  });

  it('the check acts only on a higher epoch: no entry, or an older one elsewhere (a lagging read), leaves the actor running', async () => {
    const h = await host('fence-a', 0);
    await h.spawn('kept-2', { type: 'echo' }, 0, 3);
    await h.spawn('kept-3', { type: 'echo' }, 0, 3);
    await move('kept-2', { nodeId: 'fence-old', epoch: 2 });
    await directory.remove('kept-3');
    expect(await h.checkFencing()).toBe(0);
    expect(h.list().map((a) => a.actorId).sort()).toEqual(['kept-2', 'kept-3']);
  });

  it('the check runs by itself every fenceCheckMs', async () => {
    const h = await host('fence-a', 200);
    await h.spawn('moved-2', { type: 'echo' }, 0, 1);
    expect(h.list().map((a) => a.actorId)).toEqual(['moved-2']);
    await move('moved-2', { nodeId: 'fence-b', epoch: 2 });
    await until(() => (h.list().length === 0 ? true : undefined), 10_000, 'moved-2 fenced by the periodic check');
  });
});
