/**
 * Whether a spawn spec could run on a node of the live fleet now (its whole capacity, not what
 * is free): asked before a deployment may scale to zero, since its next start must not wait for
 * capacity that does not exist. Same filters as placement: pinned node, labels, market, size,
 * GPU features, actor types.
 */
import type { NodeView, SpawnSpec } from '../cluster/index.ts';
import { placementRequest } from './actor-placer.ts';
import { nodeSpecFromView } from './fleet-index.ts';
import { fitsIn, hasFeatures, labelsMatch, normalizeRequest } from './request.ts';

/** Why no alive node of `nodes` could ever host `spec`, or undefined when one could. */
export function liveHostReason(spec: SpawnSpec, nodes: readonly NodeView[]): string | undefined {
  const req = normalizeRequest(placementRequest(spec.id ?? 'replica', spec));
  const alive = nodes.filter((n) => n.alive).map(nodeSpecFromView);
  if (alive.length === 0) return 'no node is alive';
  const pinned = req.nodeId ? alive.filter((n) => n.nodeId === req.nodeId) : alive;
  if (pinned.length === 0) return `node ${req.nodeId} (its nodeId constraint) is not alive`;
  const typed = pinned.filter((n) => !n.actorTypes || !req.actorType || n.actorTypes.includes(req.actorType));
  if (typed.length === 0) return `no alive node hosts actor type ${req.actorType}`;
  const labelled = typed.filter((n) => labelsMatch(req.labels, n.labels));
  if (labelled.length === 0) return `no alive node has labels ${JSON.stringify(req.labels ?? {})}`;
  const market = labelled.filter((n) => req.spotOk || !n.spot);
  if (market.length === 0) return 'it may not run on spot and every alive node matching its labels is spot';
  const sized = market.filter((n) => fitsIn(req, n.capacity) && hasFeatures(req.gpuFeatures, n.gpuFeatures ?? []));
  if (sized.length === 0) {
    const want = `${req.cpu} CPU, ${(req.memoryBytes / 2 ** 30).toFixed(2)} GiB memory, ${req.gpu} GPU${req.gpuFeatures.length ? ` (${req.gpuFeatures.join(', ')})` : ''}`;
    const largest = market.reduce((a, b) => (b.capacity.cpu > a.capacity.cpu ? b : a));
    return `it needs ${want}; no alive node is that large (largest: ${largest.nodeId}, ${largest.capacity.cpu} CPU, ${(largest.capacity.memoryBytes / 2 ** 30).toFixed(2)} GiB, ${largest.capacity.gpu} GPU)`;
  }
  return undefined;
}
