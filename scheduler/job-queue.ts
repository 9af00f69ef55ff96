/**
 * The job queue's consumer (leader only). Jobs arrive on the `shoal.jobs.submit` work-queue
 * stream (JSON or MessagePack by content-type; the stream drops duplicates of a `Nats-Msg-Id`
 * within its window). Each accepted job is recorded in the `jobs` KV bucket (through the
 * runtime's `JobStore`) — created with CAS, so a duplicate that slips past the window still runs
 * once — and only then acked, so an accepted job is never lost. Then the job's actor
 * (`training-job` by default) is spawned with the job id — if a live node offers its type as a
 * job type; else the job fails at once with the reason — and the actor validates its own spec
 * and drives the job. The scheduler knows nothing of what the job does.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nuid } from '@nats-io/transport-node';
import {
  DEFAULT_JOB_TYPE,
  Errors,
  JobEnvelope,
  JobState,
  JobStore,
  jobActorId,
  decode,
  encode,
  jobTypeRefusal,
  parseContentType,
  isJetStreamUnavailable,
  resources,
  validate,
  whileActive,
  type JobRecord,
  type Logger,
  type NatsConnection,
  type NodeView,
  type Subjects,
} from '../cluster/index.ts';
import type { ActorManager } from './actor-manager.ts';
import { JobWatchdog, coordinatorSpec, type StallPolicy } from './job-watchdog.ts';

export interface JobQueueOptions {
  nc: NatsConnection;
  subjects: Subjects;
  prefix: string;
  actors: ActorManager;
  log: Logger;
  /** When a running job counts as stalled (see JobWatchdog). */
  stall?: Partial<StallPolicy>;
  /**
   * The fleet (the membership view): a job whose type no live node offers as a job type fails
   * at once instead of staying queued. Without it, every type is started as asked.
   */
  nodes?: () => readonly NodeView[];
}

export class JobQueue {
  readonly #o: JobQueueOptions;
  #jobs!: JobStore;
  #stopped = false;
  #messages: ConsumerMessages | undefined;
  #wake: (() => void) | undefined;
  #watchdog: JobWatchdog | undefined;

  constructor(opts: JobQueueOptions) {
    this.#o = opts;
  }

