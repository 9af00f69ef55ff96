/**
 * Deploying model versions as replicated inference services, canaries, promotion and rollback.
 * The deployment record (KV `deploy.<name>`, changed only by compare-and-swap) is what gateways
 * route by; replicas are ordinary actors placed by the scheduler (`kind: inference`), serving
 * on the queue-group subject of their version's service.
 *
 * Order of operations keeps traffic safe: a new track is written as `starting` (gateways do not
 * route to it), its replicas are spawned and answer a readiness probe (they subscribe only after
 * warm-up), then it is marked `ready`; an old track's replicas are stopped only after the record
 * that stops routing to them has been written — the stable version is never scaled down before
 * its successor is ready.
 */
import {
  ActorClient,
  Directory,
  Errors,
  isCasConflict,
  openBucket,
  resources,
  type Logger,
  type NatsConnection,
  type PlacementConstraints,
  type ResourceRequest,
  type ServiceAutoscale,
  type SpawnSpec,
  type Subjects,
} from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry, resolveRef } from '../registry/registry.ts';
import { refuseRejected } from '../registry/rejected.ts';
import { keys, type ModelVersion } from '../registry/schemas.ts';
import { DEFAULT_POLICY, TrackState, isDeployment, type Deployment, serviceName, type RollbackPolicy, type Track } from './canary.ts';
import { INFERENCE_ACTOR_TYPE, type InferenceArgs, type ReadyReply, type WarmupMode } from './messages.ts';
import { planBatching } from './batch-axis.ts';
import { liveStatus, type LiveStatus } from './live-status.ts';
import { checkStepsServing } from './pipeline.ts';
import { PIPELINE_ACTOR_TYPE, type PipelineArgs } from './pipeline-actor.ts';
import { modelView } from './processor.ts';
import { checkFeatureInput } from './entity-features.ts';
import type { MonitoringSpec } from '../monitoring/records.ts';
import { startMonitor, stopMonitor, wantsMonitor } from '../monitoring/monitor-client.ts';
import { checkScaleToZero } from './scale-to-zero-check.ts';
import { clearShadow, startShadow, type ShadowOptions } from './shadow-track.ts';
import type { ScaleToZeroOptions } from './scale-to-zero-spec.ts';

export interface TrackOptions {
  /** Version number or alias. @default the `production` alias, else the latest version */
  version?: number | string;
  /** Serve a version marked rejected (ml/registry/rejected.ts) anyway. @default false */
  allowRejected?: boolean;
  /** @default 1 */
  replicas?: number;
  /** @default 32 */
  maxBatchSize?: number;
  /** @default 0 */
  maxQueueDelayMs?: number;
  /** onnxruntime intra-op threads per session. @default 1 */
  intraOpThreads?: number;
  /** Older name of `intraOpThreads`. */
  threads?: number;
  /**
   * Sessions per replica, each on its own worker thread (Triton's instance group count): the
   * replica runs this many batches at once. @default 1
   */
  instances?: number;
  /**
   * Warm-up before a replica takes traffic (Triton's `model_warmup`): `sample` — the request
   * registered with the version (`--sample`; a failure fails the deploy); `synthetic` — made-up
   * inputs (a failure is a warning in the status); `off`. @default 'sample' when the version has a sample, else 'synthetic'
   */
  warmup?: WarmupMode;
  /** `false`: every request runs alone, shapes as sent (Triton `max_batch_size: 0`). @default true when the model is batchable */
  batching?: boolean;
  /** Batch axis by tensor name where it is not 0 (e.g. a recurrent state [layers, batch, hidden]: `{ h: 1 }`). */
  batchAxes?: Record<string, number>;
  /** Rows a replica queues before refusing more at once (429, SHOAL_ERR_MAILBOX_FULL). @default 4096 */
  maxQueueRows?: number;
  resources?: ResourceRequest;
  constraints?: PlacementConstraints;
  /** How long to wait for replicas to become ready. @default 60000 */
  readyTimeoutMs?: number;
  /**
   * Model monitoring (ml/monitoring): log sampled predictions (`sampleRate`, never the
   * `logExclude` fields) and check feedback labels (`labelType`). Off without it.
   */
  monitoring?: MonitoringSpec;
  /**
   * Let the scheduler keep the replica count between min and max on the replicas' load
   * (ongoing + queued requests per replica); `replicas` is the starting count.
   */
  autoscale?: ServiceAutoscale;
  /**
   * 0: scale to zero — the replicas stop after `scaleToZero.idleTimeoutMs` without requests and
   * start again on the next one (gateways hold requests meanwhile). Stable track only.
   * @default the track always runs its replicas
   */
  minReplicas?: number;
  scaleToZero?: ScaleToZeroOptions;
}

