/**
 * A simulated week of mixed workload on the `sim` provider — steady inference (a diurnal
 * replica demand) plus training jobs with deadlines — run under three policies on the same
 * synthetic spot traces:
 *
 * - `on-demand`: everything on on-demand nodes.
 * - `greedy-spot`: everything on the cheapest spot pool available now; when spot is gone,
 *   inference waits for spot elsewhere and jobs wait (no deadline awareness).
 * - `shoal`: the Autoscaler picks pools (price-capacity, risk after interruptions, spread over
 *   spot pools, back-off), inference is spread over spot pools with enough headroom to lose one
 *   pool, and each job follows Uniform Progress (spot when available, on-demand when behind,
 *   safety net near its deadline). The budget cap is set and checked every minute.
 *
 * One GPU node hosts one replica or one job (the job's node type), so the simulation is about
 * which market and which pool, not about bin packing (the placement benchmark covers that).
 */
import { ActorKind, VirtualClock, seededRandom } from '../../cluster/index.ts';
import {
  Autoscaler,
  Market,
  NodePhase,
  PoolRisk,
  SimProvider,
  UniformProgress,
  resolveCatalogue,
  syntheticTraces,
  type Catalogue,
  type FleetNode,
  type PlacementRequest,
  type ResolvedCatalogue,
} from '../../scheduler/index.ts';

export const PolicyName = { ON_DEMAND: 'on-demand', GREEDY_SPOT: 'greedy-spot', SHOAL: 'shoal' } as const;
export type PolicyName = (typeof PolicyName)[keyof typeof PolicyName];

const MIN = 60_000;
const HOUR = 3_600_000;
const WEEK = 7 * 24 * HOUR;

export const WEEK_CATALOGUE: Catalogue = {
  types: [
    // One-GPU node: on-demand $3/h, spot around $0.75/h; interruptions about once a day per pool.
    { name: 'g1', resources: { cpu: 8, memoryBytes: 64 * 2 ** 30, gpu: 1, gpuMemoryBytes: 24 * 2 ** 30 }, onDemandPricePerHour: 3, spotPricePerHour: 0.75, interruptionRatePerHour: 0.04, startupLatencyMs: 3 * MIN },
  ],
  pools: [
    ...['a', 'b', 'c', 'd'].map((z) => ({ name: `g1-spot-${z}`, type: 'g1', zone: z, spot: true, max: 400 })),
    ...['a', 'b'].map((z) => ({ name: `g1-od-${z}`, type: 'g1', zone: z, spot: false, max: 400 })),
  ],
};

export interface WeekOptions {
  seed: number;
  /** Multiplies the inference demand and the job arrival rate. @default 1 */
  scale?: number;
  /** Restart overhead of a job on a new node (load checkpoint), hours. @default 0.1 */
  restartOverheadHours?: number;
  /** Budget cap for Shoal's autoscaler, $/h. @default 60 × scale */
  budgetPerHour?: number;
}

export interface WeekResult {
  policy: PolicyName;
  cost: number;
  jobs: number;
  jobsMet: number;
  /** Minutes in which ready replicas were fewer than the demand. */
  sloViolationMinutes: number;
  minutes: number;
  preemptions: number;
  maxFleetCostPerHour: number;
  nodesLaunched: number;
  wallMs: number;
  /** Dollars by use and market (inference / jobs / other × spot / on-demand), sampled per minute. */
  breakdown: Record<string, number>;
}

interface Job {
  id: string;
  arrive: number;
  work: number;
  deadline: number;
  progress: number;
  nodeId: string | undefined;
  market: Market;
  /** Progress starts once the node is ready and the checkpoint is loaded. */
  warmUntil: number;
  up: UniformProgress;
  done: boolean;
  met: boolean;
}

/** Replica demand at `t`: diurnal between 4 and 12 (× scale). */
export function inferenceDemand(t: number, scale: number): number {
  return Math.round(scale * (8 + 4 * Math.sin((2 * Math.PI * t) / (24 * HOUR))));
}

