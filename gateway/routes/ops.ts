/**
 * Operations routes: the Open Inference Protocol's server metadata and health, the cluster's
 * status as seen over NATS, and Prometheus metrics.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { SHOAL_VERSION, clusterStatus, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { InferenceService } from '../inference.ts';
import type { GatewayMetrics } from '../metrics.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerOpsRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects; metrics: GatewayMetrics; inference: InferenceService | undefined }): void {
  const { metrics, inference } = deps;
  // Open Inference Protocol (KServe v2) server endpoints.
  app.get('/v2', { schema: { tags: ['oip'], summary: 'Server metadata' } }, async () => ({ name: 'shoal', version: SHOAL_VERSION, extensions: ['binary_tensor_data', 'explain'] }));
  app.get('/v2/health/live', { schema: { tags: ['oip'], summary: 'Liveness' } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags: ['oip'], summary: 'Readiness (connected to NATS)' } }, async (_req, reply) => {
    const ready = !deps.nc.isClosed() && !deps.nc.isDraining();
    return reply.status(ready ? 200 : 503).send({ ready });
  });

  app.get(
    '/v1/status',
    {
      schema: {
        tags: ['cluster'],
        summary: 'Processes seen over NATS and the scheduler status',
        querystring: Type.Object({ waitMs: Type.Integer({ minimum: 50, maximum: 5000, default: 300 }) }),
      },
    },
    async (req) => clusterStatus(deps.nc, deps.subjects, req.query.waitMs),
  );

  app.get('/metrics', { schema: { tags: ['ops'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    if (inference) for (const [service, n] of inference.dispatcher.pending()) metrics.pendingRequests.labels(service).set(n);
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
