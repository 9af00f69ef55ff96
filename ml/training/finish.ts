/**
 * The end of a training job: evaluate → export → register → deploy.
 *
 * The decision threshold is chosen on the validation split (best F1), then the holdout is scored
 * once with it (on imbalanced data a fixed 0.5 would flag almost nothing); the model is exported
 * to ONNX and registered with its metrics and lineage through the registry service (a node may
 * upload and ask, not write the registry), and with `deploy: 'canary'` started as the canary of
 * its already deployed model. The holdout's reference profile (ml/monitoring/stats: per-feature
 * sketches, the prediction distribution, the holdout metrics with intervals, the calibration map)
 * is stored with the version, for the monitor to compare live traffic with.
 */
import { Errors, SHOAL_VERSION, isJetStreamUnavailable, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { trainingExplainReference, type ExplainReference } from '../governance/explain/index.ts';
import { trainingFairnessAudit, type SensitiveColumn } from '../governance/fairness/index.ts';
import { buildReferenceProfile, type MonitoredRow, type ReferenceProfile } from '../monitoring/stats/index.ts';
import { RegistryClient } from '../registry/client.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { bestF1Threshold, evaluate, type BinaryMetrics } from './metrics.ts';
import { exportOnnx, predict, type ModelShape } from './model.ts';
import type { TrainingSpec } from './spec.ts';

/** Rows as a dense block (what `take` returns). */
export interface Rows {
  x: Float32Array;
  y: Float32Array;
}

/**
 * What a model trained on a feature training set was built from, and its input layout (the
 * training set's columns, `<view>.<column>`): what a replica assembles a prediction by entity by,
 * checked at deploy (ml/serving/entity-features.ts).
 */
export interface FeatureLineage {
  views: { view: string; digest: string; through: number }[];
  datasetDigest: string;
  columns: string[];
}

export interface FinishInput {
  nc: NatsConnection;
  subjects: Subjects;
  jobId: string;
  spec: TrainingSpec;
  shape: ModelShape;
  params: Float32Array;
  datasetDigest: string;
  features?: FeatureLineage;
  validation: Rows;
  holdout: Rows;
  /** The holdout's row indices in the dataset (their order is `holdout`'s). */
  holdoutRows: readonly number[];
  /** The dataset's column names (the reference profile's feature names); `x0`, `x1`, … when absent. */
  columns?: readonly string[];
  /** The dataset's sensitive attributes over the holdout rows (in `holdout`'s order): audited for fairness at registration. */
  sensitive?: readonly SensitiveColumn[];
  /** The dataset's PII columns (issue #20): recorded as `lineage.pii`, the model input columns never logged. */
  pii?: readonly string[];
}

export interface Finished {
  model: string;
  version: number;
  metrics: BinaryMetrics;
  datasetDigest: string;
  /** `canary`, or why it was not deployed; absent unless the spec asked. */
  deployed?: string;
  /** The trainer's own forward pass on a few holdout rows (float64), to compare with the exported ONNX. */
  check: { rows: number[]; predictions: number[] };
}

/** Holdout metrics at the threshold chosen on validation, and the check rows' predictions. */
export function evaluateHoldout(shape: ModelShape, params: Float32Array, validation: Rows, holdout: Rows, holdoutRows: readonly number[]): Pick<Finished, 'metrics' | 'check'> {
  const threshold = bestF1Threshold(predict(shape, params, validation.x, validation.y.length), validation.y);
  const metrics = evaluate(predict(shape, params, holdout.x, holdout.y.length), holdout.y, threshold);
  const n = Math.min(16, holdoutRows.length);
  const check = { rows: holdoutRows.slice(0, n), predictions: Array.from(predict(shape, params, holdout.x.subarray(0, n * shape.features), n)) };
  return { metrics, check };
}

/** The name of the exported model's output (model.ts `exportOnnx`). */
const OUTPUT = 'Y';

/**
 * The reference profile of the holdout: its features under the dataset's column names, the
 * model's output `Y` (the probability of the positive class) and the labels, with the decision
 * threshold chosen on validation.
 */
export function holdoutReference(i: Pick<FinishInput, 'shape' | 'params' | 'holdout' | 'columns' | 'datasetDigest' | 'jobId'>, threshold: number): ReferenceProfile {
  const D = i.shape.features;
  const n = i.holdout.y.length;
  const p = predict(i.shape, i.params, i.holdout.x, n);
  const names = Array.from({ length: D }, (_, j) => i.columns?.[j] ?? `x${j}`);
  const rows: MonitoredRow[] = [];
  for (let r = 0; r < n; r++) {
    const features: Record<string, number> = {};
    for (let j = 0; j < D; j++) features[names[j]!] = i.holdout.x[r * D + j]!;
    rows.push({ features, outputs: { [OUTPUT]: p[r]! }, label: i.holdout.y[r]! > 0 ? 1 : 0 });
  }
  return buildReferenceProfile(rows, undefined, { threshold, source: { datasetDigest: i.datasetDigest, trainingJobId: i.jobId, split: 'holdout' } });
}

/** The holdout reference with what explanations need next to it (`explain`: a background sample, the global importance). */
export async function holdoutReferenceWithExplain(i: Pick<FinishInput, 'shape' | 'params' | 'holdout' | 'columns' | 'datasetDigest' | 'jobId'>, threshold: number): Promise<ReferenceProfile & { explain: ExplainReference }> {
  const D = i.shape.features;
  const names = Array.from({ length: D }, (_, j) => i.columns?.[j] ?? `x${j}`);
  const explain = await trainingExplainReference(i.shape, i.params, i.holdout.x, i.holdout.y.length, names);
  return { ...holdoutReference(i, threshold), explain };
}

/** The holdout reference with explanations' part and the fairness audit (`fairness`, when the dataset declares a sensitive attribute). */
export async function holdoutReferenceWithGovernance(i: Pick<FinishInput, 'shape' | 'params' | 'holdout' | 'columns' | 'datasetDigest' | 'jobId' | 'sensitive' | 'spec'>, threshold: number): Promise<ReferenceProfile & { explain: ExplainReference }> {
  const ref = await holdoutReferenceWithExplain(i, threshold);
  const fairness = trainingFairnessAudit(predict(i.shape, i.params, i.holdout.x, i.holdout.y.length), i.holdout.y, i.sensitive, threshold, { seed: i.spec.hyper.seed });
  return fairness ? { ...ref, fairness } as ReferenceProfile & { explain: ExplainReference } : ref;
}

/**
 * How long registering is asked again while JetStream cannot answer (a stream electing a leader
 * after a server died or was cut off): a job that trained to the end does not fail for that.
 */
const REGISTER_SETTLE_MS = 60_000;

/**
 * Registers the exported model with its metrics, lineage and the holdout's reference profile.
 * Idempotent: a coordinator that died after registering but before recording success — or whose
 * register request went unanswered while JetStream settled — finds its version instead of
 * registering a second one.
 */
export async function registerVersion(i: FinishInput, metrics: BinaryMetrics, control: RegistryClient): Promise<{ version: number }> {
  const registry = await ModelRegistry.open(i.nc, i.subjects.prefix);
  const deadline = Date.now() + REGISTER_SETTLE_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      // Only "no such model" means no version yet: a read that failed is asked again, not taken for none.
      const versions = await registry.versions(i.spec.model.name).catch((err: unknown) => (MlErrors.MODEL_NOT_FOUND.is(err) ? [] : Promise.reject(err)));
      return versions.find((v) => v.lineage?.trainingJobId === i.jobId) ?? (await register(i, metrics, control));
    } catch (err) {
      // JetStream settling, or the registry service's answer lost on the way: asked again (the
      // version check above, and the registry's own by job, keep it to one version).
      const again = isJetStreamUnavailable(err) || Errors.TIMEOUT.is(err) || Errors.NO_RESPONDERS.is(err);
      if (!again || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** attempt)));
    }
  }
}

