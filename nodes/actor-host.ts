/**
 * Hosts actors on a node: one cell per actor with a bounded mailbox, processing one message at
 * a time in arrival order; supervision (restart with backoff up to a budget, then failed and
 * the supervisor told); directory claims by compare-and-swap; fencing (a copy whose directory
 * entry moved elsewhere stops); and drain (stop taking messages, finish what is queued,
 * `onDrain`, hand the actor back to the scheduler as pending).
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import {
  ActorClient,
  ActorSysMessage,
  Errors,
  LifecycleState,
  ShoalError,
  decode,
  encode,
  errorCode,
  endSpan,
  errorHeaders,
  extractTrace,
  otelContext,
  startSpan,
  SpanKind,
  toWireError,
  tracing,
  withSpan,
  validate,
  type ActorContext,
  type ActorTypeRegistry,
  type Directory,
  type DirectoryEntry,
  type Logger,
  type Registry,
  type SpawnSpec,
  type ServiceLoad,
  type Subjects,
} from '../cluster/index.ts';
import type { WorkerPool } from './worker-pool.ts';
import { Cell, decodeMessage, withDeadline, type Envelope } from './cell.ts';

export interface ActorHostOptions {
  nodeId: string;
  /** The node process's boot id, written into every entry it claims. */
  incarnation?: string;
  nc: NatsConnection;
  subjects: Subjects;
  registry: ActorTypeRegistry;
  directory: Directory;
  pool: WorkerPool;
  /** KV bucket for actors' checkpoints. */
  checkpoints: KV;
  log: Logger;
  /** Most actors this node hosts. @default 10000 */
  maxActors?: number;
  /** The node's kernels (`Kernels`), handed to every actor as `ctx.kernels`. */
  kernels?: unknown;
  /** The node's Prometheus registry, handed to every actor as `ctx.metrics`. */
  metrics?: Registry;
  /**
   * How often every hosted actor is checked against the directory, besides the directory watch
   * (which fences at once when it sees the change). 0: never. @default 5000
   */
  fenceCheckMs?: number;
  /** Fence from the directory watch too. Off only in tests of the periodic check. @default true */
  fenceWatch?: boolean;
}

/**
 * Whether the directory entry `v` no longer gives this copy of an actor to `nodeId`: the entry is
 * gone, or placed the actor at a higher epoch, or on another node (re-placed after this node was
 * presumed dead). An entry with no node is one being handed back (drain) and is not stale.
 */
export function staleCopy(cell: { epoch: number }, nodeId: string, v: { entry: DirectoryEntry } | undefined): boolean {
  return !v || v.entry.epoch > cell.epoch || (v.entry.nodeId !== '' && v.entry.nodeId !== nodeId);
}

export interface HostStats {
  actors: number;
  mailboxDepth: number;
  rejectedTells: number;
  processed: number;
  /** Load of the service replicas hosted here (the scheduler scales services on it). */
  services: Record<string, ServiceLoad>;
}

export class ActorHost {
  readonly #cells = new Map<string, Cell>();
  readonly #o: ActorHostOptions;
  readonly #client: ActorClient;
  #accepting = true;
  #rejectedTells = 0;
  #processed = 0;
  /** Supervisor restarts since start, by actor type (cells come and go; the count stays). */
  readonly #restarts = new Map<string, number>();
  /** Log a refused tell once per actor and reason, then count silently. */
  readonly #loggedRejects = new Set<string>();
  #stopWatch: (() => void) | undefined;
  #stopCheck: (() => void) | undefined;
  #checking = false;

  constructor(opts: ActorHostOptions) {
    this.#o = opts;
    this.#client = new ActorClient(opts.nc, opts.subjects, opts.directory);
  }

