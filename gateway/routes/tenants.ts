/**
 * Admin routes over resource ownership (README "Tenants, roles and quotas"): `GET
 * /v1/tenants/owners?kind=model` lists recorded owners; `PUT /v1/tenants/owners/{kind}/{name}`
 * with `{"tenant": "acme"}` makes a model, job, feature view or dataset a tenant's (`default`
 * makes it shared again), through the registry service, which records the change (who, the owner
 * before and after, the reason) in the audit log. Admin keys only (the tenant guard refuses
 * inference keys with 403).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ContentType, request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { ACTOR_HEADER, OwnedKind } from '../../ml/index.ts';
import { GatewayErrors } from '../errors.ts';
import type { TenantGuard } from '../tenants.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const Kind = Type.Union(Object.values(OwnedKind).map((k) => Type.Literal(k)));
const Tenant = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });

export function registerTenantRoutes(app: App, guard: TenantGuard, deps: { nc: NatsConnection; subjects: Subjects }): void {
  const book = () => {
    if (!guard.owners) throw GatewayErrors.NOT_FOUND('tenant ownership on this gateway (open, or the owners bucket is missing: a scheduler creates it)');
    return guard.owners;
  };
  app.get('/v1/tenants/owners', { schema: { tags: ['tenants'], summary: 'Recorded owners (admin)', querystring: Type.Object({ kind: Kind, tenant: Tenant }) } }, async (req) => ({
    kind: req.query.kind,
    tenant: req.query.tenant,
    names: book().ownedBy(req.query.kind, req.query.tenant).sort(),
  }));
  app.put(
    '/v1/tenants/owners/:kind/:name',
    {
      schema: {
        tags: ['tenants'],
        summary: 'Give a resource to a tenant (admin)',
        params: Type.Object({ kind: Kind, name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,128}$' }) }),
        body: Type.Object({ tenant: Tenant, reason: Type.Optional(Type.String({ maxLength: 2048 })) }, { additionalProperties: false }),
      },
    },
    async (req) => {
      book();
      const { kind, name } = req.params;
      return request<{ kind: string; name: string; tenant: string; previous: string }>(
        deps.nc,
        deps.subjects.registry('owner'),
        { kind, name, tenant: req.body.tenant, ...(req.body.reason ? { reason: req.body.reason } : {}) },
        { timeoutMs: 10_000, contentType: ContentType.JSON, headers: { [ACTOR_HEADER]: `tenant:${req.shoalTenant}` } },
      );
    },
  );
}
