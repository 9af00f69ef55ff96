/**
 * `POST /v1/models/{name}/predict` for callers who do not want tensors: `{"instances": [row, …]}`
 * where a row is an array (single-input models) or an object by input name; the answer is
 * `{"predictions": [row, …]}` from the first output (or all outputs by name with several). A model
 * trained on feature views also takes `{"entities": [...], "features": {...}}` (README
 * "Predictions by entity"; ml/serving/entity-features.ts).
 * Registered in the scope whose JSON bodies stay raw: the replica converts rows to tensors and
 * writes the answer (`ml/serving/codecs/v1.ts`).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EntityPredictRequest, PredictRequest } from '../../ml/index.ts';
import type { InferenceService } from '../inference.ts';
import { requestMeta } from './request-id.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerV1Routes(app: App, inference: InferenceService): void {
  app.post(
    '/v1/models/:name/predict',
    {
      schema: {
        tags: ['v1'],
        summary: 'Predict from JSON rows, or by entity (a model trained on feature views)',
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        body: Type.Union([PredictRequest, EntityPredictRequest]),
      },
    },
    async (req, reply) => {
      const key = typeof req.headers['x-shoal-route-key'] === 'string' ? req.headers['x-shoal-route-key'] : undefined;
      const r = await inference.infer(req.params.name, undefined, key, 'v1', req.body as unknown as Buffer, undefined, requestMeta(req));
      if (r.requestId !== undefined) void reply.header('x-request-id', r.requestId);
      return reply.header('content-type', 'application/json; charset=utf-8').header('x-shoal-model-version', r.version).header('x-shoal-route', r.route).send(r.body);
    },
  );
}
