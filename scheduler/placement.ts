/**
 * The placer: filter → score → bind.
 *
 * - **Filter** works on pools, not nodes: nodes that share every label but price form one pool
 *   (one shape, one failure domain), so a request's labels, market (spot or not), GPU count and
 *   features, and the pool's summed free space are checked once per pool.
 * - **Score** asks the strategy for a pool-level score, then looks at a bounded number of nodes
 *   in the best pools only (partly used nodes from a rotating cursor plus one empty node), so a
 *   placement costs O(pools + candidates), not O(nodes). That is what makes 10,000 nodes cheap.
 * - **Bind** allocates the request on the chosen node and remembers it, so `release()` and
 *   `evacuate()` can give it back.
 * - **Anti-affinity** (default, off only for `pack`): members of one group (a service's
 *   replicas, a job's actors) go to different nodes whenever a fitting node without one exists;
 *   serving kinds then also prefer zones and pools with fewer of them. The strategy's score
 *   (cost, fit) only chooses among the placements that spread best: losing one node must not
 *   take every replica of a model, or every worker of a job, with it.
 *
 * The placer holds soft state: the runtime feeds it nodes (`syncViews()` from membership, or
 * `addNode()` from a provider) and commits a placement to the directory (KV CAS) itself. A
 * request that cannot be placed now gets a {@link PendingReason}; one that can never be placed
 * (given the catalogue) gets `SHOAL_ERR_UNSCHEDULABLE` from {@link Placer.check}.
 */
import { withDetails, type NodeView } from '../cluster/index.ts';
import { impossibleReason, resolveCatalogue } from './catalogue.ts';
import { SchedulerErrors } from './errors.ts';
import { addRequest, addVector, describeRequest, fitsIn, fitsNode, formatLabels, hasFeatures, labelsMatch, normalizeRequest, zeroVector } from './request.ts';
import { costAwareStrategy } from './strategies/cost-aware.ts';
import { packStrategy } from './strategies/pack.ts';
import { spreadStrategy } from './strategies/spread.ts';
import { StrategyName, type PlacementContext, type Strategy } from './strategies/strategy.ts';
import {
  PendingCode,
  type Catalogue,
  type ImpossibleReason,
  type LabelValue,
  type NodeSpec,
  type NodeState,
  type NormalizedRequest,
  type PendingReason,
  type Placement,
  type PlacementRequest,
  type PlaceResult,
  type PoolState,
  type ResolvedCatalogue,
  type ResourceVector,
} from './types.ts';

export interface PlacerOptions {
  /** A strategy name or your own {@link Strategy}. @default 'cost-aware' */
  strategy?: StrategyName | Strategy;
  /**
   * The node-type catalogue. With one, `check()` rejects requests nothing buyable could host;
   * without, such requests only wait (`no-node-large-enough`).
   */
  catalogue?: Catalogue | ResolvedCatalogue;
  /** Fitting nodes scored per pool. @default 8 */
  candidatesPerPool?: number;
  /** Pools (with a fitting node) whose candidates are scored; the rest are skipped. @default 3 */
  poolsToScore?: number;
  /** Partly used nodes scanned per pool before falling back to an empty one. @default 64 */
  maxScanPerPool?: number;
  /** Interruption-risk multiplier of a pool (see `PoolRisk`). @default () => 1 */
  risk?: (pool: string) => number;
  /**
   * Spread members of one group over nodes before anything else the strategy scores.
   * @default true, except with the `pack` strategy (packing is asked for explicitly)
   */
  antiAffinity?: boolean;
}

/** Kinds whose groups also spread over zones and pools before cost (availability first). */
const ZONE_SPREAD_KINDS: ReadonlySet<string> = new Set(['inference', 'service']);

interface Entry {
  state: NodeState;
  /** Which list of its pool the node is on, and where. */
  list: 'empty' | 'partial' | 'none';
  slot: number;
}

interface Binding {
  request: PlacementRequest;
  normalized: NormalizedRequest;
  nodeId: string;
}

interface PoolIndex {
  state: PoolState;
  empty: Entry[];
  partial: Entry[];
  cursor: number;
  /** Alive, non-draining nodes. */
  live: number;
}

const FULL_CPU = 1e-6;

