/**
 * The scheduler's Prometheus series (its process registry, served on `metrics.port`): leadership,
 * placements (rate by outcome, latency), pending actors by reason, autoscaler decisions and spot
 * notices. Counters are kept here and bumped by the leader's parts through small hooks; what the
 * leader already holds (pending actors, live nodes) is read when Prometheus scrapes.
 */
import { promClient, scrapeCounter, scrapeGauge, type Registry } from '../cluster/index.ts';

export interface SchedulerMetricsSources {
  isLeader(): boolean;
  /** Pending actors by reason code (the leader's; empty on a standby). */
  pendingByReason(): Map<string, number>;
  /** Nodes by state as the leader sees them (alive, draining, dead). */
  nodesByState(): Map<string, number>;
  /** Spend per owner since the ledger began (the leader's; empty on a standby). */
  costRows(): { tenant: string; model: string; job: string; dollars: number }[];
  /** Predictions per model version since the ledger began. */
  costPerPrediction(): Map<string, number>;
}

export function createSchedulerMetrics(registry: Registry) {
  const registers = [registry];
  let sources: SchedulerMetricsSources | undefined;
  scrapeGauge({ name: 'shoal_scheduler_is_leader', help: '1 while this scheduler holds the leader lease', registers, read: () => [[{}, sources?.isLeader() ? 1 : 0]] });
  scrapeGauge({
    name: 'shoal_scheduler_pending_actors',
    help: 'Actors waiting for a node, by reason (waiting-for-capacity, no-gpu-node, no-matching-labels, node-refused, …); leader only',
    labelNames: ['reason'],
    registers,
    read: () => [...(sources?.pendingByReason() ?? new Map<string, number>())].map(([reason, n]) => [{ reason }, n]),
  });
  scrapeGauge({
    name: 'shoal_scheduler_nodes',
    help: 'Nodes in the membership view by state (alive, draining, dead); leader only',
    labelNames: ['state'],
    registers,
    read: () => [...(sources?.nodesByState() ?? new Map<string, number>())].map(([state, n]) => [{ state }, n]),
  });
  scrapeCounter({
    name: 'shoal_cost_dollars_total',
    help: 'Dollars of node time attributed to each owner (tenant, model version, job) since the ledger began; tenant _idle is capacity no actor asked for; leader only',
    labelNames: ['tenant', 'model', 'job'],
    registers,
    read: () => (sources?.costRows() ?? []).map((r) => [{ tenant: r.tenant, model: r.model, job: r.job }, r.dollars]),
  });
  scrapeGauge({
    name: 'shoal_cost_dollars_per_1k_predictions',
    help: 'Dollars per 1,000 predictions of each model version since the ledger began (predictions counted from the gateways\' reports); leader only',
    labelNames: ['model'],
    registers,
    read: () => {
      const dollars = new Map<string, number>();
      for (const r of sources?.costRows() ?? []) if (r.model) dollars.set(r.model, (dollars.get(r.model) ?? 0) + r.dollars);
      return [...(sources?.costPerPrediction() ?? new Map<string, number>())].filter(([, n]) => n > 0).map(([model, n]) => [{ model }, ((dollars.get(model) ?? 0) / n) * 1000]);
    },
  });
  const placements = new promClient.Counter({
    name: 'shoal_scheduler_placements_total',
    help: 'Placement attempts by outcome: placed, pending (no node fits now), refused (every fitting node refused)',
    labelNames: ['outcome'],
    registers,
  });
  const placementSeconds = new promClient.Histogram({
    name: 'shoal_scheduler_placement_duration_seconds',
    help: 'Time to place one actor: choose a node and have it start the actor (or give up)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const autoscaler = new promClient.Counter({
    name: 'shoal_scheduler_autoscaler_decisions_total',
    help: 'Autoscaler actions by kind (launch, terminate, launch-failed) and pool',
    labelNames: ['action', 'pool'],
    registers,
  });
  const spotNotices = new promClient.Counter({ name: 'shoal_scheduler_spot_notices_total', help: 'Spot preemption notices handled, by pool', labelNames: ['pool'], registers });
  const leaderChanges = new promClient.Counter({
    name: 'shoal_scheduler_leader_changes_total',
    help: 'Times this scheduler took (acquired) or lost the leader lease',
    labelNames: ['change'],
    registers,
  });
  return {
    /** What the scrape-time gauges read (set once the lease and the leader's parts exist). */
    setSources(s: SchedulerMetricsSources): void {
      sources = s;
    },
    placement(outcome: 'placed' | 'pending' | 'refused', seconds: number): void {
      placements.inc({ outcome });
      placementSeconds.observe(seconds);
    },
    autoscaled(action: 'launch' | 'terminate' | 'launch-failed', pool: string, n = 1): void {
      if (n > 0) autoscaler.inc({ action, pool }, n);
    },
    spotNotice(pool: string): void {
      spotNotices.inc({ pool });
    },
    leadership(leading: boolean): void {
      leaderChanges.inc({ change: leading ? 'acquired' : 'lost' });
    },
  };
}
export type SchedulerMetrics = ReturnType<typeof createSchedulerMetrics>;
