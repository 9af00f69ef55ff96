/**
 * Cost-aware: minimise the expected dollars per hour of running this actor where it lands.
 *
 *   price of the share used   = dominant share of the node × the pool's price per hour
 *   expected interruption cost = interruptions/hour × risk × hours lost per interruption (by kind) × share price
 *   spread penalty             = replicas of the same group already in the pool (one pool = one failure domain)
 *   fragmentation              = the part of the node left unused after placing (best fit, small weight)
 *
 * So interruptible training lands on spot (cheap, a lost checkpoint interval is cheap too),
 * latency-sensitive inference stays on on-demand unless it was allowed on spot — and then its
 * replicas are spread across spot pools — and a CPU-only actor does not take a GPU node's
 * expensive share. Ray scores fit only; this is the price-aware part it lacks.
 */
import { ActorKind } from '../../cluster/index.ts';
import { dominantShare, utilizationAfter } from '../request.ts';
import type { Strategy } from './strategy.ts';

export interface CostAwareOptions {
  /**
   * Hours of the actor's work (or, for serving, its SLO-equivalent) lost per interruption.
   * Training loses about half a checkpoint interval plus the restart.
   * @default { inference: 1, training: 0.25, batch: 0.5, service: 1 }
   */
  interruptionLossHours?: Partial<Record<ActorKind, number>>;
  /** Penalty per replica of the same group already in the pool, as a fraction of the share's price. @default 0.5 */
  sameGroupPoolPenalty?: number;
  /** Weight of the unused part of the node after placement (fragmentation). @default 0.05 */
  fragmentationWeight?: number;
}

const DEFAULT_LOSS: Record<ActorKind, number> = { inference: 1, training: 0.25, batch: 0.5, service: 1 };

export function costAwareStrategy(opts: CostAwareOptions = {}): Strategy {
  const loss: Record<ActorKind, number> = { ...DEFAULT_LOSS, ...opts.interruptionLossHours };
  const samePool = opts.sameGroupPoolPenalty ?? 0.5;
  const frag = opts.fragmentationWeight ?? 0.05;
  return {
    name: 'cost-aware',
    scorePool(req, pool, ctx) {
      const share = dominantShare(req, pool.maxCapacity);
      const sharePrice = share * pool.pricePerHour;
      const interruption = pool.spot ? pool.interruptionRatePerHour * ctx.risk(pool.pool) * (loss[req.kind] ?? 1) * sharePrice : 0;
      const spread = req.group && (pool.spot || req.kind === ActorKind.INFERENCE) ? samePool * sharePrice * ctx.groupInPool(req.group, pool.pool) : 0;
      return -(sharePrice + interruption + spread);
    },
    scoreNode(req, node) {
      const share = dominantShare(req, node.capacity);
      return -frag * (1 - utilizationAfter(req, node)) * Math.max(share, 0.01) * node.pricePerHour;
    },
  };
}
