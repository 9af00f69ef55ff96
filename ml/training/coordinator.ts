/**
 * `training-job`: a training job's coordinator, one per job, spawned by the scheduler's job
 * queue with `{ jobId }`. It validates the spec (a bad one fails the job at once, with the
 * reason), loads the dataset once and writes each worker's shard (shards.ts), gang-spawns the
 * workers, and runs data-parallel synchronous SGD/Adam — every step it asks each worker for the
 * gradient of its shard's minibatch and averages them (a parameter server over NATS) —
 * checkpointing every `checkpointEvery` steps and on drain (checkpoints.ts), on spot or
 * on-demand workers as the deadline allows (deadline.ts), within bounds from its own pace
 * (pace.ts). At the end it evaluates, exports, registers and deploys (finish.ts). If its node
 * dies it is re-placed and resumes from the last checkpoint; if a worker's node dies, the runtime
 * re-places the worker and the step is retried.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ObjectStore } from '@nats-io/obj';
import {
  Actor,
  ActorKind,
  Errors,
  JobState,
  JobStore,
  TERMINAL_JOB_STATES,
  encode,
  errorCode,
  jobActorId,
  request,
  ContentType,
  ROOT_CONTEXT,
  SpanKind,
  inSpan,
  tracing,
  validate,
  StaleCoordinator,
  fencedBy,
  isJetStreamUnavailable,
  retrySettling,
  type JobRecord,
  type SpawnSpec,
} from '../../cluster/index.ts';
import { DatasetStore, split, take, type DatasetVersion } from '../datasets/index.ts';
import { MlErrors } from '../errors.ts';
import { CHECKPOINT_SETTLE_MS, bytesF32, f32bytes, loadCheckpoint, openCheckpointStore, restore, saveCheckpoint, snapshot, type Checkpoint, type TrainState } from './checkpoints.ts';
import { applyUpdate, nodeKernels } from './compute.ts';
import { DeadlineMarket } from './deadline.ts';
import { finish, type FeatureLineage, type Rows } from './finish.ts';
import { rocAuc } from './metrics.ts';
import { predict, type ModelShape } from './model.ts';
import { StepPace, withTimeout } from './pace.ts';
import { removeShards, writeShards } from './shards.ts';
import type { BuildResult } from '../features/training-set.ts';
import { sensitiveColumns, type SensitiveColumn } from '../governance/fairness/index.ts';
import { parseTrainingSpec, type FeatureTrainingSet, type TrainingSpec } from './spec.ts';
import { nodePrices, startJobActors } from './job-actors.ts';
import { TRAINER_WORKER_ACTOR, workerIds, type GradReply, type WorkerArgs } from './worker.ts';

export const TRAINING_JOB_ACTOR = 'training-job';

const JobArgs = Type.Object({ jobId: Type.String({ minLength: 1 }) });
export const JobMsg = Type.Union([Type.Object({ type: Type.Literal('status') })]);
export type JobMsg = Static<typeof JobMsg>;

/** What a run needs that does not change while it trains. */
interface Plan {
  spec: TrainingSpec;
  submittedAt: number;
  dv: DatasetVersion;
  /** For a feature training set: the views (name@version, digest, log position) it was built from. */
  features?: FeatureLineage;
  shape: ModelShape;
  workers: string[];
  args: WorkerArgs;
  validation: Rows;
  holdout: Rows;
  holdoutRows: number[];
  /** The dataset's sensitive attributes over the holdout rows (the fairness audit's groups). */
  sensitive: SensitiveColumn[];
  /** The record is updated every this many steps (and at the last): the watchdog's unit of pace. */
  every: number;
}

/** A run in progress: the model state and the bookkeeping around it. */
interface Run {
  s: TrainState;
  t0: number;
  firstStep: number;
  samples: number;
  failures: number;
  /** $/hour of each node, refreshed at every checkpoint. */
  prices: Map<string, number>;
  pace: StepPace;
  market: DeadlineMarket;
  /** The last progress reported. */
  last: Record<string, unknown>;
}

