/**
 * The gateway's Fastify app. Today: health (Open Inference Protocol paths), server metadata,
 * cluster status and Prometheus metrics. Inference routes arrive with issue 6.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import client from 'prom-client';
import {
  SHOAL_VERSION,
  ShoalError,
  discover,
  request,
  type Logger,
  type NatsConnection,
  type SchedulerStatus,
  type Subjects,
} from '../cluster/index.ts';
import { GatewayErrors } from './errors.ts';

export interface GatewayDeps {
  nc: NatsConnection;
  subjects: Subjects;
  logger: Logger;
  /** @default 1 MiB */
  bodyLimit?: number;
}

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  // Fastify's logger type and pino's differ only in fields Fastify never reads.
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, bodyLimit: deps.bodyLimit ?? 1024 * 1024 }).withTypeProvider<TypeBoxTypeProvider>();

  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'shoal_gateway_' });
  const httpDuration = new client.Histogram({
    name: 'shoal_gateway_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  app.addHook('onResponse', async (req, reply) => {
    httpDuration.labels(req.method, req.routeOptions.url ?? 'unknown', String(reply.statusCode)).observe(reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    if (err instanceof ShoalError) {
      void reply.status(err.status).send({ error: err.message, code: err.code });
      return;
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.status(status).send({ error: err.message, code: err.validation ? GatewayErrors.BAD_REQUEST.code : (err.code ?? 'SHOAL_ERR_INTERNAL') });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: `no route ${req.method} ${req.url}`, code: GatewayErrors.NOT_FOUND.code });
  });

  // Open Inference Protocol (KServe v2) server endpoints.
  app.get('/v2', async () => ({ name: 'shoal', version: SHOAL_VERSION, extensions: [] as string[] }));
  app.get('/v2/health/live', async () => ({ live: true }));
  app.get('/v2/health/ready', async (_req, reply) => {
    const ready = !deps.nc.isClosed() && !deps.nc.isDraining();
    return reply.status(ready ? 200 : 503).send({ ready });
  });

  app.get(
    '/v1/status',
    {
      schema: {
        querystring: Type.Object({ waitMs: Type.Integer({ minimum: 50, maximum: 5000, default: 300 }) }),
      },
    },
    async (req) => {
      const [processes, sched] = await Promise.all([
        discover(deps.nc, deps.subjects, req.query.waitMs),
        request<SchedulerStatus>(deps.nc, deps.subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 }).catch((err: unknown) => ({ error: (err as Error).message })),
      ]);
      return { processes, scheduler: sched };
    },
  );

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  return app;
}
