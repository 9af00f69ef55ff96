/**
 * Labels for logged predictions (issue #15 item 2): `POST /v1/models/{name}/feedback` with
 * `{"id": "<x-request-id of the prediction>", "label": …}` or a list of them. The body goes as
 * it came (parsed JSON, no type coercion) to the feedback service (ml/monitoring/feedback.ts),
 * which checks every label against the model's label type — a wrong one is a 400
 * SHOAL_ERR_BAD_INPUT naming it (`[3].label`), and nothing of that request is stored — and
 * answers `{model, accepted, duplicates}`. Optional `groups` (sensitive attribute → group, the
 * model's declared attributes only) feed live fairness (ml/monitoring/window-fairness.ts). Feedback counts against the tenant's rate limit like
 * inference (the tenant guard covers every non-public route).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ContentType, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { FeedbackReply } from '../../ml/index.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerFeedbackRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects; timeoutMs?: number }): void {
  app.post(
    '/v1/models/:name/feedback',
    {
      schema: {
        tags: ['v1'],
        summary: 'Labels (ground truth) for logged predictions, joined with them by request id',
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        // Checked by the feedback service (not coerced here): `Type.Unknown` keeps Ajv's type coercion away.
        body: Type.Unknown({ description: 'one label {"id": "<x-request-id of the prediction; <id>:<row> for a row of a many-row request>", "label": number | string | boolean, "groups"?: {"<declared sensitive attribute>": "<group, 1-64 characters>"}}, or a list of them' }),
        response: { 200: Type.Object({ model: Type.String(), accepted: Type.Integer(), duplicates: Type.Integer() }) },
      },
    },
    async (req) => request<FeedbackReply>(deps.nc, deps.subjects.feedback(req.params.name), req.body, { contentType: ContentType.MSGPACK, timeoutMs: deps.timeoutMs ?? 5000 }),
  );
}
