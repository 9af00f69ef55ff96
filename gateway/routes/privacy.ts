/**
 * Erasure over HTTP (issue #20): `POST /v1/privacy/forget` with `{entity: {<key column>: <value>},
 * reason?}` — admin keys only (an inference key is a 403 SHOAL_ERR_FORBIDDEN) — asks the
 * scheduler's privacy service to erase the entity and answers its report (what was removed, what
 * was built from the entity's data). Nothing found is a 200 with `removed: 0`.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ContentType, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { ACTOR_HEADER, ForgetRequest, type ForgetResult } from '../../ml/index.ts';
import { GatewayErrors } from '../errors.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerPrivacyRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects; timeoutMs?: number }): void {
  app.post('/v1/privacy/forget', { schema: { body: ForgetRequest } }, async (req) => {
    if (!req.shoalAdmin) throw GatewayErrors.FORBIDDEN(`erasure needs an admin API key; the key of tenant ${req.shoalTenant} is not one`);
    return request<ForgetResult>(deps.nc, deps.subjects.privacyForget, req.body, { contentType: ContentType.MSGPACK, timeoutMs: deps.timeoutMs ?? 600_000, headers: { [ACTOR_HEADER]: `tenant:${req.shoalTenant}` } });
  });
}