  async start(): Promise<void> {
    // Fencing: if the directory says one of our actors now lives elsewhere (re-placed after we
    // were presumed dead), stop our copy so it never runs twice. The watch sees it at once; the
    // periodic check catches what a watch can miss — a host cut off from the cluster keeps its
    // connection to its own nats-server, and the watch's consumer, re-created while the stream
    // was out of reach, is not guaranteed to resume (seen once in three partitions of 20 s).
    if (this.#o.fenceWatch !== false) {
      this.#stopWatch = await this.#o.directory.watch((actorId, v) => {
        const cell = this.#cells.get(actorId);
        if (cell && cell.state !== LifecycleState.STOPPED && staleCopy(cell, this.#o.nodeId, v)) this.#fence(cell, v, 'watch');
      });
    }
    const every = this.#o.fenceCheckMs ?? 5000;
    if (every > 0) {
      const timer = setInterval(() => void this.checkFencing(), every);
      timer.unref();
      this.#stopCheck = () => clearInterval(timer);
    }
  }

  /**
   * Checks every hosted actor against its directory entry now and stops the copies the directory
   * has placed again at a higher epoch; returns how many it stopped. (The watch, which sees every
   * change in order, also stops a copy whose entry was deleted or moved: {@link staleCopy}.) A directory that cannot be read (the host is
   * cut off) stops the pass: nothing is stopped on a guess, the next pass asks again.
   */
  async checkFencing(): Promise<number> {
    if (this.#checking) return 0;
    this.#checking = true;
    let fenced = 0;
    try {
      for (const cell of [...this.#cells.values()]) {
        // Not claimed yet (a spawn between its cell and its directory write), or already stopping.
        if (cell.revision === 0 || cell.state === LifecycleState.STOPPED) continue;
        const v = await this.#o.directory.get(cell.actorId);
        if (this.#cells.get(cell.actorId) !== cell || (cell.state as LifecycleState) === LifecycleState.STOPPED) continue;
        // Only positive evidence: a placement at a higher epoch. A read can come from a replica of
        // the bucket that is behind or just restarted (no entry, or an older one naming the node
        // the actor was on before): stopping on that would take down a live actor nobody re-places.
        if (v && v.entry.epoch > cell.epoch) {
          this.#fence(cell, v, 'check');
          fenced++;
        }
      }
    } catch (err) {
      this.#o.log.debug({ err: (err as Error).message }, 'fencing check: the directory is not readable now; asked again next time');
    } finally {
      this.#checking = false;
    }
    return fenced;
  }

  #fence(cell: Cell, v: { entry: DirectoryEntry } | undefined, by: 'watch' | 'check'): void {
    this.#o.log.warn({ actorId: cell.actorId, owner: v?.entry.nodeId, epoch: v?.entry.epoch, ours: cell.epoch, by }, 'actor claimed elsewhere: stopping our copy');
    void this.#shutdownCell(cell, 'fenced', false);
  }

  stats(): HostStats {
    let depth = 0;
    const services: Record<string, ServiceLoad> = {};
    for (const c of this.#cells.values()) {
      depth += c.depth;
      const svc = c.spec.service;
      if (!svc || c.state !== LifecycleState.RUNNING) continue;
      const l = (services[svc] ??= { replicas: 0, ongoing: 0, queued: 0 });
      l.replicas++;
      l.ongoing += c.concurrency > 1 ? c.inFlight : c.busy ? 1 : 0;
      l.queued += c.depth;
    }
    return { actors: this.#cells.size, mailboxDepth: depth, rejectedTells: this.#rejectedTells, processed: this.#processed, services };
  }

  /** Supervisor restarts since this node started, by actor type. */
  restartsByType(): ReadonlyMap<string, number> {
    return this.#restarts;
  }

  list(): { actorId: string; type: string; state: LifecycleState; mailbox: number; restarts: number; service?: string }[] {
    return [...this.#cells.values()].map((c) => ({ actorId: c.actorId, type: c.type.name, state: c.state, mailbox: c.depth, restarts: c.restartCount, ...(c.spec.service ? { service: c.spec.service } : {}) }));
  }

  /** Starts an actor here, claiming its directory entry with CAS at `revision` (0 = new). */
  async spawn(actorId: string, spec: SpawnSpec, revision: number, epoch: number): Promise<{ actorId: string; nodeId: string; state: LifecycleState }> {
    const { nodeId, registry, directory } = this.#o;
    if (!this.#accepting) throw Errors.NODE_DRAINING(nodeId);
    const type = registry.get(spec.type);
    if (!type) throw Errors.UNKNOWN_ACTOR_TYPE(spec.type, registry.names().join(', '));
    if (this.#cells.has(actorId)) throw Errors.ACTOR_ALREADY_RUNNING(actorId, nodeId);
    if (this.#cells.size >= (this.#o.maxActors ?? 10_000)) throw Errors.NODE_FULL(nodeId, this.#o.maxActors ?? 10_000);

    const cell = new Cell(actorId, spec, type, epoch);
    this.#cells.set(actorId, cell);
    try {
      cell.revision = await directory.put(this.#entry(cell, LifecycleState.STARTING), revision);
      await this.#instantiate(cell);
      this.#subscribe(cell);
      cell.state = LifecycleState.RUNNING;
      cell.revision = await directory.update(this.#entry(cell, LifecycleState.RUNNING), cell.revision);
    } catch (err) {
      this.#cells.delete(actorId);
      for (const s of cell.subs) s.unsubscribe();
      // Hand a half-claimed entry back so the scheduler can place it elsewhere.
      if (cell.revision > 0) await directory.update({ ...this.#entry(cell, LifecycleState.PENDING), nodeId: '', reason: `start failed on ${nodeId}: ${(err as Error).message}` }, cell.revision).catch(() => undefined);
      throw err instanceof ShoalError ? err : Errors.ACTOR_FAILED(actorId, `onStart: ${(err as Error).message}`);
    }
    this.#o.log.info({ actorId, type: spec.type, service: spec.service, epoch }, 'actor started');
    return { actorId, nodeId, state: cell.state };
  }

  /** Stops an actor for good (its directory entry is removed). */
  async stop(actorId: string): Promise<void> {
    const cell = this.#cells.get(actorId);
    if (!cell) throw Errors.ACTOR_NOT_FOUND(actorId);
    await this.#shutdownCell(cell, 'stopped', true);
    await this.#o.directory.remove(actorId).catch(() => undefined);
    await this.#o.checkpoints.delete(actorId).catch(() => undefined);
  }

  /**
   * Drain: refuse new actors, stop taking messages (callers get no-responders and retry once the
   * actor is re-placed), finish what is queued, run `onDrain`, and hand every actor back to the
   * scheduler as pending. Returns within `deadlineMs`.
   */
  async drain(deadlineMs: number): Promise<void> {
    this.#accepting = false;
    const cells = [...this.#cells.values()];
    const deadline = Date.now() + deadlineMs;
    await Promise.all(
      cells.map(async (cell) => {
        if (cell.state !== LifecycleState.RUNNING) return;
        cell.state = LifecycleState.DRAINING;
        await Promise.all(cell.subs.map((s) => s.drain().catch(() => undefined)));
        await withDeadline(this.#idle(cell), deadline);
        try {
          await withDeadline(Promise.resolve(cell.instance.onDrain?.()), deadline);
        } catch (err) {
          this.#o.log.warn({ actorId: cell.actorId, err: (err as Error).message }, 'onDrain failed');
        }
        cell.state = LifecycleState.STOPPED;
        this.#refuseQueued(cell, 'draining');
        this.#cells.delete(cell.actorId);
        await this.#o.directory
          .update({ ...this.#entry(cell, LifecycleState.PENDING), nodeId: '', reason: `node ${this.#o.nodeId} drained` }, cell.revision)
          .catch((err: unknown) => this.#o.log.warn({ actorId: cell.actorId, err: (err as Error).message }, 'hand-off failed'));
        this.#o.log.info({ actorId: cell.actorId }, 'actor drained and handed off');
      }),
    );
  }

  async close(): Promise<void> {
    this.#stopWatch?.();
    this.#stopCheck?.();
    await Promise.all([...this.#cells.values()].map((c) => this.#shutdownCell(c, 'node stopping', true)));
  }

  // ---- internals -------------------------------------------------------------------------------

  #entry(cell: Cell, state: LifecycleState): DirectoryEntry {
    return { actorId: cell.actorId, spec: cell.spec, state, nodeId: this.#o.nodeId, ...(this.#o.incarnation ? { incarnation: this.#o.incarnation } : {}), epoch: cell.epoch, updatedAt: Date.now() };
  }

  async #instantiate(cell: Cell): Promise<void> {
    const instance = cell.type.create(cell.spec.args);
    const pool = this.#o.pool;
    const ctx: ActorContext = {
      actorId: cell.actorId,
      nodeId: this.#o.nodeId,
      log: this.#o.log.child({ actorId: cell.actorId }),
      restarts: cell.restartCount,
      claim: cell.revision,
      system: this.#client,
      runTask: (moduleUrl, fn, args) => pool.run(moduleUrl, fn, args),
      nc: this.#o.nc,
      subjects: this.#o.subjects,
      kernels: this.#o.kernels,
      ...(this.#o.metrics ? { metrics: this.#o.metrics } : {}),
      checkpoint: {
        save: async (state) => void (await this.#o.checkpoints.put(cell.actorId, encode(state))),
        load: async <T>() => {
          const e = await this.#o.checkpoints.get(cell.actorId);
          return e && e.operation === 'PUT' && e.value.length > 0 ? (decode(e.value) as T) : undefined;
        },
      },
    };
    instance.ctx = ctx;
    cell.instance = instance;
    await instance.onStart?.();
  }

  #subscribe(cell: Cell): void {
    const { nc, subjects } = this.#o;
    const onMsg = (err: Error | null, m: Msg) => {
      if (!err) this.#receive(cell, m);
    };
    cell.subs.push(nc.subscribe(subjects.actor(cell.actorId), { callback: onMsg }));
    cell.subs.push(nc.subscribe(subjects.actorSys(cell.actorId), { callback: (err, m) => void (err || this.#system(cell, m)) }));
    if (cell.spec.service) cell.subs.push(nc.subscribe(subjects.service(cell.spec.service), { queue: cell.spec.service, callback: onMsg }));
  }

  #receive(cell: Cell, m: Msg): void {
    let msg: unknown;
    try {
      if (cell.state !== LifecycleState.RUNNING) throw Errors.ACTOR_STOPPED(cell.actorId, cell.state);
      msg = decodeMessage(m);
      if (!cell.check.Check(msg as never)) validate(cell.type.messages, msg, `${m.subject} (actor ${cell.actorId})`);
      const env: Envelope = { msg, reply: m.reply ? m : undefined };
      if (tracing.on) {
        const t = extractTrace(m.headers);
        if (t) env.trace = t;
      }
      if (!cell.mailbox.offer(env)) throw Errors.MAILBOX_FULL(cell.actorId, cell.mailbox.capacity);
    } catch (err) {
      this.#refuse(cell, m, err);
      return;
    }
    if (cell.concurrency > 1) this.#pump(cell);
    else if (!cell.busy) void this.#process(cell);
  }

  /** Concurrent types: start queued messages while fewer than `concurrency` are in flight. */
  #pump(cell: Cell): void {
    while (cell.inFlight < cell.concurrency && !cell.restarting && (cell.state === LifecycleState.RUNNING || cell.state === LifecycleState.DRAINING)) {
      const env = cell.mailbox.poll();
      if (env === undefined) break;
      cell.inFlight++;
      cell.busy = true;
      void this.#runOne(cell, env);
    }
  }

  async #runOne(cell: Cell, env: Envelope): Promise<void> {
    try {
      let result = env.trace ? this.#traced(cell, env) : cell.instance.receive(env.msg);
      if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') result = await result;
      this.#processed++;
      env.reply?.respond(encode(result ?? null));
    } catch (err) {
      this.#processed++;
      env.reply?.respond(new Uint8Array(0), { headers: errorHeaders(Errors.ACTOR_FAILED(cell.actorId, err instanceof Error ? err.message : String(err))) });
      // One restart at a time; messages already in flight finish on the old instance.
      if (!cell.restarting) {
        cell.restarting = true;
        try {
          await this.#onCrash(cell, err);
        } finally {
          cell.restarting = false;
        }
      }
    } finally {
      cell.inFlight--;
      this.#pump(cell);
      if (cell.inFlight === 0 && !cell.restarting) {
        cell.busy = false;
        if (cell.mailbox.size === 0) for (const w of cell.idleWaiters.splice(0)) w();
      }
    }
  }

  /**
   * A message that carried a trace: handled inside a consumer span that is the sender's child,
   * so whatever the actor does (a batch, a run, asks to other actors) joins the same trace.
   */
  async #traced(cell: Cell, env: Envelope): Promise<unknown> {
    const type = (env.msg as { type?: unknown })?.type;
    const span = startSpan(`${cell.type.name} receive${typeof type === 'string' ? ` ${type}` : ''}`, {
      kind: SpanKind.CONSUMER,
      parent: env.trace!,
      attributes: { 'messaging.system': 'nats', 'shoal.actor.id': cell.actorId, 'shoal.actor.type': cell.type.name, 'shoal.node.id': this.#o.nodeId },
    });
    try {
      const r = await otelContext.with(withSpan(span, env.trace), () => cell.instance.receive(env.msg));
      endSpan(span);
      return r;
    } catch (err) {
      endSpan(span, err);
      throw err;
    }
  }

  #refuse(cell: Cell, m: Msg, err: unknown): void {
    if (m.reply) {
      m.respond(new Uint8Array(0), { headers: errorHeaders(err) });
      return;
    }
    // A refused tell is never silent: counted, and logged once per actor and reason.
    this.#rejectedTells++;
    const code = errorCode(err) ?? 'unknown';
    const key = `${cell.actorId}:${code}`;
    if (!this.#loggedRejects.has(key)) {
      this.#loggedRejects.add(key);
      this.#o.log.warn({ actorId: cell.actorId, code, err: (err as Error).message }, 'tell refused (further refusals of this kind are only counted)');
    }
  }

  async #process(cell: Cell): Promise<void> {
    cell.busy = true;
    try {
      while (cell.state === LifecycleState.RUNNING || cell.state === LifecycleState.DRAINING) {
        const env = cell.mailbox.poll();
        if (env === undefined) break;
        let result: unknown;
        try {
          result = env.trace ? this.#traced(cell, env) : cell.instance.receive(env.msg);
          if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') result = await result;
        } catch (err) {
          this.#processed++;
          env.reply?.respond(new Uint8Array(0), { headers: errorHeaders(Errors.ACTOR_FAILED(cell.actorId, err instanceof Error ? err.message : String(err))) });
          await this.#onCrash(cell, err);
          continue;
        }
        this.#processed++;
        env.reply?.respond(encode(result ?? null));
      }
    } finally {
      cell.busy = false;
      if (cell.mailbox.size === 0) for (const w of cell.idleWaiters.splice(0)) w();
    }
  }

  /** Supervision: restart with backoff, or give up, mark failed and tell the supervisor. */
  async #onCrash(cell: Cell, err: unknown): Promise<void> {
    const { maxRestarts, withinMs, backoffMs } = cell.supervision;
    const now = Date.now();
    cell.restarts = cell.restarts.filter((t) => now - t < withinMs);
    const log = this.#o.log.child({ actorId: cell.actorId });
    if (cell.restarts.length >= maxRestarts) {
      log.error({ err: (err as Error).message, restarts: cell.restarts.length, withinMs }, 'actor failed: restart budget spent');
      await this.#fail(cell, err);
      return;
    }
    cell.restarts.push(now);
    cell.restartCount++;
    this.#restarts.set(cell.type.name, (this.#restarts.get(cell.type.name) ?? 0) + 1);
    const delay = Math.min(5000, backoffMs * 2 ** (cell.restarts.length - 1));
    log.warn({ err: (err as Error).message, restart: cell.restartCount, delayMs: delay }, 'actor crashed: restarting');
    await new Promise((r) => setTimeout(r, delay));
    try {
      await this.#instantiate(cell);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'restart failed');
      await this.#fail(cell, e);
    }
  }

  async #fail(cell: Cell, err: unknown): Promise<void> {
    cell.state = LifecycleState.FAILED;
    for (const s of cell.subs) s.unsubscribe();
    this.#refuseQueued(cell, 'failed');
    this.#cells.delete(cell.actorId);
    const w = toWireError(err instanceof ShoalError ? err : Errors.ACTOR_FAILED(cell.actorId, err instanceof Error ? err.message : String(err)));
    const reason = `${w.code}: ${w.message}`;
    await this.#o.directory.update({ ...this.#entry(cell, LifecycleState.FAILED), reason }, cell.revision).catch(() => undefined);
    this.#o.nc.publish(this.#o.subjects.event('actor-failed'), encode({ actorId: cell.actorId, nodeId: this.#o.nodeId, reason, at: Date.now() }));
    if (cell.spec.supervisor) {
      this.#o.nc.publish(this.#o.subjects.actorSys(cell.spec.supervisor), encode({ type: 'child-failed', actorId: cell.actorId, code: w.code, message: w.message } satisfies ActorSysMessage));
    }
  }

  #system(cell: Cell, m: Msg): void {
    try {
      const sys = validate(ActorSysMessage, decode(m.data), m.subject);
      if (sys.type === 'child-failed' && cell.instance.onChildFailed) {
        void Promise.resolve(cell.instance.onChildFailed({ actorId: sys.actorId, code: sys.code, message: sys.message })).catch((err: unknown) =>
          this.#o.log.warn({ actorId: cell.actorId, err: (err as Error).message }, 'onChildFailed threw'),
        );
      }
    } catch (err) {
      // A typed error to whoever asked; a bad tell is logged. The actor carries on either way.
      if (m.reply) m.respond(new Uint8Array(0), { headers: errorHeaders(err) });
      this.#o.log.warn({ actorId: cell.actorId, err: (err as Error).message }, 'bad system message');
    }
  }

  #refuseQueued(cell: Cell, state: string): void {
    for (const env of cell.mailbox.drainAll()) {
      if (env.reply) env.reply.respond(new Uint8Array(0), { headers: errorHeaders(Errors.ACTOR_STOPPED(cell.actorId, state)) });
      else this.#rejectedTells++;
    }
    for (const w of cell.idleWaiters.splice(0)) w();
  }

  #idle(cell: Cell): Promise<void> {
    if (!cell.busy && cell.depth === 0) return Promise.resolve();
    return new Promise((r) => cell.idleWaiters.push(r));
  }

  async #shutdownCell(cell: Cell, why: string, callOnStop: boolean): Promise<void> {
    if (cell.state === LifecycleState.STOPPED) return;
    cell.state = LifecycleState.STOPPED;
    for (const s of cell.subs) s.unsubscribe();
    this.#refuseQueued(cell, why);
    this.#cells.delete(cell.actorId);
    if (callOnStop) {
      try {
        await cell.instance?.onStop?.();
      } catch (err) {
        this.#o.log.warn({ actorId: cell.actorId, err: (err as Error).message }, 'onStop threw');
      }
    }
  }
}