/** Pool key: every label but price (spot prices move; the pool stays the same). */
function poolKey(labels: Readonly<Record<string, LabelValue>>): string {
  return Object.keys(labels)
    .filter((k) => k !== 'pricePerHour')
    .sort()
    .map((k) => `${k}=${String(labels[k])}`)
    .join('\u0001');
}

function resolveStrategy(s: StrategyName | Strategy | undefined): Strategy {
  if (s === undefined || s === StrategyName.COST_AWARE) return costAwareStrategy();
  if (s === StrategyName.PACK) return packStrategy();
  if (s === StrategyName.SPREAD) return spreadStrategy();
  if (typeof s === 'object' && typeof s.scorePool === 'function' && typeof s.scoreNode === 'function') return s;
  throw SchedulerErrors.BAD_OPTION('strategy', `unknown strategy ${String(s)} (use ${Object.values(StrategyName).join(', ')} or a Strategy object)`);
}

function intOption(name: string, v: number | undefined, dflt: number): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw SchedulerErrors.BAD_OPTION(name, `must be an integer ≥ 1, got ${x}`);
  return x;
}

function isResolved(c: Catalogue | ResolvedCatalogue): c is ResolvedCatalogue {
  return c.types instanceof Map;
}

export class Placer {
  readonly strategy: Strategy;
  readonly catalogue: ResolvedCatalogue | undefined;
  readonly #k: number;
  readonly #poolsToScore: number;
  readonly #maxScan: number;
  readonly #risk: (pool: string) => number;
  readonly #antiAffinity: boolean;
  readonly #nodes = new Map<string, Entry>();
  readonly #pools = new Map<string, PoolIndex>();
  readonly #poolsByName = new Map<string, PoolIndex[]>();
  #poolList: PoolIndex[] = [];
  readonly #bindings = new Map<string, Binding>();
  readonly #onNode = new Map<string, Set<string>>();
  /** `group \u0000 scope` → actors bound; scope is a node id, `z:<zone>` or `p:<pool>`. */
  readonly #groupCounts = new Map<string, number>();
  readonly #ctx: PlacementContext;

