/**
 * The scheduler's side of actors: spawn / stop requests (`shoal.sched.actors`), and the
 * reconcile loop that keeps every actor in the directory placed — new ones, ones whose node was
 * declared dead, ones a draining node handed back. Every placement is a CAS on the directory
 * entry's revision with a new epoch, so an actor is never claimed twice.
 */
import { nuid } from '@nats-io/transport-node';
import {
  Errors,
  LifecycleState,
  ShoalError,
  encode,
  every,
  request,
  systemClock,
  type Clock,
  type Directory,
  type DirectoryEntry,
  type Logger,
  type NatsConnection,
  type SpawnResult,
  type SpawnSpec,
  type Subjects,
  type Versioned,
} from '../cluster/index.ts';
import type { MembershipView } from './membership-view.ts';
import { placementRequest, type ActorPlacer } from './actor-placer.ts';
import { PendingBackoff } from './pending-backoff.ts';
import type { PlacementRequest } from './types.ts';

type Placed = SpawnResult['actors'][number];

export interface ActorManagerOptions {
  nc: NatsConnection;
  subjects: Subjects;
  directory: Directory;
  membership: MembershipView;
  placer: ActorPlacer;
  log: Logger;
  /** How often pending actors are retried. @default 500 */
  reconcileMs?: number;
  /** Spawn request timeout to a node. @default 10000 */
  spawnTimeoutMs?: number;
  /** Time and timers. @default systemClock */
  clock?: Clock;
  /** Called once per placement attempt: `placed`, `pending` (no node fits now) or `refused` (every fitting node refused), and how long it took. */
  onPlacement?: (outcome: 'placed' | 'pending' | 'refused', seconds: number) => void;
  /**
   * Whether this scheduler still holds the leader lease. Re-placement and background placement
   * act only while it does: a leader cut off from NATS that comes back after a standby took over
   * must not re-place actors on its stale view of the fleet. @default always
   */
  isLeader?: () => boolean;
}

const LIVE: readonly string[] = [LifecycleState.STARTING, LifecycleState.RUNNING, LifecycleState.DRAINING];
/** How long a refused gang's members count as autoscaler demand. */
const GANG_DEMAND_MS = 15_000;

/** Directory states a placement may write over (nobody runs or starts the actor). */
const REUSABLE: readonly LifecycleState[] = [LifecycleState.PENDING, LifecycleState.FAILED, LifecycleState.STOPPED];

/** Pending actors placed at once by a reconcile pass. */
const PLACE_CONCURRENCY = 8;

export class ActorManager {
  readonly #o: ActorManagerOptions;
  /** Latest directory entries by actor id, kept by a watch. */
  readonly #entries = new Map<string, Versioned>();
  readonly #pendingReasons = new Map<string, string>();
  /** The reason's code (scheduler/types.ts PendingCode, or `node-refused`) for metrics. */
  readonly #pendingCodes = new Map<string, string>();
  /**
   * Gangs refused for lack of capacity leave nothing pending (all or nothing), so the node
   * autoscaler would never see them: their members count as demand for a while, long enough for
   * the caller's retry (a training job retries every few seconds) to find the new nodes.
   */
  readonly #gangDemand = new Map<string, { req: PlacementRequest; until: number }>();
  #timer: (() => void) | undefined;
  #stopWatch: (() => void) | undefined;
  #reconciling = false;
  #again = false;
  /** Pending actors being placed right now. */
  readonly #placing = new Set<string>();
  readonly #clock: Clock;
  /** When a pending actor that could not be placed is tried next. */
  readonly #retry: PendingBackoff;
  readonly #startedAt: number;

  constructor(opts: ActorManagerOptions) {
    this.#o = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#retry = new PendingBackoff(this.#clock);
    this.#startedAt = this.#clock.now();
  }

