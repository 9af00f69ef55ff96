/**
 * Submitting a batch scoring job from any process (CLI, gateway): the spec is parsed and planned
 * here first — a model or dataset that does not exist, or a dataset whose columns are not the
 * model's, is refused before anything is queued (so before any replica starts) — then queued as
 * a `batch-score-job` on the job queue through `JobClient`. Following it is `JobClient.follow`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { nuid } from '@nats-io/transport-node';
import { JobClient } from '../training/jobs.ts';
import { BATCH_JOB_ACTOR } from './coordinator.ts';
import { planBatch, type BatchPlan } from './plan.ts';
import { parseBatchSpec } from './spec.ts';

export async function submitBatch(nc: NatsConnection, prefix: string, jobs: JobClient, raw: unknown, opts: { id?: string; tenant?: string } = {}): Promise<{ id: string; duplicate: boolean; plan: BatchPlan }> {
  const id = opts.id ?? nuid.next();
  const spec = parseBatchSpec(id, raw);
  const plan = await planBatch(nc, prefix, id, spec);
  const r = await jobs.submit(spec, { id, actorType: BATCH_JOB_ACTOR, ...(opts.tenant ? { tenant: opts.tenant } : {}) });
  return { ...r, plan };
}
