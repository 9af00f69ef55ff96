/**
 * A version's model card (in the spirit of MLflow's and "Model Cards for Model Reporting"), built
 * from what Shoal already stores — nothing typed twice: lineage (dataset, feature views, job,
 * code), the holdout metrics with their intervals and the global importance (reference profile),
 * the fairness audit and the model's policy with its verdict, the intended use and limitations
 * given at registration, and the approvals and overrides from the audit log.
 */
import type { NatsConnection } from '../../../cluster/index.ts';
import type { DatasetStore } from '../../datasets/store.ts';
import type { ModelRegistry } from '../../registry/registry.ts';
import { explainReference, type GlobalImportance } from '../explain/reference.ts';
import { readAudit, type AuditEntry } from '../audit/log.ts';
import { fairnessOf, type FairnessAudit } from '../fairness/audit.ts';
import { getPolicy, type StoredPolicy } from '../fairness/gate.ts';
import { judge, type Verdict } from '../fairness/policy.ts';

export const MODEL_CARD_FORMAT = 'shoal-model-card/1';

export interface CardMetric {
  name: string;
  value: number | null;
  /** The interval, when the holdout profile has one. */
  low?: number;
  high?: number;
}

export interface ModelCard {
  format: typeof MODEL_CARD_FORMAT;
  model: string;
  version: number;
  createdAt: string;
  description?: string;
  artifact: { format: string; sha256: string; sizeBytes: number };
  signature: { inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { name: string; datatype: string; shape: number[] }[] };
  lineage: {
    dataset?: { digest: string; name?: string; rows?: number; sensitiveAttribute?: string };
    features?: unknown;
    trainingJobId?: string;
    codeVersion?: string;
    hyperParameters?: Record<string, unknown>;
    parentVersion?: number;
  };
  intendedUse?: string;
  limitations?: string;
  /** Holdout metrics: from the reference profile with intervals (rows, confidence), else the registered points. */
  metrics: { rows?: number; confidence?: number; threshold?: number; values: CardMetric[] };
  fairness?: { audit: FairnessAudit; policy?: StoredPolicy; verdict?: Verdict };
  importance?: GlobalImportance;
  /** Deploys, canaries, promotions and alias moves of this version, oldest first. */
  approvals: AuditEntry[];
  /** Fairness overrides of this version, with their reasons. */
  overrides: AuditEntry[];
  /** Aliases pointing at this version now. */
  aliases: string[];
}

interface ProfileMetrics {
  rows: number;
  confidence: number;
  threshold: number;
  [k: string]: unknown;
}

const INTERVAL_METRICS = ['auc', 'accuracy', 'precision', 'recall', 'f1', 'ece'] as const;

export async function buildCard(nc: NatsConnection, prefix: string, registry: ModelRegistry, datasets: DatasetStore | undefined, name: string, ref: number | string): Promise<ModelCard> {
  const mv = await registry.resolve(name, ref);
  const rec = await registry.get(name);
  const profile = await registry.loadReference(mv).catch(() => undefined);
  const audit = fairnessOf(profile);
  const stored = await getPolicy(registry, name);
  const importance = explainReference(profile)?.importance;
  const entries = await readAudit(nc, prefix, { target: name, version: mv.version });
  const digest = mv.lineage.datasetDigest;
  const dv = digest && datasets ? await datasets.resolve(`sha256:${digest}`).catch(() => undefined) : undefined;
  const pm = (profile as { metrics?: ProfileMetrics } | undefined)?.metrics;
  const values: CardMetric[] = [];
  if (pm) {
    for (const k of INTERVAL_METRICS) {
      const iv = pm[k] as { value: number; lower: number; upper: number } | undefined;
      if (iv) values.push({ name: k, value: Number.isFinite(iv.value) ? iv.value : null, low: iv.lower, high: iv.upper });
    }
  }
  for (const [k, v] of Object.entries(mv.metrics)) if (!values.some((x) => x.name === k)) values.push({ name: k, value: v });
  const l = mv.lineage;
  return {
    format: MODEL_CARD_FORMAT,
    model: name,
    version: mv.version,
    createdAt: new Date(mv.createdAt).toISOString(),
    ...(mv.description ? { description: mv.description } : {}),
    artifact: { format: mv.format, sha256: mv.sha256, sizeBytes: mv.sizeBytes },
    signature: { inputs: mv.signature.inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })), outputs: mv.signature.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })) },
    lineage: {
      ...(digest ? { dataset: { digest, ...(dv ? { name: dv.name, rows: dv.rows, ...(dv.sensitiveName ? { sensitiveAttribute: dv.sensitiveName } : {}) } : {}) } } : {}),
      ...(l.features ? { features: l.features } : {}),
      ...(l.trainingJobId ? { trainingJobId: l.trainingJobId } : {}),
      ...(l.codeVersion ? { codeVersion: l.codeVersion } : {}),
      ...(l.hyperParameters ? { hyperParameters: l.hyperParameters } : {}),
      ...(l.parentVersion ? { parentVersion: l.parentVersion } : {}),
    },
    ...(mv.card?.intendedUse ? { intendedUse: mv.card.intendedUse } : {}),
    ...(mv.card?.limitations ? { limitations: mv.card.limitations } : {}),
    metrics: { ...(pm ? { rows: pm.rows, confidence: pm.confidence, threshold: pm.threshold } : {}), values },
    ...(audit ? { fairness: { audit, ...(stored ? { policy: stored, verdict: judge(stored.policy, audit, `v${mv.version}`) } : {}) } } : {}),
    ...(importance ? { importance } : {}),
    approvals: entries.filter((e) => ['deploy', 'canary', 'promote', 'alias', 'rollback', 'rollback-alias'].includes(e.action)),
    overrides: entries.filter((e) => e.action === 'override'),
    aliases: Object.entries(rec.aliases)
      .filter(([, v]) => v === mv.version)
      .map(([a]) => a),
  };
}
