/**
 * The simulated provider: machines on a {@link VirtualClock}, spot prices and capacity from
 * {@link SpotTrace}s. When a pool's trace goes unavailable every spot node in it gets a
 * preemption notice and dies `noticeMs` later; a launch into an unavailable spot pool fails
 * with `SHOAL_ERR_NO_SPOT_CAPACITY`. Billing integrates each node's pool price over its life
 * (from launch, start-up included, as clouds bill). Deterministic by seed; thousands of nodes
 * over a week run in well under a second of real time per thousand events.
 */
import { seededRandom, type VirtualClock } from '../../cluster/index.ts';
import { poolOf, resolveCatalogue } from '../catalogue.ts';
import { SchedulerErrors } from '../errors.ts';
import type { Catalogue, ResolvedCatalogue, ResolvedPool } from '../types.ts';
import { NodePhase, NoticePresets, ProviderEvents, type LaunchRequest, type Provider, type ProviderEvent, type ProviderNode, type SpotMarket } from './provider.ts';
import { traceStep, type SpotTrace } from './traces.ts';

export interface SimProviderOptions {
  catalogue: Catalogue | ResolvedCatalogue;
  clock: VirtualClock;
  /** Spot traces by pool; pools without one are always available at their list price. */
  traces?: Map<string, SpotTrace>;
  /** Preemption notice. @default NoticePresets.aws (120 s) */
  noticeMs?: number;
  /** Chance that a launch fails with a provider error (not a capacity error). @default 0 */
  launchFailureRate?: number;
  /** Pools whose launches always fail (a broken instance type, for tests). @default [] */
  failingPools?: string[];
  /** @default 1 */
  seed?: number;
}

interface SimNode extends ProviderNode {
  terminatedAt: number | undefined;
  cancelReady: (() => void) | undefined;
}

export class SimProvider implements Provider, SpotMarket {
  readonly name = 'sim';
  readonly catalogue: ResolvedCatalogue;
  readonly noticeMs: number;
  readonly #clock: VirtualClock;
  readonly #traces: Map<string, SpotTrace>;
  /** Prefix sums of price × step hours, per pool, for O(1) billing. */
  readonly #priceSums = new Map<string, Float64Array>();
  readonly #nodes = new Map<string, SimNode>();
  readonly #events = new ProviderEvents();
  readonly #rnd: () => number;
  readonly #failureRate: number;
  readonly #failing: Set<string>;
  #seq = 0;
  #billedClosed = 0;
  readonly #preemptions: { nodeId: string; pool: string; at: number }[] = [];

  constructor(opts: SimProviderOptions) {
    this.catalogue = opts.catalogue.types instanceof Map ? (opts.catalogue as ResolvedCatalogue) : resolveCatalogue(opts.catalogue as Catalogue);
    this.#clock = opts.clock;
    this.#traces = opts.traces ?? new Map();
    this.noticeMs = opts.noticeMs ?? NoticePresets.aws;
    this.#failureRate = opts.launchFailureRate ?? 0;
    this.#failing = new Set(opts.failingPools ?? []);
    this.#rnd = seededRandom(opts.seed ?? 1);
    if (!(this.noticeMs >= 0)) throw SchedulerErrors.BAD_OPTION('noticeMs', `must be ≥ 0, got ${this.noticeMs}`);
    for (const [pool, tr] of this.#traces) {
      if (!this.catalogue.pools.has(pool)) throw SchedulerErrors.UNKNOWN_POOL(pool);
      const sums = new Float64Array(tr.price.length + 1);
      const stepH = tr.stepMs / 3_600_000;
      for (let i = 0; i < tr.price.length; i++) sums[i + 1] = sums[i]! + (tr.price[i] ?? 0) * stepH;
      this.#priceSums.set(pool, sums);
      // Each fall of availability preempts the pool's spot nodes.
      if (this.catalogue.pools.get(pool)!.spot) {
        for (let i = 1; i < tr.available.length; i++) {
          if (tr.available[i - 1] && !tr.available[i]) this.#clock.at(tr.startAt + i * tr.stepMs, () => this.#poolLost(pool));
        }
      }
    }
  }

  // ---- market --------------------------------------------------------------------------------

