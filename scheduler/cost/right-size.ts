/**
 * Right-sizing advice, a pure function of observed utilisation: replica counts from the
 * requests in flight per replica (Little's law: ongoing = rate × latency, so the ongoing count
 * already folds in how long each request takes), instance counts from nodes nobody uses, node
 * profiles for on-demand nodes running only interruptible work, and batch sizes from batch fill
 * and queue time where replicas report them. Each recommendation carries the evidence (samples,
 * means) and its expected change in $/h; changes that buy latency rather than money say $0.
 */

export interface ServiceObservation {
  service: string;
  /** `name@v<version>` for a model version's replicas. */
  model?: string;
  replicas: number;
  /** Fewest replicas allowed (its autoscale floor). @default 1 */
  minReplicas?: number;
  /** What one replica costs per hour (its share of its node's price). */
  dollarsPerHourPerReplica: number;
  /** Samples of requests in flight + queued over all replicas (one per tick). */
  ongoing: readonly number[];
  /** Requests per second over the same span, when known. */
  requestsPerSecond?: number;
  /** Ongoing requests one replica is meant to carry (autoscale target). @default 2 */
  targetOngoingPerReplica?: number;
  /** Dynamic batching, when the replicas report it. */
  batch?: { maxBatchSize: number; maxQueueDelayMs: number; meanBatchRows?: number; meanQueueMs?: number };
}

export interface NodeObservation {
  nodeId: string;
  profile: string;
  pool: string;
  spot: boolean;
  pricePerHour: number;
  cpus: number;
  /** CPU utilisation samples (percent of one core, as node records report it). */
  cpuPercent: readonly number[];
  actors: number;
  /** Its actors are all interruptible (training, batch) and may run on spot. */
  interruptibleOnly: boolean;
}

export interface ProfileOption {
  name: string;
  spot: boolean;
  pricePerHour: number;
  cpus: number;
}

export type RecommendationKind = 'replicas' | 'instances' | 'node-profile' | 'batch-size' | 'queue-delay';

export interface Recommendation {
  kind: RecommendationKind;
  /** Service, pool or node concerned. */
  target: string;
  model?: string;
  current: number | string;
  proposed: number | string;
  /** Expected change in $/h (negative: saves). */
  dollarsPerHourChange: number;
  reason: string;
  evidence: Record<string, number>;
}

export interface RightSizeInput {
  services: readonly ServiceObservation[];
  nodes: readonly NodeObservation[];
  profiles: readonly ProfileOption[];
  /** @default 0.7 */
  targetUtilisation?: number;
  /** @default 6 */
  minSamples?: number;
}

export interface RightSizeOutput {
  recommendations: Recommendation[];
  skipped: { target: string; reason: string }[];
}

const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : 0);
/** The 95th percentile (nearest rank): replicas are sized for busy moments, not the average. */
function p95(xs: readonly number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]!;
}
const round = (x: number) => Math.round(x * 1e6) / 1e6;