export interface DeployOptions extends TrackOptions {
  policy?: Partial<RollbackPolicy>;
}

export interface CanaryOptions extends TrackOptions {
  /** Share of traffic, 0..1. @default 0.1 */
  weight?: number;
  sticky?: boolean;
}

type ZeroSpec = Omit<SpawnSpec, 'id'>;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const HISTORY = 50;


export class ModelDeployments {
  readonly #client: ActorClient;
  readonly #directory: Directory;

  private constructor(
    readonly nc: NatsConnection,
    readonly subjects: Subjects,
    readonly registry: ModelRegistry,
    directory: Directory,
    private readonly log?: Logger,
  ) {
    this.#directory = directory;
    this.#client = new ActorClient(nc, subjects, directory);
  }

  static async open(nc: NatsConnection, subjects: Subjects, log?: Logger): Promise<ModelDeployments> {
    const registry = await ModelRegistry.open(nc, subjects.prefix);
    const directory = new Directory(await openBucket(nc, resources(subjects.prefix).buckets.actors));
    return new ModelDeployments(nc, subjects, registry, directory, log);
  }

  async get(name: string): Promise<Deployment | undefined> {
    return (await this.#read(name))?.dep;
  }

  async require(name: string): Promise<Deployment> {
    const d = await this.get(name);
    if (!d) throw MlErrors.DEPLOYMENT_NOT_FOUND(name);
    return d;
  }

  /**
   * Serves a version with `replicas` replicas. If the model already serves another version,
   * the new one is brought up first and the old one stopped after traffic moved.
   */
  async deploy(name: string, opts: DeployOptions = {}): Promise<Deployment> {
    const version = await this.#resolve(name, opts.version);
    refuseRejected(await this.registry.version(name, version), opts.allowRejected);
    // Scale-to-zero: refused here, with the reason, when no alive node could ever start it again.
    const zero = await checkScaleToZero(this.nc, this.subjects, name, opts);
    const current = await this.get(name);
    if (current?.stable.version === version && current.stable.state === TrackState.READY) {
      // Deploying what already serves repairs its monitor when that is missing (already running is fine).
      if (wantsMonitor(current.stable.monitoring)) await startMonitor(this.#client, name, version, current.stable.monitoring, this.log);
      return current;
    }
    const started = await this.#startTrack(name, version, opts);
    const track = zero ? { ...started, scaleToZero: zero } : started;
    let old: Track | undefined;
    const dep = await this.#mutate(name, (d) => {
      old = d && d.stable.version !== version ? d.stable : undefined;
      const policy = { ...DEFAULT_POLICY, ...d?.policy, ...opts.policy };
      const next: Deployment = { model: name, stable: track, policy, history: d?.history ?? [], updatedAt: Date.now() };
      if (d?.canary && d.canary.version !== version) next.canary = d.canary;
      if (d?.shadow && d.shadow.version !== version) next.shadow = d.shadow;
      return withEvent(next, old ? 'replaced' : 'deployed', version, old ? `was v${old.version}` : undefined);
    });
    if (old) await this.#stopTrack(old, name);
    return dep;
  }

