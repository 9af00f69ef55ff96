/**
 * `batch-score-job`: a batch scoring job's coordinator, one per job, spawned by the scheduler's
 * job queue with `{ jobId }` like a training job's (the same queue, record, cancel, watchdog and
 * progress bar). It plans the job (plan.ts: a dataset whose columns are not the model's is
 * refused before any replica starts), starts `replicas` scorers (worker.ts) on spot or on-demand
 * capacity as the spec allows, and maps the dataset's shards over them. Each shard's scores are
 * checkpointed as they come back (one object per shard in the checkpoint store), so a job whose
 * coordinator or replicas lose their node resumes with the shards still missing; a replica that
 * stops answering is re-placed and its shard asked again. At the end the scores, in row order,
 * are registered as a content-addressed dataset whose source names the model version and the
 * input digest (lineage), and the shard objects are removed.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ObjectStore } from '@nats-io/obj';
import { Actor, ActorKind, Errors, JobState, JobStore, TERMINAL_JOB_STATES, decode, encode, errorCode, jobActorId, validate, whileActive, type JobRecord, type SpawnSpec } from '../../cluster/index.ts';
import { DatasetStore, type Dataset } from '../datasets/index.ts';
import { MlErrors } from '../errors.ts';
import { RegistryClient } from '../registry/client.ts';
import { openCheckpointStore } from '../training/checkpoints.ts';
import { nodePrices, startJobActors } from '../training/job-actors.ts';
import { planBatch, type BatchPlan } from './plan.ts';
import { parseBatchSpec, type BatchSpec } from './spec.ts';
import { BATCH_SCORER_ACTOR, scorerIds, type ScorerArgs, type ShardReply } from './worker.ts';

export const BATCH_JOB_ACTOR = 'batch-score-job';

const JobArgs = Type.Object({ jobId: Type.String({ minLength: 1 }) });
export const BatchJobMsg = Type.Union([Type.Object({ type: Type.Literal('status') })]);
export type BatchJobMsg = Static<typeof BatchJobMsg>;

/** A shard's checkpoint: its scores, and what they were computed from. */
interface StoredShard {
  v: 1;
  model: string;
  version: number;
  datasetDigest: string;
  from: number;
  to: number;
  width: number;
  scores: Uint8Array;
  nodeId: string;
  ms: number;
}

export const batchShardName = (jobId: string, shard: number) => `batch/job-${jobId}/shard-${shard}`;

/** The scores' dataset, rows in the input's order: one feature column per output value, the input's labels carried over. */
export function scoresDataset(input: Pick<Dataset, 'labels' | 'rows'>, width: number, values: Float32Array, outputName: string): Dataset {
  const columns = width === 1 ? [outputName] : Array.from({ length: width }, (_, i) => `${outputName}_${i}`);
  return { columns, rows: input.rows, features: values, labels: input.labels };
}

export class BatchScoreJob extends Actor<BatchJobMsg> {
  readonly #jobId: string;
  #jobs!: JobStore;
  #store!: ObjectStore;
  #stopped = false;
  #done = 0;
  #shards = 0;
  #replicaIds: string[] = [];
  /** Shards checkpointed before this coordinator started (a resumed job: > 0), and asks that failed here. */
  #resumedWith = 0;
  #failures = 0;

  constructor(args: unknown) {
    super();
    this.#jobId = validate(JobArgs, args, 'batch-score-job args').jobId;
  }

  override async onStart(): Promise<void> {
    this.#jobs = await JobStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    this.#store = await openCheckpointStore(this.ctx.nc, this.ctx.subjects.prefix);
    setImmediate(() => void this.#run());
  }

  override onDrain(): void {
    // Every finished shard is already saved: the next placement picks up the others.
    this.#stopped = true;
  }

  override onStop(): void {
    this.#stopped = true;
  }

  receive(): unknown {
    return { jobId: this.#jobId, shards: this.#shards, done: this.#done };
  }

  async #update(patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    try {
      const { record, changed } = await this.#jobs.update(this.#jobId, whileActive(patch));
      return changed ? record : undefined;
    } catch (err) {
      if (Errors.JOB_NOT_FOUND.is(err)) return undefined;
      throw err;
    }
  }

