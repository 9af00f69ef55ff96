/**
 * A placement strategy scores candidates; the placer filters and binds. Scoring is split in two
 * so the placer can rank pools once (price, risk, zone spread: the same for every node of a
 * pool) and then look at only a few nodes of the best pools (fit, fragmentation, replicas
 * already there). Higher scores win. Like Orleans' `IPlacementDirector`, a strategy knows
 * nothing of how nodes are indexed.
 */
import type { NodeState, NormalizedRequest, PoolState } from '../types.ts';

/** What a strategy may ask the placer about the current bindings. */
export interface PlacementContext {
  /** Actors of `group` bound to `nodeId`. */
  groupOnNode(group: string, nodeId: string): number;
  /** Actors of `group` bound in `zone`. */
  groupInZone(group: string, zone: string): number;
  /** Actors of `group` bound in the pool named `pool`. */
  groupInPool(group: string, pool: string): number;
  /** Interruption-risk multiplier for a pool (≥ 1; > 1 while a recent preemption marks it risky). */
  risk(pool: string): number;
}

export interface Strategy {
  readonly name: string;
  /** Pool-level part of the score. */
  scorePool(req: NormalizedRequest, pool: PoolState, ctx: PlacementContext): number;
  /** Node-level part, added to the pool's. Only called for nodes the request fits on. */
  scoreNode(req: NormalizedRequest, node: NodeState, ctx: PlacementContext): number;
}

export const StrategyName = {
  PACK: 'pack',
  SPREAD: 'spread',
  COST_AWARE: 'cost-aware',
} as const;
export type StrategyName = (typeof StrategyName)[keyof typeof StrategyName];
