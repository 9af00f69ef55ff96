/**
 * The training job spec. Validated twice: at the edge by `JobClient.submit` (a 400 at the
 * gateway, an error from the CLI) and by the `training-job` actor when it starts (for
 * submitters that publish on NATS directly).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ResourceRequest, validate } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';

/** One label row of a feature training set: the entity key columns, the label time (ISO 8601 or epoch ms), 0/1. */
export const FeatureLabelRow = Type.Object(
  {
    entity: Type.Record(Type.String(), Type.String()),
    time: Type.Union([Type.String({ minLength: 1 }), Type.Number({ minimum: 0 })]),
    label: Type.Union([Type.Literal(0), Type.Literal(1), Type.Boolean()]),
  },
  { additionalProperties: false },
);

/**
 * A training set built from feature views as known at each label's time: `features` are views
 * (`view` = its latest version, `view@N` pinned), `labels` the label rows, inline (a stored
 * dataset holds float32 feature columns only, so it cannot carry string entity keys or
 * millisecond label times).
 */
const FeatureLabelRows = Type.Array(FeatureLabelRow, { minItems: 1, maxItems: 100_000 });
const FeatureLabelView = Type.Object(
  {
    view: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
    label: Type.String({ minLength: 1, maxLength: 128 }),
    since: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Number({ minimum: 0 })])),
    until: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Number({ minimum: 0 })])),
  },
  { additionalProperties: false },
);

/**
 * A set already built (by a pipeline run's snapshot, ml/pipelines/feature-data.ts): the dataset by
 * digest and the view versions it was built from. The job trains on that dataset instead of
 * building it again — labels pushed since (late ones, corrections) would change a rebuild — and
 * records the views as the version's feature lineage.
 */
const PinnedFeatureSet = Type.Object(
  {
    digest: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    views: Type.Array(
      Type.Object({ view: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}@[1-9][0-9]{0,8}$' }), digest: Type.String({ minLength: 1, maxLength: 128 }), through: Type.Number({ minimum: 0 }) }, { additionalProperties: false }),
      { minItems: 1, maxItems: 32 },
    ),
  },
  { additionalProperties: false },
);

export const FeatureTrainingSet = Type.Object(
  {
    features: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}(@[1-9][0-9]{0,8})?$' }), { minItems: 1, maxItems: 32 }),
    // Inline rows, or a label view's events (delayed labels pushed as they come back): no size limit in the spec.
    labels: Type.Union([FeatureLabelRows, FeatureLabelView]),
    /** The set as already built, by digest, with its views (`features` must name the same `view@N`s). */
    pinned: Type.Optional(PinnedFeatureSet),
  },
  { additionalProperties: false },
);
export type FeatureTrainingSet = Static<typeof FeatureTrainingSet>;

export const TrainingSpec = Type.Object(
  {
    model: Type.Object(
      {
        /** Registry name the trained version is registered under. */
        name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
        type: Type.Union([Type.Literal('logreg'), Type.Literal('mlp')]),
        /** The MLP's hidden layer widths (ReLU), e.g. `[64, 32]`, or one width. @default 32 */
        hidden: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 4096 }), Type.Array(Type.Integer({ minimum: 1, maximum: 4096 }), { minItems: 1, maxItems: 8 })])),
        /** Model card text stored with the version (ml/governance/card). */
        intendedUse: Type.Optional(Type.String({ maxLength: 4096 })),
        limitations: Type.Optional(Type.String({ maxLength: 4096 })),
      },
      { additionalProperties: false },
    ),
    /**
     * `name`, `name@<digest prefix>` or `sha256:<digest>`; or a feature-view training set built
     * point-in-time by the features service before training (`FeatureTrainingSet`).
     */
    dataset: Type.Union([Type.String({ minLength: 1 }), FeatureTrainingSet]),
    hyper: Type.Object(
      {
        optimizer: Type.Union([Type.Literal('sgd'), Type.Literal('adam')], { default: 'adam' }),
        lr: Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 0.05 }),
        steps: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 200 }),
        /** Rows per worker per step. @default 512 */
        batchSize: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 512 }),
        seed: Type.Integer({ default: 1 }),
      },
      { default: {}, additionalProperties: false },
    ),
    workers: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
    resources: Type.Optional(ResourceRequest),
    /** Workers may run on spot capacity. @default true */
    spotOk: Type.Boolean({ default: true }),
    /** Save a checkpoint every this many steps. @default 20 */
    checkpointEvery: Type.Integer({ minimum: 1, default: 20 }),
    /** Steps a worker may fail (after its own retries) before the job fails. @default 3 */
    maxWorkerFailures: Type.Integer({ minimum: 0, default: 3 }),
    /**
     * How long a step may wait for its workers' gradients — retries included, long enough for a
     * worker on a dead node to be re-placed — before it counts as a worker failure. @default 90000
     */
    stepTimeoutMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 90_000 }),
    /** Epoch ms the job should finish by (reported against; spot/on-demand choice uses it). */
    deadline: Type.Optional(Type.Number()),
    /** Most $ the job may cost. */
    budget: Type.Optional(Type.Number({ minimum: 0 })),
    /** Deploy the trained version as the canary of its model (when the model is deployed). */
    deploy: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('canary')])),
  },
  { additionalProperties: false },
);
export type TrainingSpec = Static<typeof TrainingSpec>;

/** The spec with its defaults, or `SHOAL_ERR_BAD_JOB` naming the first bad field. */
export function parseTrainingSpec(jobId: string, raw: unknown): TrainingSpec {
  try {
    // A feature training set is checked on its own first, so the error names its field
    // (`dataset.labels.3.label: …`) rather than "dataset: expected union value".
    const ds = (raw as { dataset?: unknown } | null)?.dataset;
    if (ds && typeof ds === 'object') {
      try {
        // Likewise the labels' form, so a bad row is named rather than "expected union value".
        const labels = (ds as { labels?: unknown }).labels;
        if (labels !== undefined) {
          try {
            validate(Array.isArray(labels) ? FeatureLabelRows : FeatureLabelView, labels, `job ${jobId} spec`);
          } catch (err) {
            throw new Error((err as Error).message.replace(/(spec: )/, '$1labels.'));
          }
        }
        const set = validate(FeatureTrainingSet, ds, `job ${jobId} spec`);
        if (set.pinned && set.pinned.views.map((v) => v.view).join() !== set.features.join()) throw new Error(`job ${jobId} spec: pinned.views: must be the views of features, each pinned (name@N), in the same order`);
      } catch (err) {
        throw new Error((err as Error).message.replace(/(spec: )/, '$1dataset.'));
      }
    }
    return validate(TrainingSpec, Value.Default(TrainingSpec, Value.Clone(raw ?? {})), `job ${jobId} spec`);
  } catch (err) {
    throw MlErrors.BAD_JOB(jobId, (err as Error).message);
  }
}
