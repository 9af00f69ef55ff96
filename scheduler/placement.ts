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
import { fitsIn, fitsNode, hasFeatures, labelsMatch, normalizeRequest } from './request.ts';
import { FleetIndex, nodeSpecFromView, type Entry, type PoolIndex } from './fleet-index.ts';
import { whyPending } from './pending-reason.ts';
import { costAwareStrategy } from './strategies/cost-aware.ts';
import { packStrategy } from './strategies/pack.ts';
import { spreadStrategy } from './strategies/spread.ts';
import { StrategyName, type PlacementContext, type Strategy } from './strategies/strategy.ts';
import {
  type Catalogue,
  type ImpossibleReason,
  type NodeSpec,
  type NodeState,
  type NormalizedRequest,
  type PendingReason,
  type Placement,
  type PlacementRequest,
  type PlaceResult,
  type PoolState,
  type ResolvedCatalogue,
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

interface Binding {
  request: PlacementRequest;
  normalized: NormalizedRequest;
  nodeId: string;
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
  readonly #fleet = new FleetIndex();
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
    const known = this.#fleet.nodes.has(spec.nodeId);
    const state = this.#fleet.add(spec);
    if (!known) this.#onNode.set(spec.nodeId, new Set());
    return state;
  }

  /**
   * Forgets a node and releases everything bound to it; returns those requests so the runtime
   * can re-place them (after it knows the node is gone).
   */
  removeNode(nodeId: string): PlacementRequest[] {
    const entry = this.#fleet.nodes.get(nodeId);
    if (!entry) return [];
    const orphans = this.evacuate(nodeId);
    this.#fleet.remove(entry);
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
    this.#fleet.setFlags(nodeId, flags);
  }

  /** Updates the price or interruption rate of every pool named `pool` (spot prices move). */
  updatePool(pool: string, update: { pricePerHour?: number; interruptionRatePerHour?: number }): void {
    this.#fleet.updatePool(pool, update);
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
      if (!this.#fleet.nodes.has(v.nodeId)) {
        if (!v.alive) continue;
        this.addNode(toSpec(v));
        added.push(v.nodeId);
      }
      const e = this.#fleet.nodes.get(v.nodeId)!;
      const draining = v.state === 'draining' || v.state === 'stopped';
      if (e.state.alive !== v.alive || e.state.draining !== draining) this.#setFlags(v.nodeId, { alive: v.alive, draining });
    }
    const removed: string[] = [];
    const orphaned: PlacementRequest[] = [];
    for (const id of [...this.#fleet.nodes.keys()]) {
      if (seen.has(id)) continue;
      orphaned.push(...this.removeNode(id));
      removed.push(id);
    }
    return { added, removed, orphaned };
  }

  node(nodeId: string): NodeState | undefined {
    return this.#fleet.nodes.get(nodeId)?.state;
  }

  nodes(): NodeState[] {
    return [...this.#fleet.nodes.values()].map((e) => e.state);
  }

  pools(): PoolState[] {
    return this.#fleet.poolList.map((p) => p.state);
  }

  /** Request ids bound to `nodeId`. */
  boundTo(nodeId: string): string[] {
    return [...(this.#onNode.get(nodeId) ?? [])];
  }

  placementOf(requestId: string): Placement | undefined {
    const b = this.#bindings.get(requestId);
    if (!b) return undefined;
    const n = this.#fleet.nodes.get(b.nodeId)!.state;
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
    if (!choice) return { ok: false, reason: whyPending(n, this.#fleet) };
    this.#bind(req, n, choice.entry);
    const s = choice.entry.state;
    return { ok: true, placement: { requestId: req.id, nodeId: s.nodeId, pool: s.pool, zone: s.zone, spot: s.spot, score: choice.score } };
  }

  /** Gives back a request's resources. Returns false when it was not bound. */
  release(requestId: string): boolean {
    const b = this.#bindings.get(requestId);
    if (!b) return false;
    this.#bindings.delete(requestId);
    const entry = this.#fleet.nodes.get(b.nodeId)!;
    this.#fleet.allocate(entry, b.normalized, -1);
    this.#onNode.get(b.nodeId)!.delete(requestId);
    this.#countGroup(b.normalized, entry.state, -1);
    return true;
  }

  #bind(req: PlacementRequest, n: NormalizedRequest, entry: Entry): void {
    this.#fleet.allocate(entry, n, 1);
    this.#bindings.set(req.id, { request: req, normalized: n, nodeId: entry.state.nodeId });
    this.#onNode.get(entry.state.nodeId)!.add(req.id);
    this.#countGroup(n, entry.state, 1);
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
    const e = this.#fleet.nodes.get(n.nodeId!);
    if (!e || !this.#fleet.schedulable(e.state) || !this.#takes(n, e, exclude)) return undefined;
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
    const source = typeof poolName === 'string' ? (this.#fleet.poolsByName.get(poolName) ?? []) : this.#fleet.poolList;
    const spread = this.#antiAffinity && n.group !== undefined ? n.group : undefined;
    const zones = spread !== undefined && ZONE_SPREAD_KINDS.has(n.kind);
    const scored: { pool: PoolIndex; score: number; rank: number; area: number }[] = [];
    for (const p of source) {
      if (!this.#poolFits(n, p.state)) continue;
      // With anti-affinity, pools are ranked by spread first: one with a node free of the group
      // (fewer members than live nodes) before one without, then (serving) fewer in its zone and
      // pool. Counts are far below 1000, so one number orders them lexicographically.
      let rank = 0;
      let area = 0;
      if (spread !== undefined) {
        const inPool = this.#ctx.groupInPool(spread, p.state.pool);
        if (zones) area = Math.min(999, this.#ctx.groupInZone(spread, p.state.zone)) * 1e3 + Math.min(999, inPool);
        rank = (inPool >= p.live ? 1e6 : 0) + area;
      }
      scored.push({ pool: p, score: this.strategy.scorePool(n, p.state, this.#ctx), rank, area });
    }
    if (scored.length === 0) return undefined;
    if (scored.length > 1) scored.sort((a, b) => a.rank - b.rank || b.score - a.score);
    let best: { entry: Entry; score: number; rank: number } | undefined;
    let poolsWithFit = 0;
    const cands: Entry[] = [];
    for (const { pool, score, area } of scored) {
      cands.length = 0;
      this.#candidates(n, pool, cands, exclude);
      if (cands.length === 0) continue;
      for (const e of cands) {
        const s = score + this.strategy.scoreNode(n, e.state, this.#ctx);
        // Members on the node first, then the pool's zone/pool spread.
        const rank = spread === undefined ? 0 : this.#ctx.groupOnNode(spread, e.state.nodeId) * 1e6 + area;
        if (!best || rank < best.rank || (rank === best.rank && s > best.score)) best = { entry: e, score: s, rank };
      }
      if (++poolsWithFit >= this.#poolsToScore) break;
    }
    return best;
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
}
