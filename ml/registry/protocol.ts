/**
 * The registry service's requests (`<prefix>.registry.<op>`), one TypeBox schema per operation.
 * Artifacts travel through the `uploads` object store: the caller puts the bytes there under a
 * fresh name and sends `{ upload, sha256 }`; the service checks the digest, stores the bytes
 * content-addressed in the artifacts store and deletes the upload.
 *
 * Names and aliases are checked by the registry itself (so a bad one is SHOAL_ERR_BAD_MODEL, the
 * same as before), not by the schema.
 */
import { MonitoringSpec } from '../monitoring/records.ts';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { PlacementConstraints, ResourceRequest, ServiceAutoscale, type RegistryOp } from '../../cluster/index.ts';
import { RollbackPolicy } from '../serving/canary.ts';
import { WarmupModeSchema } from '../serving/messages.ts';
import { ScaleToZeroOptions } from '../serving/scale-to-zero-spec.ts';
import { Lineage, Signature } from './schemas.ts';
import { FairnessPolicy } from '../governance/fairness/policy.ts';

/** Go ahead although the fairness policy blocks the version: the reason is recorded in the audit log. */
const FairnessOverride = Type.Object({ reason: Type.String({ minLength: 3, maxLength: 2048 }) }, { additionalProperties: false });

const Name = Type.String({ minLength: 1, maxLength: 256 });
/** An upload's object name: letters, digits, `_`, `-`, `.` (the client makes `upload-<nuid>`). */
export const UPLOAD_NAME = '^[A-Za-z0-9_.-]{1,128}$';
const Upload = {
  upload: Type.String({ pattern: UPLOAD_NAME }),
  /** Of the uploaded bytes, hex. */
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
};

export const RegisterModelRequest = Type.Object(
  {
    name: Name,
    ...Upload,
    aliases: Type.Optional(Type.Array(Name, { maxItems: 64 })),
    metrics: Type.Optional(Type.Record(Type.String(), Type.Number())),
    lineage: Type.Optional(Lineage),
    description: Type.Optional(Type.String({ maxLength: 4096 })),
    signature: Type.Optional(Signature),
    /**
     * What the upload is: one ONNX file, a package (a tarball of a graph and its external data,
     * package.ts), or a pipeline spec's JSON (pipeline-spec.ts). @default onnx
     */
    format: Type.Optional(Type.Union([Type.Literal('onnx'), Type.Literal('onnx-tar'), Type.Literal('pipeline')])),
    /** A pre/post-processing module uploaded beside the model (ml/serving/processor.ts). */
    processor: Type.Optional(Type.Object({ ...Upload, filename: Type.String({ minLength: 1, maxLength: 128 }) }, { additionalProperties: false })),
    /** A sample OIP `infer` request body, uploaded the same way: checked against the signature, stored with the version. */
    sample: Type.Optional(Type.Object(Upload, { additionalProperties: false })),
    /** A reference profile's JSON (ml/monitoring/stats `buildReferenceProfile`), uploaded the same way: checked, stored with the version. */
    reference: Type.Optional(Type.Object(Upload, { additionalProperties: false })),
    /** A registered dataset (name, name@<digest prefix> or sha256:<digest>) to monitor against; must exist. */
    referenceDataset: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** Free text for the model card: what the version is for, and what it must not be used for. */
    intendedUse: Type.Optional(Type.String({ maxLength: 4096 })),
    limitations: Type.Optional(Type.String({ maxLength: 4096 })),
    /** A quantized version's report (ml/quantize), stored with the version. */
    quantization: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    /** Register the version as rejected (deploy/canary/promote refuse it without allowRejected). */
    rejected: Type.Optional(Type.Object({ reason: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type RegisterModelRequest = Static<typeof RegisterModelRequest>;

export const SetAliasRequest = Type.Object({ name: Name, alias: Name, version: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
export const DeleteAliasRequest = Type.Object({ name: Name, alias: Name }, { additionalProperties: false });
export const RollbackAliasRequest = Type.Object({ name: Name, alias: Type.Optional(Name) }, { additionalProperties: false });

/** `TrackOptions` of ml/serving/deployments.ts. */
const TrackFields = {
  version: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1, maxLength: 64 })])),
  replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  maxBatchSize: Type.Optional(Type.Integer({ minimum: 1 })),
  maxQueueDelayMs: Type.Optional(Type.Number({ minimum: 0 })),
  threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  instances: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  warmup: Type.Optional(WarmupModeSchema),
  batching: Type.Optional(Type.Boolean()),
  batchAxes: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Integer({ minimum: 0, maximum: 15 }))),
  maxQueueRows: Type.Optional(Type.Integer({ minimum: 1 })),
  resources: Type.Optional(ResourceRequest),
  constraints: Type.Optional(PlacementConstraints),
  readyTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
  autoscale: Type.Optional(ServiceAutoscale),
  monitoring: Type.Optional(MonitoringSpec),
  /** 0: scale to zero after `scaleToZero.idleTimeoutMs` without requests (ml/serving/scale-to-zero-spec.ts). */
  minReplicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  scaleToZero: Type.Optional(ScaleToZeroOptions),
  /** Serve a version marked rejected (a quantized one that lost its check) anyway. */
  allowRejected: Type.Optional(Type.Boolean()),
};