  constructor(opts: PlacerOptions = {}) {
    this.strategy = resolveStrategy(opts.strategy);
    this.catalogue = opts.catalogue ? (isResolved(opts.catalogue) ? opts.catalogue : resolveCatalogue(opts.catalogue)) : undefined;
    this.#k = intOption('candidatesPerPool', opts.candidatesPerPool, 8);
    this.#poolsToScore = intOption('poolsToScore', opts.poolsToScore, 3);
    this.#maxScan = intOption('maxScanPerPool', opts.maxScanPerPool, 64);
    this.#risk = opts.risk ?? (() => 1);
    this.#antiAffinity = opts.antiAffinity ?? this.strategy.name !== StrategyName.PACK;
    const counts = this.#groupCounts;
    const get = (k: string) => counts.get(k) ?? 0;
    this.#ctx = {
      groupOnNode: (g, nodeId) => get(`${g}\u0000${nodeId}`),
      groupInZone: (g, zone) => get(`${g}\u0000z:${zone}`),
      groupInPool: (g, pool) => get(`${g}\u0000p:${pool}`),
      risk: (pool) => this.#risk(pool),
    };
  }

  // ---- nodes ---------------------------------------------------------------------------------

  /** Adds a node (or returns the existing one: adding is idempotent). */
  addNode(spec: NodeSpec): NodeState {
    const existing = this.#nodes.get(spec.nodeId);
    if (existing) return existing.state;
    const key = poolKey(spec.labels);
    let pool = this.#pools.get(key);
    if (!pool) {
      pool = {
        state: {
          key,
          pool: spec.pool,
          zone: spec.zone,
          spot: spec.spot,
          labels: spec.labels,
          pricePerHour: spec.pricePerHour,
          interruptionRatePerHour: spec.interruptionRatePerHour ?? 0,
          maxCapacity: { ...zeroVector(), custom: {} },
          gpuFeatures: new Set(spec.gpuFeatures ?? []),
          free: { ...zeroVector(), custom: {} },
          nodes: 0,
        },
        empty: [],
        partial: [],
        cursor: 0,
        live: 0,
      };
      this.#pools.set(key, pool);
      this.#poolList.push(pool);
      const byName = this.#poolsByName.get(spec.pool) ?? [];
      byName.push(pool);
      this.#poolsByName.set(spec.pool, byName);
    }
    const ps = pool.state;
    const max = ps.maxCapacity;
    max.cpu = Math.max(max.cpu, spec.capacity.cpu);
    max.memoryBytes = Math.max(max.memoryBytes, spec.capacity.memoryBytes);
    max.gpu = Math.max(max.gpu, spec.capacity.gpu);
    max.gpuMemoryBytes = Math.max(max.gpuMemoryBytes, spec.capacity.gpuMemoryBytes);
    for (const [k, v] of Object.entries(spec.capacity.custom ?? {})) max.custom![k] = Math.max(max.custom![k] ?? 0, v);
    for (const f of spec.gpuFeatures ?? []) (ps.gpuFeatures as Set<string>).add(f);
    ps.nodes++;
    const state: NodeState = {
      nodeId: spec.nodeId,
      pool: spec.pool,
      zone: spec.zone,
      spot: spec.spot,
      pricePerHour: spec.pricePerHour,
      labels: spec.labels,
      capacity: { ...spec.capacity, ...(spec.capacity.custom ? { custom: { ...spec.capacity.custom } } : {}) },
      gpuFeatures: spec.gpuFeatures ?? [],
      interruptionRatePerHour: spec.interruptionRatePerHour ?? 0,
      type: spec.type,
      actorTypes: spec.actorTypes ? new Set(spec.actorTypes) : undefined,
      allocated: zeroVector(),
      actors: 0,
      alive: true,
      draining: false,
      poolKey: key,
    };
    const entry: Entry = { state, list: 'none', slot: -1 };
    this.#nodes.set(spec.nodeId, entry);
    this.#onNode.set(spec.nodeId, new Set());
    addVector(ps.free, state.capacity, 1);
    pool.live++;
    this.#relist(entry, pool);
    return state;
  }

  /**
   * Forgets a node and releases everything bound to it; returns those requests so the runtime
   * can re-place them (after it knows the node is gone).
   */
  removeNode(nodeId: string): PlacementRequest[] {
    const entry = this.#nodes.get(nodeId);
    if (!entry) return [];
    const orphans = this.evacuate(nodeId);
    const pool = this.#pools.get(entry.state.poolKey)!;
    this.#unlist(entry, pool);
    if (this.#schedulable(entry.state)) {
      addVector(pool.state.free, this.#freeOf(entry.state), -1);
      pool.live--;
    }
    pool.state.nodes--;
    this.#nodes.delete(nodeId);
    this.#onNode.delete(nodeId);
    return orphans;
  }

  /** Releases every request bound to `nodeId` (dead or drained) and returns them for re-placement. */
  evacuate(nodeId: string): PlacementRequest[] {
    const ids = this.#onNode.get(nodeId);
    if (!ids) return [];
    const out: PlacementRequest[] = [];
    for (const id of [...ids]) {
      const b = this.#bindings.get(id);
      if (b) out.push(b.request);
      this.release(id);
    }
    return out;
  }

  /** Marks a node alive or dead; a dead node keeps its bindings (evacuate them) and takes no new ones. */
  setAlive(nodeId: string, alive: boolean): void {
    this.#setFlags(nodeId, { alive });
  }

  /** Marks a node draining (or preempted soon): it keeps its actors and takes no new ones. */
  setDraining(nodeId: string, draining: boolean): void {
    this.#setFlags(nodeId, { draining });
  }

  #setFlags(nodeId: string, flags: { alive?: boolean; draining?: boolean }): void {
    const entry = this.#nodes.get(nodeId);
    if (!entry) throw SchedulerErrors.UNKNOWN_NODE(nodeId);
    const pool = this.#pools.get(entry.state.poolKey)!;
    const before = this.#schedulable(entry.state);
    if (flags.alive !== undefined) entry.state.alive = flags.alive;
    if (flags.draining !== undefined) entry.state.draining = flags.draining;
    const after = this.#schedulable(entry.state);
    if (before !== after) {
      addVector(pool.state.free, this.#freeOf(entry.state), after ? 1 : -1);
      pool.live += after ? 1 : -1;
    }
    this.#relist(entry, pool);
  }

  /** Updates the price or interruption rate of every pool named `pool` (spot prices move). */
  updatePool(pool: string, update: { pricePerHour?: number; interruptionRatePerHour?: number }): void {
    for (const p of this.#poolsByName.get(pool) ?? []) {
      if (update.pricePerHour !== undefined) p.state.pricePerHour = update.pricePerHour;
      if (update.interruptionRatePerHour !== undefined) p.state.interruptionRatePerHour = update.interruptionRatePerHour;
    }
    // O(nodes), but prices change every few minutes at most, not per placement.
    if (update.pricePerHour !== undefined) for (const e of this.#nodes.values()) if (e.state.pool === pool) e.state.pricePerHour = update.pricePerHour;
  }

  /**
   * Brings the node set in line with the membership view: adds new live nodes, marks dead and
   * draining ones, forgets nodes that left. Returns the requests bound to nodes that left (the
   * runtime re-places them).
   */
  syncViews(views: readonly NodeView[], toSpec: (v: NodeView) => NodeSpec = nodeSpecFromView): { added: string[]; removed: string[]; orphaned: PlacementRequest[] } {
    const seen = new Set<string>();
    const added: string[] = [];
    for (const v of views) {
      seen.add(v.nodeId);
      if (!this.#nodes.has(v.nodeId)) {
        if (!v.alive) continue;
        this.addNode(toSpec(v));
        added.push(v.nodeId);
      }
      const e = this.#nodes.get(v.nodeId)!;
      const draining = v.state === 'draining' || v.state === 'stopped';
      if (e.state.alive !== v.alive || e.state.draining !== draining) this.#setFlags(v.nodeId, { alive: v.alive, draining });
    }
    const removed: string[] = [];
    const orphaned: PlacementRequest[] = [];
    for (const id of [...this.#nodes.keys()]) {
      if (seen.has(id)) continue;
      orphaned.push(...this.removeNode(id));
      removed.push(id);
    }
    return { added, removed, orphaned };
  }

  node(nodeId: string): NodeState | undefined {
    return this.#nodes.get(nodeId)?.state;
  }

  nodes(): NodeState[] {
    return [...this.#nodes.values()].map((e) => e.state);
  }

  pools(): PoolState[] {
    return this.#poolList.map((p) => p.state);
  }

  /** Request ids bound to `nodeId`. */
  boundTo(nodeId: string): string[] {
    return [...(this.#onNode.get(nodeId) ?? [])];
  }

  placementOf(requestId: string): Placement | undefined {
    const b = this.#bindings.get(requestId);
    if (!b) return undefined;
    const n = this.#nodes.get(b.nodeId)!.state;
    return { requestId, nodeId: n.nodeId, pool: n.pool, zone: n.zone, spot: n.spot, score: 0 };
  }

  get size(): number {
    return this.#bindings.size;
  }

  // ---- checking ------------------------------------------------------------------------------

  /**
   * Why `req` can never be placed, or undefined. With a catalogue the answer covers everything
   * the autoscaler could buy; without, it is always undefined (nodes may still join).
   */
  check(req: PlacementRequest): ImpossibleReason | undefined {
    if (!this.catalogue) return undefined;
    return impossibleReason(normalizeRequest(req), this.catalogue);
  }

  /** Throws `SHOAL_ERR_UNSCHEDULABLE` (details: `{ reason }`) for an impossible request. */
  assertPlaceable(req: PlacementRequest): void {
    const r = this.check(req);
    if (r) throw withDetails(SchedulerErrors.UNSCHEDULABLE(req.id, r.message), { requestId: req.id, reason: r.code });
  }

  // ---- placing -------------------------------------------------------------------------------

  /**
   * Places one request and binds it, or says why it waits. Idempotent: placing an id that is
   * already bound returns its placement. Does not check impossibility (call `check()` once at
   * submission, not on every retry).
   */
  place(req: PlacementRequest, opts: { exclude?: ReadonlySet<string> } = {}): PlaceResult {
    const bound = this.placementOf(req.id);
    if (bound) return { ok: true, placement: bound };
    const n = normalizeRequest(req);
    const choice = n.nodeId ? this.#pinned(n, opts.exclude) : this.#choose(n, opts.exclude);
    if (!choice) return { ok: false, reason: this.#whyPending(n) };
    this.#bind(req, n, choice.entry);
    const s = choice.entry.state;
    return { ok: true, placement: { requestId: req.id, nodeId: s.nodeId, pool: s.pool, zone: s.zone, spot: s.spot, score: choice.score } };
  }

  /** Gives back a request's resources. Returns false when it was not bound. */
  release(requestId: string): boolean {
    const b = this.#bindings.get(requestId);
    if (!b) return false;
    this.#bindings.delete(requestId);
    const entry = this.#nodes.get(b.nodeId)!;
    const pool = this.#pools.get(entry.state.poolKey)!;
    addRequest(entry.state.allocated, b.normalized, -1);
    entry.state.actors--;
    if (this.#schedulable(entry.state)) addRequest(pool.state.free, b.normalized, 1);
    this.#onNode.get(b.nodeId)!.delete(requestId);
    this.#countGroup(b.normalized, entry.state, -1);
    this.#relist(entry, pool);
    return true;
  }

  #bind(req: PlacementRequest, n: NormalizedRequest, entry: Entry): void {
    const pool = this.#pools.get(entry.state.poolKey)!;
    addRequest(entry.state.allocated, n, 1);
    entry.state.actors++;
    addRequest(pool.state.free, n, -1);
    this.#bindings.set(req.id, { request: req, normalized: n, nodeId: entry.state.nodeId });
    this.#onNode.get(entry.state.nodeId)!.add(req.id);
    this.#countGroup(n, entry.state, 1);
    this.#relist(entry, pool);
  }

  #countGroup(n: NormalizedRequest, s: NodeState, d: 1 | -1): void {
    if (!n.group) return;
    for (const scope of [s.nodeId, `z:${s.zone}`, `p:${s.pool}`]) {
      const k = `${n.group}\u0000${scope}`;
      const v = (this.#groupCounts.get(k) ?? 0) + d;
      if (v === 0) this.#groupCounts.delete(k);
      else this.#groupCounts.set(k, v);
    }
  }

  #pinned(n: NormalizedRequest, exclude: ReadonlySet<string> | undefined): { entry: Entry; score: number } | undefined {
    const e = this.#nodes.get(n.nodeId!);
    if (!e || !this.#schedulable(e.state) || !this.#takes(n, e, exclude)) return undefined;
    if (!labelsMatch(n.labels, e.state.labels) || (e.state.spot && !n.spotOk) || !hasFeatures(n.gpuFeatures, e.state.gpuFeatures)) return undefined;
    return { entry: e, score: 0 };
  }

  /** Static and O(1) dynamic filter of one pool. */
  #poolFits(n: NormalizedRequest, p: PoolState): boolean {
    if (p.spot && !n.spotOk) return false;
    const m = p.maxCapacity;
    if (n.gpu > m.gpu || n.cpu > m.cpu || n.memoryBytes > m.memoryBytes || n.gpuMemoryBytes > m.gpuMemoryBytes) return false;
    if (!fitsIn(n, p.free)) return false;
    if (n.labels && !labelsMatch(n.labels, p.labels)) return false;
    if (n.gpuFeatures.length > 0 && !hasFeatures(n.gpuFeatures, p.gpuFeatures)) return false;
    return true;
  }

  #choose(n: NormalizedRequest, exclude: ReadonlySet<string> | undefined): { entry: Entry; score: number } | undefined {
    const poolName = n.labels?.pool;
    const source = typeof poolName === 'string' ? (this.#poolsByName.get(poolName) ?? []) : this.#poolList;
    const spread = this.#antiAffinity && n.group !== undefined ? n.group : undefined;
    const zones = spread !== undefined && ZONE_SPREAD_KINDS.has(n.kind);
    const scored: { pool: PoolIndex; score: number; rank: number }[] = [];
    for (const p of source) {
      if (!this.#poolFits(n, p.state)) continue;
      // With anti-affinity, pools are ranked by spread first: one with a node free of the group
      // (fewer members than live nodes) before one without, then (serving) fewer in its zone and pool.
      const rank = spread === undefined ? 0 : this.#spreadRank(spread, zones, p.state, this.#ctx.groupInPool(spread, p.state.pool) >= p.live ? 1 : 0);
      scored.push({ pool: p, score: this.strategy.scorePool(n, p.state, this.#ctx), rank });
    }
    if (scored.length === 0) return undefined;
    if (scored.length > 1) scored.sort((a, b) => a.rank - b.rank || b.score - a.score);
    let best: { entry: Entry; score: number; rank: number } | undefined;
    let poolsWithFit = 0;
    const cands: Entry[] = [];
    for (const { pool, score } of scored) {
      cands.length = 0;
      this.#candidates(n, pool, cands, exclude);
      if (cands.length === 0) continue;
      for (const e of cands) {
        const s = score + this.strategy.scoreNode(n, e.state, this.#ctx);
        const rank = spread === undefined ? 0 : this.#spreadRank(spread, zones, pool.state, this.#ctx.groupOnNode(spread, e.state.nodeId));
        if (!best || rank < best.rank || (rank === best.rank && s > best.score)) best = { entry: e, score: s, rank };
      }
      if (++poolsWithFit >= this.#poolsToScore) break;
    }
    return best;
  }

  /**
   * Lexicographic spread key (lower is better): members on the node (or, for a pool, whether it
   * has a node without one), then — for serving kinds — members in the zone, then in the pool.
   * Counts are far below 1000, so one number orders all three.
   */
  #spreadRank(group: string, zones: boolean, pool: PoolState, onNode: number): number {
    if (!zones) return onNode;
    return onNode * 1e6 + Math.min(999, this.#ctx.groupInZone(group, pool.zone)) * 1e3 + Math.min(999, this.#ctx.groupInPool(group, pool.pool));
  }

  /** Up to k fitting nodes of `pool`: partly used ones from a rotating cursor, then an empty one. */
  #candidates(n: NormalizedRequest, pool: PoolIndex, out: Entry[], exclude: ReadonlySet<string> | undefined): void {
    const partial = pool.partial;
    const len = partial.length;
    const scan = Math.min(len, this.#maxScan);
    let i = 0;
    for (; i < scan && out.length < this.#k; i++) {
      const e = partial[(pool.cursor + i) % len]!;
      if (this.#takes(n, e, exclude)) out.push(e);
    }
    if (len > 0) pool.cursor = (pool.cursor + i) % len;
    // Empty nodes of one pool are interchangeable: offering one is enough (two checked, as
    // membership pools may mix shapes).
    const empty = pool.empty;
    for (let j = 0; j < Math.min(empty.length, 2); j++) {
      const e = empty[j]!;
      if (this.#takes(n, e, exclude)) {
        out.push(e);
        break;
      }
    }
    if (out.length === 0) {
      // The bounded scan missed; look at the rest so "waiting for capacity" is never a lie.
      for (const e of partial) if (this.#takes(n, e, exclude)) return void out.push(e);
      for (const e of empty) if (this.#takes(n, e, exclude)) return void out.push(e);
    }
  }

  /** The node fits the request, loads its actor type, and is not excluded from this decision. */
  #takes(n: NormalizedRequest, e: Entry, exclude: ReadonlySet<string> | undefined): boolean {
    const s = e.state;
    return fitsNode(n, s) && (n.actorType === undefined || s.actorTypes === undefined || s.actorTypes.has(n.actorType)) && !exclude?.has(s.nodeId);
  }

  #whyPending(n: NormalizedRequest): PendingReason {
    if (n.nodeId) {
      const e = this.#nodes.get(n.nodeId);
      if (!e || !this.#schedulable(e.state)) return { code: PendingCode.NODE_UNAVAILABLE, message: `node ${n.nodeId} is ${e ? (e.state.alive ? 'draining' : 'dead') : 'unknown'}` };
      if (!labelsMatch(n.labels, e.state.labels) || (e.state.spot && !n.spotOk)) return { code: PendingCode.NO_MATCHING_LABELS, message: `node ${n.nodeId} does not match the request's labels or market` };
      return { code: PendingCode.WAITING_FOR_CAPACITY, message: `waiting for capacity on node ${n.nodeId} (${describeRequest(n)})` };
    }
    const live = this.#poolList.filter((p) => p.live > 0);
    if (live.length === 0) return { code: PendingCode.WAITING_FOR_CAPACITY, message: `waiting for capacity: no live node yet (${describeRequest(n)})` };
    if (n.gpu > 0 && !live.some((p) => p.state.maxCapacity.gpu > 0)) return { code: PendingCode.NO_GPU_NODE, message: `no live node with a GPU (needs ${n.gpu})` };
    const labelled = live.filter((p) => labelsMatch(n.labels, p.state.labels));
    if (labelled.length === 0) return { code: PendingCode.NO_MATCHING_LABELS, message: `no live node with labels ${formatLabels(n.labels ?? {})}` };
    const market = labelled.filter((p) => n.spotOk || !p.state.spot);
    if (market.length === 0) return { code: PendingCode.NO_ON_DEMAND_NODE, message: 'only spot nodes match and it may not run on spot' };
    if (n.gpuFeatures.length > 0 && !market.some((p) => hasFeatures(n.gpuFeatures, p.state.gpuFeatures))) return { code: PendingCode.NO_GPU_FEATURES, message: `no live node has GPU features ${n.gpuFeatures.join(', ')}` };
    const big = market.filter((p) => fitsIn(n, p.state.maxCapacity));
    if (big.length === 0) return { code: PendingCode.NO_NODE_LARGE_ENOUGH, message: `no live node is large enough for ${describeRequest(n)}` };
    return { code: PendingCode.WAITING_FOR_CAPACITY, message: `waiting for capacity (${describeRequest(n)}) in ${big.length} matching pool${big.length === 1 ? '' : 's'}` };
  }

  #schedulable(s: NodeState): boolean {
    return s.alive && !s.draining;
  }

  #freeOf(s: NodeState): ResourceVector {
    const f: ResourceVector = { cpu: s.capacity.cpu - s.allocated.cpu, memoryBytes: s.capacity.memoryBytes - s.allocated.memoryBytes, gpu: s.capacity.gpu - s.allocated.gpu, gpuMemoryBytes: s.capacity.gpuMemoryBytes - s.allocated.gpuMemoryBytes };
    if (s.capacity.custom) {
      f.custom = {};
      for (const k in s.capacity.custom) f.custom[k] = (s.capacity.custom[k] ?? 0) - (s.allocated.custom?.[k] ?? 0);
    }
    return f;
  }

  /** Puts a node on the list that matches its state (empty / partly used / neither). */
  #relist(e: Entry, pool: PoolIndex): void {
    const s = e.state;
    const want: Entry['list'] = !this.#schedulable(s) ? 'none' : s.actors === 0 ? 'empty' : s.capacity.cpu - s.allocated.cpu < FULL_CPU ? 'none' : 'partial';
    if (want === e.list) return;
    this.#unlist(e, pool);
    if (want === 'none') return;
    const list = want === 'empty' ? pool.empty : pool.partial;
    e.list = want;
    e.slot = list.length;
    list.push(e);
  }

  #unlist(e: Entry, pool: PoolIndex): void {
    if (e.list === 'none') return;
    const list = e.list === 'empty' ? pool.empty : pool.partial;
    const last = list.pop()!;
    if (last !== e) {
      list[e.slot] = last;
      last.slot = e.slot;
    }
    e.list = 'none';
    e.slot = -1;
  }
}

/**
 * A node's spec from its membership record. GPU memory is not probed by WebGPU: a numeric
 * `gpuMemoryBytes` label wins, else the node's memory (software and unified adapters share it).
 * Numeric labels named `resource.<name>` become custom resources.
 */
export function nodeSpecFromView(v: NodeView): NodeSpec {
  const custom: Record<string, number> = {};
  const labels = v.labels as Readonly<Record<string, LabelValue>>;
  for (const [k, val] of Object.entries(labels)) if (k.startsWith('resource.') && typeof val === 'number') custom[k.slice('resource.'.length)] = val;
  const gpu = v.capabilities.gpu ? 1 : 0;
  const gpuMem = typeof labels.gpuMemoryBytes === 'number' ? labels.gpuMemoryBytes : gpu ? v.capabilities.memoryBytes : 0;
  const rate = typeof labels.interruptionRatePerHour === 'number' ? labels.interruptionRatePerHour : v.labels.spot ? 0.05 : 0;
  return {
    nodeId: v.nodeId,
    pool: v.labels.pool,
    zone: v.labels.zone,
    spot: v.labels.spot,
    pricePerHour: v.labels.pricePerHour,
    labels: v.labels,
    capacity: { cpu: v.capabilities.cpus, memoryBytes: v.capabilities.memoryBytes, gpu, gpuMemoryBytes: gpuMem, ...(Object.keys(custom).length ? { custom } : {}) },
    gpuFeatures: v.capabilities.gpu?.features ?? [],
    interruptionRatePerHour: rate,
    ...(typeof labels.type === 'string' ? { type: labels.type } : {}),
    ...(v.capabilities.actorTypes ? { actorTypes: v.capabilities.actorTypes } : {}),
  };
}
