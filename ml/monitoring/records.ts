/**
 * The wire records of model monitoring (issue #15), one TypeBox schema each — the one source of
 * truth for the prediction log (`<P>_PREDICTIONS`, subjects `<prefix>.predictions.<model>`), the
 * stored labels (`<P>_FEEDBACK`, `<prefix>.feedlog.<model>`) and the joined rows a monitor reads
 * (`<P>_LABELED`, `<prefix>.labeled.<model>`). Payloads are standard MessagePack.
 *
 * One record is one row: a request of n rows logs n records, ids `<request id>` for a one-row
 * request and `<request id>:<row>` otherwise (the ids feedback names).
 */
import { Type, type Static } from '@sinclair/typebox';

/** One logged feature value: a number (numeric tensors), a string (BYTES), a boolean (BOOL), or null. */
export const FeatureValue = Type.Union([Type.Number(), Type.String(), Type.Boolean(), Type.Null()]);
export type FeatureValue = Static<typeof FeatureValue>;

/** One output of one row: a scalar, the row's elements, or a string (BYTES). */
export const OutputValue = Type.Union([Type.Number(), Type.Array(Type.Number()), Type.String()]);
export type OutputValue = Static<typeof OutputValue>;

export const PredictionRecord = Type.Object({
  /** The request id (`x-request-id`, or the OIP body's `id`), `:<row>` for a row of a many-row request. */
  id: Type.String({ minLength: 1, maxLength: 256 }),
  model: Type.String(),
  version: Type.Integer({ minimum: 1 }),
  /** The tenant the gateway admitted the request as (absent for NATS clients). */
  tenant: Type.Optional(Type.String()),
  /** When the replica answered, epoch ms (the replica's clock). */
  ts: Type.Number(),
  /**
   * Named inputs: a tensor whose row is one element is one column named after the input; a row
   * of k elements is k columns `<input>_<i>`; a BYTES input's elements are strings. Inputs with
   * more than {@link MAX_COLUMNS_PER_INPUT} elements per row (images) are not logged.
   */
  features: Type.Record(Type.String(), FeatureValue),
  /** Outputs by name: one element → a number (a string for BYTES), more → the row's numbers. */
  outputs: Type.Record(Type.String(), OutputValue),
  /** Time the replica spent on the request: decode, queue, run. */
  latencyMs: Type.Number({ minimum: 0 }),
  /** A prediction by entity: its entity keys, hashed (ml/governance/privacy `entityRef`), so erasure finds the record. */
  entities: Type.Optional(Type.Array(Type.String())),
  /**
   * The row's groups for live fairness (issue #20): sensitive attribute → group value. Put here by
   * a replica serving a feature-view model whose views declare sensitive features (kept out of
   * `features`), or by the join from the groups sent with the label.
   */
  groups: Type.Optional(Type.Record(Type.String(), Type.String())),
});
export type PredictionRecord = Static<typeof PredictionRecord>;

/** What one prediction-log message carries: a replica's batch of records (one publish per batch). */
export const PredictionBatch = Type.Object({ records: Type.Array(PredictionRecord) });
export type PredictionBatch = Static<typeof PredictionBatch>;

export const Label = Type.Union([Type.Number(), Type.String(), Type.Boolean()]);
export type Label = Static<typeof Label>;

export const LabelType = Type.Union([Type.Literal('number'), Type.Literal('string'), Type.Literal('boolean')]);
export type LabelType = Static<typeof LabelType>;

export const LabeledRecord = Type.Intersect([
  PredictionRecord,
  Type.Object({
    label: Label,
    /** When the label was accepted (the feedback service's clock), epoch ms. */
    labelTs: Type.Number(),
  }),
]);
export type LabeledRecord = Static<typeof LabeledRecord>;

/** One label as a caller sends it; `groups` (sensitive attribute → group value) feed live fairness. */
export const FeedbackItem = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 256 }), label: Label, groups: Type.Optional(Type.Record(Type.String(), Type.String({ maxLength: 64 }))) },
  { additionalProperties: false },
);
export type FeedbackItem = Static<typeof FeedbackItem>;

/** A stored label (`<prefix>.feedlog.<model>`), what the join reads. */
export const StoredLabel = Type.Object({
  model: Type.String(),
  id: Type.String(),
  label: Label,
  labelTs: Type.Number(),
  /** The groups sent with the label (checked against the model's declared sensitive attributes). */
  groups: Type.Optional(Type.Record(Type.String(), Type.String())),
});
export type StoredLabel = Static<typeof StoredLabel>;

/** The feedback service's answer. */
export interface FeedbackReply {
  model: string;
  /** Labels stored now. */
  accepted: number;
  /** Labels for an id already labeled within the de-dup window: ignored. */
  duplicates: number;
}

