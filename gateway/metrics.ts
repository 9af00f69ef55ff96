/**
 * Prometheus metrics of the gateway (prom-client, one registry per app).
 *
 * The metrics touched on every request (HTTP and inference durations, outcomes, batch sizes,
 * queue depth, coalescing) are {@link HotHistogram} / {@link HotCounter} / {@link HotGauge}:
 * profiled under load, prom-client's `labels(...).observe()` re-validates and re-hashes the label
 * values on *every* call (even on a child), ~0.7 µs per operation and five per request. These keep
 * one child per label set (looked up once, then held by the caller) whose update is a few field
 * writes, and give prom-client's registry the same exposition (label order included) at scrape time.
 */
import client from 'prom-client';
import { HotCounter, HotGauge, HotHistogram, type HistogramChild } from '../cluster/index.ts';

export { HotCounter, HotGauge, HotHistogram, HistogramChild, CounterChild, GaugeChild } from '../cluster/index.ts';

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'shoal_gateway_' });
  const registers = [registry];
  const httpDuration = new HotHistogram({
    name: 'shoal_gateway_http_request_duration_seconds',
    help: 'HTTP request latency by route and status (its _count is the request rate)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  /** method → route → status → child, without building a key string per request. */
  const httpChildren = new Map<string, Map<string, Map<number, HistogramChild>>>();
  return {
    registry,
    /** The cached duration histogram child of a method, route and status. */
    http(method: string, route: string, status: number) {
      let byRoute = httpChildren.get(method);
      if (!byRoute) httpChildren.set(method, (byRoute = new Map()));
      let byStatus = byRoute.get(route);
      if (!byStatus) byRoute.set(route, (byStatus = new Map()));
      let c = byStatus.get(status);
      if (!c) byStatus.set(status, (c = httpDuration.labels(method, route, String(status))));
      return c;
    },
    httpDuration,
    grpcDuration: new HotHistogram({
      name: 'shoal_gateway_grpc_request_duration_seconds',
      help: 'gRPC call latency by method and status code (its _count is the call rate)',
      labelNames: ['method', 'code'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    inferDuration: new HotHistogram({
      name: 'shoal_gateway_inference_duration_seconds',
      help: 'Inference latency seen by the gateway, by model, version and route (stable/canary/pinned)',
      labelNames: ['model', 'version', 'route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    inferRequests: new HotCounter({
      name: 'shoal_gateway_inference_requests_total',
      help: 'Inference requests by model, version, route and outcome code (ok or SHOAL_ERR_*)',
      labelNames: ['model', 'version', 'route', 'code'] as const,
      registers,
    }),
    errors: new HotCounter({
      name: 'shoal_gateway_errors_total',
      help: 'Error responses by code and HTTP status',
      labelNames: ['code', 'status'] as const,
      registers,
    }),
    batchSize: new HotHistogram({
      name: 'shoal_gateway_batch_size',
      help: 'Rows in the onnxruntime batch each request ran in (reported by the replica)',
      labelNames: ['model', 'version'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    messageRequests: new HotHistogram({
      name: 'shoal_gateway_nats_message_requests',
      help: 'Requests coalesced into one NATS message to a replica',
      labelNames: ['service'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    queueDepth: new HotGauge({
      name: 'shoal_gateway_replica_queue_rows',
      help: 'Rows queued in the replica batcher, as last reported in a reply',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    pendingRequests: new HotGauge({
      name: 'shoal_gateway_pending_requests',
      help: 'Requests waiting in this gateway to be sent, by service',
      labelNames: ['service'] as const,
      registers,
    }),
    rollbacks: new client.Counter({
      name: 'shoal_gateway_canary_rollbacks_total',
      help: 'Automatic canary rollbacks (decided by the rollout controller on every gateway\'s outcomes), as announced on shoal.events.model-rollback',
      labelNames: ['model'] as const,
      registers,
    }),
    // Scale-to-zero (gateway/activator.ts): how long requests for a model scaled to zero waited for its replica.
    coldStart: new client.Histogram({
      name: 'shoal_model_cold_start_seconds',
      help: 'Start from zero as this gateway\'s held requests saw it: first request held to the replica serving',
      labelNames: ['model', 'version'] as const,
      buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60],
      registers,
    }),
    coldHeld: new client.Counter({
      name: 'shoal_model_cold_requests_total',
      help: 'Requests for a model scaled to zero, by outcome: held then released, refused (hold queue full) or timed out',
      labelNames: ['model', 'outcome'] as const,
      registers,
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof createMetrics>;
