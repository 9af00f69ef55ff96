/**
 * Who is calling, what they may do, what they may see, and how often (README "Tenants, roles and
 * quotas"). API keys (`x-api-key: <key>` or `Authorization: Bearer <key>`) are kept only as their
 * SHA-256; each names a tenant and a role. Admin keys may use the admin routes (cluster status,
 * the dashboard's data, and any later `/v1/{audit,registry,deployments,tenants,…}`) and see every
 * tenant's resources; inference keys get 403 there, and see only their tenant's models, jobs and
 * feature views (plus the shared `default` tenant's): another tenant's is a 404, the same answer
 * as a name that does not exist. Each tenant's requests per minute are counted cluster-wide
 * (gateway/quota-store.ts). Health, server metadata, metrics, docs and the dashboard's static
 * shell are public. Without keys the gateway serves only when told to be open (`gateway.open`):
 * every caller is then an admin of the `default` tenant, limited per client address.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { Errors, checkGatewayKeys, hashApiKey, resolveApiKeys, KeyRole, type ApiKeyConfig, type ResolvedApiKey, type Logger, type NatsConnection, type TenantQuota } from '../cluster/index.ts';
import { DEFAULT_TENANT, MlErrors, OwnedKind, OwnerBook, mayAccess } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import { humanSeconds } from './rate-limit.ts';
import { RATE_WINDOW_MS, RateCounter, rateStoreClass } from './quota-store.ts';

/** A key as configured (`gateway.apiKeys[i]`): `keyHash` or, for development, `key`. */
export type ApiKey = ApiKeyConfig;

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

/**
 * Admin routes: cluster operations, the registry and deployments, tenants and the audit log.
 * The dashboard's data (`/ui/api`) is admin-only too, checked by its own scope (gateway/routes/ui.ts).
 */
const ADMIN = /^\/v1\/(status|audit|registry|deployments|deploy|cluster|nodes|tenants|admin)(\/|$|:)/;
export const isAdminRoute = (url: string) => ADMIN.test(url.split('?')[0]!);

/** Which resource a route's parameter names, by route template (so later routes are covered too). */
function ownedTarget(req: FastifyRequest): { kind: OwnedKind; name: string; url: string } | undefined {
  const url = req.routeOptions.url;
  if (!url) return undefined;
  const p = req.params as Record<string, string | undefined>;
  if (/^\/v[12]\/models\/:name/.test(url) && p.name) return { kind: OwnedKind.MODEL, name: p.name, url };
  if (url.startsWith('/v1/jobs/:id') && p.id) return { kind: OwnedKind.JOB, name: p.id, url };
  if (url.startsWith('/v1/features/:view') && p.view) return { kind: OwnedKind.VIEW, name: p.view, url };
  return undefined;
}

/** The answer for a name that does not exist, per kind (and route, where the route answers otherwise). */
function hidden(kind: OwnedKind, name: string, url = ''): Error {
  if (kind === OwnedKind.JOB) return Errors.JOB_NOT_FOUND(name);
  // A push to an unknown view is the features service's BAD_INPUT naming `view` (ml/features/service.ts): the same here.
  if (kind === OwnedKind.VIEW) return url.startsWith('/v1/features/:view') ? MlErrors.BAD_INPUT(`view: unknown feature view "${name}"`) : MlErrors.FEATURE_VIEW_NOT_FOUND(name);
  if (kind === OwnedKind.DATASET) return MlErrors.DATASET_NOT_FOUND(name);
  // `/monitoring` answers an unknown model as not deployed (gateway/monitoring.ts); every other model route as not registered.
  return /\/monitoring$/.test(url) ? MlErrors.DEPLOYMENT_NOT_FOUND(name) : MlErrors.MODEL_NOT_FOUND(name);
}

/** A caller once authenticated. */
export interface Caller {
  tenant: string;
  /** An admin key (every caller of an open gateway). */
  admin: boolean;
  /** The key's own requests per minute, when it sets one. */
  limit?: number;
}

