/**
 * The node agent: probes and advertises what this machine can do, beats on core NATS every
 * `membership.heartbeatMs` (liveness and load), writes its record (labels, capabilities, state)
 * to the nodes KV bucket when it changes (cluster/heartbeat.ts), answers presence pings and its
 * control subject, and drains on request or SIGTERM.
 *
 * It hosts actors (`ActorHost`) on `spawn` / `stop` commands and owns the node's compute: the
 * worker pool and one `Kernels` (one WebGPU device, one CPU pool) that its actors share through
 * `ctx.kernels`, configured by the config's `kernels.*` and `gpu.adapter`.
 * Drain — a `drain` command, SIGTERM, or a spot preemption notice — stops accepting actors,
 * lets them finish and checkpoint, hands them back to the scheduler, then exits.
 */
import { hostname } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { KV } from '@nats-io/kv';
import { nuid } from '@nats-io/transport-node';
import {
  ActorTypeRegistry,
  Directory,
  LifecycleState,
  NodeCtl,
  NodeHeartbeat,
  Role,
  announce,
  componentLogger,
  moduleUrl,
  openBucket,
  resources,
  serve,
  type Capabilities,
  type NodeLoad,
  type NodeRecord,
  type ProcessContext,
  type ProcessState,
} from '../cluster/index.ts';
import type { NodeProfile } from '../cluster/index.ts';
import { createKernels, kernelsOptionsFrom, type Kernels } from '../kernels/index.ts';
import { probeCapabilities } from './capabilities.ts';
import { ActorHost } from './actor-host.ts';
import { WorkerPool } from './worker-pool.ts';
import { createNodeMetrics, type NodeMetrics } from './node-metrics.ts';

const EL_RESOLUTION_MS = 20;

export interface NodeAgentOptions {
  nodeId: string;
  profile: NodeProfile;
}

export class NodeAgent {
  readonly nodeId: string;
  readonly profile: NodeProfile;
  #state: ProcessState = LifecycleState.STARTING;
  #caps: Capabilities | undefined;
  #bucket: KV | undefined;
  #beats: NodeHeartbeat | undefined;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = Date.now();
  /** This process's boot id: a restart under the same node id is a new incarnation. */
  readonly incarnation = nuid.next();
  #elDelay = monitorEventLoopDelay({ resolution: EL_RESOLUTION_MS });
  #lastCpu = process.cpuUsage();
  #lastCpuAt = process.hrtime.bigint();
  #onDrained: ((reason: string) => void) | undefined;
  #host: ActorHost | undefined;
  #pool: WorkerPool | undefined;
  #kernels: Kernels | undefined;
  #draining: Promise<void> | undefined;
  #metrics: NodeMetrics | undefined;
  /** When the next heartbeat is due (ms, for its lag). */
  #heartbeatDue = 0;

  constructor(
    private readonly ctx: ProcessContext,
    opts: NodeAgentOptions,
  ) {
    this.nodeId = opts.nodeId;
    this.profile = opts.profile;
  }

  get state(): ProcessState {
    return this.#state;
  }

  /** Called when a `drain` command finishes, so the process can exit. */
  onDrained(fn: (reason: string) => void): void {
    this.#onDrained = fn;
  }