  async start(): Promise<void> {
    // The fleet as known now, then one node change at a time; and the resources held by actors
    // already running (a new leader starts with empty soft state).
    for (const v of this.#o.membership.view()) this.#o.placer.nodeChanged(v.nodeId, v);
    this.#o.membership.onChange((nodeId, view) => this.#o.placer.nodeChanged(nodeId, view));
    for (const v of await this.#o.directory.list({ settleMs: 15_000 })) {
      if (LIVE.includes(v.entry.state) && v.entry.nodeId) this.#o.placer.adopt(v.entry.actorId, v.entry.spec, v.entry.nodeId);
    }
    this.#stopWatch = await this.#o.directory.watch((id, v) => {
      if (v) this.#entries.set(id, v);
      else this.#entries.delete(id);
      if (!v || v.entry.state === LifecycleState.FAILED || v.entry.state === LifecycleState.STOPPED) this.#o.placer.release(id);
      if (v?.entry.state === LifecycleState.PENDING) this.kick();
    });
    this.#o.membership.onDead(() => this.kick());
    this.#o.membership.onChange(() => {
      this.#retry.reset(); // capacity may have appeared: try everything again now
      this.kick();
    });
    this.#timer = every(this.#clock, this.#o.reconcileMs ?? 500, () => this.kick());
  }

  stop(): void {
    this.#timer?.();
    this.#stopWatch?.();
  }

  pending(): { actorId: string; reason: string }[] {
    return [...this.#entries.values()]
      .filter((v) => v.entry.state === LifecycleState.PENDING)
      .map((v) => ({ actorId: v.entry.actorId, reason: this.#pendingReasons.get(v.entry.actorId) ?? v.entry.reason ?? 'waiting for placement' }));
  }

  /** Pending actors counted by reason code (`waiting-for-capacity`, `no-gpu-node`, `node-refused`, … `waiting-for-placement` before a first try). */
  pendingByReason(): Map<string, number> {
    const out = new Map<string, number>();
    for (const v of this.#entries.values()) {
      if (v.entry.state !== LifecycleState.PENDING) continue;
      const code = this.#pendingCodes.get(v.entry.actorId) ?? 'waiting-for-placement';
      out.set(code, (out.get(code) ?? 0) + 1);
    }
    return out;
  }

  /** The directory as last seen (for the service scaler). */
  entries(): Iterable<Versioned> {
    return this.#entries.values();
  }

  /** Starts (or records as pending) one more replica with an explicit id. */
  async spawnReplica(actorId: string, spec: SpawnSpec): Promise<Placed> {
    return this.#spawnOne(actorId, { ...spec, id: actorId });
  }

  /** Pending actors as placement requests (the autoscaler's demand). */
  pendingRequests(): PlacementRequest[] {
    const now = this.#clock.now();
    const gangs: PlacementRequest[] = [];
    for (const [id, d] of this.#gangDemand) {
      if (d.until < now) this.#gangDemand.delete(id);
      else gangs.push(d.req);
    }
    return [...[...this.#entries.values()].filter((v) => v.entry.state === LifecycleState.PENDING).map((v) => placementRequest(v.entry.actorId, v.entry.spec)), ...gangs];
  }

  count(): number {
    return this.#entries.size;
  }

  /**
   * Spawns one actor, or `replicas` replicas of a service (ids `<service>-<i>`). With `gang`,
   * all or nothing: if one replica cannot be placed now, the ones already started are stopped
   * and the call fails with the reason (no entry is left pending).
   */
  async spawn(spec: SpawnSpec, replicas = 1, gang = false): Promise<SpawnResult> {
    const ids: string[] = [];
    if (replicas > 1 || (spec.service && !spec.id)) {
      const base = spec.id ?? spec.service ?? `a-${nuid.next()}`;
      for (let i = 1; i <= replicas; i++) ids.push(`${base}-${i}`);
    } else ids.push(spec.id ?? `a-${nuid.next()}`);
    for (const actorId of ids) this.#o.placer.check(actorId, { ...spec, id: actorId });
    this.#checkType(spec.type);
    const actors: Placed[] = [];
    if (!gang) {
      for (const actorId of ids) actors.push(await this.#spawnOne(actorId, { ...spec, id: actorId }));
      return { actors };
    }
    for (const actorId of ids) {
      const existing = await this.#o.directory.get(actorId);
      if (existing && existing.entry.state !== LifecycleState.FAILED && existing.entry.state !== LifecycleState.STOPPED) {
        await this.#rollback(actors);
        throw Errors.ACTOR_ALREADY_RUNNING(actorId, existing.entry.nodeId || '(pending)');
      }
      const placed = await this.#place(actorId, { ...spec, id: actorId }, existing?.revision ?? 0, (existing?.entry.epoch ?? 0) + 1).catch(async (err: unknown) => {
        await this.#rollback(actors);
        throw err;
      });
      if (!placed) {
        await this.#rollback(actors);
        const until = this.#clock.now() + GANG_DEMAND_MS;
        for (const id of ids) this.#gangDemand.set(id, { req: placementRequest(id, { ...spec, id }), until });
        throw Errors.NO_NODE_AVAILABLE(`gang of ${ids.length} (${actorId})`, this.#pendingReasons.get(actorId) ?? 'waiting for capacity');
      }
      actors.push(placed);
    }
    for (const id of ids) this.#gangDemand.delete(id);
    return { actors };
  }

  /**
   * Refuses at once an actor type that no live node hosts (nodes report the types their
   * `actors.modules` define). With no live node yet, or one that does not report its types,
   * placement waits as for capacity.
   */
  #checkType(type: string): void {
    const alive = this.#o.membership.view().filter((n) => n.alive);
    if (alive.length === 0 || alive.some((n) => !n.capabilities.actorTypes || n.capabilities.actorTypes.includes(type))) return;
    const hosted = [...new Set(alive.flatMap((n) => n.capabilities.actorTypes ?? []))].sort().join(', ');
    throw Errors.UNKNOWN_ACTOR_TYPE(type, `${hosted || 'none'} — no live node loads it; start nodes whose actors.modules define it`);
  }

  async #rollback(placed: Placed[]): Promise<void> {
    await Promise.all(placed.map((p) => this.stopActor(p.actorId).catch(() => undefined)));
  }

  async stopActor(actorId: string): Promise<void> {
    const v = await this.#o.directory.get(actorId);
    if (!v) throw Errors.ACTOR_NOT_FOUND(actorId);
    if (LIVE.includes(v.entry.state) && v.entry.nodeId && this.#o.membership.isAlive(v.entry.nodeId)) {
      await request(this.#o.nc, this.#o.subjects.nodeCtl(v.entry.nodeId), { type: 'stop', actorId }, { timeoutMs: 10_000 });
    } else {
      await this.#o.directory.remove(actorId);
    }
    this.#pendingReasons.delete(actorId);
    this.#pendingCodes.delete(actorId);
  }

  async #spawnOne(actorId: string, spec: SpawnSpec): Promise<Placed> {
    // While this spawn places it, the reconcile loop leaves it alone (a node that refuses it
    // hands the entry back as pending, which would otherwise start a second placement).
    this.#placing.add(actorId);
    try {
      return await this.#spawnOneNow(actorId, spec);
    } finally {
      this.#placing.delete(actorId);
    }
  }

  async #spawnOneNow(actorId: string, spec: SpawnSpec): Promise<Placed> {
    const existing = await this.#o.directory.get(actorId);
    if (existing && existing.entry.state !== LifecycleState.FAILED && existing.entry.state !== LifecycleState.STOPPED) {
      throw Errors.ACTOR_ALREADY_RUNNING(actorId, existing.entry.nodeId || '(pending)');
    }
    const revision = existing?.revision ?? 0;
    const epoch = (existing?.entry.epoch ?? 0) + 1;
    const placed = await this.#place(actorId, spec, revision, epoch);
    if (placed) return placed;
    // No node now: record it as pending (CAS) and let the reconcile loop place it later. A node
    // that refused it may have recorded the failed start meanwhile: write over that revision.
    const reason = this.#pendingReasons.get(actorId) ?? 'waiting for capacity';
    const now = await this.#o.directory.get(actorId);
    if (now && now.revision !== revision && !REUSABLE.includes(now.entry.state)) throw Errors.PLACEMENT_CONFLICT(actorId);
    const entry: DirectoryEntry = { actorId, spec, state: LifecycleState.PENDING, nodeId: '', epoch: Math.max(epoch - 1, now?.entry.epoch ?? 0), updatedAt: Date.now(), reason };
    await this.#o.directory.put(entry, now?.revision ?? 0);
    this.#o.log.info({ actorId, reason }, 'actor pending');
    return { actorId, nodeId: '', state: LifecycleState.PENDING };
  }

  /** Tries nodes until one starts the actor; undefined when none can (reason recorded). */
  async #place(actorId: string, spec: SpawnSpec, revision: number, epoch: number): Promise<Placed | undefined> {
    const t0 = this.#o.onPlacement ? performance.now() : 0;
    let outcome: 'placed' | 'pending' | 'refused' = 'pending';
    try {
      const r = await this.#tryPlace(actorId, spec, revision, epoch);
      outcome = r ? 'placed' : this.#pendingCodes.get(actorId) === 'node-refused' ? 'refused' : 'pending';
      return r;
    } finally {
      this.#o.onPlacement?.(outcome, (performance.now() - t0) / 1000);
    }
  }

  async #tryPlace(actorId: string, spec: SpawnSpec, revision: number, epoch: number): Promise<Placed | undefined> {
    let refused = false;
    // Nodes that refused it during this placement; the placer itself skips nodes that do not load its type.
    const tried = new Set<string>();
    for (;;) {
      const d = this.#o.placer.choose(actorId, spec, tried);
      if ('reason' in d) {
        // After refusals, the last refusal says more than "no node left to try".
        if (!refused) {
          this.#pendingReasons.set(actorId, d.reason);
          this.#pendingCodes.set(actorId, d.code ?? 'waiting-for-capacity');
        }
        return undefined;
      }
      tried.add(d.nodeId);
      try {
        const r = await request<Placed>(this.#o.nc, this.#o.subjects.nodeCtl(d.nodeId), { type: 'spawn', actorId, spec, revision, epoch }, { timeoutMs: this.#o.spawnTimeoutMs ?? 10_000 });
        this.#pendingReasons.delete(actorId);
        this.#pendingCodes.delete(actorId);
        this.#o.nc.publish(this.#o.subjects.event('actor-placed'), encode({ actorId, nodeId: d.nodeId, epoch, at: Date.now() }));
        return r;
      } catch (err) {
        // Lost the CAS: someone else placed it, or it exists. That is the caller's answer.
        if (Errors.PLACEMENT_CONFLICT.is(err) || Errors.ACTOR_ALREADY_RUNNING.is(err)) throw err;
        refused = true;
        this.#o.log.warn({ actorId, nodeId: d.nodeId, err: (err as Error).message }, 'node refused spawn; trying another');
        this.#pendingReasons.set(actorId, `last refusal: ${(err as ShoalError).message}`);
        this.#pendingCodes.set(actorId, 'node-refused');
        // The refusing node hands the entry back (pending, "start failed on …"): the next try goes
        // over that revision. A starting or running record is someone else's placement.
        const cur = await this.#o.directory.get(actorId).catch(() => undefined);
        if (cur && cur.revision !== revision) {
          if (!REUSABLE.includes(cur.entry.state)) throw Errors.PLACEMENT_CONFLICT(actorId);
          revision = cur.revision;
          epoch = Math.max(epoch, cur.entry.epoch + 1);
        }
      }
    }
  }

  /** Runs a reconcile pass now (coalesced if one is running). */
  kick(): void {
    if (this.#reconciling) {
      this.#again = true;
      return;
    }
    this.#reconciling = true;
    void this.#reconcile()
      .catch((err: unknown) => this.#o.log.error({ err }, 'reconcile failed'))
      .finally(() => {
        this.#reconciling = false;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  async #reconcile(): Promise<void> {
    const { membership, directory, log } = this.#o;
    // Until a full dead-after period has passed since we started, an unknown node may simply not
    // have heartbeated to us yet: do not re-place its actors.
    // A view that has heard no record yet (JetStream settling after a failover) waits longer.
    const running = this.#clock.now() - this.#startedAt;
    const settled = running > membership.deadAfterMs && (membership.heardAny() || running > 4 * membership.deadAfterMs);
    const leading = this.#o.isLeader ?? (() => true);
    if (!leading()) return;
    // Declarations first: a node silent past the period is told to the placer (onChange) before
    // its actors are re-placed, or the placer may pick that node again and wait out a spawn timeout.
    membership.sweep();
    for (const v of [...this.#entries.values()]) {
      if (!leading()) return;
      const e = v.entry;
      if (!LIVE.includes(e.state) || !e.nodeId) continue;
      // Its node went silent, or restarted under the same id (the process that ran it is gone,
      // though the node id never stopped heartbeating).
      const silent = !membership.isAlive(e.nodeId) && (settled || membership.isKnown(e.nodeId));
      const restarted = !silent && e.incarnation !== undefined && membership.isStaleClaim(e.nodeId, e.incarnation, e.updatedAt);
      if (silent || restarted) {
        const { incarnation: _gone, ...rest } = e;
        const pending: DirectoryEntry = { ...rest, state: LifecycleState.PENDING, nodeId: '', updatedAt: Date.now(), reason: restarted ? `node ${e.nodeId} restarted` : `node ${e.nodeId} died` };
        try {
          const rev = await directory.update(pending, v.revision);
          this.#entries.set(e.actorId, { entry: pending, revision: rev });
          log.warn({ actorId: e.actorId, nodeId: e.nodeId, why: restarted ? 'restarted' : 'silent' }, 'node lost: re-placing actor');
        } catch (err) {
          if (!Errors.PLACEMENT_CONFLICT.is(err)) throw err;
        }
      }
    }
    // Pending actors are placed a few at a time, in the background: a start can take a while (a
    // model replica loads and warms up; a node that died mid-request answers only by timeout),
    // and it must hold up neither the others nor the next pass — which is what notices the next
    // dead node. An actor that could not be placed waits before it is tried again (250 ms,
    // doubling to 5 s; any node joining resets that), so one that can never start — a model
    // failing its warm-up — does not spin.
    for (const v of this.#entries.values()) {
      if (this.#placing.size >= PLACE_CONCURRENCY || !leading()) break;
      const actorId = v.entry.actorId;
      if (v.entry.state !== LifecycleState.PENDING || this.#placing.has(actorId) || !this.#retry.due(actorId)) continue;
      this.#placing.add(actorId);
      void this.#placeOne(actorId).finally(() => {
        this.#placing.delete(actorId);
        this.kick();
      });
    }
  }

  async #placeOne(actorId: string): Promise<void> {
    const { directory, log } = this.#o;
    const fresh = await directory.get(actorId).catch(() => undefined);
    if (!fresh || fresh.entry.state !== LifecycleState.PENDING) return;
    let placed: Placed | undefined;
    try {
      placed = await this.#place(fresh.entry.actorId, fresh.entry.spec, fresh.revision, fresh.entry.epoch + 1);
      if (placed) log.info({ actorId: placed.actorId, nodeId: placed.nodeId }, 'actor placed');
    } catch (err) {
      if (!Errors.PLACEMENT_CONFLICT.is(err)) log.warn({ actorId, err: (err as Error).message }, 'placement failed');
    }
    if (placed) this.#retry.forget(actorId);
    else this.#retry.failed(actorId);
  }
}
