/**
 * The job record store against a real nats-server: created once by CAS, changed by
 * compare-and-swap with a patch function that sees the current record (a lost swap is retried
 * on the new record, and one that loses every time is `SHOAL_ERR_JOB_CONFLICT`), a missing job is
 * `SHOAL_ERR_JOB_NOT_FOUND`, and `follow` ends with the job. Written as the scheduler and as a
 * node (the roles that write job records); read as a client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm } from '@nats-io/kv';
import { Errors, JobState, JobStore, Role, StaleCoordinator, ensureResources, fencedBy, resources, whileActive, type JobRecord, type NatsConnection } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('job store', () => {
  let nats: TestNats;
  let sched: JobStore;
  let node: JobStore;
  let client: JobStore;
  let nodeNc: NatsConnection;
  const rec = (id: string): JobRecord => ({ id, state: JobState.QUEUED, actorType: 'training-job', spec: { a: 1 }, submittedAt: 1, updatedAt: 1 });

  beforeAll(async () => {
    nats = await startTestNats({ nodeIds: ['js-node'] });
    const nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
    sched = await JobStore.open(nc);
    nodeNc = await nats.connect(Role.NODE, { nodeId: 'js-node' });
    node = await JobStore.open(nodeNc);
    client = await JobStore.open(await nats.connect(Role.CLIENT));
  }, 30_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it('creates a record once; a second create is refused without an error', async () => {
    expect(await sched.create(rec('a'))).toBe(true);
    expect(await sched.create({ ...rec('a'), spec: { a: 2 } })).toBe(false);
    expect(await client.get('a')).toMatchObject({ id: 'a', state: JobState.QUEUED, spec: { a: 1 } });
    expect(await client.get('nope')).toBeUndefined();
    await expect(client.require('nope')).rejects.toMatchObject({ code: Errors.JOB_NOT_FOUND.code, status: 404 });
  });

  it('updates by CAS with a patch of the current record; a declined patch writes nothing', async () => {
    const { record, changed } = await node.update('a', (cur) => ({ state: JobState.RUNNING, progress: { step: ((cur.progress?.step as number | undefined) ?? 0) + 1 } }));
    expect(changed).toBe(true);
    expect(record).toMatchObject({ id: 'a', state: JobState.RUNNING, spec: { a: 1 } });
    expect(record.updatedAt).toBeGreaterThan(1);
    await sched.update('a', { state: JobState.CANCELLED, reason: 'cancelled by request' });
    const before = (await sched.entry('a'))!.revision;
    const late = await node.update('a', whileActive({ state: JobState.RUNNING }));
    expect(late).toMatchObject({ changed: false, record: { state: JobState.CANCELLED } });
    expect((await sched.entry('a'))!.revision).toBe(before);
    await expect(node.update('nope', { state: JobState.FAILED })).rejects.toMatchObject({ code: Errors.JOB_NOT_FOUND.code });
  });

  it('fenced writes: a coordinator copy claimed later stamps the record, and an older copy then writes nothing', async () => {
    await sched.create(rec('fenced'));
    // The first copy (claimed at directory revision 10) checkpoints.
    expect(await node.update('fenced', fencedBy(10, { state: JobState.RUNNING, progress: { step: 5 } }))).toMatchObject({ changed: true, record: { coordinatorClaim: 10 } });
    // Its host is cut off; the copy placed again (claim 14) takes the job over.
    expect(await node.update('fenced', fencedBy(14, { progress: { step: 5 } }))).toMatchObject({ changed: true, record: { coordinatorClaim: 14 } });
    // The host comes back: the old copy's next step is refused, and the record is left as it was.
    const before = (await sched.entry('fenced'))!.revision;
    const stale = await node.update('fenced', fencedBy(10, { progress: { step: 6 } })).catch((err: unknown) => err);
    expect(stale).toBeInstanceOf(StaleCoordinator);
    expect(stale).toMatchObject({ claim: 10, current: 14 });
    expect((await sched.entry('fenced'))!.revision).toBe(before);
    expect((await client.get('fenced'))!.progress).toEqual({ step: 5 });
    // The same copy writes on (a restart of it keeps its claim or a newer one); the scheduler's own writes keep the stamp.
    await node.update('fenced', fencedBy(14, { progress: { step: 6 } }));
    await sched.update('fenced', (cur) => ({ restarts: (cur.restarts ?? 0) + 1 }));
    expect(await client.get('fenced')).toMatchObject({ coordinatorClaim: 14, restarts: 1, progress: { step: 6 } });
    // An ended job is not written, fenced or not.
    await sched.update('fenced', { state: JobState.SUCCEEDED });
    expect(await node.update('fenced', fencedBy(20, { state: JobState.RUNNING }))).toMatchObject({ changed: false, record: { state: JobState.SUCCEEDED } });
  });

  it('a lost swap is retried on the new record; losing every attempt is SHOAL_ERR_JOB_CONFLICT', async () => {
    await sched.create(rec('b'));
    // Another writer (the scheduler) gets in between each read and write, as many times as asked.
    let interfere = 2;
    const kv = await new Kvm(nodeNc).open(resources().buckets.jobs);
    const racy = new JobStore(
      new Proxy(kv, {
        get(target, prop) {
          if (prop === 'update')
            return async (k: string, v: Uint8Array, rev: number) => {
              if (interfere-- > 0) await sched.update(k, (cur) => ({ restarts: (cur.restarts ?? 0) + 10 }));
              return target.update(k, v, rev);
            };
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
    );
    const seen: number[] = [];
    const r = await racy.update('b', (cur) => {
      seen.push(cur.restarts ?? 0);
      return { restarts: (cur.restarts ?? 0) + 1 };
    });
    expect(seen).toEqual([0, 10, 20]); // each attempt saw the other writer's change, none was lost
    expect(r.record.restarts).toBe(21);
    expect((await client.get('b'))!.restarts).toBe(21);
    interfere = 100;
    await expect(racy.update('b', { reason: 'x' }, { attempts: 3 })).rejects.toMatchObject({ code: Errors.JOB_CONFLICT.code, status: 409 });
    expect((await client.get('b'))!.reason).toBeUndefined();
  });

  it('follow ends with the job (or when the time is up, with the last record seen)', async () => {
    await sched.create(rec('c'));
    const states: string[] = [];
    const done = client.follow('c', (r) => states.push(r.state), 10_000);
    await node.update('c', { state: JobState.RUNNING });
    await node.update('c', { state: JobState.SUCCEEDED, result: { ok: true } });
    expect(await done).toMatchObject({ state: JobState.SUCCEEDED, result: { ok: true } });
    expect(states.at(-1)).toBe(JobState.SUCCEEDED);
    await sched.create(rec('d'));
    expect(await client.follow('d', () => undefined, 300)).toMatchObject({ state: JobState.QUEUED });
    expect(await client.follow('never', () => undefined, 300)).toBeUndefined();
  });
});
