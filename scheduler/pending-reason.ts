/**
 * Why a request waits, as data: the first thing standing between it and a node — the pinned node
 * gone, no GPU, no matching labels, spot only, no GPU features, nothing large enough — or just
 * capacity. "Waiting for capacity" is never a lie: the placer looks at every fitting node before
 * it says so.
 */
import { describeRequest, fitsIn, formatLabels, hasFeatures, labelsMatch } from './request.ts';
import type { FleetIndex } from './fleet-index.ts';
import { PendingCode, type NormalizedRequest, type PendingReason } from './types.ts';

export function whyPending(n: NormalizedRequest, fleet: FleetIndex): PendingReason {
  if (n.nodeId) {
    const e = fleet.nodes.get(n.nodeId);
    if (!e || !fleet.schedulable(e.state)) return { code: PendingCode.NODE_UNAVAILABLE, message: `node ${n.nodeId} is ${e ? (e.state.alive ? 'draining' : 'dead') : 'unknown'}` };
    if (!labelsMatch(n.labels, e.state.labels) || (e.state.spot && !n.spotOk)) return { code: PendingCode.NO_MATCHING_LABELS, message: `node ${n.nodeId} does not match the request's labels or market` };
    return { code: PendingCode.WAITING_FOR_CAPACITY, message: `waiting for capacity on node ${n.nodeId} (${describeRequest(n)})` };
  }
  const live = fleet.poolList.filter((p) => p.live > 0);
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
