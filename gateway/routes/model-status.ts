/**
 * `GET /v1/models/{name}/status`: a deployment as the gateway sees it — each track (stable,
 * canary) with its version, state and replica count, how its replicas serve (batching, warm-up,
 * instances, as they reported when the track became ready) and any warm-up warning — and whether
 * the model is ready now (a live probe, as `/v2/models/{name}/ready`). `shoal models status`
 * shows the same from the registry's side, per replica.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { MlErrors, describeBatching, type Track } from '../../ml/index.ts';
import type { InferenceService } from '../inference.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const TrackStatus = Type.Object({
  version: Type.Integer(),
  state: Type.String(),
  replicas: Type.Integer(),
  maxBatchSize: Type.Integer(),
  maxQueueDelayMs: Type.Number(),
  /** One line: how requests are batched. */
  batching: Type.Optional(Type.String()),
  serving: Type.Optional(Type.Unknown()),
  warnings: Type.Array(Type.String()),
  weight: Type.Optional(Type.Number()),
});
const ModelStatus = Type.Object({ name: Type.String(), ready: Type.Boolean(), reason: Type.Optional(Type.String()), stable: TrackStatus, canary: Type.Optional(TrackStatus) });

function trackStatus(t: Track & { weight?: number }) {
  return {
    version: t.version,
    state: t.state,
    replicas: t.replicas,
    maxBatchSize: t.maxBatchSize,
    maxQueueDelayMs: t.maxQueueDelayMs,
    ...(t.serving ? { batching: describeBatching(t.serving.batching), serving: t.serving } : {}),
    warnings: t.serving?.warmup.warning ? [t.serving.warmup.warning] : [],
    ...(t.weight !== undefined ? { weight: t.weight } : {}),
  };
}

export function registerModelStatusRoutes(app: App, inference: InferenceService): void {
  app.get(
    '/v1/models/:name/status',
    {
      schema: {
        tags: ['v1'],
        summary: 'Deployment status: tracks, batching, warm-up warnings, readiness',
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        response: { 200: ModelStatus },
      },
    },
    async (req) => {
      const name = req.params.name;
      inference.routing.record(name);
      const d = inference.routing.deployments.get(name);
      if (!d) throw MlErrors.DEPLOYMENT_NOT_FOUND(name);
      const r = await inference.ready(name, undefined);
      return { name, ready: r.ready, ...(r.reason ? { reason: r.reason } : {}), stable: trackStatus(d.stable), ...(d.canary ? { canary: trackStatus(d.canary) } : {}) };
    },
  );
}