/** A caller admitted: who, and its rate-limit window (for the response's headers). */
export interface Admission extends Caller {
  decision: { allowed: boolean; limit: number; remaining: number; resetSeconds: number };
}

export interface TenantGuardOptions {
  apiKeys: readonly ApiKey[];
  /** Serve without keys. @default false */
  open?: boolean;
  /** Requests per tenant (or client address when open) per minute. @default 600000 */
  rateLimitPerMinute?: number;
  /** Per-tenant quotas (config `tenants`). @default {} */
  quotas?: Readonly<Record<string, TenantQuota>>;
  nc?: NatsConnection;
  prefix?: string;
  log?: Logger;
  /** Count requests cluster-wide in NATS KV; `false` counts in this process only (N gateways allow N× the limit: benchmarks compare the two). @default true */
  sharedCounts?: boolean;
}

/**
 * API keys, roles, ownership and the per-tenant rate limit, shared by the HTTP routes and the
 * gRPC service (a tenant's limit counts its requests over both, on every gateway).
 */
export class TenantGuard {
  readonly #keys: Map<string, ResolvedApiKey>;
  readonly #defaultLimit: number;
  readonly #quotas: Readonly<Record<string, TenantQuota>>;
  readonly open: boolean;
  readonly counter: RateCounter;
  /** Who owns what (followed from KV); undefined until {@link start}, or without NATS. */
  owners: OwnerBook | undefined;
  readonly #nc: NatsConnection | undefined;
  readonly #prefix: string;
  readonly #log: Logger | undefined;
  #retry: NodeJS.Timeout | undefined;
  #following = false;

