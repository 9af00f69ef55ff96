/**
 * Checkpoint I/O. A training job's checkpoint is one object, `checkpoints/job-<id>`, in the
 * checkpoint object store (`shoal-checkpoint-objects`: a node may put and delete there without
 * any right on the artifacts, since replacing an object purges its old chunks): the step, the
 * parameters, Adam's moments, the recent losses and the cost so far — all a re-placed
 * coordinator needs to continue exactly where the uninterrupted job would be. The same store
 * holds the job's training shards (shards.ts).
 *
 * Also the byte views of float vectors used on the wire and in the store.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { decode, encode, isJetStreamUnavailable, resources, retrySettling } from '../../cluster/index.ts';
import { initParams, layout, type ModelShape } from './model.ts';

/** The bytes of `a`, without a copy. */
export const f32bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
export const bytesF32 = (b: Uint8Array) => {
  const f = new Float32Array(b.byteLength / 4);
  new Uint8Array(f.buffer).set(b);
  return f;
};
/** A copy (the vectors keep changing after a checkpoint is taken). */
export const f64bytes = (a: Float64Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
export const bytesF64 = (b: Uint8Array) => {
  const f = new Float64Array(b.byteLength / 8);
  new Uint8Array(f.buffer).set(b);
  return f;
};

/** What is stored. */
export interface Checkpoint {
  step: number;
  params: Uint8Array;
  m: Uint8Array;
  v: Uint8Array;
  losses: number[];
  workerSeconds: number;
  cost: number;
}

/** Where a job is, in the coordinator's working types (changed in place as it trains). */
export interface TrainState {
  /** The last step done (0: none). */
  step: number;
  params: Float32Array;
  /**
   * Adam's moments: float32 in the kernels' `adam` op, held and checkpointed as float64 (each
   * value exactly a float32), so a resumed job continues bit for bit.
   */
  m: Float64Array;
  v: Float64Array;
  losses: number[];
  workerSeconds: number;
  cost: number;
}

/** Opens the checkpoint object store. */
export async function openCheckpointStore(nc: NatsConnection, prefix: string): Promise<ObjectStore> {
  return new Objm(nc).open(resources(prefix).stores.checkpoints);
}

export const checkpointName = (jobId: string) => `checkpoints/job-${jobId}`;

/** A copy of `s` to store (taken every step, saved every `checkpointEvery` steps and on drain). */
export function snapshot(s: TrainState): Checkpoint {
  return { step: s.step, params: f32bytes(s.params.slice()), m: f64bytes(s.m), v: f64bytes(s.v), losses: s.losses.slice(-500), workerSeconds: s.workerSeconds, cost: s.cost };
}

/** The state a checkpoint holds, or a fresh start (parameters initialised by `seed`). */
export function restore(shape: ModelShape, seed: number, ck: Checkpoint | undefined): TrainState {
  const size = layout(shape).size;
  if (!ck) return { step: 0, params: initParams(shape, seed), m: new Float64Array(size), v: new Float64Array(size), losses: [], workerSeconds: 0, cost: 0 };
  // A checkpoint of older code holds float32 moments; it still loads.
  const moments = (b: Uint8Array) => (b.byteLength === size * 8 ? bytesF64(b) : new Float64Array(bytesF32(b)));
  return { step: ck.step, params: bytesF32(ck.params), m: moments(ck.m), v: moments(ck.v), losses: ck.losses ?? [], workerSeconds: ck.workerSeconds ?? 0, cost: ck.cost ?? 0 };
}

/**
 * How long a checkpoint's write or read is asked again while JetStream cannot answer (its stream
 * electing a leader after a server died or was cut off); past it the error is the caller's.
 */
export const CHECKPOINT_SETTLE_MS = 60_000;

export async function saveCheckpoint(store: ObjectStore, jobId: string, c: Checkpoint): Promise<void> {
  const bytes = encode(c);
  await retrySettling(() => store.putBlob({ name: checkpointName(jobId), description: `checkpoint of job ${jobId} at step ${c.step}` }, bytes), CHECKPOINT_SETTLE_MS);
}

/**
 * The job's last checkpoint, or undefined: none yet, or damaged (the job starts over). A read
 * JetStream cannot answer is asked again and then fails — never taken for "none", which would
 * start the job over and write checkpoints behind the ones it has.
 */
export async function loadCheckpoint(store: ObjectStore, jobId: string): Promise<Checkpoint | undefined> {
  const b = await retrySettling(() => store.getBlob(checkpointName(jobId)), CHECKPOINT_SETTLE_MS).catch((err: unknown) => (isJetStreamUnavailable(err) ? Promise.reject(err) : null));
  return b ? (decode(b) as Checkpoint) : undefined;
}
