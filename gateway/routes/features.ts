/**
 * Feature pushes over HTTP (issue #14 item 2): `POST /v1/features/{view}` with one event
 * `{eventId, entity: {...keys}, values: {...}, eventTime}` (JSON). The body's shape is checked by
 * the route's schema (the same TypeBox schema the features service checks on NATS; an unknown
 * top-level field is a 400); the event against the view (unknown view, unknown or missing entity
 * column, unknown feature, wrong type, an event time too far in the future) by the features
 * service, whose SHOAL_ERR_BAD_INPUT names the field. 200 with `{view, eventId, seq, duplicate,
 * applied}` once the event is in the offline log and applied online; the same `eventId` again
 * answers `duplicate: true` and changes nothing. Tenants and API keys apply as on every route.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ContentType, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { FeatureEvent, FeatureName, type PushResult } from '../../ml/index.ts';

/**
 * The HTTP body: `FeatureEvent`'s shape, with the value leaves left to the features service. The
 * gateway's Ajv coerces types (`"12"` → 12, `true` → 1, an epoch-ms number → a string in a
 * string|number union), which would let a wrong type through silently; the service checks each
 * value against the view's feature type without coercion and names the field.
 */
const FeatureEventBody = Type.Object(
  {
    eventId: FeatureEvent.properties.eventId,
    entity: Type.Record(Type.String(), Type.Unknown()),
    values: Type.Record(Type.String(), Type.Unknown()),
    eventTime: Type.Unknown(),
  },
  { additionalProperties: false },
);

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerFeatureRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects; timeoutMs?: number }): void {
  app.post(
    '/v1/features/:view',
    { schema: { params: Type.Object({ view: FeatureName }), body: FeatureEventBody } },
    async (req) =>
      request<PushResult>(deps.nc, deps.subjects.featurePush(req.params.view), req.body, { contentType: ContentType.MSGPACK, timeoutMs: deps.timeoutMs ?? 5000, idempotent: true }), // de-duplicated by event id: safe to resend across a NATS server loss
  );
}
