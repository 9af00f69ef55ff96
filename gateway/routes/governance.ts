/**
 * Governance reads (issue #20 parts 3 and 6), answered by the registry service:
 * `GET /v1/models/{m}/versions/{v}/card` — a version's model card, JSON by default, Markdown with
 * `Accept: text/markdown` or `?format=md`; `GET /v1/audit` — the audit log (admin keys only: a
 * tenant key is a 403 SHOAL_ERR_FORBIDDEN), oldest first, `?since=` (ISO 8601 or epoch ms),
 * `?model=`, `?limit=`.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { NatsConnection, Subjects } from '../../cluster/index.ts';
import { RegistryClient, cardMarkdown } from '../../ml/index.ts';
import { GatewayErrors } from '../errors.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const Name = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });

/** `since` as epoch ms: a number, or an ISO 8601 time; undefined when absent, throws a 400 naming it when neither. */
export function parseSince(since: string | undefined): number | undefined {
  if (since === undefined || since === '') return undefined;
  const t = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
  if (!Number.isFinite(t)) throw GatewayErrors.BAD_REQUEST(`since: "${since}" is not a time (ISO 8601, e.g. 2026-12-01T10:00:00Z, or epoch milliseconds)`);
  return t;
}

export function registerGovernanceRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects }): void {
  const client = (actor: string) => new RegistryClient(deps.nc, deps.subjects, actor);
  app.get(
    '/v1/models/:name/versions/:version/card',
    {
      schema: {
        tags: ['v1'],
        summary: "A model version's card: lineage, metrics with intervals, fairness, importance, intended use, approvals (JSON, or Markdown with Accept: text/markdown or ?format=md)",
        params: Type.Object({ name: Name, version: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        querystring: Type.Object({ format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('md'), Type.Literal('markdown')])) }),
      },
    },
    async (req, reply) => {
      const card = await client(`tenant:${req.shoalTenant ?? 'anonymous'}`).card(req.params.name, /^\d+$/.test(req.params.version) ? Number(req.params.version) : req.params.version);
      const q = req.query.format;
      const md = q === 'md' || q === 'markdown' || (q === undefined && /\btext\/markdown\b/.test(String(req.headers.accept ?? '')));
      if (!md) return card;
      return reply.type('text/markdown; charset=utf-8').send(cardMarkdown(card));
    },
  );
  app.get(
    '/v1/audit',
    {
      schema: {
        tags: ['v1'],
        summary: 'The audit log (admin keys only): who did what, when and why, oldest first',
        querystring: Type.Object({ since: Type.Optional(Type.String({ maxLength: 64 })), model: Type.Optional(Name), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })) }),
      },
    },
    async (req) => {
      if (!req.shoalAdmin) throw GatewayErrors.FORBIDDEN(`the audit log needs an admin API key; the key of tenant ${req.shoalTenant} is not one (set admin: true on a key in gateway.apiKeys)`);
      const since = parseSince(req.query.since);
      const entries = await client(`tenant:${req.shoalTenant ?? 'anonymous'}`).audit({ ...(since !== undefined ? { since } : {}), ...(req.query.model ? { target: req.query.model } : {}), ...(req.query.limit ? { limit: req.query.limit } : {}) });
      return { entries };
    },
  );
}