  price(pool: string): number {
    const p = this.#pool(pool);
    const tr = this.#traces.get(pool);
    return tr ? (tr.price[traceStep(tr, this.#clock.now())] ?? p.listPricePerHour) : p.listPricePerHour;
  }

  available(pool: string): boolean {
    const p = this.#pool(pool);
    if (!p.spot) return true;
    const tr = this.#traces.get(pool);
    return tr ? tr.available[traceStep(tr, this.#clock.now())] === 1 : true;
  }

  // ---- provider ------------------------------------------------------------------------------

  async launch(req: LaunchRequest): Promise<ProviderNode> {
    return this.launchSync(req);
  }

  /** `launch()` without the promise, for tight simulation loops. */
  launchSync(req: LaunchRequest): ProviderNode {
    const pool = this.#pool(req.pool);
    const now = this.#clock.now();
    const nodeId = req.nodeId ?? `${pool.name}-${++this.#seq}`;
    if (this.#nodes.has(nodeId)) throw SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `node id ${nodeId} is taken`);
    let live = 0;
    for (const n of this.#nodes.values()) if (n.pool === pool.name && n.phase !== NodePhase.TERMINATED) live++;
    const fail = (err: ReturnType<typeof SchedulerErrors.PROVIDER_FAILED>) => {
      this.#events.emit({ type: 'launch-failed', pool: pool.name, nodeId, error: { code: err.code, message: err.message }, at: now });
      return err;
    };
    if (live >= pool.max) throw fail(SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `pool ${pool.name} is at its max (${pool.max})`));
    if (!this.available(pool.name)) throw fail(SchedulerErrors.NO_SPOT_CAPACITY(pool.name));
    if (this.#failing.has(pool.name) || (this.#failureRate > 0 && this.#rnd() < this.#failureRate)) throw fail(SchedulerErrors.PROVIDER_FAILED(this.name, 'launch', `${pool.type} in ${pool.zone}: simulated API error`));
    const node: SimNode = {
      nodeId,
      pool: pool.name,
      type: pool.type,
      zone: pool.zone,
      spot: pool.spot,
      phase: NodePhase.LAUNCHING,
      launchedAt: now,
      pricePerHour: this.price(pool.name),
      labels: { ...pool.labels, type: pool.type },
      terminatedAt: undefined,
      cancelReady: undefined,
    };
    this.#nodes.set(nodeId, node);
    this.#emit({ type: 'node-launching', node: { ...node }, at: now });
    node.cancelReady = this.#clock.after(pool.nodeType.startupLatencyMs, () => {
      node.cancelReady = undefined;
      if (node.phase !== NodePhase.LAUNCHING) return;
      node.phase = NodePhase.RUNNING;
      this.#emit({ type: 'node-ready', node: this.#view(node), at: this.#clock.now() });
    });
    return this.#view(node);
  }

  async terminate(nodeId: string): Promise<void> {
    this.terminateSync(nodeId);
  }

  terminateSync(nodeId: string, reason: 'requested' | 'preempted' = 'requested'): void {
    const n = this.#nodes.get(nodeId);
    if (!n || n.phase === NodePhase.TERMINATED) return;
    n.cancelReady?.();
    n.phase = NodePhase.TERMINATED;
    n.terminatedAt = this.#clock.now();
    this.#billedClosed += this.#bill(n, n.terminatedAt);
    this.#emit({ type: 'node-terminated', node: this.#view(n), at: n.terminatedAt, reason });
    this.#nodes.delete(nodeId);
  }

  async list(): Promise<ProviderNode[]> {
    return this.listSync();
  }

  listSync(): ProviderNode[] {
    return [...this.#nodes.values()].map((n) => this.#view(n));
  }

  onEvent(listener: (e: ProviderEvent) => void): () => void {
    return this.#events.on(listener);
  }

  async close(): Promise<void> {
    for (const id of [...this.#nodes.keys()]) this.terminateSync(id);
  }

  /** Sends a preemption notice to one node now (tests; traces preempt whole pools). */
  preempt(nodeId: string): void {
    const n = this.#nodes.get(nodeId);
    if (n && n.phase !== NodePhase.TERMINATED && n.phase !== NodePhase.TERMINATING) this.#notice(n);
  }

  /** Dollars billed so far, for every node ever launched. */
  cost(): number {
    let open = 0;
    const now = this.#clock.now();
    for (const n of this.#nodes.values()) open += this.#bill(n, now);
    return this.#billedClosed + open;
  }

  preemptions(): readonly { nodeId: string; pool: string; at: number }[] {
    return this.#preemptions;
  }

  #poolLost(pool: string): void {
    for (const n of [...this.#nodes.values()]) if (n.pool === pool && n.phase !== NodePhase.TERMINATING && n.phase !== NodePhase.TERMINATED) this.#notice(n);
  }

  #notice(n: SimNode): void {
    const now = this.#clock.now();
    n.phase = NodePhase.TERMINATING;
    this.#preemptions.push({ nodeId: n.nodeId, pool: n.pool, at: now });
    this.#emit({ type: 'preemption-notice', node: this.#view(n), at: now, terminateAt: now + this.noticeMs });
    this.#clock.after(this.noticeMs, () => this.terminateSync(n.nodeId, 'preempted'));
  }

  /** Price integral over [launchedAt, end]. */
  #bill(n: SimNode, end: number): number {
    const tr = this.#traces.get(n.pool);
    const sums = this.#priceSums.get(n.pool);
    if (!tr || !sums) return (this.#pool(n.pool).listPricePerHour * (end - n.launchedAt)) / 3_600_000;
    const at = (t: number) => {
      const x = (t - tr.startAt) / tr.stepMs;
      const i = Math.max(0, Math.min(tr.price.length - 1, Math.floor(x)));
      const frac = Math.max(0, x - i);
      return sums[i]! + (tr.price[i] ?? 0) * (frac * tr.stepMs) / 3_600_000;
    };
    return at(end) - at(n.launchedAt);
  }

  #view(n: SimNode): ProviderNode {
    return { nodeId: n.nodeId, pool: n.pool, type: n.type, zone: n.zone, spot: n.spot, phase: n.phase, launchedAt: n.launchedAt, pricePerHour: this.price(n.pool), labels: n.labels };
  }

  #emit(e: ProviderEvent): void {
    this.#events.emit(e);
  }

  #pool(name: string): ResolvedPool {
    return poolOf(this.catalogue, name);
  }
}
