/**
 * Many virtual node agents in one process, for measuring the control plane at 1,000s of nodes on
 * one machine (`npm run bench:scale`). Each virtual node speaks the node protocol a real agent
 * speaks — a beat on core NATS every heartbeat and its record in the `nodes` KV bucket when it
 * changes (cluster/heartbeat.ts, as a real agent), its own control subject
 * (`describe`, `spawn`, `stop`, `list`, `drain`), an answer to presence pings, directory claims by
 * CAS with the placement's epoch — but hosts only two trivial actor types: `echo` (replies with
 * the message) and `sleep` (replies after `ms`). No kernels, no worker pool, no onnxruntime.
 *
 * Each virtual node has its own NATS connection as its own user (`node-<id>`, with the node role's
 * permissions), exactly as a real agent: the server sees N clients, N sets of subscriptions and N
 * heartbeat publishers. Only the process (and its event loop) is shared.
 */
import type { KV } from '@nats-io/kv';
import { nuid, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  Directory,
  Errors,
  LifecycleState,
  NodeCtl,
  NodeHeartbeat,
  Role,
  SHOAL_VERSION,
  decode,
  encode,
  openBucket,
  resources,
  serve,
  type NodeLabels,
  type NodeRecord,
  type ProcessInfo,
  type SpawnSpec,
  type Subjects,
} from '../cluster/index.ts';

export const VIRTUAL_ACTOR_TYPES = ['echo', 'sleep'] as const;

export interface VirtualFleetOptions {
  /** Opens a node's own connection (as user `node-<nodeId>`). */
  connect: (nodeId: string) => Promise<NatsConnection>;
  /** Connections opened at once while starting. @default 64 */
  connectConcurrency?: number;
  subjects: Subjects;
  prefix: string;
  count: number;
  /** Node ids are `<idPrefix>-<i>`. */
  idPrefix: string;
  /** Labels per node index (pool, zone, spot, price). */
  labels: (i: number) => NodeLabels;
  heartbeatMs: number;
  cpus?: number;
  memoryBytes?: number;
  /** Spread the first heartbeats over one period instead of a burst. @default true */
  stagger?: boolean;
}

interface VirtualActor {
  epoch: number;
  revision: number;
  spec: SpawnSpec;
  subs: Subscription[];
}

class VirtualNode {
  readonly incarnation = nuid.next();
  readonly startedAt = Date.now();
  readonly actors = new Map<string, VirtualActor>();
  state: 'running' | 'draining' | 'stopped' = 'running';
  silent = false;
  subs: Subscription[] = [];
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly nodeId: string,
    readonly labels: NodeLabels,
    readonly nc: NatsConnection,
    readonly bucket: KV,
    readonly directory: Directory,
    readonly heartbeat: NodeHeartbeat,
  ) {}
}

