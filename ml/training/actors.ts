/**
 * Training as actors (load on nodes with `shoal:ml/training/actors.ts`):
 *
 * - `training-job` — one per job, spawned by the scheduler's job queue with `{ jobId }`. It
 *   validates the spec (a bad one fails the job at once, with the reason), gang-spawns the
 *   workers, runs data-parallel synchronous SGD/Adam — every step it asks each worker for the
 *   gradient of its shard's minibatch and averages them (a parameter server over NATS) —
 *   checkpoints to the object store every `checkpointEvery` steps and on drain, and at the end
 *   evaluates on the holdout, exports ONNX, and registers the version with its metrics and
 *   lineage. If its node dies it is re-placed and resumes from the last checkpoint; if a
 *   worker's node dies, the runtime re-places the worker and the step is retried.
 * - `trainer-worker` — holds one shard (rows `i % world == rank` of the train split) and
 *   computes minibatch gradients through `kernels/`. Stateless apart from its shard, so it can
 *   move freely. Deterministic: its minibatch depends only on (seed, step, rank).
 */
import { Type, type Static } from '@sinclair/typebox';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import {
  Actor,
  ActorKind,
  Errors,
  JobState,
  jobActorId,
  SHOAL_VERSION,
  TERMINAL_JOB_STATES,
  decode,
  defineActorType,
  encode,
  errorCode,
  request,
  resources,
  validate,
  type JobRecord,
  type SchedulerStatus,
} from '../../cluster/index.ts';
import { DatasetStore, rng, split, take, type Dataset, type DatasetVersion } from '../datasets/index.ts';
import { MlErrors } from '../errors.ts';
import { Market, UniformProgress } from '../../scheduler/index.ts';
import { RegistryClient } from '../registry/client.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { applyUpdate, gradient, nodeKernels } from './compute.ts';
import { bestF1Threshold, evaluate, rocAuc } from './metrics.ts';
import { exportOnnx, initParams, layout, predict, type ModelShape } from './model.ts';
import { parseTrainingSpec, type TrainingSpec } from './spec.ts';

export const TRAINING_JOB_ACTOR = 'training-job';
export const TRAINER_WORKER_ACTOR = 'trainer-worker';
const f32bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const bytesF32 = (b: Uint8Array) => {
  const f = new Float32Array(b.byteLength / 4);
  new Uint8Array(f.buffer).set(b);
  return f;
};
/** A copy (the vectors keep changing after a checkpoint is taken). */
const f64bytes = (a: Float64Array) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
const bytesF64 = (b: Uint8Array) => {
  const f = new Float64Array(b.byteLength / 8);
  new Uint8Array(f.buffer).set(b);
  return f;
};

// ---- worker ------------------------------------------------------------------------------------

/** The same for every worker of a job (they are gang-spawned from one spec); the rank comes from the id `job-<id>-w-<rank+1>`. */
const WorkerArgs = Type.Object({
  jobId: Type.String(),
  world: Type.Integer({ minimum: 1 }),
  datasetDigest: Type.String(),
  model: Type.Object({ type: Type.Union([Type.Literal('logreg'), Type.Literal('mlp')]), features: Type.Integer(), layers: Type.Array(Type.Integer({ minimum: 1 })) }),
  batchSize: Type.Integer({ minimum: 1 }),
  seed: Type.Integer(),
  splitSeed: Type.Integer(),
});
type WorkerArgs = Static<typeof WorkerArgs>;

const WorkerMsg = Type.Union([
  Type.Object({ type: Type.Literal('grad'), step: Type.Integer({ minimum: 1 }), params: Type.Uint8Array() }),
  Type.Object({ type: Type.Literal('info') }),
]);
type WorkerMsg = Static<typeof WorkerMsg>;

export interface GradReply {
  loss: number;
  rows: number;
  grad: Uint8Array;
  nodeId: string;
  backend: string;
  ms: number;
}

class TrainerWorker extends Actor<WorkerMsg> {
  readonly #args: WorkerArgs;
  #x!: Float32Array;
  #y!: Float32Array;
  #rows = 0;
  #rank = 0;

  constructor(args: unknown) {
    super();
    this.#args = validate(WorkerArgs, args, 'trainer-worker args');
  }