export class TrainingJob extends Actor<JobMsg> {
  readonly #jobId: string;
  #jobs!: JobStore;
  #store!: ObjectStore;
  #step = 0;
  #steps = 0;
  #stopped = false;
  #onStopped!: () => void;
  /** Resolves when the actor is stopped or drained. */
  readonly #whenStopped = new Promise<void>((resolve) => (this.#onStopped = resolve));
  #latest: Checkpoint | undefined;
  /** The worker count the shards were written for (0: none written). */
  #shardWorld = 0;
  /** A copy placed later (a newer claim) has written the job: this one writes nothing more. */
  #stale: StaleCoordinator | undefined;
  /** What the record's reason says while this copy trains and once it succeeds (where it resumed from, if it did). */
  #note: string | undefined;
  /** Given up for NATS trouble (not the job's fault): left to the watchdog, nothing stopped or written. */
  #abandoned = false;

  constructor(args: unknown) {
    super();
    this.#jobId = validate(JobArgs, args, 'training-job args').jobId;
  }

  override async onStart(): Promise<void> {
    this.#jobs = await JobStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    // Checkpoints and shards have their own store: a node may replace them (which purges old chunks) without any right on the artifacts.
    this.#store = await openCheckpointStore(this.ctx.nc, this.ctx.subjects.prefix);
    // The job runs beside the mailbox: onStart must return for the actor to be running.
    setImmediate(() => void this.#run());
  }

  override async onDrain(): Promise<void> {
    // The node is going away (spot notice, drain): save where we are; the next placement resumes.
    this.#stop();
    if (this.#latest && (await this.#claim().then(() => true, () => false))) await saveCheckpoint(this.#store, this.#jobId, this.#latest);
  }

  override onStop(): void {
    this.#stop();
  }

  /** Marks the actor stopped and ends a step's wait for gradients at once (its workers are being stopped too). */
  #stop(): void {
    this.#stopped = true;
    this.#onStopped();
  }

  receive(): unknown {
    return { jobId: this.#jobId, step: this.#step, steps: this.#steps };
  }

  /**
   * Changes the record unless the job has ended; undefined when it has (cancelled) or its record
   * is gone. Fenced by this copy's directory claim: once a copy placed later has written, it throws
   * `StaleCoordinator` and this copy writes nothing more (no checkpoint, no model, no result).
   */
  async #update(patch: Partial<JobRecord>): Promise<JobRecord | undefined> {
    if (this.#stale) throw this.#stale;
    try {
      // Asked again while JetStream settles (a stream electing a leader): each try re-reads and CASes.
      const { record, changed } = await retrySettling(() => this.#jobs.update(this.#jobId, fencedBy(this.ctx.claim, patch)), CHECKPOINT_SETTLE_MS);
      return changed ? record : undefined;
    } catch (err) {
      if (err instanceof StaleCoordinator) this.#stale = err;
      if (Errors.JOB_NOT_FOUND.is(err)) return undefined;
      throw err;
    }
  }

  /** Stamps the record with this copy's claim, or throws `StaleCoordinator`: asked before each checkpoint and before the model is registered. */
  async #claim(): Promise<void> {
    await this.#update({});
  }

  #progress(p: Record<string, unknown>): void {
    this.ctx.nc.publish(this.ctx.subjects.event('job-progress'), encode({ jobId: this.#jobId, ...p, at: Date.now() }));
  }

  async #run(): Promise<void> {
    let plan: Plan | undefined;
    try {
      // Claimed first: a copy placed after a cut takes the job over as soon as it can write, and
      // the cut-off copy, when it is back, finds the newer claim at its next write.
      await this.#claim();
      // Reads and idempotent shard writes: the whole plan is asked again while JetStream settles
      // (a copy re-placed after a cut starts while streams are still electing leaders).
      plan = await retrySettling(() => this.#plan(), CHECKPOINT_SETTLE_MS);
      if (!plan) return;
      const p = plan;
      // One trace per training run when tracing: the job's span; the workers' placement (the
      // spawn request to the scheduler, its spawns on the nodes); a span per step and — through
      // the `traceparent` on every ask — each worker's gradient under its step.
      await inSpan('training.job', { kind: SpanKind.INTERNAL, parent: ROOT_CONTEXT, attributes: { 'shoal.job.id': this.#jobId, 'shoal.job.steps': this.#steps, 'shoal.job.workers': p.workers.length } }, async () => {
        await this.#startWorkers(p, p.spec.spotOk);
        const run = await this.#resume(p);
        if (await this.#train(p, run)) await this.#succeed(p, run);
      });
    } catch (err) {
      if ((isJetStreamUnavailable(err) || Errors.TIMEOUT.is(err) || Errors.NO_RESPONDERS.is(err)) && !this.#stale) {
        // NATS trouble past every bounded retry is not the job's failure: this copy writes nothing
        // and stops nothing; the watchdog, seeing the job silent, starts another from the checkpoint
        // (at most `scheduler.jobMaxRestarts` times). That includes a control-plane service that
        // did not answer: a new scheduler leader whose start kept failing on a two-server cluster
        // served no registry for two minutes, and a job that had trained to the end failed on
        // its registration.
        this.#abandoned = true;
        this.ctx.log.warn({ err: (err as Error).message }, 'JetStream unavailable past its retries: leaving the job to the watchdog (it resumes from the last checkpoint)');
      } else await this.#fail(err);
    } finally {
      await this.#cleanUp(plan);
    }
  }

  /** Reads the job, validates its spec, loads its data and writes the workers' shards; undefined when the job has ended. */
  async #plan(): Promise<Plan | undefined> {
    const rec = await this.#jobs.get(this.#jobId);
    if (!rec || TERMINAL_JOB_STATES.includes(rec.state)) return undefined;
    // Validated here although JobClient.submit validated it at the edge: a submitter may publish
    // on `shoal.jobs.submit` without that client, and this parse (with its defaults) is the spec
    // the job trains with. A bad one fails the job at once, with the field in the reason.
    const spec = parseTrainingSpec(this.#jobId, rec.spec);
    const datasets = await DatasetStore.open(this.ctx.nc, this.ctx.subjects.prefix);
    // A set pinned by a pipeline run is trained on as built then (not rebuilt: labels may have come since).
    const pinned = typeof spec.dataset === 'string' ? undefined : spec.dataset.pinned;
    const built = typeof spec.dataset === 'string' || pinned ? undefined : await this.#buildFeatureSet(spec, spec.dataset);
    const dv = built
      ? built.dataset
      : await datasets.resolve(pinned ? `sha256:${pinned.digest}` : (spec.dataset as string)).catch((err: unknown) => {
          // A read JetStream could not answer is not a bad dataset reference: asked again (see #run).
          if (isJetStreamUnavailable(err)) throw err;
          throw MlErrors.BAD_JOB(this.#jobId, `${pinned ? 'dataset.pinned.digest: ' : ''}${(err as Error).message}`);
        });
    if (pinned && !dv.columns.every((c) => pinned.views.some((v) => c.startsWith(`${v.view.split('@')[0]}.`)))) throw MlErrors.BAD_JOB(this.#jobId, `dataset.pinned.digest: dataset ${dv.name} was not built from ${pinned.views.map((v) => v.view).join(', ')} (its columns are not <view>.<column>)`);
    const data = await datasets.load(dv);
    const h = spec.model.hidden ?? 32;
    const shape: ModelShape = { type: spec.model.type, features: dv.columns.length, layers: spec.model.type === 'mlp' ? (Array.isArray(h) ? h : [h]) : [] };
    this.#steps = spec.hyper.steps;
    await this.#update({ state: JobState.PLACING, progress: { step: 0, steps: this.#steps } });
    // The only read of the dataset in the job: each worker loads just its own rows.
    const splits = split(data.rows, dv.splits.seed);
    this.#shardWorld = spec.workers;
    const bytes = await writeShards(this.#store, this.#jobId, spec.workers, data, splits.train, { datasetDigest: dv.digest, splitSeed: dv.splits.seed });
    if (bytes > 0) this.ctx.log.info({ workers: spec.workers, bytes }, 'training shards written');
    return {
      spec,
      submittedAt: rec.submittedAt,
      dv,
      ...(built ? { features: { views: built.lineage.views.map((v) => ({ view: `${v.name}@${v.version}`, digest: v.digest, through: v.through })), datasetDigest: built.dataset.digest, columns: built.dataset.columns } } : {}),
      ...(pinned ? { features: { views: pinned.views, datasetDigest: dv.digest, columns: dv.columns } } : {}),
      shape,
      // Fixed by the job, so a re-placed coordinator finds the workers still running instead of starting twins.
      workers: workerIds(this.#jobId, spec.workers),
      args: { jobId: this.#jobId, world: spec.workers, datasetDigest: dv.digest, model: shape, batchSize: spec.hyper.batchSize, seed: spec.hyper.seed, splitSeed: dv.splits.seed },
      validation: take(data, splits.validation),
      holdout: take(data, splits.holdout),
      holdoutRows: splits.holdout,
      sensitive: sensitiveColumns(data, splits.holdout),
      every: Math.max(1, Math.floor(spec.checkpointEvery / 2)),
    };
  }

  /**
   * Builds the spec's feature training set point-in-time through the features service (the
   * feature log is the scheduler's alone); a bad view or label row fails the job naming
   * `dataset.features` / `dataset.labels`.
   */
  async #buildFeatureSet(spec: TrainingSpec, set: FeatureTrainingSet): Promise<BuildResult> {
    const name = `${spec.model.name.replace(/\./g, '_')}-features`.slice(0, 64);
    try {
      return await request<BuildResult>(this.ctx.nc, this.ctx.subjects.featuresBuild, { name, views: set.features, labels: set.labels }, { timeoutMs: 300_000, contentType: ContentType.MSGPACK });
    } catch (err) {
      if (isJetStreamUnavailable(err)) throw err; // the service met JetStream settling: asked again (see #run)
      const msg = (err as Error).message;
      // The spec's fault (a 4xx: an unknown or unfitted view, a bad label row) names its field;
      // anything else (the service unreachable, a timeout) is the job's failure, not the spec's.
      const status = (err as { status?: unknown }).status;
      if (typeof status !== 'number' || status < 400 || status >= 500) throw MlErrors.JOB_FAILED(this.#jobId, `building the feature training set: ${msg}`);
      const field = /\blabels\b/.test(msg) ? 'dataset.labels' : 'dataset.features';
      throw MlErrors.BAD_JOB(this.#jobId, `${field}: ${msg}`);
    }
  }

  /** The state of the last checkpoint (or a fresh one); the job is recorded running. */
  async #resume(p: Plan): Promise<Run> {
    // Claimed before the checkpoint is read: an older copy still running writes no checkpoint after this.
    await this.#claim();
    const ck = await loadCheckpoint(this.#store, this.#jobId);
    const s = restore(p.shape, p.spec.hyper.seed, ck);
    if (ck) this.ctx.log.info({ step: ck.step }, 'resuming from checkpoint');
    this.#note = ck ? `resumed from the checkpoint at step ${ck.step}` : undefined;
    await this.#update({ state: JobState.RUNNING, reason: this.#note });
    const prices = await nodePrices(this.ctx).catch(() => new Map<string, number>());
    const market = new DeadlineMarket({ spotOk: p.spec.spotOk, deadline: p.spec.deadline, steps: this.#steps, submittedAt: p.submittedAt });
    return { s, t0: performance.now(), firstStep: s.step + 1, samples: 0, failures: 0, prices, pace: new StepPace(p.spec.stepTimeoutMs), market, last: {} };
  }

  /** Steps to the last; false when the job was cancelled or this actor stopped (the job goes on elsewhere). */
  async #train(p: Plan, r: Run): Promise<boolean> {
    for (let step = r.s.step + 1; step <= this.#steps; ) {
      if (this.#stopped) return false;
      const stepStart = performance.now();
      const replies = tracing.on ? await this.#tracedStep(p, r, step, stepStart) : await this.#step1(p, r, step, stepStart);
      if (!replies) continue; // a worker failed: the workers were restarted, the step runs again
      if (step % p.spec.checkpointEvery === 0 || step === this.#steps) await this.#checkpoint(p, r, step);
      if ((step % p.every === 0 || step === this.#steps) && !(await this.#report(p, r, step, replies))) return false;
      step++;
    }
    return true;
  }

  /** One step: every worker's gradient, then the update; undefined when a worker failed. */
  async #step1(p: Plan, r: Run, step: number, stepStart: number): Promise<GradReply[] | undefined> {
    const replies = await this.#gradients(p, r, step);
    if (replies) await this.#apply(p, r, step, replies, stepStart);
    return replies;
  }

  #tracedStep(p: Plan, r: Run, step: number, stepStart: number): Promise<GradReply[] | undefined> {
    return inSpan('training.step', { attributes: { 'shoal.job.id': this.#jobId, 'shoal.job.step': step } }, async (span) => {
      const replies = await this.#step1(p, r, step, stepStart);
      if (!replies) span?.setAttribute('shoal.job.step.retried', true);
      return replies;
    });
  }

  /** Every worker's gradient at `step`, in rank order; undefined when a worker failed (the workers are restarted). */
  async #gradients(p: Plan, r: Run, step: number): Promise<GradReply[] | undefined> {
    // Bounds from the job's own pace: a worker whose node died never answers, and its re-placed
    // twin (same id, same deterministic gradient) is asked again after `askMs`.
    const { askMs, stepMs } = r.pace.bounds();
    const msg = { type: 'grad', step, params: f32bytes(r.s.params) };
    try {
      const all = withTimeout(
        Promise.all(p.workers.map((id) => this.ctx.system.ref(id).ask<GradReply>(msg, { timeoutMs: askMs, retry: { attempts: 40, delayMs: 250 } }))),
        stepMs,
        `step ${step}: no gradients from every worker within ${Math.round(stepMs)} ms`,
      );
      // Stopped (a cancel stops the workers too): no waiting out their retries, no restarting them.
      return await Promise.race([all, this.#whenStopped.then(() => undefined)]);
    } catch (err) {
      if (this.#stopped) return undefined;
      r.failures++;
      this.ctx.log.warn({ step, failures: r.failures, err: (err as Error).message }, 'a worker failed this step');
      if (r.failures > p.spec.maxWorkerFailures) throw MlErrors.JOB_FAILED(this.#jobId, `worker failures exceeded ${p.spec.maxWorkerFailures}: ${(err as Error).message}`);
      await this.#startWorkers(p, r.market.market === 'spot').catch(() => undefined);
      return undefined;
    }
  }

  /** Averages the gradients in rank order (deterministic), weighted by rows, and takes the optimiser step. */
  async #apply(p: Plan, r: Run, step: number, replies: GradReply[], stepStart: number): Promise<void> {
    const s = r.s;
    const total = replies.reduce((n, x) => n + x.rows, 0);
    const g = new Float32Array(s.params.length);
    let loss = 0;
    for (const x of replies) {
      const gi = bytesF32(x.grad);
      const w = x.rows / total;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! + w * gi[i]!;
      loss += w * x.loss;
    }
    await applyUpdate(nodeKernels(this.ctx), p.spec.hyper.optimizer, p.spec.hyper.lr, step, s.params, g, s.m, s.v);
    const secs = (performance.now() - stepStart) / 1000;
    r.pace.add(secs * 1000);
    s.workerSeconds += secs * replies.length;
    for (const x of replies) s.cost += ((r.prices.get(x.nodeId) ?? 0) * secs) / 3600;
    r.samples += total;
    s.losses.push(loss);
    s.step = step;
    this.#step = step;
    this.#latest = snapshot(s);
  }

  /** Saves the checkpoint, refreshes the prices, and moves the workers to on-demand when behind the deadline. */
  async #checkpoint(p: Plan, r: Run, step: number): Promise<void> {
    await this.#claim();
    await saveCheckpoint(this.#store, this.#jobId, this.#latest!);
    // Prices are a refresh: the last ones stand when the scheduler cannot answer now.
    r.prices = await nodePrices(this.ctx).catch(() => r.prices);
    const behind = r.market.check(step, (performance.now() - r.t0) / 1000 / (step - r.firstStep + 1));
    if (!behind) return;
    this.ctx.log.info({ step, reason: behind }, 'behind the deadline: moving workers to on-demand');
    await Promise.all(p.workers.map((w) => this.ctx.system.stop(w).catch(() => undefined)));
    await this.#startWorkers(p, false);
  }

  /** Publishes and records progress; false when the job ended meanwhile (cancelled). Past its budget the job fails. */
  async #report(p: Plan, r: Run, step: number, replies: GradReply[]): Promise<boolean> {
    const { spec, validation: val } = p;
    const s = r.s;
    const atCheckpoint = step % spec.checkpointEvery === 0 || step === this.#steps;
    // Validation AUC at each checkpoint: progress people can read, and time-to-target for benchmarks.
    const valAuc = atCheckpoint ? { valAuc: rocAuc(predict(p.shape, s.params, val.x, val.y.length), val.y) } : {};
    const elapsedMs = performance.now() - r.t0;
    // `stepMs` and `every` give the scheduler's watchdog this job's pace (its stall bound); `node` says where the coordinator runs.
    const progress: Record<string, unknown> = {
      ...valAuc,
      elapsedMs,
      step,
      steps: this.#steps,
      loss: s.losses.at(-1),
      samplesPerSec: r.samples / (elapsedMs / 1000),
      workers: replies.length,
      workerSeconds: s.workerSeconds,
      costSoFar: s.cost,
      backend: replies[0]!.backend,
      checkpointStep: step - (step % spec.checkpointEvery),
      stepMs: r.pace.median(),
      every: p.every,
      node: this.ctx.nodeId,
    };
    this.#progress(progress);
    r.last = progress;
    // The reason goes back to this run's own note: a "waiting for capacity" from a worker restart is over once steps move.
    if (!(await this.#update({ state: step % spec.checkpointEvery === 0 ? JobState.CHECKPOINTED : JobState.RUNNING, progress, reason: this.#note }))) {
      this.ctx.log.info('job cancelled');
      return false;
    }
    if (spec.budget !== undefined && s.cost > spec.budget) throw MlErrors.JOB_FAILED(this.#jobId, `budget $${spec.budget} spent ($${s.cost.toFixed(4)})`);
    return true;
  }

  /** Evaluates, exports, registers (and deploys), then records the job succeeded with its result. */
  async #succeed(p: Plan, r: Run): Promise<void> {
    const { spec } = p;
    const s = r.s;
    await this.#claim();
    const f = await finish({ nc: this.ctx.nc, subjects: this.ctx.subjects, jobId: this.#jobId, spec, shape: p.shape, params: s.params, datasetDigest: p.dv.digest, ...(p.features ? { features: p.features } : {}), validation: p.validation, holdout: p.holdout, holdoutRows: p.holdoutRows, columns: p.dv.columns, sensitive: p.sensitive, ...(p.dv.pii ? { pii: p.dv.pii } : {}) });
    const result = {
      model: f.model,
      version: f.version,
      metrics: f.metrics,
      datasetDigest: f.datasetDigest,
      steps: this.#steps,
      finalLoss: s.losses.at(-1),
      workerSeconds: s.workerSeconds,
      cost: s.cost,
      market: r.market.market,
      ...(r.market.switches.length ? { marketSwitches: [...r.market.switches] } : {}),
      ...(spec.deadline !== undefined ? { deadlineMet: Date.now() <= spec.deadline } : {}),
      ...(f.deployed ? { deployed: f.deployed } : {}),
      check: f.check,
    };
    await this.#update({ state: JobState.SUCCEEDED, result, progress: { ...r.last, step: this.#steps, steps: this.#steps }, reason: this.#note });
    this.#progress({ step: this.#steps, steps: this.#steps, done: true, auc: f.metrics.auc });
    this.ctx.log.info({ version: f.version, auc: f.metrics.auc }, 'job succeeded');
  }

  async #fail(err: unknown): Promise<void> {
    if (err instanceof StaleCoordinator || this.#stale) {
      this.ctx.log.warn({ claim: this.ctx.claim }, 'a coordinator placed later has taken this job over: this copy stops without writing');
      return;
    }
    const reason = err instanceof Error ? err.message : String(err);
    this.ctx.log.warn({ code: errorCode(err), reason }, 'job failed');
    // When even this cannot be written (NATS trouble), the job goes silent and the scheduler's watchdog restarts its coordinator.
    await this.#update({ state: JobState.FAILED, reason }).catch((e: unknown) => this.ctx.log.warn({ err: (e as Error).message }, 'could not record the failure'));
  }

  /**
   * Stopped by a drain or a node shutdown, the job goes on elsewhere and keeps its workers and
   * shards; stopped because the job is over (ended here, or cancelled: its record is terminal),
   * they go with it. A coordinator that was not stopped then removes itself (the record stays).
   */
  async #cleanUp(p: Plan | undefined): Promise<void> {
    // A stale copy leaves the workers and shards to the copy that took over, and does not stop the
    // actor by its id (that is the live copy now): its node's fencing stops it.
    if (this.#stale || this.#abandoned) return;
    const over = !this.#stopped || (await this.#jobs.get(this.#jobId).then((c) => !c || TERMINAL_JOB_STATES.includes(c.state)).catch(() => false));
    if (!over) return;
    // Nor does one that cannot show it still holds the job: a copy cut off from NATS whose failure
    // could not be recorded would otherwise, once its link is back, stop by id the workers — and
    // the coordinator — of the copy placed while it was away. Left running, it is fenced by its
    // node (its directory claim is gone) or restarted by the watchdog.
    const holds = await this.#claim().then(
      () => true,
      (err: unknown) => (this.ctx.log.warn({ err: (err as Error).message }, 'could not confirm this copy still holds the job: leaving its workers and shards'), false),
    );
    if (!holds) return;
    await Promise.all((p?.workers ?? []).map((w) => this.ctx.system.stop(w).catch(() => undefined)));
    if (this.#shardWorld > 0) await removeShards(this.#store, this.#jobId, this.#shardWorld).catch((err: unknown) => this.ctx.log.warn({ err: (err as Error).message }, 'could not remove the training shards'));
    if (!this.#stopped) setImmediate(() => void this.ctx.system.stop(this.ctx.actorId).catch(() => undefined));
  }

  /** Starts the workers that do not answer, all at once (a gang) when none does; waits for capacity. */
  async #startWorkers(p: Plan, spotOk: boolean): Promise<void> {
    // One anti-affinity group with the coordinator: a node loss takes as few of the job's actors as capacity allows.
    const base: SpawnSpec = { type: TRAINER_WORKER_ACTOR, kind: ActorKind.TRAINING, group: jobActorId(this.#jobId), args: p.args, ...(p.spec.resources ? { resources: p.spec.resources } : {}), constraints: { spotOk } };
    await startJobActors(this.ctx, { jobId: this.#jobId, base, ids: p.workers, gang: `job-${this.#jobId}-w`, stopped: () => this.#stopped, waiting: (reason) => this.#update({ state: JobState.PLACING, reason }) });
  }

}
