/**
 * Explanations (README "Governance" → "Explanations"): `POST /v2/models/{name}[/versions/{v}]/explain`
 * (an OIP-style extension, listed in `GET /v2`'s extensions) and KServe v1's
 * `POST /v1/models/{name}:explain`. The body is the one infer/predict takes (tensor rows, or
 * entities for a model trained on feature views); how to explain goes in the query string
 * (`method`, `samples`, `steps`, `background`, `link`, `output`, `column`). Registered in the
 * scope whose JSON bodies stay raw: the replica decodes the body and computes the answer.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EntityOipRequest, EntityPredictRequest, ExplainOptions, OipInferRequest, PredictRequest } from '../../ml/index.ts';
import type { InferenceService, InferResult } from '../inference.ts';
import { requestMeta } from './request-id.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The extension's name in `GET /v2`. */
export const EXPLAIN_EXTENSION = 'explain';

const Name = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

export function registerExplainRoutes(app: App, inference: InferenceService): void {
  const send = (reply: FastifyReply, r: InferResult) => {
    if (r.requestId !== undefined) void reply.header('x-request-id', r.requestId);
    return reply.header('content-type', 'application/json; charset=utf-8').header('x-shoal-model-version', r.version).send(r.body);
  };
  const oip = { tags: ['oip'], body: Type.Union([OipInferRequest, EntityOipRequest]), querystring: ExplainOptions };
  app.post('/v2/models/:name/explain', { schema: { ...oip, summary: 'Per-feature attributions and base value per row (the stable version)', params: Type.Object({ name: Name }) } }, async (req, reply) =>
    send(reply, await inference.explain(req.params.name, undefined, 'oip', req.body as unknown as Buffer, req.query, undefined, requestMeta(req))),
  );
  app.post(
    '/v2/models/:name/versions/:version/explain',
    { schema: { ...oip, summary: 'Per-feature attributions and base value per row (one version)', params: Type.Object({ name: Name, version: Name }) } },
    async (req, reply) => send(reply, await inference.explain(req.params.name, req.params.version, 'oip', req.body as unknown as Buffer, req.query, undefined, requestMeta(req))),
  );
  // find-my-way: a regex-bounded parameter, then `::` for a literal `:`.
  app.post(
    '/v1/models/:name(^[A-Za-z0-9_-]{1,64})::explain',
    { schema: { tags: ['v1'], summary: 'KServe v1 explain: attributions per instance', params: Type.Object({ name: Name }), body: Type.Union([PredictRequest, EntityPredictRequest]), querystring: ExplainOptions } },
    async (req, reply) => send(reply, await inference.explain(req.params.name, undefined, 'v1', req.body as unknown as Buffer, req.query, undefined, requestMeta(req))),
  );
}
