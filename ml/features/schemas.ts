/**
 * Feature views as data (issue #14 item 1): one TypeBox schema per record, the single source of
 * truth for the CLI's JSON, the features service's requests and what is stored in KV.
 *
 * A view names an entity (its key columns), the features kept per entity with their raw types,
 * where events come from (`push`, or `aggregate`: windowed aggregates of another view's events;
 * `dataset` is reserved), a TTL, and per feature the missing-value fill and a chain of
 * transformations. Fitted parameters (means, vocabularies, …) live with the stored *version*,
 * never in the definition: the definition is what a user writes, the version is what a model
 * was trained on.
 */
import { Type, type Static } from '@sinclair/typebox';

/** A view, feature or entity-column name: also a NATS subject token and a KV key token. */
export const FeatureName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

export const FeatureType = Type.Union([Type.Literal('numeric'), Type.Literal('categorical'), Type.Literal('boolean'), Type.Literal('timestamp')]);
export type FeatureType = Static<typeof FeatureType>;

/**
 * Transformations, applied in order to a numeric value (a boolean is 0/1 and a timestamp epoch
 * seconds before them). `standardize` and `minmax` are fitted; `bucketize` is fitted when it
 * gives `quantiles` instead of `boundaries`. A categorical feature takes exactly one encoder,
 * `onehot` or `ordinal`, with a given vocabulary or one fitted (most frequent first, ties in
 * code-unit order), and an unknown bucket last.
 */
export const Transform = Type.Union([
  Type.Object({ op: Type.Literal('standardize') }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('minmax') }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('log1p') }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('clip'), min: Type.Optional(Type.Number()), max: Type.Optional(Type.Number()) }, { additionalProperties: false }),
  Type.Object(
    { op: Type.Literal('bucketize'), boundaries: Type.Optional(Type.Array(Type.Number(), { minItems: 1 })), quantiles: Type.Optional(Type.Integer({ minimum: 2, maximum: 1000 })) },
    { additionalProperties: false },
  ),
  Type.Object(
    { op: Type.Literal('onehot'), vocabulary: Type.Optional(Type.Array(Type.String(), { minItems: 1 })), maxVocabulary: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })) },
    { additionalProperties: false },
  ),
  Type.Object(
    { op: Type.Literal('ordinal'), vocabulary: Type.Optional(Type.Array(Type.String(), { minItems: 1 })), maxVocabulary: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })) },
    { additionalProperties: false },
  ),
]);
export type Transform = Static<typeof Transform>;

/**
 * What a missing value (absent, null, or expired by the TTL) becomes before the transformations.
 * `mean`/`median`/`mode` are fitted; `unknown` (categorical only) sends it to the unknown bucket.
 * Defaults: numeric and timestamp `mean`, boolean `constant` false, categorical `unknown`.
 */
export const Fill = Type.Union([
  Type.Object({ strategy: Type.Union([Type.Literal('mean'), Type.Literal('median'), Type.Literal('mode'), Type.Literal('zero'), Type.Literal('unknown')]) }, { additionalProperties: false }),
  Type.Object({ strategy: Type.Literal('constant'), value: Type.Union([Type.Number(), Type.String(), Type.Boolean()]) }, { additionalProperties: false }),
]);
export type Fill = Static<typeof Fill>;

