/**
 * What a batch job scores with and what it scores, checked before any replica starts: the
 * model version (an alias resolved once, so a promotion mid-run does not mix versions), the
 * dataset version, and whether the dataset's columns are the model's input columns — the columns
 * of the dataset it was trained on (lineage), or, for a version registered by hand without one,
 * at least as many as its input's feature axis. A mismatch names the columns.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { DatasetStore, type DatasetVersion } from '../datasets/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry } from '../registry/registry.ts';
import type { ModelVersion } from '../registry/schemas.ts';
import { splitModelRef, type BatchSpec } from './spec.ts';

export interface BatchPlan {
  mv: ModelVersion;
  dv: DatasetVersion;
  /** The scores' dataset name. */
  out: string;
}

/** The model's input columns, when it knows them (its training data's, from lineage). */
async function modelColumns(mv: ModelVersion, datasets: DatasetStore): Promise<string[] | undefined> {
  const f = mv.lineage.features as { columns?: unknown } | undefined;
  if (f && Array.isArray(f.columns)) return f.columns as string[];
  if (!mv.lineage.datasetDigest) return undefined;
  return (await datasets.resolve(`sha256:${mv.lineage.datasetDigest}`).catch(() => undefined))?.columns;
}

/** The model's feature count from its signature (the last axis of its one input), if fixed. */
function signatureWidth(mv: ModelVersion): number | undefined {
  const d = mv.signature.inputs.length === 1 ? mv.signature.inputs[0]!.shape.at(-1) : undefined;
  return d !== undefined && d > 0 ? d : undefined;
}

/** Refuses (SHOAL_ERR_BAD_JOB naming the columns) a dataset the model cannot score. */
export function checkColumns(jobId: string, model: string, want: string[] | undefined, width: number | undefined, dv: DatasetVersion): void {
  const have = dv.columns;
  if (want) {
    const missing = want.filter((c) => !have.includes(c));
    const extra = have.filter((c) => !want.includes(c));
    const order = missing.length === 0 && extra.length === 0 && want.some((c, i) => have[i] !== c);
    if (missing.length || extra.length || order) {
      const parts = [
        ...(missing.length ? [`missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`] : []),
        ...(extra.length ? [`unexpected column${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`] : []),
        ...(order ? [`columns in another order (${have.join(', ')}; the model's: ${want.join(', ')})`] : []),
      ];
      throw MlErrors.BAD_JOB(jobId, `dataset ${dv.name}@${dv.digest.slice(0, 12)} does not match the signature of ${model}: ${parts.join('; ')}`);
    }
  }
  if (width !== undefined && have.length !== width) throw MlErrors.BAD_JOB(jobId, `dataset ${dv.name}@${dv.digest.slice(0, 12)} has ${have.length} columns (${have.join(', ')}); ${model} takes ${width} features`);
}

export async function planBatch(nc: NatsConnection, prefix: string, jobId: string, spec: BatchSpec): Promise<BatchPlan> {
  const [name, ref] = splitModelRef(spec.model);
  const registry = await ModelRegistry.open(nc, prefix);
  const mv = await registry.resolve(name, ref).catch((err: unknown) => {
    throw MlErrors.BAD_JOB(jobId, `model: ${(err as Error).message}`);
  });
  if (mv.format === 'pipeline' || mv.processor) throw MlErrors.BAD_JOB(jobId, `model: ${name} v${mv.version} is a ${mv.format === 'pipeline' ? 'pipeline' : 'model with a processor'}; batch scoring takes a plain ONNX model over a dataset's feature columns`);
  const datasets = await DatasetStore.open(nc, prefix);
  const dv = await datasets.resolve(spec.dataset).catch((err: unknown) => {
    throw MlErrors.BAD_JOB(jobId, `dataset: ${(err as Error).message}`);
  });
  checkColumns(jobId, `${name} v${mv.version}`, await modelColumns(mv, datasets), signatureWidth(mv), dv);
  return { mv, dv, out: spec.out ?? `${dv.name}-scores`.slice(0, 64) };
}
