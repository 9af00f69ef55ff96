/**
 * The batch scoring actor types, loaded on nodes with `shoal:ml/batch/actors.ts` (part of the
 * default `actors.modules`):
 *
 * - `batch-score-job` — a batch job's coordinator, spawned by the scheduler's job queue (coordinator.ts);
 * - `batch-scorer` — one replica of the model, scoring the shards it is asked for (worker.ts).
 */
import { ActorKind, defineActorType } from '../../cluster/index.ts';
import { BATCH_JOB_ACTOR, BatchJobMsg, BatchScoreJob } from './coordinator.ts';
import { BATCH_SCORER_ACTOR, BatchScorer, ScorerMsg } from './worker.ts';

export { BATCH_JOB_ACTOR, BATCH_SCORER_ACTOR };

export const actorTypes = [
  defineActorType({ name: BATCH_JOB_ACTOR, messages: BatchJobMsg, create: (args) => new BatchScoreJob(args), kind: ActorKind.BATCH, supervision: { maxRestarts: 3, withinMs: 60_000, backoffMs: 200 }, job: true }),
  defineActorType({ name: BATCH_SCORER_ACTOR, messages: ScorerMsg, create: (args) => new BatchScorer(args), kind: ActorKind.BATCH }),
];
