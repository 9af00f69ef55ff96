/**
 * Who is calling, and how often: API keys name a tenant (`x-api-key: <key>` or
 * `Authorization: Bearer <key>`), and each tenant — or client IP without keys — has a fixed
 * window of requests per minute. Health, server metadata, metrics and docs are open.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayErrors } from './errors.ts';
import { FixedWindowLimiter, humanSeconds } from './rate-limit.ts';

export interface ApiKey {
  key: string;
  tenant: string;
  rateLimitPerMinute?: number;
}

/** The tenant an API key named, per request. */
export const tenantOf = (req: object): string => (req as FastifyRequest).shoalTenant ?? 'anonymous';

/** Routes open without an API key: health, server metadata, metrics, docs. */
const PUBLIC = [/^\/v2\/?$/, /^\/v2\/health\//, /^\/metrics$/, /^\/docs(\/|$)/];
export const isPublic = (url: string) => {
  const path = url.split('?')[0]!;
  return PUBLIC.some((r) => r.test(path));
};
/** Whether a request is public: decided once per route at registration, by URL only for 404s. */
const isPublicRequest = (req: FastifyRequest): boolean => {
  const pub = req.routeOptions.config?.shoalPublic;
  return pub !== undefined ? pub : req.is404 ? isPublic(req.url) : false;
};

/** Authenticates each non-public request by its API key, then applies its tenant's rate limit. */
export function installTenantGuard(app: FastifyInstance, apiKeys: readonly ApiKey[], rateLimitPerMinute: number | undefined): void {
  const keys = new Map(apiKeys.map((k) => [k.key, k]));
  const defaultLimit = rateLimitPerMinute ?? 600_000;
  /** Per tenant: its limit and its limiter key, computed once (not per request). */
  const tenantLimits = new Map<string, { limit: number; key: string }>();
  for (const k of keys.values()) if (!tenantLimits.has(k.tenant)) tenantLimits.set(k.tenant, { limit: k.rateLimitPerMinute ?? defaultLimit, key: `tenant:${k.tenant}` });
  const limiter = new FixedWindowLimiter({ windowMs: 60_000 });
  app.addHook('onRequest', (req, reply, done) => {
    if (isPublicRequest(req)) return done();
    let limit = defaultLimit;
    let limitKey: string;
    if (keys.size > 0) {
      const auth = req.headers.authorization;
      const given = (req.headers['x-api-key'] as string | undefined) ?? (auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined);
      if (!given) return done(GatewayErrors.UNAUTHORIZED('missing API key (send the x-api-key header or Authorization: Bearer <key>)'));
      const k = keys.get(given);
      if (!k) return done(GatewayErrors.UNAUTHORIZED('unknown API key'));
      req.shoalTenant = k.tenant;
      const t = tenantLimits.get(k.tenant)!;
      limit = t.limit;
      limitKey = t.key;
    } else limitKey = `ip:${req.ip}`;
    const d = limiter.hit(limitKey, limit);
    void reply.header('x-ratelimit-limit', d.limit).header('x-ratelimit-remaining', d.remaining).header('x-ratelimit-reset', d.resetSeconds);
    if (d.allowed) return done();
    void reply.header('retry-after', d.resetSeconds);
    done(GatewayErrors.RATE_LIMITED(req.shoalTenant, d.limit, humanSeconds(d.resetSeconds)));
  });
}
