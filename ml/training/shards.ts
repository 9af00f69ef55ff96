/**
 * Each worker's training rows as one object in the checkpoint object store, so the dataset is
 * read once per job (by the coordinator, which needs it anyway for validation and the holdout)
 * instead of once more by every worker, and a worker holds only its rows.
 *
 * - Written by the job's coordinator before it starts the workers: shard `rank` of a job with
 *   `world` workers is rows `i % world == rank` of the train split, in split order, as float32
 *   features and 0/1 labels — exactly what each worker used to cut from the whole dataset, so
 *   training is unchanged bit for bit. Named `shards/job-<id>/world-<W>/rank-<r>`, with the
 *   dataset digest and split seed in its metadata: a re-placed coordinator finds them written
 *   and writes nothing.
 * - Read by the worker of that rank when it starts (and again wherever it is re-placed), checked
 *   against the dataset digest and split seed it was spawned with.
 * - Removed by the coordinator when the job ends (succeeded, failed or cancelled); kept while the
 *   job only moves (a drain, a re-placement).
 */
import type { ObjectStore } from '@nats-io/obj';
import { decode, encode } from '../../cluster/index.ts';
import { take, type Dataset } from '../datasets/index.ts';
import { MlErrors } from '../errors.ts';
import { bytesF32, f32bytes } from './checkpoints.ts';

/** Which shard: the job, its worker count and the worker's rank. */
export interface ShardRef {
  jobId: string;
  world: number;
  rank: number;
}

/** Which data it is cut from. */
export interface ShardSource {
  datasetDigest: string;
  splitSeed: number;
}

/** A worker's rows: `rows` × `features` float32, row-major, and their 0/1 labels as float32. */
export interface Shard {
  rows: number;
  features: number;
  x: Float32Array;
  y: Float32Array;
}

interface StoredShard extends ShardSource {
  v: 1;
  rows: number;
  features: number;
  x: Uint8Array;
  labels: Uint8Array;
}

export const shardName = (s: ShardRef) => `shards/job-${s.jobId}/world-${s.world}/rank-${s.rank}`;

/** The train rows of `rank` among `world` workers (indices into the dataset, in split order). */
export const shardRows = (train: readonly number[], world: number, rank: number) => train.filter((_, i) => i % world === rank);

/**
 * Writes every worker's shard of the train split `train` of `data` (the rows of `src`), one at
 * a time; a shard already there from the same data is left as it is. Returns the bytes written.
 */
export async function writeShards(store: ObjectStore, jobId: string, world: number, data: Dataset, train: readonly number[], src: ShardSource): Promise<number> {
  let bytes = 0;
  for (let rank = 0; rank < world; rank++) {
    const name = shardName({ jobId, world, rank });
    const info = await store.info(name);
    if (info && !info.deleted && info.metadata?.dataset === src.datasetDigest && info.metadata?.splitSeed === String(src.splitSeed)) continue;
    const idx = shardRows(train, world, rank);
    const t = take(data, idx);
    const labels = Uint8Array.from(idx, (r) => data.labels[r]!);
    const body: StoredShard = { v: 1, ...src, rows: idx.length, features: t.d, x: f32bytes(t.x), labels };
    const b = encode(body);
    await store.putBlob({ name, description: `training shard ${rank + 1} of ${world} of job ${jobId}`, metadata: { dataset: src.datasetDigest, splitSeed: String(src.splitSeed) } }, b);
    bytes += b.byteLength;
  }
  return bytes;
}

/** A worker's shard, checked against the data it was spawned for. */
export async function loadShard(store: ObjectStore, ref: ShardRef, src: ShardSource): Promise<Shard> {
  const name = shardName(ref);
  const b = await store.getBlob(name);
  if (!b) throw MlErrors.JOB_FAILED(ref.jobId, `training shard ${name} is not in the checkpoint store (the job ended, or its coordinator has not written it)`);
  const s = decode(b) as StoredShard;
  if (s.datasetDigest !== src.datasetDigest || s.splitSeed !== src.splitSeed) {
    throw MlErrors.JOB_FAILED(ref.jobId, `training shard ${name} was cut from dataset ${s.datasetDigest.slice(0, 12)}… split seed ${s.splitSeed}, not ${src.datasetDigest.slice(0, 12)}… split seed ${src.splitSeed}`);
  }
  return { rows: s.rows, features: s.features, x: bytesF32(s.x), y: Float32Array.from(s.labels) };
}

/** Removes the job's shards (none there is fine). */
export async function removeShards(store: ObjectStore, jobId: string, world: number): Promise<void> {
  for (let rank = 0; rank < world; rank++) {
    const name = shardName({ jobId, world, rank });
    const info = await store.info(name);
    if (info && !info.deleted) await store.delete(name);
  }
}
