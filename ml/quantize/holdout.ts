/**
 * The rows a quantized version is judged on: the source version's holdout, rebuilt exactly as its
 * training job split it (the dataset in its lineage, the split seed recorded with that dataset),
 * with the decision threshold its reference profile recorded. A version registered by hand with
 * neither has no holdout; the report then says so.
 */
import type { NatsConnection } from '../../cluster/index.ts';
import { split, take } from '../datasets/dataset.ts';
import { DatasetStore } from '../datasets/store.ts';
import type { ModelRegistry } from '../registry/registry.ts';
import type { ModelVersion } from '../registry/schemas.ts';

export interface Holdout {
  /** `name@<digest>` of the dataset. */
  dataset: string;
  rows: number;
  columns: number;
  x: Float32Array;
  y: Float32Array;
  threshold: number;
}

/** The holdout of `mv`, or why there is none. */
export async function loadHoldout(nc: NatsConnection, prefix: string, registry: ModelRegistry, mv: ModelVersion): Promise<Holdout | { skipped: string }> {
  const digest = mv.lineage.datasetDigest ?? mv.referenceDataset?.split('@')[1];
  if (!digest) return { skipped: 'the source version records no dataset (lineage.datasetDigest or a reference dataset)' };
  const datasets = await DatasetStore.open(nc, prefix);
  const dv = await datasets.resolve(`sha256:${digest}`).catch(() => undefined);
  if (!dv) return { skipped: `the source's dataset sha256:${digest.slice(0, 12)}… is not in the dataset store` };
  const d = await datasets.load(dv);
  const idx = split(d.rows, dv.splits.seed).holdout;
  if (idx.length === 0) return { skipped: `the dataset ${dv.name}@${dv.digest.slice(0, 12)} has an empty holdout` };
  const { x, y } = take(d, idx);
  const reference = await registry.loadReference(mv).catch(() => undefined);
  return { dataset: `${dv.name}@${dv.digest}`, rows: idx.length, columns: d.columns.length, x, y, threshold: reference?.threshold ?? 0.5 };
}