  async #run(): Promise<void> {
    let finished = false;
    try {
      const rec = await this.#jobs.get(this.#jobId);
      if (!rec || TERMINAL_JOB_STATES.includes(rec.state)) return;
      const spec = parseBatchSpec(this.#jobId, rec.spec);
      // Before any replica: a model or dataset that does not exist, or columns that do not match, fail the job here.
      const plan = await planBatch(this.ctx.nc, this.ctx.subjects.prefix, this.#jobId, spec);
      const rows = plan.dv.rows;
      this.#shards = Math.ceil(rows / spec.shardRows);
      const have = await this.#saved(plan, spec);
      this.#done = have.size;
      this.#resumedWith = have.size;
      await this.#update({ state: JobState.PLACING, progress: { step: this.#done, steps: this.#shards, rows: 0 } });
      this.#replicaIds = scorerIds(this.#jobId, spec.replicas);
      const args: ScorerArgs = { jobId: this.#jobId, model: plan.mv.name, version: plan.mv.version, datasetDigest: plan.dv.digest };
      if (have.size < this.#shards) await this.#startReplicas(spec, args);
      await this.#update({ state: JobState.RUNNING, ...(have.size > 0 ? { reason: `resumed with ${have.size} of ${this.#shards} shards checkpointed` } : {}) });
      if (!(await this.#score(plan, spec, have, args))) return;
      await this.#finish(plan, spec);
      finished = true;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.ctx.log.warn({ code: errorCode(err), reason }, 'batch job failed');
      await this.#update({ state: JobState.FAILED, reason }).catch(() => undefined);
      finished = true;
    } finally {
      await this.#cleanUp(finished);
    }
  }

  /** The shards already checkpointed from this model version and dataset. */
  async #saved(plan: BatchPlan, spec: BatchSpec): Promise<Set<number>> {
    const have = new Set<number>();
    for (let i = 0; i < this.#shards; i++) {
      const info = await this.#store.info(batchShardName(this.#jobId, i));
      if (info && !info.deleted && info.metadata?.model === `${plan.mv.name}@${plan.mv.version}` && info.metadata?.dataset === plan.dv.digest && info.metadata?.shardRows === String(spec.shardRows)) have.add(i);
    }
    return have;
  }

  /** Maps the missing shards over the replicas; false when stopped or cancelled (the job goes on elsewhere, or is over). */
  async #score(plan: BatchPlan, spec: BatchSpec, have: Set<number>, args: ScorerArgs): Promise<boolean> {
    const queue = Array.from({ length: this.#shards }, (_, i) => i).filter((i) => !have.has(i));
    const prices = await nodePrices(this.ctx);
    const t0 = performance.now();
    let rowsNow = 0;
    let failures = 0;
    let cost = 0;
    let cancelled = false;
    // Where each replica last answered from (in the progress: which nodes the job is on).
    const placed: Record<string, string> = {};
    const one = async (replica: string): Promise<void> => {
      for (;;) {
        if (this.#stopped || cancelled) return;
        const shard = queue.shift();
        if (shard === undefined) return;
        const from = shard * spec.shardRows;
        const to = Math.min(plan.dv.rows, from + spec.shardRows);
        let r: ShardReply;
        try {
          r = await this.ctx.system.ref(replica).ask<ShardReply>({ type: 'score', shard, from, to }, { timeoutMs: 30_000, retry: { attempts: 40, delayMs: 250 } });
        } catch (err) {
          queue.unshift(shard);
          if (this.#stopped) return;
          this.#failures++;
          if (++failures > 10) throw MlErrors.JOB_FAILED(this.#jobId, `replica failures exceeded 10: ${(err as Error).message}`);
          this.ctx.log.warn({ shard, replica, err: (err as Error).message }, 'a replica failed a shard; re-placing it');
          await this.#startReplicas(spec, args).catch(() => undefined);
          continue;
        }
        const body: StoredShard = { v: 1, model: plan.mv.name, version: plan.mv.version, datasetDigest: plan.dv.digest, from, to, width: r.width, scores: r.scores, nodeId: r.nodeId, ms: r.ms };
        await this.#store.putBlob({ name: batchShardName(this.#jobId, shard), description: `scores of shard ${shard + 1} of ${this.#shards} of batch job ${this.#jobId}`, metadata: { model: `${plan.mv.name}@${plan.mv.version}`, dataset: plan.dv.digest, shardRows: String(spec.shardRows) } }, encode(body));
        this.#done++;
        rowsNow += to - from;
        cost += ((prices.get(r.nodeId) ?? 0) * r.ms) / 3_600_000;
        placed[replica] = r.nodeId;
        const secs = (performance.now() - t0) / 1000;
        const rec = await this.#update({ progress: { step: this.#done, steps: this.#shards, rows: Math.min(plan.dv.rows, this.#done * spec.shardRows), rowsPerSec: secs > 0 ? rowsNow / secs : 0, costSoFar: cost, replicas: { ...placed }, replicaFailures: failures, node: this.ctx.nodeId } });
        if (!rec) cancelled = true;
      }
    };
    await Promise.all(this.#replicaIds.map(one));
    return !this.#stopped && !cancelled && queue.length === 0;
  }

  /** Reads every shard back in order, registers the scores as a dataset and records the job succeeded. */
  async #finish(plan: BatchPlan, spec: BatchSpec): Promise<void> {
    const datasets = await DatasetStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    const input = await datasets.load(plan.dv);
    let width = 1;
    let values: Float32Array | undefined;
    let workerMs = 0;
    const nodes = new Set<string>();
    for (let i = 0; i < this.#shards; i++) {
      const b = await this.#store.getBlob(batchShardName(this.#jobId, i));
      if (!b) throw MlErrors.JOB_FAILED(this.#jobId, `the scores of shard ${i} are not in the checkpoint store`);
      const s = decode(b) as StoredShard;
      if (!values) {
        width = s.width;
        values = new Float32Array(plan.dv.rows * width);
      }
      const f = new Float32Array(s.scores.byteLength / 4);
      new Uint8Array(f.buffer).set(s.scores);
      values.set(f, s.from * width);
      workerMs += s.ms;
      nodes.add(s.nodeId);
    }
    const output = plan.mv.signature.outputs[0]?.name ?? 'score';
    const d = scoresDataset(input, width, values!, output);
    const source = `batch ${this.#jobId}: ${plan.mv.name} v${plan.mv.version} (sha256:${plan.mv.sha256}) over ${plan.dv.name}@sha256:${plan.dv.digest}`;
    const out = await new RegistryClient(this.ctx.nc, this.ctx.subjects, `job:${this.#jobId}`).registerDataset(plan.out, d, { source });
    const result = {
      model: plan.mv.name,
      version: plan.mv.version,
      modelSha256: plan.mv.sha256,
      input: { name: plan.dv.name, digest: plan.dv.digest, rows: plan.dv.rows, columns: plan.dv.columns },
      output: { name: out.name, digest: out.digest, rows: out.rows, columns: out.columns },
      shards: this.#shards,
      replicas: spec.replicas,
      nodes: [...nodes].sort(),
      workerSeconds: workerMs / 1000,
      // This coordinator's view: a re-placed one counts from its own start.
      resumedWithShards: this.#resumedWith,
      replicaFailures: this.#failures,
    };
    await this.#update({ state: JobState.SUCCEEDED, result, progress: { step: this.#shards, steps: this.#shards, rows: plan.dv.rows } });
    this.ctx.log.info({ output: `${out.name}@${out.digest.slice(0, 12)}` }, 'batch job succeeded');
  }

  /** The job over (ended here, or cancelled): its replicas and shard objects go; moving elsewhere: they stay. */
  async #cleanUp(finished: boolean): Promise<void> {
    const over = finished || (await this.#jobs.get(this.#jobId).then((c) => !c || TERMINAL_JOB_STATES.includes(c.state)).catch(() => false));
    if (over) {
      await Promise.all(this.#replicaIds.map((w) => this.ctx.system.stop(w).catch(() => undefined)));
      for (let i = 0; i < this.#shards; i++) {
        const info = await this.#store.info(batchShardName(this.#jobId, i)).catch(() => null);
        if (info && !info.deleted) await this.#store.delete(batchShardName(this.#jobId, i)).catch(() => undefined);
      }
    }
    if (!this.#stopped) setImmediate(() => void this.ctx.system.stop(this.ctx.actorId).catch(() => undefined));
  }

  /** Starts the replicas that do not answer, waits until they all do; retries while capacity is short. */
  async #startReplicas(spec: BatchSpec, args: ScorerArgs): Promise<void> {
    const base: SpawnSpec = { type: BATCH_SCORER_ACTOR, kind: ActorKind.BATCH, group: jobActorId(this.#jobId), args, constraints: { spotOk: spec.spotOk } };
    await startJobActors(this.ctx, { jobId: this.#jobId, base, ids: this.#replicaIds, stopped: () => this.#stopped, waiting: (reason) => this.#update({ state: JobState.PLACING, reason }) });
  }
}