/** The node ids a fleet of `count` gets (give them NATS users before `start`). */
export const virtualNodeIds = (idPrefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${idPrefix}-${i}`);

export class VirtualFleet {
  readonly #o: VirtualFleetOptions;
  readonly #nodes = new Map<string, VirtualNode>();
  /** Beats published (core NATS). */
  heartbeats = 0;
  /** Record puts acknowledged, and failed. */
  recordPuts = 0;
  heartbeatErrors = 0;
  /** Record puts due but not sent because the node's previous put had not been acknowledged yet. */
  heartbeatsSkipped = 0;
  /** The last record put failure's message (for a benchmark's report). */
  lastHeartbeatError: string | undefined;

  constructor(opts: VirtualFleetOptions) {
    if (!Number.isInteger(opts.count) || opts.count < 1) throw Errors.BAD_CONFIG('count', `a virtual fleet needs at least one node, got ${opts.count}`);
    this.#o = opts;
  }

  get nodeIds(): string[] {
    return [...this.#nodes.keys()];
  }

  async start(): Promise<void> {
    const res = resources(this.#o.prefix);
    const { count, heartbeatMs } = this.#o;
    const ids = virtualNodeIds(this.#o.idPrefix, count);
    const width = this.#o.connectConcurrency ?? 64;
    for (let at = 0; at < count; at += width) {
      await Promise.all(
        ids.slice(at, at + width).map(async (nodeId, k) => {
          const i = at + k;
          const nc = await this.#o.connect(nodeId);
          const bucket = await openBucket(nc, res.buckets.nodes);
          const node = new VirtualNode(nodeId, this.#o.labels(i), nc, bucket, new Directory(await openBucket(nc, res.buckets.actors)), new NodeHeartbeat(nc, this.#o.subjects, bucket, nodeId));
          this.#nodes.set(nodeId, node);
          node.subs.push(serve(nc, this.#o.subjects.nodeCtl(nodeId), NodeCtl, (cmd) => this.#control(node, cmd)));
          node.subs.push(nc.subscribe(this.#o.subjects.sysPing, { callback: (err, m) => void (err || this.#answerPing(node, m)) }));
        }),
      );
    }
    for (const [i, nodeId] of ids.entries()) {
      const node = this.#nodes.get(nodeId)!;
      const first = this.#o.stagger === false ? 0 : Math.floor((i / count) * heartbeatMs);
      node.timer = setTimeout(() => {
        this.#heartbeat(node);
        node.timer = setInterval(() => this.#heartbeat(node), heartbeatMs);
      }, first);
    }
  }

  /** Stops one node's heartbeats and control subject, as if its machine died (no clean exit). */
  silence(nodeId: string): void {
    const node = this.#nodes.get(nodeId);
    if (!node) throw Errors.USAGE(`no virtual node "${nodeId}"`);
    node.silent = true;
    clearTimeout(node.timer);
    clearInterval(node.timer);
    for (const s of [...node.subs, ...[...node.actors.values()].flatMap((a) => a.subs)]) s.unsubscribe();
  }

  /** How many actors each node hosts (by node id). */
  actorCounts(): Record<string, number> {
    return Object.fromEntries([...this.#nodes.values()].map((n) => [n.nodeId, n.actors.size]));
  }

  /** The actors a node hosts. */
  actorsOn(nodeId: string): string[] {
    return [...(this.#nodes.get(nodeId)?.actors.keys() ?? [])];
  }

  async stop(): Promise<void> {
    const nodes = [...this.#nodes.values()];
    for (const node of nodes) {
      if (!node.silent) this.silence(node.nodeId);
      node.state = 'stopped';
    }
    // A clean stop removes the records, as a real agent's clean exit does.
    await Promise.allSettled(nodes.map((n) => n.bucket.delete(n.nodeId)));
    await Promise.allSettled(nodes.map((n) => n.nc.close()));
  }

  #record(node: VirtualNode): NodeRecord {
    return {
      nodeId: node.nodeId,
      profile: 'virtual',
      host: 'virtual',
      pid: process.pid,
      state: node.state,
      labels: node.labels,
      capabilities: { cpus: this.#o.cpus ?? 4, memoryBytes: this.#o.memoryBytes ?? 8 * 2 ** 30, gpu: null, gpuUnavailableReason: 'virtual node', onnxruntime: null, actorTypes: [...VIRTUAL_ACTOR_TYPES], jobTypes: [] },
      load: { actors: node.actors.size, mailboxDepth: 0, rejectedTells: 0, processed: 0, services: {}, cpuPercent: 0, eventLoopDelayMs: 0, rssBytes: 0, heapUsedBytes: 0 },
      startedAt: node.startedAt,
      incarnation: node.incarnation,
      heartbeatAt: Date.now(),
      heartbeatMs: this.#o.heartbeatMs,
    };
  }

  #heartbeat(node: VirtualNode): void {
    if (node.silent) return;
    const r = node.heartbeat.beat(this.#record(node));
    this.heartbeats++;
    if (r.record === 'skipped') this.heartbeatsSkipped++;
    if (r.record !== 'put') return;
    r.done.then(
      () => void this.recordPuts++,
      (err: unknown) => {
        this.heartbeatErrors++;
        this.lastHeartbeatError = (err as Error).message;
      },
    );
  }


  #answerPing(node: VirtualNode, m: Msg): void {
    if (!m.reply || node.silent) return;
    const info: ProcessInfo = { role: Role.NODE, id: node.nodeId, pid: process.pid, host: 'virtual', state: node.state, startedAt: node.startedAt, version: SHOAL_VERSION, details: { profile: 'virtual', labels: node.labels, incarnation: node.incarnation } };
    m.respond(encode(info));
  }

  async #control(node: VirtualNode, cmd: NodeCtl): Promise<unknown> {
    switch (cmd.type) {
      case 'describe':
        return this.#record(node);
      case 'list':
        return { nodeId: node.nodeId, actors: [...node.actors.keys()] };
      case 'drain':
        node.state = 'draining';
        return { nodeId: node.nodeId, state: node.state };
      case 'stop': {
        const a = node.actors.get(cmd.actorId);
        if (!a) throw Errors.ACTOR_NOT_FOUND(cmd.actorId);
        for (const s of a.subs) s.unsubscribe();
        node.actors.delete(cmd.actorId);
        await node.directory.remove(cmd.actorId).catch(() => undefined);
        return { actorId: cmd.actorId, state: 'stopped' };
      }
      case 'spawn':
        return this.#spawn(node, cmd.actorId, cmd.spec, cmd.revision, cmd.epoch);
    }
  }

  async #spawn(node: VirtualNode, actorId: string, spec: SpawnSpec, revision: number, epoch: number): Promise<unknown> {
    if (node.state !== 'running') throw Errors.NODE_DRAINING(node.nodeId);
    if (!(VIRTUAL_ACTOR_TYPES as readonly string[]).includes(spec.type)) throw Errors.UNKNOWN_ACTOR_TYPE(spec.type, VIRTUAL_ACTOR_TYPES.join(', '));
    if (node.actors.has(actorId)) throw Errors.ACTOR_ALREADY_RUNNING(actorId, node.nodeId);
    const dir = node.directory;
    const entry = (state: LifecycleState) => ({ actorId, spec, state, nodeId: node.nodeId, incarnation: node.incarnation, epoch, updatedAt: Date.now() });
    const a: VirtualActor = { epoch, revision: 0, spec, subs: [] };
    a.revision = await dir.put(entry(LifecycleState.STARTING), revision);
    const onMsg = (err: Error | null, m: Msg) => {
      if (err || !m.reply) return;
      const ms = spec.type === 'sleep' ? Math.min(60_000, Number((decode(m.data) as { ms?: number } | null)?.ms ?? 0)) : 0;
      if (ms > 0) setTimeout(() => m.respond(m.data), ms);
      else m.respond(m.data);
    };
    a.subs.push(node.nc.subscribe(this.#o.subjects.actor(actorId), { callback: onMsg }));
    if (spec.service) a.subs.push(node.nc.subscribe(this.#o.subjects.service(spec.service), { queue: spec.service, callback: onMsg }));
    node.actors.set(actorId, a);
    a.revision = await dir.update(entry(LifecycleState.RUNNING), a.revision);
    return { actorId, nodeId: node.nodeId, state: LifecycleState.RUNNING };
  }
}
