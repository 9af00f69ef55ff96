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
import { Type, type Static } from '@sinclair/typebox';
import { GatewayErrors } from '../errors.ts';
import { EntityOipRequest, EntityPredictRequest, OipInferRequest, PredictRequest, type ExplainOptions } from '../../ml/index.ts';
import type { InferenceService, InferResult } from '../inference.ts';
import { requestMeta } from './request-id.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The extension's name in `GET /v2`. */
export const EXPLAIN_EXTENSION = 'explain';

const Name = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
const Count = Type.String({ pattern: '^[0-9]{1,6}$' });

/**
 * The query string as it comes (this scope's validator does not coerce strings): how to explain.
 * Unknown fields are refused. Numbers are checked against {@link ExplainOptions}' ranges below.
 */
const ExplainQuery = Type.Object(
  {
    method: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('exact'), Type.Literal('kernel'), Type.Literal('ig')])),
    samples: Type.Optional(Count),
    steps: Type.Optional(Count),
    background: Type.Optional(Count),
    link: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('identity'), Type.Literal('logit')])),
    output: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    column: Type.Optional(Count),
  },
  { additionalProperties: false },
);
type ExplainQuery = Static<typeof ExplainQuery>;

/** The numeric options' ranges (also gRPC's ModelExplain, gateway/grpc/explain.ts). */
export const RANGES = { samples: [2, 65_536], steps: [1, 1024], background: [1, 1024], column: [0, 65_535] } as const;

/** The query string as {@link ExplainOptions}; a number out of range is a BAD_REQUEST naming it. */
function optionsOf(q: ExplainQuery): ExplainOptions {
  const o: ExplainOptions = {};
  if (q.method) o.method = q.method;
  if (q.link) o.link = q.link;
  if (q.output) o.output = q.output;
  for (const k of ['samples', 'steps', 'background', 'column'] as const) {
    const v = q[k];
    if (v === undefined) continue;
    const n = Number(v);
    const [lo, hi] = RANGES[k];
    if (n < lo || n > hi) throw GatewayErrors.BAD_REQUEST(`querystring/${k}: must be ${lo}..${hi}, got ${v}`);
    o[k] = n;
  }
  return o;
}

export function registerExplainRoutes(app: App, inference: InferenceService): void {
  const send = (reply: FastifyReply, r: InferResult) => {
    if (r.requestId !== undefined) void reply.header('x-request-id', r.requestId);
    return reply.header('content-type', 'application/json; charset=utf-8').header('x-shoal-model-version', r.version).send(r.body);
  };
  const oip = { tags: ['oip'], body: Type.Union([OipInferRequest, EntityOipRequest]), querystring: ExplainQuery };
  app.post('/v2/models/:name/explain', { schema: { ...oip, summary: 'Per-feature attributions and base value per row (the stable version)', params: Type.Object({ name: Name }) } }, async (req, reply) =>
    send(reply, await inference.explain(req.params.name, undefined, 'oip', req.body as unknown as Buffer, optionsOf(req.query), undefined, requestMeta(req))),
  );
  app.post(
    '/v2/models/:name/versions/:version/explain',
    { schema: { ...oip, summary: 'Per-feature attributions and base value per row (one version)', params: Type.Object({ name: Name, version: Name }) } },
    async (req, reply) => send(reply, await inference.explain(req.params.name, req.params.version, 'oip', req.body as unknown as Buffer, optionsOf(req.query), undefined, requestMeta(req))),
  );
  // find-my-way: a regex-bounded parameter, then `::` for a literal `:`.
  app.post(
    '/v1/models/:name(^[A-Za-z0-9_-]{1,64})::explain',
    { schema: { tags: ['v1'], summary: 'KServe v1 explain: attributions per instance', params: Type.Object({ name: Name }), body: Type.Union([PredictRequest, EntityPredictRequest]), querystring: ExplainQuery } },
    async (req, reply) => send(reply, await inference.explain(req.params.name, undefined, 'v1', req.body as unknown as Buffer, optionsOf(req.query), undefined, requestMeta(req))),
  );
}
