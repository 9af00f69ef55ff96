/**
 * Prometheus metrics of the gateway (prom-client, one registry per app).
 *
 * On the request path, use the cached children (`http()`, `childOf()`): prom-client's
 * `labels(...)` hashes the label values and builds a new child object on every call, which
 * showed up in the gateway's profile under load; a child looked up once per label set is reused.
 */
import client from 'prom-client';

/** Children of a labelled metric, cached by their label values (joined with \u0001). */
export function childOf<C>(metric: { labels: (...values: string[]) => C }): (...values: string[]) => C {
  const cache = new Map<string, C>();
  return (...values: string[]): C => {
    const key = values.length === 1 ? values[0]! : values.join('\u0001');
    let c = cache.get(key);
    if (c === undefined) {
      c = metric.labels(...values);
      cache.set(key, c);
    }
    return c;
  };
}

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'shoal_gateway_' });
  const registers = [registry];
  const httpDuration = new client.Histogram({
    name: 'shoal_gateway_http_request_duration_seconds',
    help: 'HTTP request latency by route and status (its _count is the request rate)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  /** method → route → status → child, without building a key string per request. */
  const httpChildren = new Map<string, Map<string, Map<number, client.Histogram.Internal<'method' | 'route' | 'status'>>>>();
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
    inferDuration: new client.Histogram({
      name: 'shoal_gateway_inference_duration_seconds',
      help: 'Inference latency seen by the gateway, by model, version and route (stable/canary/pinned)',
      labelNames: ['model', 'version', 'route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    inferRequests: new client.Counter({
      name: 'shoal_gateway_inference_requests_total',
      help: 'Inference requests by model, version, route and outcome code (ok or SHOAL_ERR_*)',
      labelNames: ['model', 'version', 'route', 'code'] as const,
      registers,
    }),
    errors: new client.Counter({
      name: 'shoal_gateway_errors_total',
      help: 'Error responses by code and HTTP status',
      labelNames: ['code', 'status'] as const,
      registers,
    }),
    batchSize: new client.Histogram({
      name: 'shoal_gateway_batch_size',
      help: 'Rows in the onnxruntime batch each request ran in (reported by the replica)',
      labelNames: ['model', 'version'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    messageRequests: new client.Histogram({
      name: 'shoal_gateway_nats_message_requests',
      help: 'Requests coalesced into one NATS message to a replica',
      labelNames: ['service'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    }),
    queueDepth: new client.Gauge({
      name: 'shoal_gateway_replica_queue_rows',
      help: 'Rows queued in the replica batcher, as last reported in a reply',
      labelNames: ['model', 'version'] as const,
      registers,
    }),
    pendingRows: new client.Gauge({
      name: 'shoal_gateway_pending_rows',
      help: 'Rows waiting in this gateway to be sent, by service',
      labelNames: ['service'] as const,
      registers,
    }),
    rollbacks: new client.Counter({
      name: 'shoal_gateway_canary_rollbacks_total',
      help: 'Automatic canary rollbacks triggered by this gateway',
      labelNames: ['model'] as const,
      registers,
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof createMetrics>;
