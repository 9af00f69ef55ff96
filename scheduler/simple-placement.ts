/**
 * How the actor runtime asks where an actor should go (`ActorPlacer`), and the simplest answer:
 * filter the live, running nodes that satisfy the actor's constraints and resources, then pick
 * the least loaded. The scheduler process uses the cost-aware `ClusterPlacer`
 * (runtime-placer.ts); this one stays as the dependency-free fallback and for tests.
 */
import type { NodeView, SpawnSpec } from '../cluster/index.ts';

export type PlacementDecision = { nodeId: string } | { reason: string };

export interface ActorPlacer {
  /** Chooses a node for one actor; `exclude` holds nodes that already refused it. */
  choose(actorId: string, spec: SpawnSpec, nodes: readonly NodeView[], exclude: ReadonlySet<string>): PlacementDecision;
  /** Throws a typed error if nothing could ever host this actor (checked once, at spawn). */
  check?(actorId: string, spec: SpawnSpec): void;
  /** The actor no longer holds resources where it was placed (stopped, failed, moving). */
  release?(actorId: string): void;
  /** An actor already running on `nodeId` (found in the directory at start-up) holds resources there. */
  adopt?(actorId: string, spec: SpawnSpec, nodeId: string, nodes: readonly NodeView[]): void;
}

/** Why a node cannot take the actor, or undefined if it can. */
export function unfit(spec: SpawnSpec, n: NodeView): string | undefined {
  if (!n.alive || n.state !== 'running') return 'not running';
  const c = spec.constraints;
  if (c?.nodeId && c.nodeId !== n.nodeId) return 'pinned elsewhere';
  if (c?.spotOk === false && n.labels.spot) return 'spot not allowed';
  for (const [k, v] of Object.entries(c?.labels ?? {})) if ((n.labels as Record<string, unknown>)[k] !== v) return `label ${k}≠${String(v)}`;
  const r = spec.resources;
  if (r?.gpu && !n.capabilities.gpu) return 'no GPU';
  if (r?.gpuFeatures?.some((f) => !n.capabilities.gpu?.features.includes(f))) return 'GPU lacks features';
  if (r?.cpu && r.cpu > n.capabilities.cpus) return 'too few cores';
  if (r?.memoryBytes && r.memoryBytes > n.capabilities.memoryBytes) return 'too little memory';
  return undefined;
}

export class LeastLoadedPlacer implements ActorPlacer {
  /**
   * Placements made recently on each node (times), counted on top of the node's reported load
   * until its next heartbeats include them, so a burst of spawns spreads out.
   */
  readonly #recent = new Map<string, number[]>();

  constructor(
    private readonly windowMs = 2000,
    private readonly now: () => number = Date.now,
  ) {}

  #recentCount(nodeId: string): number {
    const t = this.#recent.get(nodeId);
    if (!t) return 0;
    const cutoff = this.now() - this.windowMs;
    while (t.length > 0 && t[0]! < cutoff) t.shift();
    return t.length;
  }

  choose(_actorId: string, spec: SpawnSpec, nodes: readonly NodeView[], exclude: ReadonlySet<string>): PlacementDecision {
    let best: NodeView | undefined;
    let bestLoad = Infinity;
    const reasons = new Map<string, number>();
    for (const n of nodes) {
      if (exclude.has(n.nodeId)) continue;
      const why = unfit(spec, n);
      if (why) {
        reasons.set(why, (reasons.get(why) ?? 0) + 1);
        continue;
      }
      const load = n.load.actors + this.#recentCount(n.nodeId);
      if (load < bestLoad) {
        best = n;
        bestLoad = load;
      }
    }
    if (!best) {
      if (nodes.length === 0) return { reason: 'no nodes in the cluster' };
      const summary = [...reasons].map(([r, k]) => `${k} ${r}`).join(', ');
      return { reason: summary ? `no node fits (${summary})` : 'every fitting node refused it' };
    }
    const t = this.#recent.get(best.nodeId) ?? [];
    t.push(this.now());
    this.#recent.set(best.nodeId, t);
    return { nodeId: best.nodeId };
  }
}