  constructor(o: TenantGuardOptions) {
    checkGatewayKeys(o.apiKeys, o.open === true);
    this.#keys = new Map(resolveApiKeys(o.apiKeys).map((k) => [k.hash, k]));
    this.open = this.#keys.size === 0;
    this.#defaultLimit = o.rateLimitPerMinute ?? 600_000;
    this.#quotas = o.quotas ?? {};
    this.#nc = o.nc;
    this.#prefix = o.prefix ?? 'shoal';
    this.#log = o.log;
    this.counter = new RateCounter(o.sharedCounts === false ? undefined : o.nc, this.#prefix, o.sharedCounts === false ? undefined : o.log);
  }

  /**
   * Opens the shared counters and follows the owners book. Without the owners bucket (no
   * scheduler has created it yet) nothing is owned — everything is `default`, shared — and the
   * book is tried again every 2 s until it is there; a warning says so once.
   */
  async start(): Promise<void> {
    await this.counter.open();
    if (this.#nc && !this.open && !(await this.#follow())) {
      this.#log?.warn('the owners bucket is not there yet (a scheduler creates it): until it is, every resource is treated as shared');
      this.#retry = setInterval(() => {
        void this.#follow().then((ok) => {
          if (ok && this.#retry) clearInterval(this.#retry);
        });
      }, 2000);
      this.#retry.unref();
    }
  }

  async #follow(): Promise<boolean> {
    if (this.owners || this.#following) return this.owners !== undefined;
    this.#following = true;
    try {
      this.owners = await (await OwnerBook.open(this.#nc!, this.#prefix)).follow();
      return true;
    } catch {
      return false;
    } finally {
      this.#following = false;
    }
  }

  /**
   * The owners book, followed from now on if it was not (an open gateway follows it only for
   * tenants over NATS, gateway/tenant-nats.ts); undefined while the bucket is not there.
   */
  async followOwners(): Promise<OwnerBook | undefined> {
    if (!this.owners && this.#nc) await this.#follow();
    return this.owners;
  }

  stop(): void {
    if (this.#retry) clearInterval(this.#retry);
    this.owners?.stop();
  }

  /** The caller a key names (`x-api-key`, else `authorization: Bearer <key>`); 401 without a known one. */
  authenticate(apiKey: string | undefined, authorization: string | undefined): Caller {
    if (this.open) return { tenant: DEFAULT_TENANT, admin: true };
    const given = apiKey ?? (authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : undefined);
    if (!given) throw GatewayErrors.UNAUTHORIZED('missing API key (send the x-api-key header or Authorization: Bearer <key>)');
    const k = this.#keys.get(hashApiKey(given));
    if (!k) throw GatewayErrors.UNAUTHORIZED('unknown API key');
    return { tenant: k.tenant, admin: k.role === KeyRole.ADMIN, ...(k.rateLimitPerMinute !== undefined ? { limit: k.rateLimitPerMinute } : {}) };
  }

  /** A caller's requests per minute: its key's, else its tenant's quota, else the gateway's. */
  limitOf(c: Caller): number {
    return c.limit ?? this.#quotas[c.tenant]?.requestsPerMinute ?? this.#defaultLimit;
  }

  /** The counter's key: the tenant with keys, the client address when open. */
  rateKey(c: Caller, clientAddress: string): string {
    return this.open ? `ip:${clientAddress}` : `tenant:${c.tenant}`;
  }

  /** Authenticates and counts one request (the gRPC service; HTTP goes through the plugin). */
  async admit(apiKey: string | undefined, authorization: string | undefined, clientAddress: string): Promise<Admission> {
    const c = this.authenticate(apiKey, authorization);
    const limit = this.limitOf(c);
    const h = await this.counter.hit(this.rateKey(c, clientAddress), limit);
    return { tenant: c.tenant, admin: c.admin, decision: { allowed: h.current <= limit, limit, remaining: Math.max(0, limit - h.current), resetSeconds: Math.ceil(h.ttlMs / 1000) } };
  }

  /** Throws the not-found answer when `c` may not see the resource (another tenant's). */
  checkAccess(c: Caller, kind: OwnedKind, name: string, url?: string): void {
    if (c.admin || !this.owners) return;
    if (!mayAccess(this.owners.ownerOf(kind, name), c.tenant, false)) throw hidden(kind, name, url);
  }

  /** The refusal of a request over its tenant's limit. */
  static refusal(a: Admission): Error {
    return GatewayErrors.RATE_LIMITED(a.tenant, a.decision.limit, humanSeconds(a.decision.resetSeconds));
  }
}

/**
 * Authenticates each non-public request by its API key, refuses inference keys on admin routes
 * (403) and other tenants' resources (404), then applies its tenant's cluster-wide rate limit.
 */
export async function installTenantGuard(app: FastifyInstance, o: TenantGuardOptions): Promise<TenantGuard> {
  const guard = new TenantGuard(o);
  await guard.start();
  app.addHook('onClose', async () => guard.stop());
  app.addHook('onRequest', (req, _reply, done) => {
    if (isPublicRequest(req)) return done();
    try {
      const c = guard.authenticate(req.headers['x-api-key'] as string | undefined, req.headers.authorization);
      req.shoalTenant = c.tenant;
      req.shoalAdmin = c.admin;
      (req as FastifyRequest & { shoalLimit?: number }).shoalLimit = guard.limitOf(c);
      if (!c.admin && isAdminRoute(req.routeOptions.url ?? req.url)) {
        return done(GatewayErrors.FORBIDDEN(`${req.method} ${req.routeOptions.url ?? req.url.split('?')[0]} needs an admin API key; the key of tenant ${c.tenant} is an inference key`));
      }
      const t = ownedTarget(req);
      if (t) guard.checkAccess(c, t.kind, t.name, t.url);
    } catch (err) {
      return done(err as Error);
    }
    done();
  });
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    timeWindow: RATE_WINDOW_MS,
    store: rateStoreClass(guard.counter),
    allowList: (req) => isPublicRequest(req),
    keyGenerator: (req) => (guard.open ? `ip:${req.ip}` : `tenant:${req.shoalTenant}`),
    max: (req) => (req as FastifyRequest & { shoalLimit?: number }).shoalLimit ?? o.rateLimitPerMinute ?? 600_000,
    errorResponseBuilder: (req, ctx) => GatewayErrors.RATE_LIMITED(req.shoalTenant, ctx.max, humanSeconds(Math.ceil(ctx.ttl / 1000))),
  });
  return guard;
}