  /**
   * Opens the job store and the watchdog, then attaches the consumer. A job queue stream that
   * cannot answer yet (no leader just after a failover, a replica still catching up) does not
   * keep the leader from leading: the consumer is attached in the background, again and again
   * until it works, and the jobs submitted meanwhile wait in the stream (never lost). A consumer
   * that ends (deleted, its stream gone) is attached again the same way.
   */
  async start(): Promise<void> {
    this.#jobs = await JobStore.open(this.#o.nc, this.#o.prefix);
    this.#watchdog = new JobWatchdog({ jobs: this.#jobs, actors: this.#o.actors, log: this.#o.log, ...(this.#o.stall ? { policy: this.#o.stall } : {}) });
    await this.#watchdog.start();
    const first = await this.#attach().catch((err: Error) => {
      this.#o.log.warn({ err: err.message }, 'job queue: the consumer could not be attached yet; leading without it and trying again (submitted jobs wait in the stream)');
      return undefined;
    });
    void this.#consumeLoop(first);
  }

  /** Whether the consumer is attached (jobs submitted now are taken at once). */
  get consuming(): boolean {
    return this.#messages !== undefined;
  }

  /** The consumer (made if missing) and its messages. */
  async #attach(): Promise<ConsumerMessages> {
    const r = resources(this.#o.prefix);
    const jsm = await jetstreamManager(this.#o.nc);
    const durable = 'scheduler';
    try {
      await jsm.consumers.info(r.streams.jobs, durable);
    } catch (err) {
      if (isJetStreamUnavailable(err)) throw err; // asked again; any other answer: the consumer is not there
      await jsm.consumers.add(r.streams.jobs, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30_000_000_000, max_deliver: -1 });
    }
    const consumer = await jetstream(this.#o.nc).consumers.get(r.streams.jobs, durable);
    // Short pulls (idle heartbeats every 2.5 s): on a NATS cluster a pull waiting on a server that
    // died is noticed and renewed within seconds, not after the 30 s default. A deleted consumer
    // ends the messages (by default they would wait for it for ever) so it is attached again.
    return consumer.consume({ max_messages: 16, expires: 5000, abort_on_missing_resource: true });
  }

  async #consumeLoop(first: ConsumerMessages | undefined): Promise<void> {
    let messages = first;
    for (let attempt = 0; !this.#stopped; ) {
      if (!messages) {
        await new Promise<void>((res) => {
          const t = setTimeout(res, Math.min(10_000, 500 * 2 ** attempt));
          this.#wake = () => (clearTimeout(t), res());
        });
        if (this.#stopped) return;
        attempt++;
        messages = await this.#attach().catch((err: Error) => {
          this.#o.log.warn({ err: err.message, attempt }, 'job queue: the consumer could not be attached; trying again');
          return undefined;
        });
        if (!messages) continue;
        if (this.#stopped) return void messages.close();
        this.#o.log.info({ attempt }, 'job queue: consumer attached');
      }
      attempt = 0;
      this.#messages = messages;
      let why = 'its messages ended';
      try {
        for await (const m of messages) {
          try {
            await this.#accept(m);
            m.ack();
          } catch (err) {
            // Not recorded (NATS trouble): leave it unacked so it is redelivered.
            this.#o.log.warn({ err: (err as Error).message }, 'job not recorded; will be redelivered');
            m.nak(1000);
          }
        }
      } catch (err) {
        why = (err as Error).message;
      }
      this.#messages = undefined;
      messages = undefined;
      if (!this.#stopped) this.#o.log.warn({ err: why }, 'job queue: the consumer ended; attaching it again');
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
    void this.#messages?.close();
    this.#watchdog?.stop();
  }

  async #accept(m: JsMsg): Promise<void> {
    const msgId = m.headers?.get('Nats-Msg-Id') || undefined;
    let env: JobEnvelope;
    try {
      env = validate(JobEnvelope, decode(m.data, parseContentType(m.headers?.get('content-type'))), this.#o.subjects.jobsSubmit);
    } catch (err) {
      const id = msgId && /^[A-Za-z0-9_-]{1,64}$/.test(msgId) ? msgId : undefined;
      this.#o.log.warn({ msgId, err: (err as Error).message }, 'job refused: bad envelope');
      // With an id we can tell the submitter why; without one there is nobody to tell.
      if (id) await this.#jobs.create({ id, state: JobState.FAILED, actorType: DEFAULT_JOB_TYPE, spec: null, submittedAt: Date.now(), updatedAt: Date.now(), reason: (err as Error).message }).catch(() => undefined);
      return;
    }
    const id = env.id ?? (msgId && /^[A-Za-z0-9_-]{1,64}$/.test(msgId) ? msgId : nuid.next());
    const now = Date.now();
    const rec: JobRecord = { id, state: JobState.QUEUED, actorType: env.actorType ?? DEFAULT_JOB_TYPE, spec: env.spec, submittedAt: now, updatedAt: now, ...(env.tenant ? { tenant: env.tenant } : {}) };
    if (!(await this.#jobs.create(rec))) {
      // Recorded already. Still `queued` means it may never have been started: the scheduler
      // died between the record and the spawn, and this is the redelivery. Starting it again is
      // safe: the actor's id is the job's, so a running (or pending) one is left alone.
      const cur = await this.#jobs.get(id);
      if (!cur || cur.state !== JobState.QUEUED) {
        this.#o.log.info({ jobId: id }, 'duplicate submission ignored');
        return;
      }
      await this.#startJob(cur);
      return;
    }
    this.#o.log.info({ jobId: id, actorType: rec.actorType }, 'job accepted');
    this.#o.nc.publish(this.#o.subjects.event('job-accepted'), encode({ jobId: id, at: now }));
    await this.#startJob(rec);
  }

  async #startJob(rec: JobRecord): Promise<void> {
    // Submitters on NATS bypass the gateway's check: an internal actor type (a job's workers, an
    // inference replica) would be spawned with a job's args and never start, or start and never
    // drive the job, which would then sit `queued` forever.
    const refused = this.#o.nodes && jobTypeRefusal(rec.actorType, this.#o.nodes());
    if (refused) {
      this.#o.log.warn({ jobId: rec.id, actorType: rec.actorType, reason: refused.message }, 'job refused: not a job type');
      await this.#jobs.update(rec.id, { state: JobState.FAILED, reason: `cannot start the job: ${refused.message}` });
      return;
    }
    try {
      await this.#o.actors.spawn(coordinatorSpec(rec));
    } catch (err) {
      if (Errors.ACTOR_ALREADY_RUNNING.is(err)) return;
      await this.#jobs.update(rec.id, { state: JobState.FAILED, reason: `cannot start the job: ${(err as Error).message}` });
    }
  }

  /**
   * Cancels a job that has not finished: its actor sees the state and stops its workers. A job
   * that has ended is left as it is (its record is returned); no record is `SHOAL_ERR_JOB_NOT_FOUND`.
   */
  async cancel(jobId: string): Promise<JobRecord> {
    const { record, changed } = await this.#jobs.update(jobId, whileActive({ state: JobState.CANCELLED, reason: 'cancelled by request' }));
    if (!changed) return record;
    // The job's actor and every actor it started (by convention `job-<id>-…`), so nothing keeps
    // holding capacity even when the job's actor is not running to stop them itself.
    const own = jobActorId(jobId);
    const ids = [...this.#o.actors.entries()].map((v) => v.entry.actorId).filter((a) => a === own || a.startsWith(`${own}-`));
    await Promise.all(ids.map((a) => this.#o.actors.stopActor(a).catch(() => undefined)));
    return record;
  }
}
