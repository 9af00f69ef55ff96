/** Registry records as stored in the `models` KV bucket (JSON, readable with any NATS tool). */
import { Type, type Static } from '@sinclair/typebox';
import { TensorSpec } from '../tensor.ts';
import { PipelineSpec, ProcessorRef } from './pipeline-spec.ts';

export const MODEL_NAME = '^[A-Za-z0-9_-]{1,64}$';
export const ALIAS_NAME = '^[A-Za-z][A-Za-z0-9_-]{0,63}$';

export const Signature = Type.Object({
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  /** Inputs, `<input>_<i>` columns or outputs that are personal data (issue #20): never in the prediction log. */
  pii: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { maxItems: 1024 })),
});
export type Signature = Static<typeof Signature>;

/** Where a version came from (MLflow-style lineage). */
export const Lineage = Type.Object(
  {
    datasetDigest: Type.Optional(Type.String()),
    trainingJobId: Type.Optional(Type.String()),
    hyperParameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    codeVersion: Type.Optional(Type.String()),
    parentVersion: Type.Optional(Type.Integer({ minimum: 1 })),
    /**
     * A model trained on feature views: `{views: [{view: "name@N", digest}], columns: [...]}`, the
     * views and its input layout; checked at deploy and used by predictions by entity
     * (ml/serving/entity-features.ts, `FeatureLineageSchema`).
     */
    features: Type.Optional(Type.Unknown()),
    /** Model input columns (`X_<j>`) made from the training dataset's PII columns (issue #20): never logged. */
    pii: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: Type.Unknown() },
);
export type Lineage = Static<typeof Lineage>;

/** One immutable version (key `version.<name>.<n>`). */
export const ModelVersion = Type.Object({
  name: Type.String({ pattern: MODEL_NAME }),
  version: Type.Integer({ minimum: 1 }),
  /** Content address of the artifact in the artifacts object store (`sha256/<hex>`). */
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  sizeBytes: Type.Integer({ minimum: 0 }),
  /**
   * `onnx`: one ONNX file; `onnx-tar`: a tarball of a graph and its external data files
   * (ml/registry/package.ts); `pipeline`: a DAG of other models (`pipeline` below, sha256 of its JSON).
   */
  format: Type.Union([Type.Literal('onnx'), Type.Literal('onnx-tar'), Type.Literal('pipeline')]),
  /** What clients see and send (with a processor: the processor's public signature, not the ONNX file's). */
  signature: Signature,
  /** A pre/post-processing module stored with the version (ml/serving/processor.ts). */
  processor: Type.Optional(ProcessorRef),
  /** The steps of a `pipeline` version (ml/registry/pipeline-spec.ts). */
  pipeline: Type.Optional(PipelineSpec),
  /**
   * A sample OIP v2 `infer` request body (JSON) stored with the version, content-addressed in the
   * artifacts store like the model: what a replica warms up with (deploy option `warmup`). With a
   * processor it is a request in the public signature.
   */
  sample: Type.Optional(Type.Object({ sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), sizeBytes: Type.Integer({ minimum: 0 }) })),
  /**
   * The version's reference profile (ml/monitoring/stats: per-feature sketches, the prediction
   * distribution, the holdout metrics), JSON, content-addressed in the artifacts store like the
   * model. A training job stores its holdout's; a version registered by hand may be given one.
   */
  reference: Type.Optional(Type.Object({ sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), sizeBytes: Type.Integer({ minimum: 0 }), rows: Type.Integer({ minimum: 0 }) })),
  /** A registered dataset (`name@<digest>`) to take the reference from, for a version registered by hand. */
  referenceDataset: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  metrics: Type.Record(Type.String(), Type.Number()),
  lineage: Lineage,
  description: Type.Optional(Type.String()),
  /** Model card text given at registration (ml/governance/card). */
  card: Type.Optional(Type.Object({ intendedUse: Type.Optional(Type.String()), limitations: Type.Optional(Type.String()) })),
  /** A quantized version's report (ml/quantize/report.ts): sizes, latency ratios, holdout metric deltas. */
  quantization: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** Set at registration when the version must not be served by accident (deploy/canary/promote refuse it without allowRejected). */
  rejected: Type.Optional(Type.Object({ reason: Type.String({ maxLength: 1024 }) })),
  createdAt: Type.Number(),
});
export type ModelVersion = Static<typeof ModelVersion>;

/** A model's mutable head (key `model.<name>`), changed only by compare-and-swap. */
export const ModelRecord = Type.Object({
  name: Type.String({ pattern: MODEL_NAME }),
  /** Highest version number handed out (versions are monotonic, never reused). */
  latest: Type.Integer({ minimum: 0 }),
  versions: Type.Array(Type.Integer({ minimum: 1 })),
  aliases: Type.Record(Type.String(), Type.Integer({ minimum: 1 })),
  /** Versions each alias pointed to before, most recent last (for rollback). */
  aliasHistory: Type.Record(Type.String(), Type.Array(Type.Integer({ minimum: 1 }))),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
});
export type ModelRecord = Static<typeof ModelRecord>;

export const keys = {
  model: (name: string) => `model.${name}`,
  version: (name: string, v: number) => `version.${name}.${v}`,
  deployment: (name: string) => `deploy.${name}`,
  artifact: (sha256: string) => `sha256/${sha256}`,
};