export function rightSize(input: RightSizeInput): RightSizeOutput {
  const util = input.targetUtilisation ?? 0.7;
  const minSamples = input.minSamples ?? 6;
  const recommendations: Recommendation[] = [];
  const skipped: { target: string; reason: string }[] = [];

  for (const s of input.services) {
    if (s.ongoing.length < minSamples) {
      skipped.push({ target: s.service, reason: `${s.ongoing.length} utilisation samples, fewer than ${minSamples}` });
      continue;
    }
    const target = s.targetOngoingPerReplica ?? 2;
    const busy = p95(s.ongoing);
    const needed = Math.max(s.minReplicas ?? 1, Math.ceil(busy / (target * util)));
    const evidence = { samples: s.ongoing.length, meanOngoing: round(mean(s.ongoing)), p95Ongoing: busy, targetOngoingPerReplica: target, ...(s.requestsPerSecond !== undefined ? { requestsPerSecond: round(s.requestsPerSecond) } : {}) };
    if (needed !== s.replicas) {
      const shrink = needed < s.replicas;
      recommendations.push({
        kind: 'replicas',
        target: s.service,
        ...(s.model ? { model: s.model } : {}),
        current: s.replicas,
        proposed: needed,
        dollarsPerHourChange: round((needed - s.replicas) * s.dollarsPerHourPerReplica),
        reason: shrink
          ? `p95 of ${busy} requests in flight needs ${needed} replica(s) at ${target} per replica and ${Math.round(util * 100)}% target utilisation`
          : `p95 of ${busy} requests in flight is more than ${s.replicas} replica(s) carry at ${target} per replica`,
        evidence,
      });
    }
    const b = s.batch;
    if (b?.meanBatchRows !== undefined) {
      const fill = b.meanBatchRows / b.maxBatchSize;
      // Requests wait: measured queue time past the delay, or (unmeasured) more in flight than a batch holds.
      const waiting = b.meanQueueMs !== undefined ? b.meanQueueMs > b.maxQueueDelayMs : busy > b.maxBatchSize * s.replicas;
      if (fill > 0.9 && waiting) {
        recommendations.push({ kind: 'batch-size', target: s.service, ...(s.model ? { model: s.model } : {}), current: b.maxBatchSize, proposed: b.maxBatchSize * 2, dollarsPerHourChange: 0, reason: `batches are ${Math.round(fill * 100)}% full and requests wait (${b.meanQueueMs !== undefined ? `${b.meanQueueMs} ms queued` : `p95 ${busy} in flight`}): larger batches serve the same load on fewer runs`, evidence: { ...evidence, batchFill: round(fill) } });
      } else if (fill < 0.1 && b.maxQueueDelayMs > 0) {
        recommendations.push({ kind: 'queue-delay', target: s.service, ...(s.model ? { model: s.model } : {}), current: b.maxQueueDelayMs, proposed: 0, dollarsPerHourChange: 0, reason: `batches are ${Math.round(fill * 100)}% full: waiting ${b.maxQueueDelayMs} ms for more rows adds latency without filling them`, evidence: { ...evidence, batchFill: round(fill) } });
      }
    }
  }

  // Nodes that host nothing and do nothing: fewer instances of their pool.
  const idleByPool = new Map<string, NodeObservation[]>();
  for (const n of input.nodes) {
    if (n.cpuPercent.length < minSamples) {
      skipped.push({ target: n.nodeId, reason: `${n.cpuPercent.length} utilisation samples, fewer than ${minSamples}` });
      continue;
    }
    if (n.actors === 0 && p95(n.cpuPercent) < 10 * n.cpus) {
      const l = idleByPool.get(n.pool) ?? [];
      l.push(n);
      idleByPool.set(n.pool, l);
    } else if (n.actors > 0 && n.interruptibleOnly && !n.spot) {
      const cheaper = input.profiles.filter((p) => p.spot && p.cpus >= n.cpus && p.pricePerHour < n.pricePerHour).sort((a, b) => a.pricePerHour - b.pricePerHour)[0];
      if (cheaper) {
        recommendations.push({ kind: 'node-profile', target: n.nodeId, current: n.profile, proposed: cheaper.name, dollarsPerHourChange: round(cheaper.pricePerHour - n.pricePerHour), reason: `runs only interruptible work (training, batch) on on-demand capacity; ${cheaper.name} is spot with as many cores`, evidence: { samples: n.cpuPercent.length, meanCpuPercent: round(mean(n.cpuPercent)), actors: n.actors } });
      }
    }
  }
  for (const [pool, idle] of idleByPool) {
    const inPool = input.nodes.filter((n) => n.pool === pool).length;
    recommendations.push({
      kind: 'instances',
      target: pool,
      current: inPool,
      proposed: inPool - idle.length,
      dollarsPerHourChange: round(-idle.reduce((s, n) => s + n.pricePerHour, 0)),
      reason: `${idle.map((n) => n.nodeId).join(', ')} host(s) no actor and stayed under 10% CPU`,
      evidence: { samples: Math.min(...idle.map((n) => n.cpuPercent.length)), idleNodes: idle.length },
    });
  }
  recommendations.sort((a, b) => a.dollarsPerHourChange - b.dollarsPerHourChange);
  return { recommendations, skipped };
}
