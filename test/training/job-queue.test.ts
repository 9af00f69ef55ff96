/**
 * The scheduler's job queue in-process against a real nats-server, with a stand-in for the
 * ActorManager: an accepted job is never lost, even when the scheduler dies between recording
 * it and starting its actor (the unacked message comes back and finds the record `queued`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Errors, JobState, Role, createLogger, decode, encode, ensureResources, resources, subjects, type JobRecord, type NatsConnection, type SpawnSpec } from '../../cluster/index.ts';
import { JobQueue } from '../../scheduler/job-queue.ts';
import type { ActorManager } from '../../scheduler/actor-manager.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

describe('job queue', () => {
  let nats: TestNats;
  let client: NatsConnection;
  let sched: NatsConnection;
  let kv: KV;
  let queue: JobQueue;
  /** Actor ids the queue asked to spawn, in order; a second spawn of one id is refused like the real manager does. */
  const spawned: string[] = [];
  const live = new Set<string>();
  const actors = {
    async spawn(spec: SpawnSpec) {
      const id = spec.id!;
      spawned.push(id);
      if (live.has(id)) throw Errors.ACTOR_ALREADY_RUNNING(id, 'node-x');
      live.add(id);
      return { actors: [{ actorId: id, nodeId: 'node-x', state: 'running' }] };
    },
    async stopActor(id: string) {
      live.delete(id);
    },
  } as unknown as ActorManager;

  const submit = async (id: string, msgID?: string) => {
    const h = headers();
    h.set('content-type', 'application/json');
    return jetstream(client).publish(subjects().jobsSubmit, new TextEncoder().encode(JSON.stringify({ id, spec: { any: 'thing' } })), { headers: h, ...(msgID ? { msgID } : {}) });
  };
  const record = async (id: string) => {
    const e = await kv.get(id);
    return e && e.operation === 'PUT' ? (decode(e.value) as JobRecord) : undefined;
  };

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    client = await nats.connect(Role.CLIENT);
    // The records are changed here as the job's coordinator (a node) or a dying scheduler would:
    // with the scheduler's rights, which the client role does not have.
    kv = await new Kvm(sched).open(resources().buckets.jobs);
    queue = queueOf();
    await queue.start();
  }, 30_000);

  const queueOf = () => new JobQueue({ nc: sched, subjects: subjects(), prefix: 'shoal', actors, log: createLogger({ level: 'silent', pretty: false }) });
  const others: JobQueue[] = [];

  afterAll(async () => {
    queue?.stop();
    for (const q of others) q.stop();
    await nats?.stop();
  });

  it('records a job, then starts its actor once', async () => {
    await submit('jq-1', 'jq-1');
    await until(() => spawned.includes('job-jq-1') || undefined, 10_000, 'job-jq-1 spawned');
    expect((await record('jq-1'))?.state).toBe(JobState.QUEUED);
    // The same id again, past the stream's duplicate window (no Nats-Msg-Id here): still once.
    await submit('jq-1');
    await submit('jq-2', 'jq-2');
    await until(() => spawned.includes('job-jq-2') || undefined, 10_000, 'job-jq-2 spawned');
    // Still queued, so the queue may ask again; the manager refuses a second actor of the same id,
    // and that refusal does not fail the job.
    expect(live.has('job-jq-1')).toBe(true);
    expect((await record('jq-1'))?.state).toBe(JobState.QUEUED);
  });

  it('a duplicate of a job that has started is ignored', async () => {
    const cur = (await record('jq-2'))!;
    await kv.put('jq-2', encode({ ...cur, state: JobState.RUNNING }));
    const before = spawned.length;
    await submit('jq-2');
    await submit('jq-3', 'jq-3');
    await until(() => spawned.includes('job-jq-3') || undefined, 10_000, 'job-jq-3 spawned');
    expect(spawned.slice(before)).toEqual(['job-jq-3']);
  });

  it('a job recorded but never started (scheduler died before the spawn) starts on redelivery', async () => {
    const now = Date.now();
    // What a scheduler that died right after recording leaves behind: the record, no actor, the message unacked.
    await kv.create('jq-lost', encode({ id: 'jq-lost', state: JobState.QUEUED, actorType: 'training-job', spec: { any: 'thing' }, submittedAt: now, updatedAt: now } satisfies JobRecord));
    await submit('jq-lost', 'jq-lost');
    await until(() => spawned.includes('job-jq-lost') || undefined, 10_000, 'job-jq-lost spawned');
    expect(live.has('job-jq-lost')).toBe(true);
  });

  it('a deleted consumer is attached again: a job submitted after it runs', async () => {
    expect(queue.consuming).toBe(true);
    await (await jetstreamManager(sched)).consumers.delete(resources().streams.jobs, 'scheduler');
    await submit('jq-after-delete', 'jq-after-delete');
    await until(() => spawned.includes('job-jq-after-delete') || undefined, 30_000, 'job-jq-after-delete spawned');
    expect((await record('jq-after-delete'))?.state).toBe(JobState.QUEUED);
  });

  it('a queue whose stream cannot answer still starts (the leader leads), and takes the jobs once it can', async () => {
    await (await jetstreamManager(sched)).streams.delete(resources().streams.jobs);
    const late = queueOf();
    others.push(late);
    // start() returns without the consumer: the leader that called it goes on leading.
    await late.start();
    expect(late.consuming).toBe(false);
    await ensureResources(sched);
    await submit('jq-back', 'jq-back');
    await until(() => spawned.includes('job-jq-back') || undefined, 30_000, 'job-jq-back spawned');
    // Both queues attached again on their own (the first lost its consumer with the stream).
    await until(() => (late.consuming && queue.consuming) || undefined, 30_000, 'both queues consuming');
  });
});
