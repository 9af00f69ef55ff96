/**
 * Pack: fill the fullest node that still fits (best fit). Leaves whole nodes empty, so the
 * autoscaler can remove them and large requests still find room.
 */
import { utilizationAfter } from '../request.ts';
import type { Strategy } from './strategy.ts';

export function packStrategy(): Strategy {
  return {
    name: 'pack',
    // Prefer pools that already have partly used nodes' worth of free space: nothing pool-level.
    scorePool: () => 0,
    scoreNode: (req, node) => utilizationAfter(req, node),
  };
}
