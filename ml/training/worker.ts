/**
 * `trainer-worker`: one worker of a training job. It loads its own shard of the train split
 * (written by the job's coordinator in the checkpoint store, see shards.ts) and, asked for the
 * gradient at a step, computes it on a minibatch of its shard through the node's kernels.
 * Stateless apart from its shard, so it can move freely. Deterministic: its minibatch depends
 * only on (seed, step, rank), so a re-placed twin answers a retried ask with the same gradient.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Actor, Errors, JobStore, TERMINAL_JOB_STATES, seededRandom, validate } from '../../cluster/index.ts';
import { bytesF32, f32bytes, openCheckpointStore } from './checkpoints.ts';
import { gradient, nodeKernels } from './compute.ts';
import { loadShard, type Shard } from './shards.ts';

export const TRAINER_WORKER_ACTOR = 'trainer-worker';

/** The same for every worker of a job (they are gang-spawned from one spec); the rank comes from the id `job-<id>-w-<rank+1>`. */
export const WorkerArgs = Type.Object({
  jobId: Type.String(),
  world: Type.Integer({ minimum: 1 }),
  datasetDigest: Type.String(),
  model: Type.Object({ type: Type.Union([Type.Literal('logreg'), Type.Literal('mlp')]), features: Type.Integer(), layers: Type.Array(Type.Integer({ minimum: 1 })) }),
  batchSize: Type.Integer({ minimum: 1 }),
  seed: Type.Integer(),
  splitSeed: Type.Integer(),
});
export type WorkerArgs = Static<typeof WorkerArgs>;

export const WorkerMsg = Type.Union([
  Type.Object({ type: Type.Literal('grad'), step: Type.Integer({ minimum: 1 }), params: Type.Uint8Array() }),
  Type.Object({ type: Type.Literal('info') }),
]);
export type WorkerMsg = Static<typeof WorkerMsg>;

export interface GradReply {
  loss: number;
  rows: number;
  grad: Uint8Array;
  nodeId: string;
  backend: string;
  ms: number;
}

/** The ids of a job's `n` workers (fixed by the job, so a re-placed coordinator finds them). */
export const workerIds = (jobId: string, n: number) => Array.from({ length: n }, (_, i) => `job-${jobId}-w-${i + 1}`);

/** The rank (0-based) in the id of worker `actorId` of `world` workers. */
export function workerRank(actorId: string, world: number): number {
  const m = /-w-(\d+)$/.exec(actorId);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > world) throw Errors.BAD_MESSAGE(actorId, `a trainer worker's id must end in -w-<1..${world}>`);
  return Number(m[1]) - 1;
}

/** The minibatch of worker `rank` at `step`: `min(batchSize, rows)` rows of its shard drawn with replacement. */
export function minibatch(shard: Shard, seed: number, step: number, rank: number, batchSize: number): { x: Float32Array; y: Float32Array; rows: number } {
  const B = Math.min(batchSize, shard.rows);
  const r = seededRandom((seed * 1_000_003 + step * 7919 + rank * 104_729) >>> 0);
  const D = shard.features;
  const x = new Float32Array(B * D);
  const y = new Float32Array(B);
  for (let i = 0; i < B; i++) {
    const row = Math.floor(r() * shard.rows);
    x.set(shard.x.subarray(row * D, row * D + D), i * D);
    y[i] = shard.y[row]!;
  }
  return { x, y, rows: B };
}

export class TrainerWorker extends Actor<WorkerMsg> {
  readonly #args: WorkerArgs;
  #shard!: Shard;
  #rank = 0;
  /** Placed again after its job ended: it has removed itself and answers nothing. */
  #ended = false;

  constructor(args: unknown) {
    super();
    this.#args = validate(WorkerArgs, args, 'trainer-worker args');
  }

  override async onStart(): Promise<void> {
    const a = this.#args;
    this.#rank = workerRank(this.ctx.actorId, a.world);
    const store = await openCheckpointStore(this.ctx.nc, this.ctx.subjects.prefix);
    try {
      this.#shard = await loadShard(store, { jobId: a.jobId, world: a.world, rank: this.#rank }, { datasetDigest: a.datasetDigest, splitSeed: a.splitSeed });
    } catch (err) {
      // Placed again after its job ended (its node died after the job's clean-up, or the clean-up's
      // stop was lost): no shard will come, and refusing to start would have every node refuse it
      // in turn, for ever. It starts, and removes itself.
      if (!(await this.#jobEnded(a.jobId))) throw err;
      this.#ended = true;
      this.ctx.log.info({ jobId: a.jobId }, 'the job has ended: this worker removes itself');
      setImmediate(() => void this.ctx.system.stop(this.ctx.actorId).catch(() => undefined));
    }
  }

  /** The job's record is terminal or gone (a read that fails says no: the original error stands). */
  async #jobEnded(jobId: string): Promise<boolean> {
    const rec = await JobStore.open(this.ctx.nc, this.ctx.subjects.prefix)
      .then((jobs) => jobs.entry(jobId))
      .then((e) => e ?? null, () => undefined);
    return rec === null || (rec !== undefined && TERMINAL_JOB_STATES.includes(rec.record.state));
  }

  async receive(m: WorkerMsg): Promise<GradReply | { rows: number; nodeId: string }> {
    if (this.#ended) throw Errors.BAD_MESSAGE(this.ctx.actorId, `job ${this.#args.jobId} has ended: this worker is removing itself`);
    if (m.type === 'info') return { rows: this.#shard.rows, nodeId: this.ctx.nodeId };
    const a = this.#args;
    const t0 = performance.now();
    const b = minibatch(this.#shard, a.seed, m.step, this.#rank, a.batchSize);
    const g = await gradient(nodeKernels(this.ctx), a.model, bytesF32(m.params), b.x, b.y, b.rows);
    return { loss: g.loss, rows: b.rows, grad: f32bytes(g.grad), nodeId: this.ctx.nodeId, backend: g.backend, ms: performance.now() - t0 };
  }
}