export const FeatureSpec = Type.Object(
  {
    name: FeatureName,
    type: FeatureType,
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    fill: Type.Optional(Fill),
    transforms: Type.Optional(Type.Array(Transform, { maxItems: 16 })),
    /** Personal data (issue #20): never logged, never echoed in errors, erased by `shoal privacy forget`. @default false */
    pii: Type.Optional(Type.Boolean()),
    /**
     * A protected attribute (issue #20: sex, an age band, …): a training set built from the view
     * carries it as a dataset sensitive attribute (group per row) for the fairness audit and policy,
     * and a replica serving by entity puts its group on the logged record's `groups` for live
     * fairness. Groups must be categories: a categorical or boolean feature, or a numeric one with
     * a `bucketize` transform (the bucket is the group). At most 255 groups. @default false
     */
    sensitive: Type.Optional(Type.Boolean()),
    /** A sensitive feature is also encoded into the model's input vector (only with `sensitive`). @default false */
    useAsFeature: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type FeatureSpec = Static<typeof FeatureSpec>;

/** What a streaming aggregate computes per window: events, or a field's values (aggregates.ts). */
export const AggregateFunction = Type.Union([Type.Literal('count'), Type.Literal('sum'), Type.Literal('mean'), Type.Literal('distinct_count')]);
export type AggregateFunction = Static<typeof AggregateFunction>;

export const AggregationSpec = Type.Object(
  {
    function: AggregateFunction,
    /** The source view's feature aggregated (needed by sum, mean, distinct_count; count without it counts events). */
    field: Type.Optional(FeatureName),
    /** Output prefix: features are `<name>_<window>`. @default `count`, or `<field>_<function>` */
    name: Type.Optional(FeatureName),
  },
  { additionalProperties: false },
);
export type AggregationSpec = Static<typeof AggregationSpec>;

/**
 * A streaming aggregate view's source (issue #14 item 4): windowed aggregates, per entity of the
 * view, over the events pushed to another (push) view. Semantics in aggregates.ts and the README.
 */
export const AggregateSpec = Type.Object(
  {
    /** The push view whose events are aggregated. */
    view: FeatureName,
    /** Sliding windows over event time: a whole number and a unit, `s`, `m`, `h` or `d` (e.g. `10m`, `24h`). */
    windows: Type.Array(Type.String({ pattern: '^[1-9][0-9]{0,5}[smhd]$' }), { minItems: 1, maxItems: 16 }),
    aggregations: Type.Array(AggregationSpec, { minItems: 1, maxItems: 64 }),
    /** Tile granularity: a window's oldest edge snaps down to a multiple of it; each window a multiple of it. @default 60 */
    tileSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);
export type AggregateSpec = Static<typeof AggregateSpec>;

/** Where a view's values come from: pushed events, or a streaming aggregate of another view's events. `dataset` is reserved (refused at apply). */
export const FeatureSource = Type.Union([
  Type.Object({ type: Type.Literal('push') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('dataset'), dataset: Type.String(), timeColumn: Type.String() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('aggregate'), spec: AggregateSpec }, { additionalProperties: false }),
]);
export type FeatureSource = Static<typeof FeatureSource>;

export const FeatureViewDef = Type.Object(
  {
    name: FeatureName,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    /** Entity key columns, in key order (e.g. `["customer_id"]`). Values are strings. */
    entity: Type.Array(FeatureName, { minItems: 1, maxItems: 8 }),
    features: Type.Array(FeatureSpec, { minItems: 1, maxItems: 1024 }),
    source: FeatureSource,
    /** A value older than this (event time, against the reader's clock) reads as missing. 0 = never expires. */
    ttlSeconds: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type FeatureViewDef = Static<typeof FeatureViewDef>;

/** Fitted parameters of one feature (only those its fill and transforms need). */
export const FittedFeature = Type.Object(
  {
    /** The fill value, resolved (a number for numeric/boolean/timestamp, a string for categorical; null = unknown bucket). */
    fill: Type.Union([Type.Number(), Type.String(), Type.Null()]),
    /** Per transform, in order: its fitted parameters (null for parameter-free steps). */
    steps: Type.Array(
      Type.Union([
        Type.Null(),
        Type.Object({ mean: Type.Number(), std: Type.Number() }),
        Type.Object({ min: Type.Number(), max: Type.Number() }),
        Type.Object({ boundaries: Type.Array(Type.Number()) }),
        Type.Object({ vocabulary: Type.Array(Type.String()) }),
      ]),
    ),
  },
  { additionalProperties: false },
);
export type FittedFeature = Static<typeof FittedFeature>;

export const FittedView = Type.Object(
  {
    /** Rows of the snapshot the parameters were fitted on. */
    rows: Type.Integer({ minimum: 0 }),
    features: Type.Record(Type.String(), FittedFeature),
    /** Output layout: width of the float vector and the name of each column (e.g. `country=FR`). */
    width: Type.Integer({ minimum: 0 }),
    columns: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type FittedView = Static<typeof FittedView>;

/** A stored view version: KV key `<name>.v<version>`. */
export const FeatureViewVersion = Type.Object({
  name: FeatureName,
  version: Type.Integer({ minimum: 1 }),
  definition: FeatureViewDef,
  /** sha256 of the canonical JSON of `{definition, fitted}`: equal digests, same version. */
  digest: Type.String(),
  fitted: Type.Union([FittedView, Type.Null()]),
  createdAt: Type.String(),
});
export type FeatureViewVersion = Static<typeof FeatureViewVersion>;

/** A view's head record: KV key `<name>`. */
export const FeatureViewRecord = Type.Object({
  name: FeatureName,
  latest: Type.Integer({ minimum: 1 }),
  versions: Type.Array(Type.Integer({ minimum: 1 })),
  updatedAt: Type.String(),
});
export type FeatureViewRecord = Static<typeof FeatureViewRecord>;

/** A raw value as pushed: numbers, strings, booleans, timestamps (ISO string or epoch ms), or null. */
export const RawValue = Type.Union([Type.Number(), Type.String(), Type.Boolean(), Type.Null()]);
export type RawValue = Static<typeof RawValue>;

/** One pushed event (HTTP body, NATS payload, offline log record). */
export const FeatureEvent = Type.Object(
  {
    /** Idempotency key: the same id twice (within the offline stream's de-dup window) is applied once. */
    // Printable (it travels in the Nats-Msg-Id header): no control characters.
    eventId: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
    entity: Type.Record(Type.String(), Type.String()),
    values: Type.Record(Type.String(), RawValue),
    /** When it happened: ISO 8601 or epoch milliseconds. */
    eventTime: Type.Union([Type.String(), Type.Number()]),
    /**
     * Backfills only: when the value became known to the product (ISO 8601 or epoch ms), at or
     * before now. Point-in-time training sets treat it as the ingestion time, so history loaded
     * today can still be joined as it was known then. @default the ingestion time (now)
     */
    knownAt: Type.Optional(Type.Union([Type.String(), Type.Number()])),
  },
  { additionalProperties: false },
);
export type FeatureEvent = Static<typeof FeatureEvent>;

/** What the offline log holds per event (stream `<P>_FEATURE_EVENTS`, subject `<prefix>.featlog.<view>`). */
export interface LoggedEvent {
  view: string;
  eventId: string;
  /** Entity key values in the view's key order. */
  entity: string[];
  values: Record<string, RawValue>;
  /** Event time and ingestion time (the event's `knownAt` when it gave one), epoch ms. */
  eventTime: number;
  ingestTime: number;
}

/** The answer to a push. */
export interface PushResult {
  view: string;
  eventId: string;
  /** Offline stream sequence of the event (the original's for a duplicate). */
  seq: number;
  duplicate: boolean;
  /** Features whose online value this event set (those older than the stored value are not). */
  applied: string[];
}
