/**
 * Spread: put replicas of one group (a service's replicas) on different zones first, then
 * different pools, then different nodes, and among equals the least loaded node. One zone or
 * one spot pool going away then takes only a fraction of the replicas with it.
 */
import { utilizationAfter } from '../request.ts';
import type { Strategy } from './strategy.ts';

export function spreadStrategy(): Strategy {
  return {
    name: 'spread',
    scorePool(req, pool, ctx) {
      if (!req.group) return 0;
      return -(10 * ctx.groupInZone(req.group, pool.zone) + ctx.groupInPool(req.group, pool.pool));
    },
    scoreNode(req, node, ctx) {
      const same = req.group ? ctx.groupOnNode(req.group, node.nodeId) : 0;
      // Less loaded is better; a replica already here costs more than any load difference.
      return -100 * same - utilizationAfter(req, node);
    },
  };
}
