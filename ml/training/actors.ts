/**
 * The training actor types, loaded on nodes with `shoal:ml/training/actors.ts` (part of the
 * default `actors.modules`):
 *
 * - `training-job` — a job's coordinator, one per job, spawned by the scheduler's job queue
 *   (coordinator.ts; the end of a job is finish.ts, its checkpoints checkpoints.ts);
 * - `trainer-worker` — one of the job's workers, holding one shard of the train split and
 *   computing minibatch gradients through `kernels/` (worker.ts; its shard is shards.ts).
 */
import { ActorKind, defineActorType } from '../../cluster/index.ts';
import { JobMsg, TRAINING_JOB_ACTOR, TrainingJob } from './coordinator.ts';
import { TRAINER_WORKER_ACTOR, TrainerWorker, WorkerMsg } from './worker.ts';

export { TRAINING_JOB_ACTOR, TRAINER_WORKER_ACTOR };
export type { GradReply } from './worker.ts';

export const actorTypes = [
  // The job entry point; its workers are internal (a job of them would never start).
  defineActorType({ name: TRAINING_JOB_ACTOR, messages: JobMsg, create: (args) => new TrainingJob(args), kind: ActorKind.BATCH, supervision: { maxRestarts: 3, withinMs: 60_000, backoffMs: 200 }, job: true }),
  defineActorType({ name: TRAINER_WORKER_ACTOR, messages: WorkerMsg, create: (args) => new TrainerWorker(args), kind: ActorKind.TRAINING }),
];
