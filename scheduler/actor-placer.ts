/**
 * Where the actor runtime asks an actor to go. `ActorPlacer` is the seam between the scheduler's
 * actor manager (directory, spawn requests, re-placement) and a placement policy; the one the
 * scheduler process runs is `ClusterPlacer`, the cost-aware, anti-affine `Placer` (filter → score
 * → bind over pools) kept in step with membership one node change at a time — never a resync of
 * the fleet per decision, so a decision costs O(pools + candidates).
 *
 * Defaults for the runtime's generic actors (kind `service`): they ask for a sliver of CPU
 * (thousands fit on a node, like Ray's zero-CPU actors) and may run on spot unless
 * `constraints.spotOk` is false. Inference keeps the placer's own default (on-demand unless
 * `spotOk`), training and batch prefer spot.
 */
import { ActorKind, type NodeView, type SpawnSpec } from '../cluster/index.ts';
import { Placer, type PlacerOptions } from './placement.ts';
import { nodeSpecFromView } from './fleet-index.ts';
import type { PlacementRequest } from './types.ts';

export type PlacementDecision = { nodeId: string } | { reason: string; code?: string };

export interface ActorPlacer {
  /**
   * Chooses a node for one actor and holds its resources there; `exclude` holds nodes that just
   * refused it (for this decision only). A re-placement forgets where the actor was first.
   */
  choose(actorId: string, spec: SpawnSpec, exclude: ReadonlySet<string>): PlacementDecision;
  /** Throws a typed error if nothing could ever host this actor (checked once, at spawn). */
  check(actorId: string, spec: SpawnSpec): void;
  /** The actor no longer holds resources where it was placed (stopped, failed, moving). */
  release(actorId: string): void;
  /** An actor already running on `nodeId` (found in the directory at start-up) holds resources there. */
  adopt(actorId: string, spec: SpawnSpec, nodeId: string): void;
  /** One node joined, changed state, restarted, died (`alive: false`) or left (`undefined`). */
  nodeChanged(nodeId: string, view: NodeView | undefined): void;
}

/** CPU a generic actor reserves when it asks for none. @default 0.001 */
export const SERVICE_ACTOR_CPU = 0.001;

export function placementRequest(actorId: string, spec: SpawnSpec): PlacementRequest {
  const kind = spec.kind ?? ActorKind.SERVICE;
  const c = spec.constraints ?? {};
  const spotOk = c.spotOk ?? (c.nodeId !== undefined || kind === ActorKind.SERVICE ? true : undefined);
  return {
    id: actorId,
    kind,
    actorType: spec.type,
    resources: { ...(kind === ActorKind.SERVICE && spec.resources?.cpu === undefined ? { cpu: SERVICE_ACTOR_CPU } : {}), ...spec.resources },
    constraints: { ...c, ...(spotOk !== undefined ? { spotOk } : {}) },
    ...(spec.group || spec.service ? { group: spec.group ?? spec.service } : {}),
  };
}

export class ClusterPlacer implements ActorPlacer {
  readonly placer: Placer;
  /** The incarnation each node was added with: a restarted node is added afresh. */
  readonly #incarnations = new Map<string, string>();

  constructor(opts: PlacerOptions = {}) {
    this.placer = new Placer({ strategy: 'cost-aware', ...opts });
  }

  nodeChanged(nodeId: string, view: NodeView | undefined): void {
    const known = this.placer.node(nodeId) !== undefined;
    if (!view || (known && this.#incarnations.get(nodeId) !== view.incarnation)) {
      // Gone, or a new process under the same id (its labels or capacity may differ): the old
      // bindings go with the old process; the runtime re-places those actors.
      this.placer.removeNode(nodeId);
      this.#incarnations.delete(nodeId);
      if (!view) return;
    }
    if (this.placer.node(nodeId) === undefined) {
      if (!view.alive) return;
      this.placer.addNode(nodeSpecFromView(view));
      this.#incarnations.set(nodeId, view.incarnation);
    }
    const draining = view.state === 'draining' || view.state === 'stopped';
    this.placer.setAlive(nodeId, view.alive);
    this.placer.setDraining(nodeId, draining);
  }

  choose(actorId: string, spec: SpawnSpec, exclude: ReadonlySet<string>): PlacementDecision {
    this.placer.release(actorId);
    const r = this.placer.place(placementRequest(actorId, spec), { exclude });
    return r.ok ? { nodeId: r.placement.nodeId } : { reason: r.reason.message, code: r.reason.code };
  }

  check(actorId: string, spec: SpawnSpec): void {
    this.placer.assertPlaceable(placementRequest(actorId, spec));
  }

  release(actorId: string): void {
    this.placer.release(actorId);
  }

  adopt(actorId: string, spec: SpawnSpec, nodeId: string): void {
    const req = placementRequest(actorId, spec);
    this.placer.place({ ...req, constraints: { ...req.constraints, nodeId, spotOk: true } });
  }
}