async function register(i: FinishInput, metrics: BinaryMetrics, control: RegistryClient): Promise<{ version: number }> {
  return control.register(i.spec.model.name, exportOnnx(i.shape, i.params, i.spec.model.name), {
    metrics: { auc: metrics.auc, accuracy: metrics.accuracy, precision: metrics.precision, recall: metrics.recall, f1: metrics.f1, brier: metrics.brier, ece: metrics.ece, logLoss: metrics.logLoss },
    lineage: { datasetDigest: i.datasetDigest, ...(i.features ? { features: i.features } : {}), trainingJobId: i.jobId, hyperParameters: { ...i.spec.hyper, model: i.spec.model, workers: i.spec.workers }, codeVersion: SHOAL_VERSION, ...piiLineage(i) },
    description: `trained by job ${i.jobId}`,
    ...(i.spec.model.intendedUse ? { intendedUse: i.spec.model.intendedUse } : {}),
    ...(i.spec.model.limitations ? { limitations: i.spec.model.limitations } : {}),
    reference: new TextEncoder().encode(JSON.stringify(await holdoutReferenceWithGovernance(i, metrics.threshold))),
  });
}

/** The exported model's input columns (`X_<j>`) that hold the dataset's PII columns. */
function piiLineage(i: Pick<FinishInput, 'pii' | 'columns'>): { pii?: string[] } {
  if (!i.pii?.length || !i.columns) return {};
  const pii = new Set(i.pii);
  const cols = i.columns.flatMap((c, j) => (pii.has(c) ? [`X_${j}`] : []));
  return cols.length ? { pii: cols } : {};
}

/** Starts `version` as the canary of its model: `canary`, or why not (a job does not fail for it). */
export async function deployCanary(control: RegistryClient, model: string, version: number): Promise<string> {
  return control
    .canary(model, { version: String(version), weight: 0.1 })
    .then(() => 'canary')
    .catch((err: unknown) => `not deployed: ${(err as Error).message}`);
}

export async function finish(i: FinishInput): Promise<Finished> {
  const { metrics, check } = evaluateHoldout(i.shape, i.params, i.validation, i.holdout, i.holdoutRows);
  // Registering (and deploying) is the registry service's: upload the model, ask it.
  const control = new RegistryClient(i.nc, i.subjects, `job:${i.jobId}`);
  const { version } = await registerVersion(i, metrics, control);
  const deployed = i.spec.deploy === 'canary' ? await deployCanary(control, i.spec.model.name, version) : undefined;
  return { model: i.spec.model.name, version, metrics, datasetDigest: i.datasetDigest, ...(deployed ? { deployed } : {}), check };
}