export function makeJobs(seed: number, scale: number, restart: number): Omit<Job, 'up'>[] {
  const rnd = seededRandom(seed * 31 + 5);
  const jobs: Omit<Job, 'up'>[] = [];
  // Poisson arrivals, one every 3 h on average (× scale), over the first six days.
  let t = 0;
  for (let i = 0; ; i++) {
    t += (-Math.log(1 - rnd()) * 3 * HOUR) / scale;
    if (t > 6 * 24 * HOUR) break;
    const work = 4 + rnd() * 16;
    const slack = 1.15 + rnd() * 0.65;
    jobs.push({ id: `job-${i}`, arrive: t, work, deadline: t + (work * slack + restart + 3 / 60) * HOUR, progress: 0, nodeId: undefined, market: Market.IDLE, warmUntil: 0, done: false, met: false });
  }
  return jobs;
}

export function simulateWeek(policy: PolicyName, opts: WeekOptions): WeekResult {
  const wall = performance.now();
  const scale = opts.scale ?? 1;
  const restart = opts.restartOverheadHours ?? 0.1;
  const cat: ResolvedCatalogue = resolveCatalogue(WEEK_CATALOGUE);
  const traces = syntheticTraces(cat, { seed: opts.seed, durationMs: WEEK + HOUR, stepMs: 5 * MIN, meanOutageHours: 1, correlatedOutages: { ratePerHour: 1 / 36, meanHours: 4 } });
  const clock = new VirtualClock(0);
  const provider = new SimProvider({ catalogue: cat, clock, traces, noticeMs: 2 * MIN, seed: opts.seed });
  const risk = new PoolRisk({ now: clock.now, riskyForMs: 2 * HOUR });
  const budget = opts.budgetPerHour ?? 60 * scale;
  const autoscaler = new Autoscaler({ catalogue: cat, now: clock.now, market: provider, risk, budgetPerHour: budget, spotPoolsToSpread: 4, priceTolerance: 0.5, maxLaunchesPerRound: 10_000 });
  const spotPools = [...cat.pools.values()].filter((p) => p.spot);
  const odPools = [...cat.pools.values()].filter((p) => !p.spot);

  // Which node does what.
  const replicas = new Map<string, { leaving: boolean }>();
  const jobByNode = new Map<string, Job>();
  const ready = new Set<string>();
  let launched = 0;
  provider.onEvent((e) => {
    if (e.type === 'node-ready') ready.add(e.node.nodeId);
    if (e.type === 'preemption-notice') {
      autoscaler.interrupted(e.node.pool);
      const r = replicas.get(e.node.nodeId);
      if (r) r.leaving = true;
      const j = jobByNode.get(e.node.nodeId);
      // A training job checkpoints at the notice and stops; the node is given back at once.
      if (j) detach(j, true);
    }
    if (e.type === 'node-terminated') {
      ready.delete(e.node.nodeId);
      replicas.delete(e.node.nodeId);
      const j = jobByNode.get(e.node.nodeId);
      if (j) detach(j, false);
    }
  });
  function detach(j: Job, terminate: boolean): void {
    const id = j.nodeId;
    if (!id) return;
    jobByNode.delete(id);
    j.nodeId = undefined;
    j.market = Market.IDLE;
    if (terminate) provider.terminateSync(id);
  }

  const spotIds = new Set<string>();
  const isSpot = (id: string) => spotIds.has(id);
  provider.onEvent((e) => {
    if (e.type === 'node-launching' && e.node.spot) spotIds.add(e.node.nodeId);
    if (e.type === 'node-terminated') spotIds.delete(e.node.nodeId);
  });
  /**
   * Make-before-break rebalancing (like EC2 capacity rebalancing, in reverse): replicas that
   * fell back to on-demand during a spot crunch move back to spot once it returns — spot
   * replacements are launched first, the on-demand ones are stopped only when enough spot
   * replicas are ready.
   */
  function rebalance(want: number): void {
    const active = [...replicas.entries()].filter(([, r]) => !r.leaving).map(([id]) => id);
    const od = active.filter((id) => !isSpot(id));
    if (od.length === 0) return;
    const spot = active.filter(isSpot);
    if (spot.length < want && spotPools.some((p) => provider.available(p.name))) {
      const reqs = Array.from({ length: want - spot.length }, (_, i) => ({ ...req(`rb-${clock.now()}-${i}`, ActorKind.INFERENCE, true), group: 'svc' }));
      for (const id of shoalLaunch(reqs)) replicas.set(id, { leaving: false });
    }
    const spotReady = spot.filter((id) => ready.has(id)).length;
    const stop = Math.min(od.length, spotReady + od.length - want);
    for (const id of od.slice(0, Math.max(0, stop))) provider.terminateSync(id);
  }
  const fleet = (): FleetNode[] => provider.listSync().map((n) => ({ nodeId: n.nodeId, pool: n.pool, phase: n.phase === NodePhase.LAUNCHING ? 'launching' : n.phase === NodePhase.RUNNING ? 'running' : 'terminating', actors: 1, pricePerHour: n.pricePerHour }));
  const tryLaunch = (pool: string): string | undefined => {
    try {
      const n = provider.launchSync({ pool });
      launched++;
      autoscaler.launchSucceeded(pool);
      return n.nodeId;
    } catch (err) {
      autoscaler.launchFailed(pool, (err as Error).message);
      return undefined;
    }
  };
  const cheapestSpot = (): string | undefined => {
    let best: string | undefined;
    for (const p of spotPools) if (provider.available(p.name) && (!best || provider.price(p.name) < provider.price(best))) best = p.name;
    return best;
  };
  /** Shoal: ask the autoscaler for `n` nodes for requests of this shape; launch what it plans. */
  const shoalLaunch = (reqs: PlacementRequest[]): string[] => {
    const out: string[] = [];
    for (let round = 0; round < 4 && out.length < reqs.length; round++) {
      const plan = autoscaler.plan({ pending: reqs.slice(out.length), fleet: fleet() });
      for (const l of plan.launch) {
        const id = tryLaunch(l.pool);
        if (id) out.push(id);
      }
      if (plan.launch.length === 0) break;
    }
    return out;
  };
  const req = (id: string, kind: ActorKind, spot: boolean | 'any'): PlacementRequest => ({
    id,
    kind,
    resources: { cpu: 8, gpu: 1 },
    constraints: spot === 'any' ? { spotOk: true } : { spotOk: spot, labels: { spot } },
  });

  const jobs: Job[] = makeJobs(opts.seed, scale, restart).map((j) => ({ ...j, up: new UniformProgress({ workHours: j.work, startAt: j.arrive, deadlineAt: j.deadline, restartOverheadHours: restart }) }));
  let violations = 0;
  let maxCost = 0;
  let downSince: number | undefined;
  const breakdown: Record<string, number> = {};
  const dtH = MIN / HOUR;

  for (let t = 0; t < WEEK; t += MIN) {
    clock.advanceTo(t);
    // ---- inference ----
    const demand = inferenceDemand(t, scale);
    const want = policy === PolicyName.SHOAL ? Math.ceil((demand * 4) / 3) + 1 : Math.ceil(demand * 1.1);
    const active = [...replicas.entries()].filter(([, r]) => !r.leaving);
    if (active.length < want) {
      const n = want - active.length;
      if (policy === PolicyName.ON_DEMAND) {
        for (let i = 0; i < n; i++) {
          const id = tryLaunch(odPools[i % odPools.length]!.name);
          if (id) replicas.set(id, { leaving: false });
        }
      } else if (policy === PolicyName.GREEDY_SPOT) {
        for (let i = 0; i < n; i++) {
          const pool = cheapestSpot();
          const id = pool ? tryLaunch(pool) : undefined;
          if (id) replicas.set(id, { leaving: false });
        }
      } else {
        for (const id of shoalLaunch(Array.from({ length: n }, (_, i) => ({ ...req(`r${t}-${i}`, ActorKind.INFERENCE, 'any'), group: 'svc' })))) replicas.set(id, { leaving: false });
      }
      downSince = undefined;
    } else if (active.length > want) {
      // Scale in after 10 minutes of lower demand: on-demand replicas first, then the newest.
      downSince ??= t;
      if (t - downSince >= 10 * MIN) {
        const victims = [...active].sort(([a], [b]) => Number(isSpot(a)) - Number(isSpot(b))).slice(0, active.length - want);
        for (const [id] of victims) provider.terminateSync(id);
        downSince = undefined;
      }
    } else downSince = undefined;
    if (policy === PolicyName.SHOAL) rebalance(want);
    let served = 0;
    for (const id of replicas.keys()) if (ready.has(id)) served++;
    if (served < demand) violations++;

    // ---- training ----
    for (const j of jobs) {
      if (j.done || j.arrive > t) continue;
      if (t >= j.deadline && !j.done) {
        // Missed: stop and free the node (the work is lost to the deadline).
        j.done = true;
        if (j.nodeId) {
          const id = j.nodeId;
          detach(j, false);
          provider.terminateSync(id);
        }
        continue;
      }
      const anySpot = spotPools.some((p) => provider.available(p.name));
      let market: Market;
      if (policy === PolicyName.ON_DEMAND) market = Market.ON_DEMAND;
      else if (policy === PolicyName.GREEDY_SPOT) market = anySpot ? Market.SPOT : Market.IDLE;
      else market = j.up.decide({ now: t, progressHours: j.progress, current: j.market, spotAvailable: anySpot }).market;
      if (market !== j.market || (market !== Market.IDLE && !j.nodeId)) {
        if (j.nodeId) {
          const id = j.nodeId;
          detach(j, false);
          provider.terminateSync(id);
        }
        let id: string | undefined;
        if (market === Market.ON_DEMAND) id = policy === PolicyName.SHOAL ? shoalLaunch([req(j.id, ActorKind.TRAINING, false)])[0] : tryLaunch(odPools[0]!.name);
        else if (market === Market.SPOT) id = policy === PolicyName.SHOAL ? shoalLaunch([req(j.id, ActorKind.TRAINING, true)])[0] : ((p) => (p ? tryLaunch(p) : undefined))(cheapestSpot());
        if (id) {
          j.nodeId = id;
          j.market = market;
          jobByNode.set(id, j);
          j.warmUntil = Number.POSITIVE_INFINITY;
        } else j.market = Market.IDLE;
      }
      if (j.nodeId && ready.has(j.nodeId)) {
        if (j.warmUntil === Number.POSITIVE_INFINITY) j.warmUntil = t + restart * HOUR;
        if (t >= j.warmUntil) j.progress += dtH;
      }
      if (j.progress >= j.work - 1e-9) {
        j.done = true;
        j.met = t <= j.deadline;
        if (j.nodeId) {
          const id = j.nodeId;
          detach(j, false);
          provider.terminateSync(id);
        }
      }
    }
    let fleetCost = 0;
    for (const n of provider.listSync()) {
      fleetCost += n.pricePerHour;
      const kind = replicas.has(n.nodeId) ? 'inf' : jobByNode.has(n.nodeId) ? 'job' : 'other';
      const k = `${kind}-${n.spot ? 'spot' : 'od'}`;
      breakdown[k] = (breakdown[k] ?? 0) + n.pricePerHour * dtH;
    }
    maxCost = Math.max(maxCost, fleetCost);
  }
  const counted = jobs.filter((j) => j.deadline <= WEEK);
  const result: WeekResult = {
    policy,
    cost: provider.cost(),
    jobs: counted.length,
    jobsMet: counted.filter((j) => j.met).length,
    sloViolationMinutes: violations,
    minutes: WEEK / MIN,
    preemptions: provider.preemptions().length,
    maxFleetCostPerHour: maxCost,
    nodesLaunched: launched,
    wallMs: performance.now() - wall,
    breakdown,
  };
  void provider.close();
  return result;
}