/** Most elements per row an input may have to be logged (wider ones, e.g. images, are left out). */
export const MAX_COLUMNS_PER_INPUT = 256;

/** Most labels in one feedback request. */
export const MAX_FEEDBACK_ITEMS = 10_000;

/**
 * A deployment's monitoring options (deploy option `monitoring`). Without it nothing is logged.
 */
export const MonitoringSpec = Type.Object(
  {
    /** Share of requests logged, 0..1 (per request: all its rows or none). @default 1 */
    sampleRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Inputs, columns (`<input>_<i>`) or outputs never logged (sensitive fields). @default [] */
    logExclude: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 1024 })),
    /** Type labels must have (feedback of another type is a 400). @default from the first output: BYTES → string, else number (booleans count as 0/1) */
    labelType: Type.Optional(LabelType),
    /** Records a replica holds waiting to be published; more are dropped and counted. @default 10000 */
    bufferRecords: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** Records per published message. @default 500 */
    batchRecords: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    /** Longest a record waits for its batch to fill before it is published. @default 200 */
    flushMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
    /**
     * Each replica profiles ALL its traffic (sampled or not) into mergeable sketches and publishes
     * them; the monitor tests drift on the merge of the replicas' profiles (needs the version's
     * reference profile; without one, or with false, drift is tested on the logged records).
     * @default true when `sampleRate` < 1; false at 1, where the log already holds every request
     * and the monitor profiles the records itself (profiling on the replica too cost serving ~8 %)
     */
    profiles: Type.Optional(Type.Boolean()),
    /** Longest a replica holds its profile of the current slice before publishing it as a delta (a slice that ends is published at the next flush). @default 5000 */
    profileMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
    /** Run a monitor actor for the deployed version (drift, quality, alerts). @default true */
    monitor: Type.Optional(Type.Boolean()),
    /** Tumbling windows of the monitor, by record time, in ms. @default [300000, 3600000] (5 min, 1 h) */
    windows: Type.Optional(Type.Array(Type.Integer({ minimum: 1000, maximum: 30 * 86_400_000 }), { minItems: 1, maxItems: 4 })),
    /** How long after its end a window waits for late records before it closes. @default 10000 */
    latenessMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
    /** Fewer rows than this in a window: no drift or confidence test (reported as skipped). @default 30 */
    minRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** Closed windows kept per size (their quality still updates when labels come). @default 24 */
    keepWindows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    /** Drift tests (Evidently's defaults): see ml/monitoring/stats `DriftOptions`. */
    drift: Type.Optional(
      Type.Object(
        {
          alpha: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 })),
          threshold: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
          driftShare: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
          smallWindowRows: Type.Optional(Type.Integer({ minimum: 1 })),
          correction: Type.Optional(Type.Union([Type.Literal('benjamini-hochberg'), Type.Literal('bonferroni'), Type.Literal('none')])),
        },
        { additionalProperties: false },
      ),
    ),
    /** The confidence-drop rule: one-sided Welch p < alpha (0.01) and a drop ≥ minDrop (0.02). */
    confidence: Type.Optional(Type.Object({ alpha: Type.Optional(Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 })), minDrop: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })) }, { additionalProperties: false })),
    /**
     * Quality alerts: labeled (or estimated, before labels) `metric` below the reference's by more
     * than `maxDrop`, on at least `minRows` rows. @default {metric: 'auc', maxDrop: 0.05, minRows: 100}
     */
    quality: Type.Optional(
      Type.Object(
        {
          metric: Type.Optional(Type.Union(['accuracy', 'precision', 'recall', 'f1', 'auc'].map((m) => Type.Literal(m)))),
          maxDrop: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
          minRows: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /**
     * Live fairness on labeled rows with groups (window-fairness.ts): groups with fewer labeled
     * rows than `minGroupSize` are too small to judge; intervals from `samples` bootstrap resamples.
     * @default {minGroupSize: 30, samples: 500, confidence: 0.95}
     */
    fairness: Type.Optional(
      Type.Object(
        {
          minGroupSize: Type.Optional(Type.Integer({ minimum: 2, maximum: 1_000_000 })),
          samples: Type.Optional(Type.Integer({ minimum: 50, maximum: 10_000 })),
          confidence: Type.Optional(Type.Number({ minimum: 0.5, maximum: 0.999 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** URLs every alert is POSTed to (JSON), retried with backoff. @default [] */
    webhooks: Type.Optional(Type.Array(Type.String({ pattern: '^https?://', maxLength: 2048 }), { maxItems: 16 })),
  },
  { additionalProperties: false },
);
export type MonitoringSpec = Static<typeof MonitoringSpec>;

/** Whether replicas profile their traffic under this spec (`profiles`, else only when sampling leaves requests out of the log). */
export function replicaProfiles(spec: MonitoringSpec): boolean {
  return spec.profiles ?? (spec.sampleRate ?? 1) < 1;
}
