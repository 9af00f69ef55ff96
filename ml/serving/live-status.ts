/**
 * A deployment as it is now, not as its record says: each track's replicas from the actor
 * directory, each asked whether it serves. `shoal models status` prints it; readiness and
 * replica counts come from here, never from the deployment record alone.
 */
import type { Versioned } from '../../cluster/index.ts';
import type { Deployment, Track } from './canary.ts';

/** One replica as it is now: its directory entry, and whether it answered a readiness probe. */
export interface LiveReplica {
  actorId: string;
  nodeId: string;
  state: string;
  serving: boolean;
  reason?: string;
}

/** A track as it is now, not as its record says: `serving` counts replicas that answered. */
export interface LiveTrack {
  version: number;
  service: string;
  recordState: Track['state'];
  desired: number;
  serving: number;
  replicas: LiveReplica[];
}

export interface LiveStatus {
  deployment: Deployment;
  /** A replica of the stable version answered just now. */
  ready: boolean;
  stable: LiveTrack;
  canary?: LiveTrack;
}

/** Each track's replicas (directory entries of its service) and whether each answered `probe`. */
export async function liveStatus(dep: Deployment, entries: readonly Versioned[], probe: (actorId: string) => Promise<boolean>): Promise<LiveStatus> {
  const track = async (t: Track): Promise<LiveTrack> => {
    const mine = entries.filter((v) => v.entry.spec.service === t.service).map((v) => v.entry);
    const replicas = await Promise.all(
      mine.map(async (e): Promise<LiveReplica> => ({ actorId: e.actorId, nodeId: e.nodeId, state: e.state, serving: await probe(e.actorId), ...(e.reason ? { reason: e.reason } : {}) })),
    );
    replicas.sort((a, b) => a.actorId.localeCompare(b.actorId));
    return { version: t.version, service: t.service, recordState: t.state, desired: t.replicas, serving: replicas.filter((r) => r.serving).length, replicas };
  };
  const [stable, canary] = await Promise.all([track(dep.stable), dep.canary ? track(dep.canary) : undefined]);
  return { deployment: dep, ready: stable.serving > 0, stable, ...(canary ? { canary } : {}) };
}
