// Public entry of the ml layer (registry, serving). Other folders import from here only.
export { MlErrors } from './errors.ts';
export {
  Datatype,
  DATATYPES,
  DatatypeSchema,
  ORT_TYPE,
  WireTensor,
  TensorSpec,
  checkAgainst,
  fromBytes,
  fromHalf,
  fromJson,
  numel,
  toBytes,
  toHalf,
  toJson,
  type NumericDatatype,
  type OrtType,
  type TensorData,
  type TypedArray,
} from './tensor.ts';
export { decodeStrings, encodeStrings, encodedStringsSize } from './tensor-strings.ts';
export { ModelRegistry, readSignature, resolveRef, sha256, type ModelSummary, type RegisterOptions } from './registry/registry.ts';
export { ModelRecord, ModelVersion, Signature, Lineage, keys as registryKeys } from './registry/schemas.ts';
export { RegistryClient } from './registry/client.ts';
export { PACKAGE_FORMAT, isTarball, materializePackage, packDirectory, packageCacheDir } from './registry/package.ts';
export { startRegistryService, type RegistryService, type RegistryServiceOptions } from './registry/service.ts';
export { REGISTRY_REQUESTS, UPLOAD_NAME, type RegistryRequest } from './registry/protocol.ts';
export { controlModules } from './control.ts';
export { DynamicBatcher, type BatcherOptions, type BatcherStats, type BatchOutput, type RunBatch } from './serving/batcher.ts';
export {
  CanaryMonitor,
  OutcomeTally,
  OutcomeReport,
  type OutcomeCounts,
  DEFAULT_POLICY,
  Deployment,
  isDeployment,
  RollbackPolicy,
  TrackState,
  hashUnit,
  pickTrack,
  serviceName,
  type CanaryTrack,
  type ShadowTrack,
  type Route,
  type Track,
  type TrackHealth,
  type Verdict,
} from './serving/canary.ts';
export { RolloutController, type RolloutControllerOptions } from './serving/rollout.ts';
export { ModelDeployments, type CanaryOptions, type DeployOptions, type TrackOptions } from './serving/deployments.ts';
export type { ShadowOptions } from './serving/shadow-track.ts';
export {
  SHADOW_BINS,
  ShadowCounts,
  ShadowReportMsg,
  ShadowReportRequest,
  ShadowTally,
  compareInto,
  histogramPsi,
  judgeShadow,
  responseRows,
  rowsAgree,
  type ShadowJudgment,
  type ShadowPolicy,
} from './serving/shadow.ts';
export { SCALE_TO_ZERO_DEFAULTS, WAKE_SERVICE, type ScaleToZero, type WakeReply } from './serving/scale-to-zero-spec.ts';
export { ZeroController, type ZeroControllerOptions } from './serving/zero-controller.ts';
export type { LiveStatus, LiveTrack, LiveReplica } from './serving/live-status.ts';
export {
  INFERENCE_ACTOR_TYPE,
  InferenceArgs,
  InferenceMsg,
  InferItem,
  JsonItem,
  ExplainOptions,
  type JsonFormat,
  type InferJsonReply,
  type InferReply,
  type JsonResult,
  type ItemError,
  type ItemOk,
  type ItemResult,
  type ReadyReply,
  type ReplicaStats,
  type ServingInfo,
  type WarmupMode,
  type WarmupReport,
} from './serving/messages.ts';
export { batchingInfo, concatAlong, describeBatching, planBatching, splitAlong, type BatchPlan, type BatchingInfo, type BatchingOptions } from './serving/batch-axis.ts';
export { SessionPool, type PoolTensor, type SessionOptions, type SessionValueInfo } from './serving/session-pool.ts';
export { InferenceActor, inferenceActorType } from './serving/inference-actor.ts';
export { OipInferRequest, PredictRequest, decodeOip } from './serving/codecs/index.ts';
export * from './datasets/index.ts';
export * from './training/index.ts';
export * from './batch/index.ts';
// Pre/post-processing modules and pipeline models (issue #13 item 6).
export { PipelineSpec, PipelineStep, PipelineTensor, ProcessorRef, parsePipelineSpec, stepNames, validatePipeline, type StepModel } from './registry/pipeline-spec.ts';
export { ProcessorHost, RequestProcessor, validateProcessor, type ProcessorContext, type ProcessorTensor, type ProcessorTensors } from './serving/processor.ts';
export { PIPELINE_ACTOR_TYPE, PipelineActor, PipelineArgs, pipelineActorType } from './serving/pipeline-actor.ts';
export { PipelineRunner } from './serving/pipeline.ts';
export * from './features/index.ts';
export { EntityFeatures, EntityOipRequest, EntityPredictRequest, FeatureLineageSchema, checkFeatureInput, featureLineage, resolveFeatureInput, type EntityStatus, type FeatureInput, type FeatureLineageRecord } from './serving/entity-features.ts';
// Model monitoring (issue #15): prediction log, feedback and the label join.
export * from './monitoring/index.ts';
// Governance (issue #20): explanations.
export {
  kernelShap,
  linearShap,
  integratedGradients,
  enumeratedShapley,
  probeLinear,
  coalitions,
  groupAttributions,
  applyLink,
  graphKind,
  explainReference,
  sampleBackground,
  denseBackground,
  meanAbsolute,
  trainingExplainReference,
  BACKGROUND_ROWS,
  type Attribution,
  type Background,
  type Evaluator,
  type Link,
  type Method,
  type ExplainReference,
  type ExplainBackground,
  type GlobalImportance,
} from './governance/explain/index.ts';
export { ReplicaExplainer, MAX_EXPLAIN_ROWS } from './serving/explain.ts';
// Governance: fairness audit and gate, model cards, audit log (ml/governance).
export { fairnessAudit, fairnessOf, judge, groupMetrics, summaryMetrics, bootstrapSummary, FairnessPolicy, type FairnessAudit, type Verdict as FairnessVerdict, type Violation as FairnessViolation, type SensitiveColumn } from './governance/fairness/index.ts';
export { buildCard, MODEL_CARD_FORMAT, type ModelCard } from './governance/card/card.ts';
export { getPolicy, setPolicy, fairnessGate, type StoredPolicy } from './governance/fairness/gate.ts';
export { cardMarkdown } from './governance/card/markdown.ts';
export { appendAudit, readAudit, AUDIT_ACTIONS, ACTOR_HEADER, type AuditEntry, type AuditAction, type AuditQuery } from './governance/audit/log.ts';
export * from './quantize/index.ts';
export { refuseRejected } from './registry/rejected.ts';
// Governance (issue #20): privacy — PII declarations, erasure.
export * from './governance/privacy/index.ts';
export { OwnerBook, OwnedKind, DEFAULT_TENANT, mayAccess, checkReplicaQuota, TrainingSpend, type TenantQuotas, type ReplicaCounts } from './governance/tenancy/index.ts';
// Continuous training (issue #16): pipelines, gates, the runner.
export * from './pipelines/index.ts';
