/**
 * Cost over HTTP (admin keys only, like the dashboard's data: it spans every tenant):
 * `GET /v1/cost?by=tenant|model|job|owner&since=1h` is the scheduler leader's spend report (the
 * same as `shoal cost --json`), `GET /v1/cost/recommendations` its right-sizing advice (as
 * `shoal cost recommend --json`). A bad `by` or `since` is a 400 naming it; a key that is not an
 * admin key is a 403.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { NatsConnection, Subjects } from '../../cluster/index.ts';
import { costAdvice, costReport, parseSince } from '../../scheduler/index.ts';
import { GatewayErrors } from '../errors.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

function adminOnly(req: FastifyRequest): void {
  if (!req.shoalAdmin) throw GatewayErrors.FORBIDDEN(`cost spans every tenant and needs an admin API key; the key of tenant ${req.shoalTenant} is not one (set admin: true on a key in gateway.apiKeys)`);
}

export function registerCostRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects }): void {
  app.get(
    '/v1/cost',
    {
      schema: {
        tags: ['cost'],
        summary: 'Spend attributed to tenants, model versions and jobs (admin)',
        querystring: Type.Object(
          {
            by: Type.Optional(Type.Union([Type.Literal('tenant'), Type.Literal('model'), Type.Literal('job'), Type.Literal('owner')])),
            since: Type.Optional(Type.String({ maxLength: 32, description: 'a duration: 90s, 15m, 1h, 7d' })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      adminOnly(req);
      const sinceMs = req.query.since === undefined ? undefined : parseSince(req.query.since);
      if (req.query.since !== undefined && sinceMs === undefined) throw GatewayErrors.BAD_REQUEST(`querystring/since must be a duration such as 90s, 15m, 1h or 7d, got "${req.query.since}"`);
      return costReport(deps.nc, deps.subjects, { ...(req.query.by ? { by: req.query.by } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) });
    },
  );
  app.get('/v1/cost/recommendations', { schema: { tags: ['cost'], summary: 'Right-sizing advice with the expected $/h change (admin)' } }, async (req) => {
    adminOnly(req);
    return costAdvice(deps.nc, deps.subjects);
  });
}
