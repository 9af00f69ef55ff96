/**
 * A deployment as it is now, not as its record says: each track's replicas from the actor
 * directory, each asked whether it serves. `shoal models status` prints it; readiness and
 * replica counts come from here, never from the deployment record alone.
 */
import type { Versioned } from '../../cluster/index.ts';
import type { Deployment, Track } from './canary.ts';
import type { ReadyReply, ServingInfo } from './messages.ts';

/** One replica as it is now: its directory entry, whether it answered a readiness probe, and how it serves. */
export interface LiveReplica {
  actorId: string;
  nodeId: string;
  state: string;
  serving: boolean;
  reason?: string;
  /** What the replica said when probed (batching, warm-up, instances). */
  info?: ServingInfo;
}

/** A track as it is now, not as its record says: `serving` counts replicas that answered. */
export interface LiveTrack {
  version: number;
  service: string;
  recordState: Track['state'];
  desired: number;
  serving: number;
  replicas: LiveReplica[];
  /** How the track's replicas serve: from one that answered now, else the record's. */
  info?: ServingInfo;
  /** Warm-up warnings of the replicas that answered (each once). */
  warnings: string[];
}

export interface LiveStatus {
  deployment: Deployment;
  /** A replica of the stable version answered just now. */
  ready: boolean;
  stable: LiveTrack;
  canary?: LiveTrack;
}

/** Each track's replicas (directory entries of its service) and what each answered `probe` (undefined: no answer). */
export async function liveStatus(dep: Deployment, entries: readonly Versioned[], probe: (actorId: string) => Promise<ReadyReply | boolean | undefined>): Promise<LiveStatus> {
  const track = async (t: Track): Promise<LiveTrack> => {
    const mine = entries.filter((v) => v.entry.spec.service === t.service).map((v) => v.entry);
    const replicas = await Promise.all(
      mine.map(async (e): Promise<LiveReplica> => {
        const r = await probe(e.actorId);
        const info = typeof r === 'object' && r.batching && r.warmup ? { batching: r.batching, warmup: r.warmup, instances: r.instances, intraOpThreads: r.intraOpThreads } : undefined;
        return { actorId: e.actorId, nodeId: e.nodeId, state: e.state, serving: r !== undefined && r !== false, ...(e.reason ? { reason: e.reason } : {}), ...(info ? { info } : {}) };
      }),
    );
    replicas.sort((a, b) => a.actorId.localeCompare(b.actorId));
    const info = replicas.find((r) => r.info)?.info ?? t.serving;
    const warnings = [...new Set(replicas.map((r) => r.info?.warmup.warning).filter((w): w is string => w !== undefined))];
    return { version: t.version, service: t.service, recordState: t.state, desired: t.replicas, serving: replicas.filter((r) => r.serving).length, replicas, ...(info ? { info } : {}), warnings };
  };
  const [stable, canary] = await Promise.all([track(dep.stable), dep.canary ? track(dep.canary) : undefined]);
  return { deployment: dep, ready: stable.serving > 0, stable, ...(canary ? { canary } : {}) };
}
