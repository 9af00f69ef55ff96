/**
 * A node agent's Prometheus series (its process registry, served on `metrics.port`). What the
 * agent already holds — its actors and their mailboxes, restarts, the worker pool — is read when
 * Prometheus scrapes; only kernel step times and heartbeat lag are observed as they happen (a
 * few field writes each). Actor types add their own (the inference replica's batches,
 * ml/serving/serving-metrics.ts).
 */
import { HotHistogram, scrapeCounter, scrapeGauge, type HistogramChild, type Registry } from '../cluster/index.ts';
import type { ActorHost } from './actor-host.ts';
import type { WorkerPool } from './worker-pool.ts';

export interface NodeMetricsSources {
  host: () => ActorHost | undefined;
  pool: () => WorkerPool | undefined;
}

export function createNodeMetrics(registry: Registry, src: NodeMetricsSources) {
  const registers = [registry];
  scrapeGauge({
    name: 'shoal_node_actors',
    help: 'Actors hosted on this node by type and state',
    labelNames: ['type', 'state'],
    registers,
    read: () => {
      const by = new Map<string, { type: string; state: string; n: number }>();
      for (const a of src.host()?.list() ?? []) {
        const k = `${a.type}\u0001${a.state}`;
        const e = by.get(k) ?? { type: a.type, state: a.state, n: 0 };
        e.n++;
        by.set(k, e);
      }
      return [...by.values()].map((e) => [{ type: e.type, state: e.state }, e.n]);
    },
  });
  scrapeGauge({
    name: 'shoal_node_mailbox_depth',
    help: 'Messages waiting in the mailboxes of this node\'s actors, by actor type',
    labelNames: ['type'],
    registers,
    read: () => {
      const by = new Map<string, number>();
      for (const a of src.host()?.list() ?? []) by.set(a.type, (by.get(a.type) ?? 0) + a.mailbox);
      return [...by].map(([type, n]) => [{ type }, n]);
    },
  });
  scrapeCounter({
    name: 'shoal_node_actor_restarts_total',
    help: 'Actor restarts by their supervisor on this node, by actor type',
    labelNames: ['type'],
    registers,
    read: () => [...(src.host()?.restartsByType() ?? new Map<string, number>())].map(([type, n]) => [{ type }, n]),
  });
  scrapeCounter({ name: 'shoal_node_messages_processed_total', help: 'Actor messages handled on this node', registers, read: () => [[{}, src.host()?.stats().processed ?? 0]] });
  scrapeCounter({ name: 'shoal_node_rejected_tells_total', help: 'Tells refused on this node (mailbox full, bad message, actor stopped)', registers, read: () => [[{}, src.host()?.stats().rejectedTells ?? 0]] });
  scrapeGauge({ name: 'shoal_node_worker_pool_threads', help: 'Most threads of the node\'s worker pool', registers, read: () => [[{}, src.pool()?.maxThreads ?? 0]] });
  scrapeGauge({ name: 'shoal_node_worker_pool_busy', help: 'Worker pool tasks running on a thread now', registers, read: () => [[{}, src.pool()?.busy ?? 0]] });
  scrapeGauge({ name: 'shoal_node_worker_pool_queued', help: 'Worker pool tasks waiting for a thread', registers, read: () => [[{}, src.pool()?.queueSize ?? 0]] });
  scrapeCounter({ name: 'shoal_node_worker_pool_tasks_total', help: 'Worker pool tasks finished (or failed)', registers, read: () => [[{}, src.pool()?.completed ?? 0]] });
  const kernelSteps = new HotHistogram({
    name: 'shoal_node_kernel_step_seconds',
    help: 'Kernel steps (one command submission, or one CPU run) by the backend they ran on',
    labelNames: ['backend'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const byBackend = new Map<string, HistogramChild>();
  const heartbeatLag = new HotHistogram({
    name: 'shoal_node_heartbeat_lag_seconds',
    help: 'How late each heartbeat went out: from when it was due to when its beat was published (a busy event loop shows here)',
    labelNames: [],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  }).labels();
  return {
    kernelStep(backend: string, seconds: number): void {
      let c = byBackend.get(backend);
      if (!c) byBackend.set(backend, (c = kernelSteps.labels(backend)));
      c.observe(seconds);
    },
    heartbeatLag(seconds: number): void {
      heartbeatLag.observe(seconds);
    },
  };
}
export type NodeMetrics = ReturnType<typeof createNodeMetrics>;
