/**
 * The autoscaler's decisions, as a pure planner: given the pending requests and the fleet, what
 * to launch and what to terminate. The {@link ScalingController} applies a plan through a
 * provider; the simulator calls `plan()` directly.
 *
 * Scale up: pending requests, largest first, are packed onto nodes already launching, then onto
 * new nodes of the pool where their share is cheapest — *availability first* (pools marked
 * risky after an interruption, pools without spot capacity and pools backing off after a
 * failed launch come last or not at all; the expected interruption cost is part of the price),
 * like EC2's price-capacity-optimized. Spot launches go round-robin over the few cheapest spot
 * pools within `priceTolerance` of the best, so one pool (one failure domain) never holds all.
 *
 * Scale down: a running node with no actors for `idleTimeoutMs` is terminated, down to its
 * pool's `min`. Pools below `min` are filled.
 *
 * Budget: launches never take the fleet's cost per hour over `budgetPerHour`; if spot prices
 * rise and the fleet is over it, idle nodes go first, at once.
 */
import { ActorKind } from '../../cluster/index.ts';
import { poolCanEverHost, poolCapacity, resolveCatalogue, shareOfPool } from '../catalogue.ts';
import { SchedulerErrors } from '../errors.ts';
import { addRequest, fitsIn, normalizeRequest } from '../request.ts';
import type { SpotMarket } from '../providers/provider.ts';
import { PoolRisk } from '../spot/pool-risk.ts';
import type { Catalogue, NormalizedRequest, PlacementRequest, ResolvedCatalogue, ResolvedPool, ResourceVector } from '../types.ts';
import { PoolBackoff, type BackoffOptions } from './backoff.ts';

/** One node of the fleet as the autoscaler sees it. */
export interface FleetNode {
  nodeId: string;
  pool: string;
  phase: 'launching' | 'running' | 'terminating';
  /** Actors bound to it (0 = idle). */
  actors: number;
  pricePerHour: number;
}

export interface AutoscalerOptions {
  catalogue: Catalogue | ResolvedCatalogue;
  /** Most the fleet may cost per hour. @default Infinity */
  budgetPerHour?: number;
  /** A node idle this long is terminated (down to its pool's min). @default 300_000 */
  idleTimeoutMs?: number;
  /** Spot launches are spread over this many of the cheapest pools. @default 3 */
  spotPoolsToSpread?: number;
  /** Pools priced within this fraction of the cheapest count as equally cheap. @default 0.2 */
  priceTolerance?: number;
  /** Most launches in one plan (a burst is spread over rounds). @default 100 */
  maxLaunchesPerRound?: number;
  /** Hours lost per interruption by kind, priced into spot pools. @default { inference: 1, training: 0.25, batch: 0.5, service: 1 } */
  interruptionLossHours?: Partial<Record<ActorKind, number>>;
  /** Current prices and spot availability. @default list prices, always available */
  market?: SpotMarket;
  /** Shared with the placer and the interruption handler. @default a new PoolRisk */
  risk?: PoolRisk;
  backoff?: PoolBackoff | BackoffOptions;
  now?: () => number;
}

export interface LaunchDecision {
  pool: string;
  reason: string;
}

export interface ScalePlan {
  launch: LaunchDecision[];
  terminate: { nodeId: string; pool: string; reason: string }[];
  /** Pending requests no launch will serve, and why (`budget cap`, `pools at max`…). */
  unmet: { requestId: string; reason: string }[];
  /** Cost per hour of the fleet before and after the plan. */
  costPerHour: number;
  plannedCostPerHour: number;
  budgetPerHour: number;
}

interface Bin {
  pool: ResolvedPool;
  free: ResourceVector;
}

const LOSS: Record<ActorKind, number> = { inference: 1, training: 0.25, batch: 0.5, service: 1 };

/** A plan being made: what it says so far, the fleet's cost after it, and nodes per pool after it. */
interface Planning {
  plan: ScalePlan;
  cost: number;
  counts: Map<string, number>;
}

export class Autoscaler {
  readonly catalogue: ResolvedCatalogue;
  readonly risk: PoolRisk;
  readonly backoff: PoolBackoff;
  readonly budgetPerHour: number;
  readonly idleTimeoutMs: number;
  readonly #spread: number;
  readonly #tolerance: number;
  readonly #maxLaunches: number;
  readonly #loss: Record<ActorKind, number>;
  readonly #market: SpotMarket | undefined;
  readonly #now: () => number;
  readonly #idleSince = new Map<string, number>();

