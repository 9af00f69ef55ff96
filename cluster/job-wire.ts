/**
 * Jobs on the wire: what a submitter puts on `shoal.jobs.submit`, a job's record in the `jobs`
 * KV bucket, its states, which actor types may run one, and the scheduler's job API. Like every
 * wire message, each has a TypeBox schema that types it and validates it on receipt.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Errors, type ShoalError } from './errors.ts';
import type { NodeView } from './wire.ts';

export const JobState = {
  QUEUED: 'queued',
  PLACING: 'placing',
  RUNNING: 'running',
  CHECKPOINTED: 'checkpointed',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type JobState = (typeof JobState)[keyof typeof JobState];
export const TERMINAL_JOB_STATES: readonly JobState[] = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED];

/** The job type of a submission that names none. */
export const DEFAULT_JOB_TYPE = 'training-job';
/** Job types accepted while no live node reports the ones it offers (none is up yet). */
export const BUILTIN_JOB_TYPES: readonly string[] = [DEFAULT_JOB_TYPE];

/**
 * Why a job may not name `type` in a fleet (nodes as the scheduler's status lists them), or
 * undefined when it may. A job type is an actor type a live node loads and declares a job entry
 * point (`job: true`); internal actor types (a job's workers, inference replicas) are not, and a
 * job of theirs would only sit `queued` forever. While no live node reports its job types, only
 * the built-in ones are accepted.
 */
export function jobTypeRefusal(type: string, nodes: readonly Pick<NodeView, 'alive' | 'capabilities'>[]): ShoalError | undefined {
  const reporting = nodes.filter((n) => n.alive && n.capabilities.jobTypes);
  const offered = reporting.length > 0 ? [...new Set(reporting.flatMap((n) => n.capabilities.jobTypes!))].sort() : BUILTIN_JOB_TYPES;
  if (offered.includes(type)) return undefined;
  const hosted = reporting.some((n) => n.capabilities.actorTypes?.includes(type));
  const why = reporting.length === 0 ? 'no node is live yet, and until one is only the built-in job types are accepted' : hosted ? 'it is an internal actor type, not a job entry point' : 'no live node offers it';
  return Errors.UNKNOWN_JOB_TYPE(type, why, offered.join(', '));
}

/** What a submitter puts on `shoal.jobs.submit` (JSON or MessagePack; `Nats-Msg-Id` = job id). */
export const JobEnvelope = Type.Object(
  {
    /** Job id; default: the `Nats-Msg-Id` header, else generated. */
    id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    /** The actor type that runs the job. @default training-job */
    actorType: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    /** The job's own spec, validated by its actor when it starts (a training spec also by `JobClient.submit`, before queueing). */
    spec: Type.Unknown(),
    /** The tenant the job's cost is charged to (the gateway sets the caller's). @default "default" */
    tenant: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' })),
  },
  { additionalProperties: false },
);
export type JobEnvelope = Static<typeof JobEnvelope>;

/**
 * A job's coordinator actor id, which is also the anti-affinity group of all the job's actors
 * (the coordinator and its workers spread over nodes) and the prefix of their ids.
 */
export const jobActorId = (jobId: string) => `job-${jobId}`;

/** A job's record in the `jobs` KV bucket (key = job id). */
export interface JobRecord {
  id: string;
  state: JobState;
  actorType: string;
  spec: unknown;
  submittedAt: number;
  updatedAt: number;
  reason?: string;
  /** Times the scheduler restarted the job's coordinator because the job made no progress. */
  restarts?: number;
  progress?: Record<string, unknown>;
  result?: Record<string, unknown>;
  /** Who the job's cost is charged to (from the envelope). */
  tenant?: string;
  /** The directory claim (`ActorContext.claim`) of the coordinator copy that wrote last: an older copy's writes are refused. */
  coordinatorClaim?: number;
}

export const SchedulerJobRequest = Type.Union([Type.Object({ type: Type.Literal('cancel'), jobId: Type.String({ minLength: 1 }) })]);
export type SchedulerJobRequest = Static<typeof SchedulerJobRequest>;
