/** Open Inference Protocol (KServe v2) model endpoints: metadata, readiness, infer. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { EntityOipRequest, OipInferRequest } from '../../ml/index.ts';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { GatewayErrors } from '../errors.ts';
import type { InferenceService, InferResult } from '../inference.ts';
import { requestMeta } from './request-id.ts';

const HEADER_LENGTH = 'inference-header-content-length';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const Params = Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });
const VersionParams = Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), version: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) });

const JSON_TYPE = 'application/json; charset=utf-8';
const ErrorBody = Type.Object({ error: Type.String(), code: Type.String() });
const TensorMeta = Type.Object({ name: Type.String(), datatype: Type.String(), shape: Type.Array(Type.Integer()) });
/** Shoal's extension of model metadata: how the version is batched, warmed up and run (gateway/inference.ts `ModelParameters`). */
const ModelParameters = Type.Object(
  {
    deployed: Type.Boolean(),
    batching: Type.Optional(Type.Object({
      batched: Type.Boolean(),
      maxBatchSize: Type.Integer(),
      dim: Type.Optional(Type.String()),
      axes: Type.Optional(Type.Record(Type.String(), Type.Integer())),
      reason: Type.Optional(Type.String()),
    })),
    warmup: Type.Optional(Type.Object({ mode: Type.String(), ok: Type.Boolean(), warning: Type.Optional(Type.String()) })),
    instances: Type.Optional(Type.Integer()),
    intraOpThreads: Type.Optional(Type.Integer()),
  },
  { description: 'Shoal extension: how this version is served' },
);
const ModelMetadata = Type.Object({ name: Type.String(), versions: Type.Array(Type.String()), platform: Type.String(), inputs: Type.Array(TensorMeta), outputs: Type.Array(TensorMeta), parameters: Type.Optional(ModelParameters) });

export function registerOipRoutes(app: App, inference: InferenceService): void {
  const metaSchema = { tags: ['oip'], response: { 200: ModelMetadata, 404: ErrorBody } };
  app.get('/v2/models/:name', { schema: { ...metaSchema, summary: 'Model metadata (the serving version)', params: Params } }, async (req) => inference.metadata(req.params.name, undefined));
  app.get('/v2/models/:name/versions/:version', { schema: { ...metaSchema, summary: 'Model version metadata (number or alias)', params: VersionParams } }, async (req) =>
    inference.metadata(req.params.name, req.params.version),
  );

  const Ready = Type.Object({ name: Type.String(), ready: Type.Boolean(), reason: Type.Optional(Type.String()) });
  const readySchema = { tags: ['oip'], response: { 200: Ready, 503: Ready } };
  app.get('/v2/models/:name/ready', { schema: { ...readySchema, summary: 'Model readiness (deployed, and a replica answers a live probe)', params: Params } }, async (req, reply) => {
    const r = await inference.ready(req.params.name, undefined);
    return reply.status(r.ready ? 200 : 503).send({ name: req.params.name, ...r });
  });
  app.get('/v2/models/:name/versions/:version/ready', { schema: { ...readySchema, summary: 'Model version readiness', params: VersionParams } }, async (req, reply) => {
    const r = await inference.ready(req.params.name, req.params.version);
    return reply.status(r.ready ? 200 : 503).send({ name: req.params.name, ...r });
  });
}

/**
 * `POST /v2/models/{name}[/versions/{v}]/infer`, registered in the scope whose JSON bodies stay
 * raw (see `forwardedBodies` in app.ts): the body goes to a replica as it came, and the replica's
 * response body is sent as it came. The body schema is for the OpenAPI docs; the replica checks it.
 */
export function registerOipInferRoutes(app: App, inference: InferenceService): void {
  // Tensors, or — for a model trained on feature views — entities in `parameters` (README "Predictions by entity").
  const inferSchema = { tags: ['oip'], body: Type.Union([OipInferRequest, EntityOipRequest]) };
  const routeKey = (h: Record<string, unknown>) => (typeof h['x-shoal-route-key'] === 'string' ? (h['x-shoal-route-key'] as string) : undefined);
  /** The binary tensor data extension: the JSON header's length, when the body carries binary tensors. */
  const headerLength = (h: Record<string, unknown>): number | undefined => {
    const v = h[HEADER_LENGTH];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !/^\d{1,10}$/.test(v)) throw GatewayErrors.BAD_REQUEST(`${HEADER_LENGTH} must be a byte count, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const send = (reply: FastifyReply, r: InferResult) => {
    void reply.header('x-shoal-model-version', r.version).header('x-shoal-route', r.route);
    if (r.requestId !== undefined) void reply.header('x-request-id', r.requestId);
    if (r.headerLength === undefined) return reply.header('content-type', JSON_TYPE).send(r.body);
    return reply.header('content-type', 'application/octet-stream').header(HEADER_LENGTH, r.headerLength).send(r.body);
  };
  app.post('/v2/models/:name/infer', { schema: { ...inferSchema, summary: 'Inference (stable/canary split)', params: Params } }, async (req, reply) =>
    send(reply, await inference.infer(req.params.name, undefined, routeKey(req.headers), 'oip', req.body as unknown as Buffer, headerLength(req.headers), requestMeta(req))),
  );
  app.post('/v2/models/:name/versions/:version/infer', { schema: { ...inferSchema, summary: 'Inference on one version', params: VersionParams } }, async (req, reply) =>
    send(reply, await inference.infer(req.params.name, req.params.version, routeKey(req.headers), 'oip', req.body as unknown as Buffer, headerLength(req.headers), requestMeta(req))),
  );
}