  async start(): Promise<void> {
    const log = componentLogger(this.ctx.log, 'node-agent', { nodeId: this.nodeId });
    this.#elDelay.enable();
    this.#metrics = createNodeMetrics(this.ctx.metrics, { host: () => this.#host, pool: () => this.#pool });
    // The node's one kernels instance: a profile without a GPU never loads Dawn.
    const kernelsOpts = kernelsOptionsFrom(this.ctx.config);
    this.#kernels = await createKernels({
      ...kernelsOpts,
      backend: this.profile.gpu ? kernelsOpts.backend : 'cpu',
      logger: componentLogger(this.ctx.log, 'kernels', { nodeId: this.nodeId }),
    });
    const m = this.#metrics;
    this.#kernels.onStep = (backend, seconds) => m.kernelStep(backend, seconds);
    this.#caps = await probeCapabilities({ kernels: this.#kernels, gpu: this.profile.gpu });
    log.info(
      { cpus: this.#caps.cpus, gpu: this.#caps.gpu ? `${this.#caps.gpu.vendor} ${this.#caps.gpu.description}`.trim() : null, gpuReason: this.#caps.gpuUnavailableReason, onnxruntime: this.#caps.onnxruntime?.version ?? null, labels: this.profile.labels },
      'capabilities probed',
    );
    const res = resources(this.ctx.config.subjectPrefix);
    this.#bucket = await openBucket(this.ctx.nc, res.buckets.nodes);
    this.#beats = new NodeHeartbeat(this.ctx.nc, this.ctx.subjects, this.#bucket, this.nodeId);
    const registry = await new ActorTypeRegistry().load(this.ctx.config.actors.modules.map(moduleUrl));
    // Reported on every heartbeat: the scheduler places an actor only where its type is loaded,
    // and job submissions may name only the job entry points among them.
    this.#caps = { ...this.#caps, actorTypes: registry.names(), jobTypes: registry.jobTypes() };
    this.#pool = new WorkerPool({ threads: this.profile.workerThreads });
    this.#host = new ActorHost({
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      nc: this.ctx.nc,
      subjects: this.ctx.subjects,
      registry,
      directory: new Directory(await openBucket(this.ctx.nc, res.buckets.actors)),
      pool: this.#pool,
      checkpoints: await openBucket(this.ctx.nc, res.buckets.checkpoints),
      log: componentLogger(this.ctx.log, 'actor-host', { nodeId: this.nodeId }),
      maxActors: this.ctx.config.actors.maxPerNode,
      fenceCheckMs: this.ctx.config.actors.fenceCheckMs,
      kernels: this.#kernels,
      metrics: this.ctx.metrics,
    });
    await this.#host.start();
    log.info({ actorTypes: registry.names(), jobTypes: registry.jobTypes() }, 'actor types registered');
    const s = this.ctx.subjects;
    serve(this.ctx.nc, s.nodeCtl(this.nodeId), NodeCtl, (cmd) => this.#control(cmd), { log });
    announce(this.ctx.nc, s, { role: Role.NODE, id: this.nodeId, state: () => this.#state, details: () => ({ profile: this.profile.name, labels: this.profile.labels, incarnation: this.incarnation }) }, log);
    this.#state = LifecycleState.RUNNING;
    await this.#putRecord();
    const every = this.ctx.config.membership.heartbeatMs;
    this.#heartbeatDue = Date.now() + every;
    this.#timer = setInterval(() => {
      const due = this.#heartbeatDue;
      this.#heartbeatDue = due + every;
      // The beat goes out now (core NATS); the record only when it is due (cluster/heartbeat.ts).
      const r = this.#beats!.beat(this.record());
      // A timer that fell far behind (a stopped process) starts counting from now again.
      const lag = Math.max(0, Date.now() - due);
      this.#metrics?.heartbeatLag(lag / 1000);
      if (lag > every) this.#heartbeatDue = Date.now() + every;
      if (r.record === 'put') r.done.catch((err: unknown) => log.warn({ err: (err as Error).message }, 'node record not written (due again at the next beat)'));
    }, every);
    log.info({ heartbeatMs: every }, 'node registered');
  }

  async #control(cmd: NodeCtl): Promise<unknown> {
    switch (cmd.type) {
      case 'describe':
        return this.record();
      case 'drain':
        void this.drain(cmd.deadlineMs ?? this.ctx.config.actors.drainTimeoutMs).then(() => this.#onDrained?.('drain command'));
        return { nodeId: this.nodeId, state: this.#state };
      case 'spawn':
        return this.#host!.spawn(cmd.actorId, cmd.spec, cmd.revision, cmd.epoch);
      case 'stop':
        await this.#host!.stop(cmd.actorId);
        return { actorId: cmd.actorId, state: 'stopped' };
      case 'list':
        return { nodeId: this.nodeId, actors: this.#host!.list() };
    }
  }

  load(): NodeLoad {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.#lastCpu);
    const wallUs = Number(now - this.#lastCpuAt) / 1000;
    this.#lastCpu = process.cpuUsage();
    this.#lastCpuAt = now;
    const mem = process.memoryUsage();
    // The histogram's samples include the sampling interval itself; report only the excess.
    const delay = Math.max(0, this.#elDelay.mean / 1e6 - EL_RESOLUTION_MS);
    this.#elDelay.reset();
    const host = this.#host?.stats();
    return {
      actors: host?.actors ?? 0,
      mailboxDepth: host?.mailboxDepth ?? 0,
      rejectedTells: host?.rejectedTells ?? 0,
      processed: host?.processed ?? 0,
      services: host?.services ?? {},
      cpuPercent: wallUs > 0 ? Math.round(((cpu.user + cpu.system) / wallUs) * 1000) / 10 : 0,
      eventLoopDelayMs: Number.isFinite(delay) ? Math.round(delay * 100) / 100 : 0,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
    };
  }

  record(): NodeRecord {
    return {
      nodeId: this.nodeId,
      profile: this.profile.name,
      host: hostname(),
      pid: process.pid,
      state: this.#state,
      labels: this.profile.labels,
      capabilities: this.#caps!,
      load: this.load(),
      startedAt: this.#startedAt,
      incarnation: this.incarnation,
      heartbeatAt: Date.now(),
      heartbeatMs: this.ctx.config.membership.heartbeatMs,
    };
  }

  /** Writes the whole record to the nodes bucket now (start, drain). */
  async #putRecord(): Promise<void> {
    await this.#beats!.put(this.record());
  }

  /** Idempotent: every caller waits for the same drain. */
  drain(deadlineMs: number): Promise<void> {
    if (!this.#draining) {
      this.#state = LifecycleState.DRAINING;
      const log = componentLogger(this.ctx.log, 'node-agent', { nodeId: this.nodeId });
      log.info({ deadlineMs, actors: this.#host?.stats().actors ?? 0 }, 'draining');
      // host.drain() refuses new actors synchronously, before any await; the record tells the
      // scheduler at once.
      const drained = this.#host?.drain(deadlineMs);
      this.#draining = Promise.all([drained, this.#putRecord().catch(() => undefined)]).then(() => log.info('drained'));
    }
    return this.#draining;
  }

  async stop(reason: string): Promise<void> {
    // SIGTERM / SIGINT mean drain (a preemption notice arrives the same way): hand actors off first.
    await this.drain(this.ctx.config.actors.drainTimeoutMs);
    this.#state = LifecycleState.STOPPED;
    await this.#host?.close();
    await this.#pool?.close();
    await this.#kernels?.close();
    if (this.#timer) clearInterval(this.#timer);
    this.#elDelay.disable();
    // A clean exit removes the record at once; a crash leaves it to go stale (declared dead).
    try {
      await this.#bucket?.delete(this.nodeId);
    } catch {
      /* connection already gone */
    }
    componentLogger(this.ctx.log, 'node-agent', { nodeId: this.nodeId }).info({ reason }, 'node deregistered');
  }
}
