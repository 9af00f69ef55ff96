/**
 * Submitting and following jobs from any process (CLI, gateway, product code): a job is a
 * message on the `shoal.jobs.submit` work-queue stream with `Nats-Msg-Id` = its id (so a retried
 * submission runs once), in MessagePack or JSON; its state is the record in the `jobs` KV bucket,
 * read through the runtime's `JobStore`.
 */
import { headers, nuid, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { ContentType, DEFAULT_JOB_TYPE, publishIdempotent, JobStore, TERMINAL_JOB_STATES, encode, jobTypeRefusal, request, subjects, type JobEnvelope, type JobRecord, type NodeView, type SchedulerStatus } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { parseTrainingSpec } from './spec.ts';

export class JobClient {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly jobs: JobStore,
    private readonly prefix: string,
  ) {}

  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<JobClient> {
    return new JobClient(nc, await JobStore.open(nc, prefix), prefix);
  }

  /** Queues a job; returns its id. Submitting the same id again (within 10 minutes) is a no-op. */
  async submit(spec: unknown, opts: { id?: string; actorType?: string; /** Charged for its cost. */ tenant?: string; contentType?: ContentType; /** Skip the local spec check (tests of the actor's own check). */ unchecked?: boolean } = {}): Promise<{ id: string; duplicate: boolean }> {
    const id = opts.id ?? nuid.next();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw MlErrors.BAD_JOB(id, 'id must be letters, digits, _ or - (≤ 64)');
    // A training spec is validated twice, on purpose. Here, at the edge, so a caller hears about
    // a bad field at once (a 400 at the gateway, an error from `shoal submit`) instead of finding
    // a failed job. And again by the `training-job` actor when it starts (ml/training/coordinator.ts),
    // which is what counts: a submitter may publish on `shoal.jobs.submit` without this client,
    // and the actor trains with the defaults its own parse fills in. Other job types are checked
    // by their actor only (this client does not know their specs).
    if (!opts.unchecked && (!opts.actorType || opts.actorType === DEFAULT_JOB_TYPE)) parseTrainingSpec(id, spec);
    // Likewise the job type: one no live node offers as a job entry point (an internal type such
    // as a job's workers, or none at all) is refused now rather than queued to fail or hang.
    const refused = jobTypeRefusal(opts.actorType ?? DEFAULT_JOB_TYPE, await this.#fleet());
    if (refused) throw refused;
    const env: JobEnvelope = { id, spec, ...(opts.actorType ? { actorType: opts.actorType } : {}), ...(opts.tenant ? { tenant: opts.tenant } : {}) };
    const ct = opts.contentType ?? ContentType.MSGPACK;
    const h = headers();
    h.set('content-type', ct);
    const ack = await publishIdempotent(jetstream(this.nc), subjects(this.prefix).jobsSubmit, encode(env, ct), { msgID: id, headers: h });
    return { id, duplicate: ack.duplicate };
  }

  /**
   * The nodes as the scheduler sees them (with the job types each offers). None when the
   * scheduler does not answer: the job is queued on the stream all the same, and only the
   * built-in job types are accepted until nodes report theirs.
   */
  async #fleet(): Promise<NodeView[]> {
    try {
      return (await request<SchedulerStatus>(this.nc, subjects(this.prefix).scheduler('status'), { type: 'status' }, { timeoutMs: 2000, idempotent: true })).nodes;
    } catch {
      return [];
    }
  }

  /** The job's record; `SHOAL_ERR_JOB_NOT_FOUND` when there is none. */
  async get(id: string): Promise<JobRecord> {
    return this.jobs.require(id);
  }

  async cancel(id: string): Promise<JobRecord> {
    return request<JobRecord>(this.nc, subjects(this.prefix).scheduler('jobs'), { type: 'cancel', jobId: id }, { timeoutMs: 10_000 });
  }

  /** Calls `onUpdate` with every change of the job's record until it ends; resolves with the last. */
  async follow(id: string, onUpdate: (r: JobRecord) => void, timeoutMs = 3_600_000): Promise<JobRecord> {
    const last = await this.jobs.follow(id, onUpdate, timeoutMs);
    if (!last || !TERMINAL_JOB_STATES.includes(last.state)) throw MlErrors.JOB_FAILED(id, `no final state within ${timeoutMs} ms (last: ${last?.state ?? 'none'})`);
    return last;
  }
}