export const DeployRequest = Type.Object({ name: Name, ...TrackFields, policy: Type.Optional(Type.Partial(RollbackPolicy)), fairnessOverride: Type.Optional(FairnessOverride) }, { additionalProperties: false });
export type DeployRequest = Static<typeof DeployRequest>;
export const CanaryRequest = Type.Object({ name: Name, ...TrackFields, weight: Type.Optional(Type.Number()), sticky: Type.Optional(Type.Boolean()), fairnessOverride: Type.Optional(FairnessOverride) }, { additionalProperties: false });
export type CanaryRequest = Static<typeof CanaryRequest>;
export const WeightRequest = Type.Object({ name: Name, weight: Type.Number() }, { additionalProperties: false });
export const PromoteRequest = Type.Object({ name: Name, fairnessOverride: Type.Optional(FairnessOverride), allowRejected: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
/** Roll the canary back; with `expectVersion`, only if the canary is still that version (gateways racing). */
export const AbortRequest = Type.Object({ name: Name, reason: Type.Optional(Type.String({ maxLength: 1024 })), expectVersion: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
export const UndeployRequest = Type.Object({ name: Name }, { additionalProperties: false });

export const RegisterDatasetRequest = Type.Object(
  { name: Name, ...Upload, splitSeed: Type.Optional(Type.Integer()), source: Type.Optional(Type.String({ maxLength: 1024 })) },
  { additionalProperties: false },
);
export type RegisterDatasetRequest = Static<typeof RegisterDatasetRequest>;

/** Sets (or with `null` clears) a model's fairness policy; attributes it names must be declared. */
export const FairnessPolicyRequest = Type.Object({ name: Name, policy: Type.Union([FairnessPolicy, Type.Null()]), reason: Type.Optional(Type.String({ maxLength: 2048 })) }, { additionalProperties: false });
/** A version's model card (ml/governance/card). */
export const CardRequest = Type.Object({ name: Name, version: Type.Union([Type.Integer({ minimum: 1 }), Type.String({ minLength: 1, maxLength: 64 })]) }, { additionalProperties: false });
/** Reads the audit log (ml/governance/audit). */
export const AuditRequest = Type.Object(
  { since: Type.Optional(Type.Number({ minimum: 0 })), target: Type.Optional(Name), version: Type.Optional(Type.Integer({ minimum: 1 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })) },
  { additionalProperties: false },
);

/** Gives a model, job, feature view or dataset to a tenant (`default`: shared again); audited. */
export const OwnerRequest = Type.Object(
  {
    kind: Type.Union([Type.Literal('model'), Type.Literal('job'), Type.Literal('view'), Type.Literal('dataset')]),
    name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' }),
    tenant: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
    reason: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: false },
);

/** The schema of every operation: the service serves exactly these. */
export const REGISTRY_REQUESTS = {
  register: RegisterModelRequest,
  alias: SetAliasRequest,
  'delete-alias': DeleteAliasRequest,
  'rollback-alias': RollbackAliasRequest,
  deploy: DeployRequest,
  canary: CanaryRequest,
  weight: WeightRequest,
  promote: PromoteRequest,
  abort: AbortRequest,
  undeploy: UndeployRequest,
  'register-dataset': RegisterDatasetRequest,
  'fairness-policy': FairnessPolicyRequest,
  card: CardRequest,
  audit: AuditRequest,
  owner: OwnerRequest,
} as const satisfies Record<RegistryOp, TSchema>;
export type RegistryRequest<Op extends RegistryOp> = Static<(typeof REGISTRY_REQUESTS)[Op]>;
