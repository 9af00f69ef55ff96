/**
 * The batch scoring job spec (`shoal batch score`, `POST /v1/batch`): which model version to
 * score with, which dataset to score, and how to split the work. Validated at the edge by
 * `BatchClient.submit` and again by the `batch-score-job` actor when it starts.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { validate } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';

export const BatchSpec = Type.Object(
  {
    /** `name@alias`, `name@<version>` or `name` (its latest version), e.g. `fraud@production`. */
    model: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}(@[A-Za-z0-9_-]{1,64})?$' }),
    /** `name`, `name@<digest prefix>` or `sha256:<digest>`. */
    dataset: Type.String({ minLength: 1, maxLength: 200 }),
    /** Name the scores are registered under as a dataset. @default `<dataset name>-scores` */
    out: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    /** Rows per shard (a shard is the unit of work and of checkpointing). @default 2000 */
    shardRows: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 2000 }),
    /** Scoring replicas the shards are mapped over. @default 2 */
    replicas: Type.Integer({ minimum: 1, maximum: 64, default: 2 }),
    /** Replicas may run on spot capacity. @default true */
    spotOk: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);
export type BatchSpec = Static<typeof BatchSpec>;

export function parseBatchSpec(jobId: string, raw: unknown): BatchSpec {
  try {
    return validate(BatchSpec, Value.Default(BatchSpec, Value.Clone(raw ?? {})), `batch job ${jobId} spec`);
  } catch (err) {
    throw MlErrors.BAD_JOB(jobId, (err as Error).message);
  }
}

/** `fraud@production` → `['fraud', 'production']`; a bare name is its latest version. */
export function splitModelRef(ref: string): [string, string | number] {
  const [name, at] = ref.split('@', 2) as [string, string | undefined];
  return [name, at === undefined ? 'latest' : /^\d+$/.test(at) ? Number(at) : at];
}
