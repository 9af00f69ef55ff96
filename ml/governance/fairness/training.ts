/**
 * What a training job stores for fairness when it registers a version: the audit of its holdout
 * (fairness/audit.ts) over the dataset's declared sensitive attributes — kept out of the
 * features, carried beside them — at the decision threshold chosen on validation.
 */
import type { Dataset } from '../../datasets/dataset.ts';
import { fairnessAudit, type AuditOptions, type FairnessAudit, type SensitiveColumn } from './audit.ts';

/** The dataset's sensitive attributes over the rows `idx` (in that order); empty when it declares none. */
export function sensitiveColumns(d: Pick<Dataset, 'sensitive' | 'sensitiveName' | 'extraSensitive'>, idx: readonly number[]): SensitiveColumn[] {
  const all: { name: string; values: Uint8Array; levels?: string[] }[] = [];
  if (d.sensitive) all.push({ name: d.sensitiveName ?? 'sensitive', values: d.sensitive });
  for (const e of d.extraSensitive ?? []) all.push(e);
  // Group labels (a feature view's vocabulary or buckets) travel with the attribute when it has them.
  return all.map((a) => ({ name: a.name, values: Uint8Array.from(idx, (r) => a.values[r]!), ...(a.levels ? { levels: a.levels } : {}) }));
}

/** The holdout's audit, or undefined when no attribute is declared. */
export function trainingFairnessAudit(scores: ArrayLike<number>, labels: ArrayLike<number>, sensitive: readonly SensitiveColumn[] | undefined, threshold: number, o: AuditOptions = {}): FairnessAudit | undefined {
  if (!sensitive || sensitive.length === 0 || scores.length === 0) return undefined;
  return fairnessAudit(scores, labels, sensitive, threshold, o);
}
