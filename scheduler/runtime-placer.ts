/**
 * The scheduler process's placer: the actor runtime's `ActorPlacer` interface backed by the
 * cost-aware `Placer` (filter → score → bind over pools). Membership views are synced in on
 * every decision; a (re-)placement releases the actor's old binding first, so a moved actor is
 * decided afresh; nodes that just refused the actor are taken out for that decision only.
 *
 * Defaults for the runtime's generic actors (kind `service`): they ask for a sliver of CPU
 * (thousands fit on a node, like Ray's zero-CPU actors) and may run on spot unless
 * `constraints.spotOk` is false. Inference keeps the placer's own default (on-demand unless
 * `spotOk`), training and batch prefer spot.
 */
import { ActorKind, type NodeView, type SpawnSpec } from '../cluster/index.ts';
import { Placer, type PlacerOptions } from './placement.ts';
import type { PlacementRequest } from './types.ts';
import type { ActorPlacer, PlacementDecision } from './simple-placement.ts';

/** CPU a generic actor reserves when it asks for none. @default 0.001 */
export const SERVICE_ACTOR_CPU = 0.001;

export function placementRequest(actorId: string, spec: SpawnSpec): PlacementRequest {
  const kind = spec.kind ?? ActorKind.SERVICE;
  const c = spec.constraints ?? {};
  const spotOk = c.spotOk ?? (c.nodeId !== undefined || kind === ActorKind.SERVICE ? true : undefined);
  return {
    id: actorId,
    kind,
    resources: { ...(kind === ActorKind.SERVICE && spec.resources?.cpu === undefined ? { cpu: SERVICE_ACTOR_CPU } : {}), ...spec.resources },
    constraints: { ...c, ...(spotOk !== undefined ? { spotOk } : {}) },
    ...(spec.group || spec.service ? { group: spec.group ?? spec.service } : {}),
  };
}

export class ClusterPlacer implements ActorPlacer {
  readonly placer: Placer;

  constructor(opts: PlacerOptions = {}) {
    this.placer = new Placer({ strategy: 'cost-aware', ...opts });
  }

  choose(actorId: string, spec: SpawnSpec, nodes: readonly NodeView[], exclude: ReadonlySet<string>): PlacementDecision {
    this.placer.syncViews(nodes);
    this.placer.release(actorId);
    const excluded = nodes.filter((n) => exclude.has(n.nodeId) && n.alive).map((n) => n.nodeId);
    for (const id of excluded) this.placer.setAlive(id, false);
    try {
      const r = this.placer.place(placementRequest(actorId, spec));
      return r.ok ? { nodeId: r.placement.nodeId } : { reason: r.reason.message };
    } finally {
      for (const id of excluded) this.placer.setAlive(id, true);
    }
  }

  check(actorId: string, spec: SpawnSpec): void {
    this.placer.assertPlaceable(placementRequest(actorId, spec));
  }

  release(actorId: string): void {
    this.placer.release(actorId);
  }

  adopt(actorId: string, spec: SpawnSpec, nodeId: string, nodes: readonly NodeView[]): void {
    this.placer.syncViews(nodes);
    const req = placementRequest(actorId, spec);
    this.placer.place({ ...req, constraints: { ...req.constraints, nodeId, spotOk: true } });
  }
}
