/**
 * The inference replicas' series in their node's registry (`ctx.metrics`): batch sizes and
 * onnxruntime run times as they happen (one held histogram child per replica, a few field
 * writes per batch), queued rows and in-flight batches read from the live replicas' batchers
 * when Prometheus scrapes. Made once per registry and shared by the node's replicas.
 */
import { HotHistogram, scrapeCounter, scrapeGauge, type HistogramChild, type Registry } from '../../cluster/index.ts';
import type { BatcherStats } from './batcher.ts';

export interface ReplicaSource {
  model: string;
  version: number;
  stats(): BatcherStats;
}

export interface ReplicaMetrics {
  batchSize: HistogramChild;
  runSeconds: HistogramChild;
  /** Stops reporting the replica's queue (it stopped). */
  remove(): void;
}

const made = new WeakMap<Registry, (r: ReplicaSource) => ReplicaMetrics>();

/** Registers a replica with its node's serving series; undefined without a registry. */
export function replicaMetrics(registry: Registry | undefined, replica: ReplicaSource): ReplicaMetrics | undefined {
  if (!registry) return undefined;
  let make = made.get(registry);
  if (!make) made.set(registry, (make = servingMetrics(registry)));
  return make(replica);
}

function servingMetrics(registry: Registry): (r: ReplicaSource) => ReplicaMetrics {
  const registers = [registry];
  const live = new Set<ReplicaSource>();
  const byVersion = (pick: (s: BatcherStats) => number): [Record<string, string>, number][] => {
    const sums = new Map<string, { model: string; version: string; v: number }>();
    for (const r of live) {
      const k = `${r.model}\u0001${r.version}`;
      const e = sums.get(k) ?? { model: r.model, version: String(r.version), v: 0 };
      e.v += pick(r.stats());
      sums.set(k, e);
    }
    return [...sums.values()].map((e) => [{ model: e.model, version: e.version }, e.v]);
  };
  const batchSize = new HotHistogram({
    name: 'shoal_node_batch_size',
    help: 'Rows per onnxruntime run (dynamic batch) on this node, by model and version',
    labelNames: ['model', 'version'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers,
  });
  const runSeconds = new HotHistogram({
    name: 'shoal_node_inference_run_seconds',
    help: 'One batch through onnxruntime on a session worker (feeds posted to outputs back), by model and version',
    labelNames: ['model', 'version'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  scrapeGauge({ name: 'shoal_node_batch_queue_rows', help: 'Rows waiting in the replicas\' batchers, by model and version', labelNames: ['model', 'version'], registers, read: () => byVersion((s) => s.queueRows) });
  scrapeGauge({ name: 'shoal_node_batches_inflight', help: 'Batches running on the replicas\' sessions now, by model and version', labelNames: ['model', 'version'], registers, read: () => byVersion((s) => s.inflight) });
  scrapeCounter({ name: 'shoal_node_inference_requests_total', help: 'Requests the replicas on this node ran (since they started), by model and version', labelNames: ['model', 'version'], registers, read: () => byVersion((s) => s.requests) });
  return (r) => {
    live.add(r);
    const v = String(r.version);
    return { batchSize: batchSize.labels(r.model, v), runSeconds: runSeconds.labels(r.model, v), remove: () => void live.delete(r) };
  };
}