  constructor(opts: AutoscalerOptions) {
    this.catalogue = opts.catalogue.types instanceof Map ? (opts.catalogue as ResolvedCatalogue) : resolveCatalogue(opts.catalogue as Catalogue);
    this.#now = opts.now ?? Date.now;
    this.risk = opts.risk ?? new PoolRisk({ now: this.#now });
    this.backoff = opts.backoff instanceof PoolBackoff ? opts.backoff : new PoolBackoff({ now: this.#now, ...opts.backoff });
    this.budgetPerHour = opts.budgetPerHour ?? Infinity;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 300_000;
    this.#spread = opts.spotPoolsToSpread ?? 3;
    this.#tolerance = opts.priceTolerance ?? 0.2;
    this.#maxLaunches = opts.maxLaunchesPerRound ?? 100;
    this.#loss = { ...LOSS, ...opts.interruptionLossHours };
    this.#market = opts.market;
    if (!(this.budgetPerHour > 0)) throw SchedulerErrors.BAD_OPTION('budgetPerHour', `must be > 0, got ${this.budgetPerHour}`);
    if (!(this.idleTimeoutMs >= 0)) throw SchedulerErrors.BAD_OPTION('idleTimeoutMs', `must be ≥ 0, got ${this.idleTimeoutMs}`);
    if (!Number.isInteger(this.#spread) || this.#spread < 1) throw SchedulerErrors.BAD_OPTION('spotPoolsToSpread', `must be an integer ≥ 1, got ${this.#spread}`);
    if (!(this.#tolerance >= 0)) throw SchedulerErrors.BAD_OPTION('priceTolerance', `must be ≥ 0, got ${this.#tolerance}`);
    if (!Number.isInteger(this.#maxLaunches) || this.#maxLaunches < 1) throw SchedulerErrors.BAD_OPTION('maxLaunchesPerRound', `must be an integer ≥ 1, got ${this.#maxLaunches}`);
  }

  price(pool: ResolvedPool): number {
    return this.#market?.price(pool.name) ?? pool.listPricePerHour;
  }

  available(pool: ResolvedPool): boolean {
    return !pool.spot || (this.#market?.available(pool.name) ?? true);
  }

  /** Records a failed launch: the pool backs off and the next plan picks another. */
  launchFailed(pool: string, error: string): void {
    this.backoff.fail(pool, error);
  }

  launchSucceeded(pool: string): void {
    this.backoff.succeed(pool);
  }

  /** Records a spot interruption notice: the pool is risky for a while. */
  interrupted(pool: string): void {
    this.risk.mark(pool);
  }

  plan(input: { pending: readonly PlacementRequest[]; fleet: readonly FleetNode[] }): ScalePlan {
    const counts = new Map<string, number>();
    let cost = 0;
    for (const n of input.fleet) {
      cost += n.pricePerHour;
      if (n.phase !== 'terminating') counts.set(n.pool, (counts.get(n.pool) ?? 0) + 1);
    }
    const st: Planning = { plan: { launch: [], terminate: [], unmet: [], costPerHour: cost, plannedCostPerHour: 0, budgetPerHour: this.budgetPerHour }, cost, counts };
    // Scale down first, so its savings count toward the budget.
    this.#scaleDown(st, input.fleet);
    this.#scaleUp(st, input);
    st.plan.plannedCostPerHour = st.cost;
    return st.plan;
  }

  /** Idle nodes go: over budget at once (most expensive first), else after the idle timeout; never below a pool's min. */
  #scaleDown(st: Planning, fleet: readonly FleetNode[]): void {
    const now = this.#now();
    const seen = new Set<string>();
    const removing = new Map<string, number>();
    const idle: FleetNode[] = [];
    for (const n of fleet) {
      seen.add(n.nodeId);
      if (n.phase !== 'running' || n.actors > 0) {
        this.#idleSince.delete(n.nodeId);
        continue;
      }
      if (!this.#idleSince.has(n.nodeId)) this.#idleSince.set(n.nodeId, now);
      idle.push(n);
    }
    for (const id of [...this.#idleSince.keys()]) if (!seen.has(id)) this.#idleSince.delete(id);
    const terminate = (n: FleetNode, reason: string) => {
      st.plan.terminate.push({ nodeId: n.nodeId, pool: n.pool, reason });
      removing.set(n.pool, (removing.get(n.pool) ?? 0) + 1);
      st.cost -= n.pricePerHour;
      this.#idleSince.delete(n.nodeId);
    };
    const aboveMin = (n: FleetNode) => (st.counts.get(n.pool) ?? 0) - (removing.get(n.pool) ?? 0) > (this.catalogue.pools.get(n.pool)?.min ?? 0);
    // Over budget (spot prices rose): idle nodes go now, most expensive first.
    for (const n of [...idle].sort((a, b) => b.pricePerHour - a.pricePerHour)) {
      if (st.cost <= this.budgetPerHour) break;
      if (aboveMin(n)) terminate(n, `fleet cost $${st.cost.toFixed(3)}/h over budget $${this.budgetPerHour}/h`);
    }
    const chosen = new Set(st.plan.terminate.map((t) => t.nodeId));
    for (const n of idle) {
      if (chosen.has(n.nodeId)) continue;
      const since = this.#idleSince.get(n.nodeId)!;
      if (now - since >= this.idleTimeoutMs && aboveMin(n)) terminate(n, `idle for ${Math.round((now - since) / 1000)} s`);
    }
    for (const [pool, r] of removing) st.counts.set(pool, (st.counts.get(pool) ?? 0) - r);
  }

  /** Pools below their min first, then pending demand (largest first) into launching nodes' room or new nodes, within budget. */
  #scaleUp(st: Planning, input: { pending: readonly PlacementRequest[]; fleet: readonly FleetNode[] }): void {
    const { plan, counts } = st;
    const bins: Bin[] = [];
    for (const n of input.fleet) {
      const p = this.catalogue.pools.get(n.pool);
      if (p && n.phase === 'launching') bins.push({ pool: p, free: poolCapacity(p) });
    }
    const launch = (p: ResolvedPool, reason: string): Bin | undefined => {
      const price = this.price(p);
      if (st.cost + price > this.budgetPerHour + 1e-9) return undefined;
      if (plan.launch.length >= this.#maxLaunches) return undefined;
      st.cost += price;
      counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
      plan.launch.push({ pool: p.name, reason });
      const bin = { pool: p, free: poolCapacity(p) };
      bins.push(bin);
      return bin;
    };
    for (const p of this.catalogue.pools.values()) {
      while ((counts.get(p.name) ?? 0) < p.min && this.available(p) && !this.backoff.blocked(p.name)) {
        if (!launch(p, `pool below min ${p.min}`)) break;
      }
    }
    const demand = input.pending.map(normalizeRequest).sort((a, b) => b.gpu - a.gpu || b.cpu - a.cpu || b.memoryBytes - a.memoryBytes);
    for (const req of demand) {
      const bin = bins.find((b) => poolCanEverHost(req, b.pool) && fitsIn(req, b.free));
      if (bin) {
        addRequest(bin.free, req, -1);
        continue;
      }
      const choice = this.#choosePool(req, counts);
      if (typeof choice === 'string') {
        plan.unmet.push({ requestId: req.id, reason: choice });
        continue;
      }
      const nb = launch(choice, `pending ${req.id}`);
      if (!nb) {
        plan.unmet.push({ requestId: req.id, reason: plan.launch.length >= this.#maxLaunches ? 'launch limit for this round reached' : `budget cap $${this.budgetPerHour}/h reached` });
        continue;
      }
      addRequest(nb.free, req, -1);
    }
  }

  /** The pool to buy for `req`, or why there is none. */
  #choosePool(req: NormalizedRequest, counts: Map<string, number>): ResolvedPool | string {
    const cands: { pool: ResolvedPool; unit: number; risky: boolean }[] = [];
    let host = 0;
    let atMax = 0;
    let backing = 0;
    let noSpot = 0;
    for (const p of this.catalogue.pools.values()) {
      if (!poolCanEverHost(req, p)) continue;
      host++;
      if ((counts.get(p.name) ?? 0) >= p.max) {
        atMax++;
        continue;
      }
      if (this.backoff.blocked(p.name)) {
        backing++;
        continue;
      }
      if (!this.available(p)) {
        noSpot++;
        continue;
      }
      const risky = p.spot && this.risk.isRisky(p.name);
      const rate = p.spot ? p.nodeType.interruptionRatePerHour * (risky ? this.risk.factor : 1) : 0;
      const unit = this.price(p) * Math.max(shareOfPool(req, p), 1e-6) * (1 + rate * (this.#loss[req.kind] ?? 1));
      cands.push({ pool: p, unit, risky });
    }
    if (cands.length === 0) {
      if (host === 0) return 'no pool in the catalogue can host it';
      return `no pool to launch in (${atMax} at max, ${backing} backing off after failed launches, ${noSpot} without spot capacity)`;
    }
    cands.sort((a, b) => Number(a.risky) - Number(b.risky) || a.unit - b.unit);
    const best = cands[0]!;
    if (!best.pool.spot) return best.pool;
    const group = cands.filter((c) => c.pool.spot && c.risky === best.risky && c.unit <= best.unit * (1 + this.#tolerance)).slice(0, this.#spread);
    // Round-robin: the pool holding the fewest nodes (planned ones included) of the cheap group.
    let pick = group[0]!;
    for (const c of group) if ((counts.get(c.pool.name) ?? 0) < (counts.get(pick.pool.name) ?? 0)) pick = c;
    return pick.pool;
  }
}