  override async onStart(): Promise<void> {
    const a = this.#args;
    const m = /-w-(\d+)$/.exec(this.ctx.actorId);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > a.world) throw Errors.BAD_MESSAGE(this.ctx.actorId, `a trainer worker's id must end in -w-<1..${a.world}>`);
    this.#rank = Number(m[1]) - 1;
    const store = await DatasetStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    const ds = await store.load({ digest: a.datasetDigest, name: a.jobId } as DatasetVersion);
    const train = split(ds.rows, a.splitSeed).train.filter((_, i) => i % a.world === this.#rank);
    const t = take(ds, train);
    this.#x = t.x;
    this.#y = t.y;
    this.#rows = train.length;
  }

  async receive(m: WorkerMsg): Promise<GradReply | { rows: number; nodeId: string }> {
    if (m.type === 'info') return { rows: this.#rows, nodeId: this.ctx.nodeId };
    const a = this.#args;
    const t0 = performance.now();
    const B = Math.min(a.batchSize, this.#rows);
    const r = rng((a.seed * 1_000_003 + m.step * 7919 + this.#rank * 104_729) >>> 0);
    const D = a.model.features;
    const xb = new Float32Array(B * D);
    const yb = new Float32Array(B);
    for (let i = 0; i < B; i++) {
      const row = Math.floor(r() * this.#rows);
      xb.set(this.#x.subarray(row * D, row * D + D), i * D);
      yb[i] = this.#y[row]!;
    }
    const g = await gradient(nodeKernels(this.ctx), a.model, bytesF32(m.params), xb, yb, B);
    return { loss: g.loss, rows: B, grad: f32bytes(g.grad), nodeId: this.ctx.nodeId, backend: g.backend, ms: performance.now() - t0 };
  }
}

// ---- coordinator ------------------------------------------------------------------------------

const JobArgs = Type.Object({ jobId: Type.String({ minLength: 1 }) });
const JobMsg = Type.Union([Type.Object({ type: Type.Literal('status') })]);
type JobMsg = Static<typeof JobMsg>;

interface Checkpoint {
  step: number;
  params: Uint8Array;
  m: Uint8Array;
  v: Uint8Array;
  losses: number[];
  workerSeconds: number;
  cost: number;
}

/** `p`, or a TIMEOUT error after `ms` (what `p` does later is ignored). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Errors.TIMEOUT(what, ms)), ms);
  });
  p.catch(() => undefined); // a failure after the timeout is not unhandled
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/**
 * A job's pace: the median of its recent step times, and the bounds it gives. A gradient ask
 * waits 10× a typical step (at least 2 s) before it is sent again — the worker may have died with
 * its node, and its re-placed twin answers the retry; a whole step gets 50× (at least 15 s),
 * never more than the spec's `stepTimeoutMs`. Until a few steps have been timed (warm-up, data
 * loading), only `stepTimeoutMs` applies.
 */
class StepPace {
  readonly #ring = new Float64Array(32);
  #n = 0;
  constructor(private readonly maxMs: number) {}
  add(ms: number): void {
    this.#ring[this.#n++ % this.#ring.length] = ms;
  }
  median(): number | undefined {
    const n = Math.min(this.#n, this.#ring.length);
    if (n === 0) return undefined;
    const s = this.#ring.slice(0, n).sort();
    return s[Math.floor(n / 2)]!;
  }
  bounds(): { askMs: number; stepMs: number } {
    const m = this.#n >= 3 ? this.median()! : undefined;
    if (m === undefined) return { askMs: this.maxMs, stepMs: this.maxMs };
    return { askMs: Math.min(this.maxMs, Math.max(2000, 10 * m)), stepMs: Math.min(this.maxMs, Math.max(15_000, 50 * m)) };
  }
}

const workerIds = (jobId: string, n: number) => Array.from({ length: n }, (_, i) => `job-${jobId}-w-${i + 1}`);

class TrainingJob extends Actor<JobMsg> {
  readonly #jobId: string;
  #jobs!: KV;
  #store!: ObjectStore;
  #step = 0;
  #steps = 0;
  #stopped = false;
  #latest: Checkpoint | undefined;

  constructor(args: unknown) {
    super();
    this.#jobId = validate(JobArgs, args, 'training-job args').jobId;
  }

  get #ckptName() {
    return `checkpoints/job-${this.#jobId}`;
  }

  override async onStart(): Promise<void> {
    const r = resources(this.ctx.subjects.prefix);
    this.#jobs = await new Kvm(this.ctx.nc).open(r.buckets.jobs);
    // Checkpoints have their own store: a node may replace them (which purges old chunks) without any right on the artifacts.
    this.#store = await new Objm(this.ctx.nc).open(r.stores.checkpoints);
    // The job runs beside the mailbox: onStart must return for the actor to be running.
    setImmediate(() => void this.#run());
  }

  override async onDrain(): Promise<void> {
    // The node is going away (spot notice, drain): save where we are; the next placement resumes.
    this.#stopped = true;
    if (this.#latest) await this.#saveCheckpoint(this.#latest);
  }

  override onStop(): void {
    this.#stopped = true;
  }

  receive(): unknown {
    return { jobId: this.#jobId, step: this.#step, steps: this.#steps };
  }

  async #record(): Promise<{ rec: JobRecord; revision: number } | undefined> {
    const e = await this.#jobs.get(this.#jobId);
    return e && e.operation === 'PUT' ? { rec: decode(e.value) as JobRecord, revision: e.revision } : undefined;
  }

  /** Updates the job record by CAS; returns the record, or undefined if it became terminal (cancelled). */
  async #update(patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    for (let i = 0; i < 10; i++) {
      const cur = await this.#record();
      if (!cur) return undefined;
      if (TERMINAL_JOB_STATES.includes(cur.rec.state)) return undefined;
      const next = { ...cur.rec, ...patch, updatedAt: Date.now() };
      try {
        await this.#jobs.update(this.#jobId, encode(next), cur.revision);
        return next;
      } catch {
        /* raced (progress vs cancel): re-read */
      }
    }
    return undefined;
  }

  #progress(p: Record<string, unknown>): void {
    this.ctx.nc.publish(this.ctx.subjects.event('job-progress'), encode({ jobId: this.#jobId, ...p, at: Date.now() }));
  }

  async #saveCheckpoint(c: Checkpoint): Promise<void> {
    await this.#store.putBlob({ name: this.#ckptName, description: `checkpoint of job ${this.#jobId} at step ${c.step}` }, encode(c));
  }

  async #loadCheckpoint(): Promise<Checkpoint | undefined> {
    const b = await this.#store.getBlob(this.#ckptName).catch(() => null);
    return b ? (decode(b) as Checkpoint) : undefined;
  }

  async #run(): Promise<void> {
    const log = this.ctx.log;
    let workers: string[] = [];
    try {
      const cur = await this.#record();
      if (!cur || TERMINAL_JOB_STATES.includes(cur.rec.state)) return;
      const spec = parseTrainingSpec(this.#jobId, cur.rec.spec);
      const datasets = await DatasetStore.open(this.ctx.nc, this.ctx.subjects.prefix);
      const dv = await datasets.resolve(spec.dataset).catch((err: unknown) => {
        throw MlErrors.BAD_JOB(this.#jobId, (err as Error).message);
      });
      const data = await datasets.load(dv);
      const h = spec.model.hidden ?? 32;
      const shape: ModelShape = { type: spec.model.type, features: dv.columns.length, layers: spec.model.type === 'mlp' ? (Array.isArray(h) ? h : [h]) : [] };
      this.#steps = spec.hyper.steps;
      await this.#update({ state: JobState.PLACING, progress: { step: 0, steps: this.#steps } });

      // Workers, all or nothing. Their ids are fixed by the job, so a re-placed coordinator finds
      // the ones still running instead of starting twins.
      workers = workerIds(this.#jobId, spec.workers);
      const args: WorkerArgs = { jobId: this.#jobId, world: spec.workers, datasetDigest: dv.digest, model: shape, batchSize: spec.hyper.batchSize, seed: spec.hyper.seed, splitSeed: dv.splits.seed };
      await this.#startWorkers(workers, args, spec);

      const L = layout(shape);
      const ck = await this.#loadCheckpoint();
      const params = ck ? bytesF32(ck.params) : initParams(shape, spec.hyper.seed);
      // Adam's moments: float32 in the kernels' `adam` op, held and checkpointed here as float64
      // (each value exactly a float32), so a resumed job continues exactly where the uninterrupted
      // one would be. (A float32 checkpoint of older code still loads.)
      const moments = (b: Uint8Array) => (b.byteLength === L.size * 8 ? bytesF64(b) : new Float64Array(bytesF32(b)));
      const m = ck ? moments(ck.m) : new Float64Array(L.size);
      const v = ck ? moments(ck.v) : new Float64Array(L.size);
      const losses = ck?.losses ?? [];
      let workerSeconds = ck?.workerSeconds ?? 0;
      let cost = ck?.cost ?? 0;
      if (ck) log.info({ step: ck.step }, 'resuming from checkpoint');
      await this.#update({ state: JobState.RUNNING, ...(ck ? { reason: `resumed from the checkpoint at step ${ck.step}` } : {}) });

      let prices = await this.#prices();
      // Validation AUC at each checkpoint: progress people can read, and time-to-target for benchmarks.
      const splits = split(data.rows, dv.splits.seed);
      const val = take(data, splits.validation);
      const valAuc = () => rocAuc(predict(shape, params, val.x, splits.validation.length), val.y);
      let failures = 0;
      const t0 = performance.now();
      const firstStep = (ck?.step ?? 0) + 1;
      // Deadline-aware market choice (Uniform Progress, "Can't Be Late", NSDI '24): run on spot
      // while progress keeps up with the uniform line to the deadline; switch the workers to
      // on-demand when it falls behind. The work estimate comes from the measured step time.
      let market: 'spot' | 'on-demand' = spec.spotOk ? 'spot' : 'on-demand';
      let deadlinePolicy: UniformProgress | undefined;
      const marketLog: { step: number; market: string; reason: string }[] = [];
      let samples = 0;
      let lastProgress: Record<string, unknown> = {};
      const pace = new StepPace(spec.stepTimeoutMs);
      const every = Math.max(1, Math.floor(spec.checkpointEvery / 2));
      for (let step = (ck?.step ?? 0) + 1; step <= this.#steps; step++) {
        if (this.#stopped) return;
        const stepStart = performance.now();
        let replies: GradReply[];
        // Bounds from the job's own pace: a worker whose node died never answers, and its
        // re-placed twin (same id, same deterministic gradient) is asked again after `askMs`.
        const { askMs, stepMs } = pace.bounds();
        try {
          replies = await withTimeout(
            Promise.all(workers.map((id) => this.ctx.system.ref(id).ask<GradReply>({ type: 'grad', step, params: f32bytes(params) }, { timeoutMs: askMs, retry: { attempts: 40, delayMs: 250 } }))),
            stepMs,
            `step ${step}: no gradients from every worker within ${Math.round(stepMs)} ms`,
          );
        } catch (err) {
          failures++;
          log.warn({ step, failures, err: (err as Error).message }, 'a worker failed this step');
          if (failures > spec.maxWorkerFailures) throw MlErrors.JOB_FAILED(this.#jobId, `worker failures exceeded ${spec.maxWorkerFailures}: ${(err as Error).message}`);
          await this.#startWorkers(workers, args, spec).catch(() => undefined);
          step--;
          continue;
        }
        // Average in rank order (deterministic), weighted by rows.
        const total = replies.reduce((s, r) => s + r.rows, 0);
        const g = new Float32Array(L.size);
        let loss = 0;
        for (const r of replies) {
          const gi = bytesF32(r.grad);
          const w = r.rows / total;
          for (let i = 0; i < g.length; i++) g[i] = g[i]! + w * gi[i]!;
          loss += w * r.loss;
        }
        await applyUpdate(nodeKernels(this.ctx), spec.hyper.optimizer, spec.hyper.lr, step, params, g, m, v);
        const secs = (performance.now() - stepStart) / 1000;
        pace.add(secs * 1000);
        workerSeconds += secs * replies.length;
        for (const r of replies) cost += ((prices.get(r.nodeId) ?? 0) * secs) / 3600;
        samples += total;
        losses.push(loss);
        this.#step = step;
        this.#latest = { step, params: f32bytes(params.slice()), m: f64bytes(m), v: f64bytes(v), losses: losses.slice(-500), workerSeconds, cost };
        if (step % spec.checkpointEvery === 0 || step === this.#steps) {
          await this.#saveCheckpoint(this.#latest);
          prices = await this.#prices();
          if (spec.deadline !== undefined && market === 'spot' && step < this.#steps) {
            const secPerStep = (performance.now() - t0) / 1000 / (step - firstStep + 1);
            deadlinePolicy ??= new UniformProgress(
              { workHours: (this.#steps * secPerStep) / 3600, startAt: cur.rec.submittedAt, deadlineAt: spec.deadline, restartOverheadHours: 5 / 3600 },
              { safetyMarginHours: (this.#steps * secPerStep * 0.1) / 3600 },
            );
            const d = deadlinePolicy.decide({ now: Date.now(), progressHours: (step * secPerStep) / 3600, current: Market.SPOT, spotAvailable: true });
            if (d.market === Market.ON_DEMAND) {
              market = 'on-demand';
              marketLog.push({ step, market, reason: d.reason });
              log.info({ step, reason: d.reason }, 'behind the deadline: moving workers to on-demand');
              await Promise.all(workers.map((w) => this.ctx.system.stop(w).catch(() => undefined)));
              await this.#startWorkers(workers, args, { ...spec, spotOk: false });
            }
          }
        }
        if (step % every === 0 || step === this.#steps) {
          // `stepMs` and `every` give the scheduler's watchdog this job's pace (its stall bound);
          // `node` says where the coordinator runs.
          const progress: Record<string, unknown> = { ...(step % spec.checkpointEvery === 0 || step === this.#steps ? { valAuc: valAuc() } : {}), elapsedMs: performance.now() - t0, step, steps: this.#steps, loss, samplesPerSec: samples / ((performance.now() - t0) / 1000), workers: replies.length, workerSeconds, costSoFar: cost, backend: replies[0]!.backend, checkpointStep: step - (step % spec.checkpointEvery), stepMs: pace.median(), every, node: this.ctx.nodeId };
          this.#progress(progress);
          lastProgress = progress;
          const state = step % spec.checkpointEvery === 0 ? JobState.CHECKPOINTED : JobState.RUNNING;
          if (!(await this.#update({ state, progress }))) {
            log.info('job cancelled');
            return;
          }
          if (spec.budget !== undefined && cost > spec.budget) throw MlErrors.JOB_FAILED(this.#jobId, `budget $${spec.budget} spent ($${cost.toFixed(4)})`);
        }
      }

      // Evaluate, export, register.
      // The decision threshold is chosen on the validation split (best F1), then the holdout is
      // scored once with it: on imbalanced data a fixed 0.5 would flag almost nothing.
      const threshold = bestF1Threshold(predict(shape, params, val.x, splits.validation.length), val.y);
      const holdoutIdx = splits.holdout;
      const hold = take(data, holdoutIdx);
      const probs = predict(shape, params, hold.x, holdoutIdx.length);
      const metrics = evaluate(probs, hold.y, threshold);
      const onnxBytes = exportOnnx(shape, params, spec.model.name);
      const registry = await ModelRegistry.open(this.ctx.nc, this.ctx.subjects.prefix);
      // Idempotent: a coordinator that died after registering but before recording success
      // finds its version instead of registering a second one.
      const already = (await registry.versions(spec.model.name).catch(() => [])).find((v) => v.lineage?.trainingJobId === this.#jobId);
      // Registering (and deploying) is the registry service's: upload the model, ask it.
      const control = new RegistryClient(this.ctx.nc, this.ctx.subjects);
      const mv = already ?? await control.register(spec.model.name, onnxBytes, {
        metrics: { auc: metrics.auc, accuracy: metrics.accuracy, precision: metrics.precision, recall: metrics.recall, f1: metrics.f1, brier: metrics.brier, ece: metrics.ece, logLoss: metrics.logLoss },
        lineage: { datasetDigest: dv.digest, trainingJobId: this.#jobId, hyperParameters: { ...spec.hyper, model: spec.model, workers: spec.workers }, codeVersion: SHOAL_VERSION },
        description: `trained by job ${this.#jobId}`,
      });
      let deployed: string | undefined;
      if (spec.deploy === 'canary') {
        deployed = await control
          .canary(spec.model.name, { version: String(mv.version), weight: 0.1 })
          .then(() => 'canary')
          .catch((err: unknown) => `not deployed: ${(err as Error).message}`);
      }
      const check = holdoutIdx.slice(0, 16);
      const result = {
        model: spec.model.name,
        version: mv.version,
        metrics,
        datasetDigest: dv.digest,
        steps: this.#steps,
        finalLoss: losses.at(-1),
        workerSeconds,
        cost,
        market,
        ...(marketLog.length ? { marketSwitches: marketLog } : {}),
        ...(spec.deadline !== undefined ? { deadlineMet: Date.now() <= spec.deadline } : {}),
        ...(deployed ? { deployed } : {}),
        // The trainer's own forward pass on a few holdout rows (float64), to compare with the exported ONNX.
        check: { rows: check, predictions: Array.from(predict(shape, params, take(data, check).x, check.length)) },
      };
      await this.#update({ state: JobState.SUCCEEDED, result, progress: { ...lastProgress, step: this.#steps, steps: this.#steps } });
      this.#progress({ step: this.#steps, steps: this.#steps, done: true, auc: metrics.auc });
      log.info({ version: mv.version, auc: metrics.auc }, 'job succeeded');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      log.warn({ code: errorCode(err), reason }, 'job failed');
      await this.#update({ state: JobState.FAILED, reason });
    } finally {
      // Stopped by a drain or a node shutdown, the job goes on elsewhere and keeps its workers;
      // stopped because the job is over (cancelled: its record is terminal), they go with it.
      const over = !this.#stopped || (await this.#record().then((c) => !c || TERMINAL_JOB_STATES.includes(c.rec.state)).catch(() => false));
      if (over) await Promise.all(workers.map((w) => this.ctx.system.stop(w).catch(() => undefined)));
      // The job is over: remove the coordinator too (the record stays).
      if (!this.#stopped) setImmediate(() => void this.ctx.system.stop(this.ctx.actorId).catch(() => undefined));
    }
  }

  async #startWorkers(ids: string[], args: WorkerArgs, spec: TrainingSpec): Promise<void> {
    // One anti-affinity group with the coordinator: a node loss takes as few of the job's actors as capacity allows.
    const base = { type: TRAINER_WORKER_ACTOR, kind: ActorKind.TRAINING, group: jobActorId(this.#jobId), args, ...(spec.resources ? { resources: spec.resources } : {}), constraints: { spotOk: spec.spotOk } };
    for (let attempt = 0; ; attempt++) {
      const missing: number[] = [];
      for (let i = 0; i < ids.length; i++) {
        const alive = await this.ctx.system
          .ref(ids[i]!)
          .ask({ type: 'info' }, { timeoutMs: 5000 })
          .then(() => true)
          .catch(() => false);
        if (!alive) missing.push(i);
      }
      if (missing.length === 0) return;
      try {
        // A fresh start is all or nothing (gang); a partial set is completed one by one. An id
        // already running (or pending) is fine: the runtime keeps it placed.
        const ok = (err: unknown) => {
          if (!Errors.ACTOR_ALREADY_RUNNING.is(err)) throw err;
        };
        if (missing.length === ids.length && ids.length > 1) await this.ctx.system.spawn({ ...base, id: `job-${this.#jobId}-w` }, { replicas: ids.length, gang: true }).catch(ok);
        else for (const i of missing) await this.ctx.system.spawn({ ...base, id: ids[i]! }).catch(ok);
        // Wait for them to answer (a pending one is being placed).
        for (const id of ids) await this.ctx.system.ref(id).ask({ type: 'info' }, { timeoutMs: 10_000, retry: { attempts: 20, delayMs: 250 } });
        return;
      } catch (err) {
        if (errorCode(err) === 'SHOAL_ERR_UNSCHEDULABLE' || Errors.UNKNOWN_ACTOR_TYPE.is(err)) throw MlErrors.BAD_JOB(this.#jobId, (err as Error).message);
        if (attempt > 60 || this.#stopped) throw err;
        await this.#update({ state: JobState.PLACING, reason: `waiting for capacity: ${(err as Error).message}` });
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  /** $/hour of each node, from the scheduler's view. */
  async #prices(): Promise<Map<string, number>> {
    try {
      const st = await request<SchedulerStatus>(this.ctx.nc, this.ctx.subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 });
      return new Map(st.nodes.map((n) => [n.nodeId, n.labels.pricePerHour]));
    } catch {
      return new Map();
    }
  }
}

export const actorTypes = [
  // The job entry point; its workers are internal (a job of them would never start).
  defineActorType({ name: TRAINING_JOB_ACTOR, messages: JobMsg, create: (args) => new TrainingJob(args), kind: ActorKind.BATCH, supervision: { maxRestarts: 3, withinMs: 60_000, backoffMs: 200 }, job: true }),
  defineActorType({ name: TRAINER_WORKER_ACTOR, messages: WorkerMsg, create: (args) => new TrainerWorker(args), kind: ActorKind.TRAINING }),
];

export type { Dataset };
