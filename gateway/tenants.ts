/**
 * Who is calling, and how often: API keys name a tenant (`x-api-key: <key>` or
 * `Authorization: Bearer <key>`), and each tenant — or client IP without keys — has a fixed
 * window of requests per minute. Health, server metadata, metrics, docs and the dashboard's
 * static shell (`/ui`, not its `/ui/api` data) are open. A key with `admin: true` may also read
 * the dashboard's data (every tenant's models, jobs and the cluster); other keys may not.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { GatewayErrors } from './errors.ts';
import { FixedWindowLimiter, humanSeconds, type RateDecision } from './rate-limit.ts';

export interface ApiKey {
  key: string;
  tenant: string;
  rateLimitPerMinute?: number;
  /** May read the dashboard's data (`/ui/api`: the whole cluster, every tenant). @default false */
  admin?: boolean;
}

/** The tenant an API key named, per request. */
export const tenantOf = (req: object): string => (req as FastifyRequest).shoalTenant ?? 'anonymous';

/**
 * Routes open without an API key: health, server metadata, metrics, docs, and the dashboard's
 * page and scripts (they hold no data: the page asks for a key, then reads `/ui/api/*` with it).
 */
const PUBLIC = [/^\/v2\/?$/, /^\/v2\/health\//, /^\/metrics$/, /^\/docs(\/|$)/, /^\/ui(?!\/api(\/|$))(\/|$)/];
export const isPublic = (url: string) => {
  const path = url.split('?')[0]!;
  return PUBLIC.some((r) => r.test(path));
};
/** Whether a request is public: decided once per route at registration, by URL only for 404s. */
const isPublicRequest = (req: FastifyRequest): boolean => {
  const pub = req.routeOptions.config?.shoalPublic;
  return pub !== undefined ? pub : req.is404 ? isPublic(req.url) : false;
};

/** A caller admitted: its tenant and its rate-limit window (for the response's headers). */
export interface Admission {
  tenant: string;
  /** The key is an admin key (always true without keys: development, no authentication). */
  admin: boolean;
  decision: RateDecision;
}

/**
 * API keys and the per-tenant rate limit, shared by the HTTP routes and the gRPC service (a
 * tenant's limit counts its requests over both; without keys, a client address's do).
 */
export class TenantGuard {
  readonly #keys: Map<string, ApiKey>;
  readonly #defaultLimit: number;
  /** Per tenant: its limit and its limiter key, computed once (not per request). */
  readonly #tenantLimits = new Map<string, { limit: number; key: string }>();
  readonly #limiter = new FixedWindowLimiter({ windowMs: 60_000 });

  constructor(apiKeys: readonly ApiKey[], rateLimitPerMinute: number | undefined) {
    this.#keys = new Map(apiKeys.map((k) => [k.key, k]));
    this.#defaultLimit = rateLimitPerMinute ?? 600_000;
    for (const k of this.#keys.values()) if (!this.#tenantLimits.has(k.tenant)) this.#tenantLimits.set(k.tenant, { limit: k.rateLimitPerMinute ?? this.#defaultLimit, key: `tenant:${k.tenant}` });
  }

  /**
   * Authenticates a request by its key (`x-api-key`, else `authorization: Bearer <key>`) — 401
   * without a known one, when keys are on — and counts it against its tenant's limit (without
   * keys: its client address's). The caller refuses it when `decision.allowed` is false.
   */
  admit(apiKey: string | undefined, authorization: string | undefined, clientAddress: string): Admission {
    if (this.#keys.size === 0) return { tenant: 'anonymous', admin: true, decision: this.#limiter.hit(`ip:${clientAddress}`, this.#defaultLimit) };
    const given = apiKey ?? (authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined);
    if (!given) throw GatewayErrors.UNAUTHORIZED('missing API key (send the x-api-key header or Authorization: Bearer <key>)');
    const k = this.#keys.get(given);
    if (!k) throw GatewayErrors.UNAUTHORIZED('unknown API key');
    const t = this.#tenantLimits.get(k.tenant)!;
    return { tenant: k.tenant, admin: k.admin === true, decision: this.#limiter.hit(t.key, t.limit) };
  }

  /** The refusal of a request over its tenant's limit. */
  static refusal(a: Admission): Error {
    return GatewayErrors.RATE_LIMITED(a.tenant, a.decision.limit, humanSeconds(a.decision.resetSeconds));
  }
}

/** Authenticates each non-public request by its API key, then applies its tenant's rate limit. */
export function installTenantGuard(app: FastifyInstance, apiKeys: readonly ApiKey[], rateLimitPerMinute: number | undefined): TenantGuard {
  const guard = new TenantGuard(apiKeys, rateLimitPerMinute);
  app.addHook('onRequest', (req, reply, done) => {
    if (isPublicRequest(req)) return done();
    let a: Admission;
    try {
      a = guard.admit(req.headers['x-api-key'] as string | undefined, req.headers.authorization, req.ip);
    } catch (err) {
      return done(err as Error);
    }
    req.shoalTenant = a.tenant;
    req.shoalAdmin = a.admin;
    const d = a.decision;
    void reply.header('x-ratelimit-limit', d.limit).header('x-ratelimit-remaining', d.remaining).header('x-ratelimit-reset', d.resetSeconds);
    if (d.allowed) return done();
    void reply.header('retry-after', d.resetSeconds);
    done(TenantGuard.refusal(a));
  });
  return guard;
}
