/** Codes of the model registry and inference serving (`ml/`), documented in docs/errors.md. */
import { defineError } from '../cluster/index.ts';

export const MlErrors = {
  MODEL_NOT_FOUND: defineError('SHOAL_ERR_MODEL_NOT_FOUND', 404, (name: string) => `model "${name}" is not registered`, 'ml'),
  MODEL_VERSION_NOT_FOUND: defineError('SHOAL_ERR_MODEL_VERSION_NOT_FOUND', 404, (name: string, ref: string) => `model "${name}" has no version or alias "${ref}"`, 'ml'),
  BAD_MODEL: defineError('SHOAL_ERR_BAD_MODEL', 400, (name: string, why: string) => `model "${name}" cannot be registered: ${why}`, 'ml'),
  ARTIFACT_CORRUPT: defineError(
    'SHOAL_ERR_ARTIFACT_CORRUPT',
    500,
    (name: string, expected: string, got: string) => `artifact of ${name} is corrupt: sha256 ${got.slice(0, 16)}… does not match the registered ${expected.slice(0, 16)}…; refusing to load it`,
    'ml',
  ),
  ARTIFACT_MISSING: defineError('SHOAL_ERR_ARTIFACT_MISSING', 500, (name: string, sha: string) => `artifact sha256:${sha.slice(0, 16)}… of ${name} is missing from the object store`, 'ml'),
  REGISTRY_CONFLICT: defineError('SHOAL_ERR_REGISTRY_CONFLICT', 409, (key: string) => `registry entry ${key} kept changing under us (compare-and-swap lost); retry`, 'ml'),
  NO_PREVIOUS_VERSION: defineError('SHOAL_ERR_NO_PREVIOUS_VERSION', 409, (name: string, alias: string) => `alias "${alias}" of model "${name}" has no previous version to roll back to`, 'ml'),
  BAD_INPUT: defineError('SHOAL_ERR_BAD_INPUT', 400, (why: string) => why, 'ml'),
  NO_BACKGROUND: defineError(
    'SHOAL_ERR_NO_BACKGROUND',
    400,
    (model: string) =>
      `${model} has no background sample to explain against (KernelSHAP, integrated gradients and the linear baseline need one): train it with a Shoal training job (it stores 32 holdout rows at registration), or register it with --reference FILE whose JSON has "explain": {"background": {"columns": [...], "rows": [[...], ...]}}`,
    'ml',
  ),
  EXPLAIN_UNSUPPORTED: defineError('SHOAL_ERR_EXPLAIN_UNSUPPORTED', 400, (model: string, why: string) => `${model} cannot be explained this way: ${why}`, 'ml'),
  INFERENCE_FAILED: defineError('SHOAL_ERR_INFERENCE_FAILED', 500, (model: string, why: string) => `inference on ${model} failed: ${why}`, 'ml'),
  MODEL_NOT_READY: defineError('SHOAL_ERR_MODEL_NOT_READY', 503, (model: string, why: string) => `model ${model} is not ready: ${why}`, 'ml'),
  DEPLOYMENT_NOT_FOUND: defineError('SHOAL_ERR_DEPLOYMENT_NOT_FOUND', 404, (name: string) => `model "${name}" is not deployed`, 'ml'),
  BAD_DATASET: defineError('SHOAL_ERR_BAD_DATASET', 400, (name: string, why: string) => `dataset ${name}: ${why}`, 'ml'),
  DATASET_NOT_FOUND: defineError('SHOAL_ERR_DATASET_NOT_FOUND', 404, (ref: string) => `dataset "${ref}" not found (use name, name@<digest prefix> or sha256:<digest>)`, 'ml'),
  BAD_JOB: defineError('SHOAL_ERR_BAD_JOB', 400, (job: string, why: string) => `job ${job} refused: ${why}`, 'ml'),
  JOB_FAILED: defineError('SHOAL_ERR_JOB_FAILED', 500, (job: string, why: string) => `job ${job} failed: ${why}`, 'ml'),
  UPLOAD_NOT_FOUND: defineError('SHOAL_ERR_UPLOAD_NOT_FOUND', 404, (upload: string) => `upload "${upload}" is not in the uploads store (already taken, expired, or never put there)`, 'ml'),
  // Pre/post-processing modules and pipelines (ml/serving/processor.ts, pipeline.ts).
  PREPROCESS: defineError('SHOAL_ERR_PREPROCESS', 500, (model: string, why: string) => `preprocess of ${model} failed: ${why}`, 'ml'),
  POSTPROCESS: defineError('SHOAL_ERR_POSTPROCESS', 500, (model: string, why: string) => `postprocess of ${model} failed: ${why}`, 'ml'),
  CANARY_NOT_READY: defineError('SHOAL_ERR_CANARY_NOT_READY', 409, (name: string, why: string) => `canary of "${name}": ${why}`, 'ml'),
  // Feature store (ml/features/).
  FEATURE_VIEW_NOT_FOUND: defineError('SHOAL_ERR_FEATURE_VIEW_NOT_FOUND', 404, (ref: string) => `feature view "${ref}" not found`, 'ml'),
  // Predictions by entity (ml/serving/entity-features.ts).
  FEATURES_INCOMPATIBLE: defineError('SHOAL_ERR_FEATURES_INCOMPATIBLE', 409, (model: string, why: string) => `${model} cannot be served by entity: ${why}`, 'ml'),
  ENTITY_NOT_FOUND: defineError('SHOAL_ERR_ENTITY_NOT_FOUND', 404, (where: string, view: string) => `${where}: no online features in view ${view} for this entity (the request asked on_missing "error")`, 'ml'),
  // Governance (ml/governance/fairness, audit).
  FAIRNESS_BLOCKED: defineError('SHOAL_ERR_FAIRNESS_BLOCKED', 409, (model: string, version: number, op: string, why: string) => `${op} of ${model} v${version} blocked by its fairness policy: ${why} (to go ahead anyway, override with a reason: it is recorded in the audit log)`, 'ml'),
  BAD_FAIRNESS_POLICY: defineError('SHOAL_ERR_BAD_FAIRNESS_POLICY', 400, (model: string, why: string) => `fairness policy of ${model}: ${why}`, 'ml'),
  // Scale-to-zero (ml/serving/zero-controller.ts, gateway/activator.ts).
  SCALE_TO_ZERO_REFUSED: defineError('SHOAL_ERR_SCALE_TO_ZERO_REFUSED', 422, (model: string, why: string) => `${model} cannot scale to zero: ${why}`, 'ml'),
  COLD_START_TIMEOUT: defineError('SHOAL_ERR_COLD_START_TIMEOUT', 503, (model: string, ms: number, why: string) => `${model} is scaled to zero and no replica served within the ${ms} ms hold: ${why}`, 'ml'),
  COLD_QUEUE_FULL: defineError('SHOAL_ERR_COLD_QUEUE_FULL', 503, (model: string, max: number) => `${model} is scaled to zero and ${max} requests already wait for its replica to start (the hold queue's bound)`, 'ml'),
  // Quantization (ml/quantize/) and versions it marked rejected.
  QUANTIZE_UNSUPPORTED: defineError('SHOAL_ERR_QUANTIZE_UNSUPPORTED', 400, (model: string, why: string) => `${model} cannot be quantized: ${why}; nothing was registered`, 'ml'),
  MODEL_REJECTED: defineError(
    'SHOAL_ERR_MODEL_REJECTED',
    409,
    (model: string, why: string) => `${model} is marked rejected (${why}); it is not deployed, canaried or promoted unless asked with allowRejected (CLI --allow-rejected)`,
    'ml',
  ),
  // Tenants (ml/governance/tenancy/).
  QUOTA_EXCEEDED: defineError('SHOAL_ERR_QUOTA_EXCEEDED', 429, (tenant: string, what: string) => `tenant ${tenant} is over its quota: ${what}`, 'ml'),
  NAME_TAKEN: defineError('SHOAL_ERR_NAME_TAKEN', 409, (what: string) => `${what} belongs to another tenant; choose another name`, 'ml'),
} as const;
