/**
 * Applies the autoscaler's plans through a provider and wires the provider's events to the
 * policy: a failed launch backs its pool off and the same round re-plans (another type or
 * zone); a preemption notice marks the pool risky and runs the interruption handler (drain →
 * checkpoint → re-place). The runtime calls `reconcile(pending)` on a timer and whenever the
 * pending queue grows; only the leader should (see `LeaderLease`).
 */
import { errorCode, type Logger } from '../../cluster/index.ts';
import { SchedulerErrors } from '../errors.ts';
import type { Placer } from '../placement.ts';
import { NodePhase, type Provider, type ProviderEvent, type ProviderNode } from '../providers/provider.ts';
import type { InterruptionHandler, InterruptionOutcome } from '../spot/interruption.ts';
import type { PlacementRequest } from '../types.ts';
import type { Autoscaler, FleetNode, ScalePlan } from './autoscaler.ts';

export interface ScalingControllerOptions {
  autoscaler: Autoscaler;
  provider: Provider;
  /** Used to count each node's actors (idle detection). */
  placer?: Placer;
  /** Actors on a node, when there is no placer. @default placer's count, else 0 */
  actorsOn?: (nodeId: string) => number;
  /** Runs on every preemption notice. */
  interruption?: InterruptionHandler;
  /** Plans per `reconcile()`: after failed launches it re-plans (those pools now back off). @default 8 */
  maxRounds?: number;
  log?: Logger;
}

export interface ReconcileResult {
  plans: ScalePlan[];
  launched: ProviderNode[];
  failed: { pool: string; code: string; message: string }[];
  terminated: string[];
}

export class ScalingController {
  readonly #o: ScalingControllerOptions;
  #unsubscribe: (() => void) | undefined;
  readonly #handling: Promise<InterruptionOutcome>[] = [];
  readonly #listeners = new Set<(o: InterruptionOutcome) => void>();

  constructor(opts: ScalingControllerOptions) {
    this.#o = opts;
  }

  /** Subscribes to the provider's events. */
  start(): void {
    this.#unsubscribe ??= this.#o.provider.onEvent((e) => this.#onEvent(e));
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }

  /** Called with each finished interruption (moves made, actors left waiting). */
  onInterruption(fn: (o: InterruptionOutcome) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Waits for interruption handling in flight (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#handling);
  }

  async fleet(): Promise<FleetNode[]> {
    const nodes = await this.#o.provider.list();
    const actorsOn = this.#o.actorsOn ?? ((id: string) => this.#o.placer?.node(id)?.actors ?? 0);
    return nodes
      .filter((n) => n.phase !== NodePhase.TERMINATED)
      .map((n) => ({ nodeId: n.nodeId, pool: n.pool, phase: n.phase === NodePhase.LAUNCHING ? 'launching' : n.phase === NodePhase.RUNNING ? 'running' : 'terminating', actors: actorsOn(n.nodeId), pricePerHour: n.pricePerHour }));
  }

  /** One round: plan, launch (re-planning after failures), terminate. */
  async reconcile(pending: readonly PlacementRequest[]): Promise<ReconcileResult> {
    const res: ReconcileResult = { plans: [], launched: [], failed: [], terminated: [] };
    const rounds = this.#o.maxRounds ?? 8;
    for (let round = 0; round < rounds; round++) {
      const plan = this.#o.autoscaler.plan({ pending, fleet: await this.fleet() });
      res.plans.push(plan);
      if (round === 0) {
        for (const t of plan.terminate) {
          await this.#o.provider.terminate(t.nodeId);
          res.terminated.push(t.nodeId);
          this.#o.log?.info({ nodeId: t.nodeId, pool: t.pool, reason: t.reason }, 'node terminated');
        }
      }
      let failures = 0;
      for (const l of plan.launch) {
        try {
          const node = await this.#o.provider.launch({ pool: l.pool });
          this.#o.autoscaler.launchSucceeded(l.pool);
          res.launched.push(node);
          this.#o.log?.info({ nodeId: node.nodeId, pool: l.pool, reason: l.reason }, 'node launched');
        } catch (err) {
          failures++;
          const message = err instanceof Error ? err.message : String(err);
          this.#o.autoscaler.launchFailed(l.pool, message);
          res.failed.push({ pool: l.pool, code: errorCode(err) ?? SchedulerErrors.PROVIDER_FAILED.code, message });
          this.#o.log?.warn({ pool: l.pool, err: message }, 'launch failed; backing off that pool');
        }
      }
      if (failures === 0) break;
    }
    return res;
  }

  /** Launches one node in `pool` by hand, refusing what would break the budget cap. */
  async launch(pool: string): Promise<ProviderNode> {
    const p = this.#o.autoscaler.catalogue.pools.get(pool);
    if (!p) throw SchedulerErrors.UNKNOWN_POOL(pool);
    const fleet = await this.fleet();
    const cost = fleet.reduce((s, n) => s + n.pricePerHour, 0) + this.#o.autoscaler.price(p);
    if (cost > this.#o.autoscaler.budgetPerHour + 1e-9) throw SchedulerErrors.BUDGET_EXCEEDED(cost, this.#o.autoscaler.budgetPerHour);
    return this.#o.provider.launch({ pool });
  }

  #onEvent(e: ProviderEvent): void {
    if (e.type !== 'preemption-notice') return;
    this.#o.autoscaler.interrupted(e.node.pool);
    this.#o.log?.warn({ nodeId: e.node.nodeId, pool: e.node.pool, terminateAt: e.terminateAt }, 'spot interruption notice');
    const h = this.#o.interruption;
    if (!h) return;
    const p = h.handle({ nodeId: e.node.nodeId, pool: e.node.pool, terminateAt: e.terminateAt });
    this.#handling.push(p);
    void p.then((o) => {
      for (const l of this.#listeners) l(o);
    });
  }
}