  /** Starts a canary version beside the stable one; it gets traffic once ready. */
  async canary(name: string, opts: CanaryOptions): Promise<Deployment> {
    const version = await this.#resolve(name, opts.version ?? 'latest');
    refuseRejected(await this.registry.version(name, version), opts.allowRejected);
    if (opts.minReplicas === 0 || opts.scaleToZero) throw Errors.USAGE('minReplicas 0 (scale to zero) is for the stable track: deploy the version, not a canary');
    const weight = opts.weight ?? 0.1;
    if (!(weight >= 0 && weight <= 1)) throw Errors.USAGE(`canary weight must be within 0..1, got ${weight}`);
    const d0 = await this.require(name);
    if (d0.stable.version === version) throw MlErrors.CANARY_NOT_READY(name, `v${version} is already the stable version`);
    if (d0.canary && d0.canary.version !== version) throw MlErrors.CANARY_NOT_READY(name, `v${d0.canary.version} is already the canary; promote or roll it back first`);
    return this.startSideTrack(name, 'canary', version, opts, { weight, sticky: opts.sticky ?? false }, `weight ${weight}`);
  }

  /**
   * Places a track beside the stable one (a canary, or a shadow: shadow-track.ts) the same way:
   * written as `starting` (gateways send it nothing), its replicas spawned and probed, then marked
   * `ready` — or removed from the record again when they fail. Events `<side>-starting`,
   * `<side>-ready`, `<side>-failed`.
   */
  async startSideTrack<S extends 'canary' | 'shadow'>(name: string, side: S, version: number, opts: TrackOptions, extra: Omit<NonNullable<Deployment[S]>, keyof Track>, detail?: string): Promise<Deployment> {
    const starting = { ...this.#track(name, version, opts, TrackState.STARTING), ...extra };
    await this.#mutate(name, (d) => withEvent({ ...need(d, name), [side]: starting, updatedAt: Date.now() }, `${side}-starting`, version, detail));
    let ready: Track;
    try {
      ready = await this.#startTrack(name, version, opts);
    } catch (err) {
      await this.#mutate(name, (d) => {
        const next = { ...need(d, name), updatedAt: Date.now() };
        if (next[side]?.version !== version) return undefined;
        delete next[side];
        return withEvent(next, `${side}-failed`, version, (err as Error).message);
      }).catch(() => undefined);
      throw err;
    }
    return this.#mutate(name, (d) => {
      const cur = need(d, name);
      const track = cur[side];
      if (track?.version !== version) throw MlErrors.CANARY_NOT_READY(name, `the ${side} changed while it was starting`);
      // A shadow's comparison window starts when it can be mirrored to.
      const since = side === 'shadow' ? { since: Date.now() } : {};
      return withEvent({ ...cur, [side]: { ...track, ...ready, ...since }, updatedAt: Date.now() }, `${side}-ready`, version);
    });
  }

  /** Starts a shadow version beside the stable one: mirrored requests only, never answered with (shadow-track.ts). */
  shadow(name: string, opts: ShadowOptions): Promise<Deployment> {
    return startShadow(this, name, opts);
  }

  /** Removes the shadow from routing, then stops its replicas; false when there was none (of `expectVersion`). */
  clearShadow(name: string, reason = 'cleared', expectVersion?: number): Promise<boolean> {
    return clearShadow(this, name, reason, expectVersion);
  }

  async setWeight(name: string, weight: number): Promise<Deployment> {
    if (!(weight >= 0 && weight <= 1)) throw Errors.USAGE(`canary weight must be within 0..1, got ${weight}`);
    return this.#mutate(name, (d) => {
      const cur = need(d, name);
      if (!cur.canary) throw MlErrors.CANARY_NOT_READY(name, 'there is no canary');
      return withEvent({ ...cur, canary: { ...cur.canary, weight }, updatedAt: Date.now() }, 'canary-weight', cur.canary.version, String(weight));
    });
  }

  /** The canary becomes stable (and the `production` alias moves to it); the old stable stops. */
  async promote(name: string, opts: { allowRejected?: boolean } = {}): Promise<Deployment> {
    // The canary is about to take all of the traffic: first give it the stable's capacity.
    const before = await this.require(name);
    if (!before.canary) throw MlErrors.CANARY_NOT_READY(name, 'there is no canary to promote');
    refuseRejected(await this.registry.version(name, before.canary.version), opts.allowRejected);
    if (before.canary.state !== TrackState.READY) throw MlErrors.CANARY_NOT_READY(name, `v${before.canary.version} is still ${before.canary.state}`);
    const replicas = Math.max(before.canary.replicas, before.stable.replicas);
    if (replicas > before.canary.replicas) await this.#scaleUp(name, before.canary, replicas);
    let old: Track | undefined;
    let promoted = 0;
    const dep = await this.#mutate(name, (d) => {
      const cur = need(d, name);
      const c = cur.canary;
      if (!c) throw MlErrors.CANARY_NOT_READY(name, 'there is no canary to promote');
      if (c.state !== TrackState.READY) throw MlErrors.CANARY_NOT_READY(name, `v${c.version} is still ${c.state}`);
      old = cur.stable;
      promoted = c.version;
      const { weight: _w, sticky: _s, ...track } = c;
      const next: Deployment = { ...cur, stable: { ...track, replicas: Math.max(c.replicas, replicas), since: Date.now() }, updatedAt: Date.now() };
      delete next.canary;
      return withEvent(next, 'promoted', c.version, `was v${cur.stable.version}`);
    });
    await this.registry.setAlias(name, 'production', promoted);
    if (old) await this.#stopTrack(old, name);
    return dep;
  }

  /**
   * Removes the canary from routing, then stops its replicas. With `expectVersion`, only if the
   * canary is still that version (so racing gateways roll back once). Returns false when there
   * was nothing to roll back.
   */
  async rollback(name: string, reason: string, expectVersion?: number): Promise<boolean> {
    let removed: Track | undefined;
    await this.#mutate(name, (d) => {
      const cur = need(d, name);
      removed = undefined;
      if (!cur.canary || (expectVersion !== undefined && cur.canary.version !== expectVersion)) return undefined;
      removed = cur.canary;
      const next = { ...cur, updatedAt: Date.now() };
      delete next.canary;
      return withEvent(next, 'rolled-back', cur.canary.version, reason);
    });
    if (!removed) return false;
    this.log?.warn({ model: name, version: removed.version, reason }, 'canary rolled back');
    this.nc.publish(this.subjects.event('model-rollback'), utf8.encode(JSON.stringify({ model: name, version: removed.version, reason, at: Date.now() })));
    await this.#stopTrack(removed, name);
    return true;
  }

  async undeploy(name: string): Promise<void> {
    const cur = await this.require(name);
    await this.registry.kv.delete(keys.deployment(name));
    await this.#stopTrack(cur.stable, name);
    if (cur.canary) await this.#stopTrack(cur.canary, name);
    if (cur.shadow) await this.#stopTrack(cur.shadow, name);
  }

  /**
   * The deployment as it is now: each track's replicas from the directory, each asked a
   * readiness probe (`probeMs` at most, all at once). Status never claims what does not exist —
   * the record says what was asked for; this says what serves.
   */
  async live(name: string, probeMs = 1000): Promise<LiveStatus> {
    return liveStatus(await this.require(name), await this.#directory.list(), (actorId) =>
      this.#client
        .ref(actorId)
        .ask<ReadyReply>({ type: 'ready' }, { timeoutMs: probeMs })
        .catch(() => undefined),
    );
  }

  /** Replica ids of a track (the scheduler names service replicas `<service>-<i>`). */
  replicaIds(t: Track): string[] {
    return Array.from({ length: t.replicas }, (_, i) => `${t.service}-${i + 1}`);
  }

  // ---- for the scale-to-zero controller (zero-controller.ts) ----------------------------------------

  /** Compare-and-swap change of the record (`fn` returning undefined: no change). */
  change(name: string, fn: (d: Deployment | undefined) => Deployment | undefined): Promise<Deployment> {
    return this.#mutate(name, fn);
  }

  /** The spawn spec of a track's first replica, as the directory has it (without its id). */
  async replicaSpec(t: Track): Promise<ZeroSpec | undefined> {
    const first = (await this.#directory.get(`${t.service}-1`))?.entry.spec;
    if (!first) return undefined;
    const { id: _id, ...spec } = first;
    return spec;
  }

  /** Stops every replica of a track (its monitor keeps running). */
  stopReplicas(t: Track): Promise<void> {
    return this.#stopReplicas(t);
  }

  /** Spawns a track's replicas from `spec` and waits until they serve. */
  async startReplicas(name: string, t: Track, spec: ZeroSpec, timeoutMs = 60_000): Promise<void> {
    const ids = this.replicaIds(t);
    try {
      await this.#client.spawn(spec, { replicas: t.replicas, timeoutMs });
    } catch (err) {
      if (!Errors.ACTOR_ALREADY_RUNNING.is(err) && !Errors.PLACEMENT_CONFLICT.is(err) && !Errors.ACTOR_FAILED.is(err)) throw err;
    }
    await this.#waitReady(name, t.version, t.service, ids, timeoutMs);
  }

  // ---- internals --------------------------------------------------------------------------------

  /** A version number for `ref` (number or alias; undefined: production, else latest). */
  resolveVersion(name: string, ref: number | string | undefined): Promise<number> {
    return this.#resolve(name, ref);
  }

  async #resolve(name: string, ref: number | string | undefined): Promise<number> {
    const rec = await this.registry.get(name);
    if (ref === undefined) return rec.aliases.production ?? resolveRef(rec, 'latest');
    return resolveRef(rec, ref);
  }

  #track(name: string, version: number, o: TrackOptions, state: Track['state']): Track {
    return { version, service: serviceName(name, version), replicas: o.replicas ?? 1, state, maxBatchSize: o.maxBatchSize ?? 32, maxQueueDelayMs: o.maxQueueDelayMs ?? 0, since: Date.now(), ...(o.monitoring ? { monitoring: o.monitoring } : {}) };
  }

  /** Spawns the replicas and waits until they answer a readiness probe. */
  /**
   * Adds replicas to a running track (same spawn spec as its first replica) and waits until they
   * serve; on failure the added ones are stopped again and the track is as it was.
   */
  async #scaleUp(name: string, t: Track, replicas: number): Promise<void> {
    const first = (await this.#directory.get(`${t.service}-1`))?.entry.spec;
    if (!first) throw MlErrors.MODEL_NOT_READY(`${name} v${t.version}`, `cannot scale ${t.service}: its first replica is not in the directory`);
    const { id: _id, ...spec } = first;
    const added = Array.from({ length: replicas - t.replicas }, (_, i) => `${t.service}-${t.replicas + i + 1}`);
    try {
      for (const id of added) {
        await this.#client.spawn({ ...spec, id }).catch((err: unknown) => {
          if (!Errors.ACTOR_ALREADY_RUNNING.is(err)) throw err;
        });
      }
      await this.#waitReady(name, t.version, t.service, added, 60_000);
      this.log?.info({ model: name, version: t.version, replicas }, 'canary scaled to the stable capacity before promotion');
    } catch (err) {
      await Promise.all(added.map((id) => this.#client.stop(id).catch(() => undefined)));
      throw err;
    }
  }

  /**
   * Refuses options that cannot work with this version before anything is spawned: batch axes
   * the signature does not have, a `sample` warm-up without a sample.
   */
  #checkOptions(mv: ModelVersion, o: TrackOptions): void {
    const { name, version } = mv;
    if (o.warmup === 'sample' && !mv.sample) throw Errors.USAGE(`warmup "sample": ${name} v${version} has no sample request (register the version with --sample request.json, or use warmup "synthetic" or "off")`);
    if (mv.format === 'pipeline') return;
    // The ONNX file's own signature (with a processor, clients see another one).
    const sig = modelView(mv).signature;
    // Records from before dimension names were kept are checked by the replica, which reads them from the model.
    const named = [...sig.inputs, ...sig.outputs].every((t) => t.dimParams);
    if (named) planBatching(sig, { ...(o.batching !== undefined ? { batching: o.batching } : {}), ...(o.batchAxes ? { batchAxes: o.batchAxes } : {}) });
  }

  async #startTrack(name: string, version: number, o: TrackOptions): Promise<Track> {
    const t = this.#track(name, version, o, TrackState.READY);
    const mv = await this.registry.version(name, version);
    this.#checkOptions(mv, o);
    // A model trained on feature views: refused here, with the reason, when they no longer fit (entity-features.ts).
    await checkFeatureInput(this.nc, this.subjects.prefix, mv);
    const intraOpThreads = o.intraOpThreads ?? o.threads;
    let args: InferenceArgs | PipelineArgs = {
      model: name,
      version,
      maxBatchSize: t.maxBatchSize,
      maxQueueDelayMs: t.maxQueueDelayMs,
      ...(intraOpThreads ? { intraOpThreads } : {}),
      ...(o.instances ? { instances: o.instances } : {}),
      ...(o.warmup ? { warmup: o.warmup } : {}),
      ...(o.batching !== undefined ? { batching: o.batching } : {}),
      ...(o.batchAxes ? { batchAxes: o.batchAxes } : {}),
      ...(o.maxQueueRows ? { maxQueueRows: o.maxQueueRows } : {}),
      ...(o.monitoring ? { monitoring: o.monitoring } : {}),
      // Scale-to-zero: the node keeps a booted session worker for the next start (spare-workers.ts).
      ...(o.minReplicas === 0 && o.scaleToZero?.prewarm !== false ? { spareWorkers: 1 } : {}),
    };
    let type = INFERENCE_ACTOR_TYPE;
    // A pipeline version (pipeline-spec.ts) is served by a pipeline actor, once its step models serve.
    if (mv.format === 'pipeline' && mv.pipeline) {
      await checkStepsServing(`${name} v${version}`, mv.pipeline, this.nc, this.subjects, this.registry);
      [type, args] = [PIPELINE_ACTOR_TYPE, { model: name, version }];
    }
    const ids = this.replicaIds(t);
    try {
      const ready = await this.#spawnAndWait(name, version, t, args, ids, o, type);
      // The version's monitor (monitor-actor.ts), once it serves; pipelines do not log yet.
      if (wantsMonitor(o.monitoring) && mv.format !== 'pipeline') await startMonitor(this.#client, name, version, o.monitoring, this.log);
      return ready;
    } catch (err) {
      // Never leave half-started replicas behind (a model that fails its warm-up would be
      // re-placed forever).
      await this.#stopTrack(t, name);
      throw err;
    }
  }

  async #spawnAndWait(name: string, version: number, t: Track, args: InferenceArgs | PipelineArgs, ids: string[], o: TrackOptions, type = INFERENCE_ACTOR_TYPE): Promise<Track> {
    const running = await Promise.all(ids.map(async (id) => (await this.#directory.get(id))?.entry.state === 'running'));
    if (!running.every(Boolean)) {
      try {
        await this.#client.spawn(
          { type, service: t.service, args, kind: 'inference', ...(o.resources ? { resources: o.resources } : {}), ...(o.constraints ? { constraints: o.constraints } : {}), ...(o.autoscale ? { autoscale: o.autoscale } : {}) },
          { replicas: t.replicas, timeoutMs: o.readyTimeoutMs ?? 60_000 },
        );
      } catch (err) {
        // Already running is fine; a lost placement race or a refused start shows in the directory below.
        if (!Errors.ACTOR_ALREADY_RUNNING.is(err) && !Errors.PLACEMENT_CONFLICT.is(err) && !Errors.ACTOR_FAILED.is(err)) throw err;
      }
    }
    const ready = await this.#waitReady(name, version, t.service, ids, o.readyTimeoutMs ?? 60_000);
    const { batching, warmup, instances, intraOpThreads } = ready;
    if (!batching || !warmup) return t;
    if (warmup.warning) this.log?.warn({ model: name, version, warning: warmup.warning }, 'replica serves with a warm-up warning');
    return { ...t, serving: { batching, warmup, instances, intraOpThreads } };
  }

  /** Waits until every one of `ids` runs and the service answers a readiness probe. */
  async #waitReady(name: string, version: number, service: string, ids: string[], timeoutMs: number): Promise<ReadyReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(ids.map(async (id) => (await this.#directory.get(id))?.entry));
      const failed = states.find((e) => e?.state === 'failed' || (e?.state === 'pending' && /start failed/.test(e.reason ?? '')));
      if (failed) throw MlErrors.MODEL_NOT_READY(`${name} v${version}`, `replica ${failed.actorId} failed: ${failed.reason ?? 'unknown'}`);
      if (states.every((e) => e?.state === 'running')) {
        return await this.#client.service(service).ask<ReadyReply>({ type: 'ready' }, { timeoutMs: 5000, retry: { attempts: 10, delayMs: 100 } });
      }
      if (Date.now() > deadline) {
        const pending = states.filter((e) => e?.state !== 'running').map((e) => `${e?.actorId ?? '?'}: ${e?.state ?? 'missing'}${e?.reason ? ` (${e.reason})` : ''}`);
        throw MlErrors.MODEL_NOT_READY(`${name} v${version}`, `replicas not ready in time: ${pending.join('; ')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async #stopTrack(t: Track, name: string): Promise<void> {
    if (wantsMonitor(t.monitoring)) await stopMonitor(this.#client, name, t.version, this.log);
    await this.#stopReplicas(t);
  }

  async #stopReplicas(t: Track): Promise<void> {
    // The track's own replicas, plus any the scheduler added to its service while autoscaling.
    const ids = new Set(this.replicaIds(t));
    for (const v of await this.#directory.list().catch(() => [])) if (v.entry.spec.service === t.service) ids.add(v.entry.actorId);
    await Promise.all(
      [...ids].map((id) =>
        this.#client.stop(id).catch((err: unknown) => {
          if (!Errors.ACTOR_NOT_FOUND.is(err)) this.log?.warn({ actorId: id, err: (err as Error).message }, 'could not stop replica');
        }),
      ),
    );
  }

  async #read(name: string): Promise<{ dep: Deployment; revision: number } | undefined> {
    const e = await this.registry.kv.get(keys.deployment(name));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    const dep = JSON.parse(fromUtf8.decode(e.value)) as unknown;
    if (!isDeployment.Check(dep)) throw MlErrors.REGISTRY_CONFLICT(`${keys.deployment(name)} (malformed)`);
    return { dep, revision: e.revision };
  }

  /** CAS read-modify-write; `fn` returning undefined means "no change". */
  async #mutate(name: string, fn: (d: Deployment | undefined) => Deployment | undefined): Promise<Deployment> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.#read(name);
      const next = fn(cur?.dep);
      if (next === undefined) return cur!.dep;
      try {
        const data = utf8.encode(JSON.stringify(next));
        if (cur) await this.registry.kv.update(keys.deployment(name), data, cur.revision);
        else await this.registry.kv.create(keys.deployment(name), data);
        return next;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * (attempt + 1)));
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(keys.deployment(name));
  }
}

function need(d: Deployment | undefined, name: string): Deployment {
  if (!d) throw MlErrors.DEPLOYMENT_NOT_FOUND(name);
  return d;
}

function withEvent(d: Deployment, event: string, version: number, detail?: string): Deployment {
  return { ...d, history: [...d.history, { at: Date.now(), event, version, ...(detail ? { detail } : {}) }].slice(-HISTORY) };
}
