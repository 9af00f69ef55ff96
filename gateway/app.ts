/**
 * The gateway's Fastify app: the Open Inference Protocol (KServe v2) REST API, a simpler
 * `/v1/models/{name}/predict` with JSON rows, cluster status, Prometheus metrics and OpenAPI
 * docs. API keys per tenant, a per-tenant rate limit, a body-size limit and a request deadline
 * guard the inference routes; every error is `{"error": "...", "code": "SHOAL_ERR_..."}`.
 */
import { STATUS_CODES, maxHeaderSize } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifySchemaValidationError, type RouteOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  Errors,
  SHOAL_VERSION,
  ShoalError,
  discover,
  errorCode,
  request,
  type Logger,
  type NatsConnection,
  type SchedulerStatus,
  type Subjects,
} from '../cluster/index.ts';
import { GatewayErrors } from './errors.ts';
import { createMetrics } from './metrics.ts';
import { InferenceService } from './inference.ts';
import { registerOipInferRoutes, registerOipRoutes } from './routes/oip.ts';
import { registerV1Routes } from './routes/v1.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { JobClient } from '../ml/index.ts';
import { FixedWindowLimiter, humanSeconds } from './rate-limit.ts';

export interface ApiKey {
  key: string;
  tenant: string;
  rateLimitPerMinute?: number;
}

export interface GatewayDeps {
  nc: NatsConnection;
  subjects: Subjects;
  logger: Logger;
  /** @default 4 MiB */
  bodyLimit?: number;
  /** API keys; none = no authentication (development). @default [] */
  apiKeys?: ApiKey[];
  /** Requests per tenant (or client IP without keys) per minute. @default 600000 */
  rateLimitPerMinute?: number;
  /** Deadline of an inference request, retries included. @default 10000 */
  requestTimeoutMs?: number;
  /** Longest a client may take to send a whole request, headers and body (408 after). @default requestTimeoutMs + 5000 */
  receiveTimeoutMs?: number;
  /** Serve inference routes (needs the registry's KV bucket). @default true */
  inference?: boolean;
  /** Dispatcher coalescing (see `gateway/dispatcher.ts`). @default { inflightPerReplica: 2, maxHoldMs: 1 } */
  coalesce?: { inflightPerReplica?: number; maxHoldMs?: number; hedgeAfterMs?: number };
  /** A pino line per request: every one, refused and failed ones only, or none. @default 'errors' */
  requestLog?: 'all' | 'errors' | 'off';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant the request's API key names ('anonymous' without keys). */
    shoalTenant: string;
    /** The error code the request was answered with ('' when it succeeded). */
    shoalErrorCode: string;
  }
  interface FastifyContextConfig {
    /** Set at route registration for routes open without an API key (and not rate-limited). */
    shoalPublic?: boolean;
  }
}

/** The tenant an API key named, per request. */
export const tenantOf = (req: object): string => (req as FastifyRequest).shoalTenant ?? 'anonymous';

/** Routes open without an API key: health, server metadata, metrics, docs. */
const PUBLIC = [/^\/v2\/?$/, /^\/v2\/health\//, /^\/metrics$/, /^\/docs(\/|$)/];
const isPublic = (url: string) => {
  const path = url.split('?')[0]!;
  return PUBLIC.some((r) => r.test(path));
};
/** Whether a request is public: decided once per route at registration, by URL only for 404s. */
const isPublicRequest = (req: FastifyRequest): boolean => {
  const pub = req.routeOptions.config?.shoalPublic;
  return pub !== undefined ? pub : req.is404 ? isPublic(req.url) : false;
};

const EMPTY = Buffer.alloc(0);
/** A request with no body at all (no content-type, nothing sent) leaves Fastify's body null: it is an empty one. */
const keepBody = (value: unknown) => ({ value: Buffer.isBuffer(value) ? value : EMPTY });

/**
 * Makes a scope's JSON bodies stay raw bytes: inference routes forward the body to a replica as
 * it came, and the replica — which knows the model's signature — parses and checks it (a bad
 * body is still a 400 naming what is wrong, written by the replica). This event loop, the one
 * in front of every replica, then spends no CPU on JSON or tensors. The body limit still applies
 * (413). Route body schemas stay for the OpenAPI docs; params are checked here with TypeBox.
 */
function forwardedBodies(scope: FastifyInstance): void {
  // JSON, and any other type (the binary tensor data extension's octet-stream, text/plain, or
  // none), goes raw: Fastify's own text/plain parser would hand the route a string.
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  scope.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') return keepBody;
    const check = TypeCompiler.Compile(schema as TSchema);
    return (value: unknown) => {
      if (check.Check(value)) return { value };
      const e = check.Errors(value).First();
      return { error: new Error(`${httpPart ?? 'request'}${e?.path ?? ''}: ${e?.message ?? 'is invalid'}`) };
    };
  });
}

/**
 * Schema errors as Ajv words them, with the field named where Ajv leaves it in `params`: an
 * unknown field is `body must NOT have additional property "actortype"`.
 */
function schemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  return new Error(
    errors
      .map((e) => {
        const extra = e.keyword === 'additionalProperties' ? (e.params as { additionalProperty?: unknown }).additionalProperty : undefined;
        return `${dataVar}${e.instancePath} ${extra !== undefined ? `must NOT have additional property ${JSON.stringify(extra)}` : e.message}`;
      })
      .join(', '),
  );
}

type Part = 'querystring' | 'params' | 'headers';
/**
 * Ajv coerces a querystring `waitMs=1e400` (or 309 digits, or `Infinity`) to Infinity: its
 * string-to-integer coercion tests `x == +x && !(x % 1)`, true for Infinity, and does not re-run
 * the type check (which refuses non-finite numbers) on the coerced value; its range keywords
 * then skip non-finite numbers, trusting that type check. So `?waitMs=1e400` passed `maximum:
 * 5000` and reached the handler as Infinity. Any route whose querystring, params or headers
 * declare a number gets this check after validation (and only those routes: no cost elsewhere);
 * a non-finite value is refused in the words Ajv uses for the bound it slipped past.
 */
function finiteNumbersHook(schema: RouteOptions['schema']): ((req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void) | undefined {
  const fields: { part: Part; key: string; min?: number; max?: number }[] = [];
  for (const part of ['querystring', 'params', 'headers'] as const) {
    const props = (schema?.[part] as { properties?: Record<string, { type?: unknown; minimum?: number; maximum?: number }> } | undefined)?.properties;
    for (const [key, p] of Object.entries(props ?? {})) {
      if (p.type === 'integer' || p.type === 'number') fields.push({ part, key, ...(p.minimum !== undefined ? { min: p.minimum } : {}), ...(p.maximum !== undefined ? { max: p.maximum } : {}) });
    }
  }
  if (fields.length === 0) return undefined;
  return (req, _reply, done) => {
    for (const f of fields) {
      const v = (req[f.part === 'querystring' ? 'query' : f.part] as Record<string, unknown> | undefined)?.[f.key];
      if (typeof v !== 'number' || Number.isFinite(v)) continue;
      const bound = v > 0 && f.max !== undefined ? `<= ${f.max}` : v < 0 && f.min !== undefined ? `>= ${f.min}` : 'a finite number';
      return done(GatewayErrors.BAD_REQUEST(`${f.part}/${f.key} must be ${bound}`));
    }
    done();
  };
}

/** Node's HTTP parser errors, as the gateway's codes; undefined for socket errors nobody can be answered for. */
function clientErrorOf(err: Error & { code?: string; reason?: string; bytesParsed?: number; rawPacket?: unknown }, receiveTimeoutMs: number, headerLimit: number): ShoalError | undefined {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return GatewayErrors.REQUEST_TIMEOUT(receiveTimeoutMs);
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    // The request line counts toward the header limit: when the packet that overflowed starts a
    // request and has no line end before where the parser stopped, the URL alone is too long.
    const raw = Buffer.isBuffer(err.rawPacket) ? err.rawPacket : undefined;
    const lineEnd = raw ? raw.indexOf(10) : -1;
    if (raw && /^[A-Z]+ \S/.test(raw.subarray(0, 32).toString('latin1')) && (lineEnd < 0 || lineEnd > (err.bytesParsed ?? 0))) {
      return GatewayErrors.URI_TOO_LONG(`URL too long: over the limit of ${headerLimit} bytes for the request line and headers`);
    }
    return GatewayErrors.HEADERS_TOO_LARGE(headerLimit);
  }
  if (err.code?.startsWith('HPE_')) return GatewayErrors.BAD_REQUEST(`malformed HTTP request: ${err.reason ?? err.message}`);
  return undefined;
}

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? 4 * 1024 * 1024;
  const requestTimeoutMs = deps.requestTimeoutMs ?? 10_000;
  const receiveTimeoutMs = deps.receiveTimeoutMs ?? requestTimeoutMs + 5_000;
  const metrics = createMetrics();
  const requestLog = deps.requestLog ?? 'errors';
  /**
   * Refusals before any route runs (Node's HTTP parser, the router) have no Fastify request
   * to hook: counted and logged here, like the request log's refused requests.
   */
  const refusedEarly = (e: ShoalError, where: Record<string, unknown>) => {
    metrics.errors.labels(e.code, String(e.status)).inc();
    if (requestLog === 'off') return;
    const line = { ...where, status: e.status, code: e.code };
    if (e.status >= 500) deps.logger.error(line, 'request failed');
    else deps.logger.info(line, 'request refused');
  };
  // Fastify's logger type and pino's differ only in fields Fastify never reads.
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit,
    // Headers and body must arrive within receiveTimeoutMs (408 after). Node checks this only on
    // a timer, every `connectionsCheckingInterval` (30 s by default), against `headersTimeout`
    // too, which it derives at creation (60 s) — Fastify sets `requestTimeout` only afterwards —
    // and which Node 20 applied to a request whose body was still coming: a client that sent
    // headers and half a body was answered after ~62 s. Both are set at creation, and checked
    // four times per timeout (at most every second), so a slow body is cut at the timeout.
    requestTimeout: receiveTimeoutMs,
    http: { requestTimeout: receiveTimeoutMs, headersTimeout: receiveTimeoutMs, connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(receiveTimeoutMs / 4))) },
    // Fastify's Ajv drops fields a schema's `additionalProperties: false` does not allow
    // (`removeAdditional: true`), so a caller's typo (`actortype`) or a field this version does
    // not know was ignored and the request run as if it had not been sent. For the whole gateway,
    // not per route: a schema says `additionalProperties: false` only where it means it (job
    // submissions), every other schema (querystrings, headers) allows extra fields and is
    // unaffected, and one rule for every route is one the API docs can state. Coercion of
    // querystring and path strings (`coerceTypes`, `useDefaults`) stays as Fastify has it.
    ajv: { customOptions: { removeAdditional: false } },
    schemaErrorFormatter: schemaErrors,
    // Node's parser refusals (malformed framing, headers or URL too large, request timeout):
    // the documented body instead of Fastify's own `{error, message, statusCode}`.
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => {
      // A connection reset mid-request has nobody to answer.
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const e = clientErrorOf(err, receiveTimeoutMs, maxHeaderSize);
      // As Node does: answer only when no response has started on this connection (a second
      // status line would corrupt it), then close it.
      const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
      if (e && socket.writable && !started) {
        refusedEarly(e, { remoteAddress: socket.remoteAddress, err: err.message });
        const body = JSON.stringify({ error: e.message, code: e.code });
        socket.write(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy(err);
    },
    // The router's refusals (a path parameter over its length limit, a broken %-escape), likewise.
    frameworkErrors: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      const e =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? GatewayErrors.URI_TOO_LONG(`URL too long: a path parameter is over ${app.initialConfig.maxParamLength ?? 100} characters`)
          : err.code === 'FST_ERR_BAD_URL'
            ? GatewayErrors.BAD_REQUEST(`invalid URL: ${err.message}`)
            : Errors.INTERNAL(err.message);
      refusedEarly(e, { method: req.method, url: req.url.length > 256 ? `${req.url.slice(0, 256)}…` : req.url });
      void reply.status(e.status).send({ error: e.message, code: e.code });
    },
    // No "incoming request" / "request completed" line per request (they cost a log call each
    // even below the level); failures are still logged by the error handler below.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.decorateRequest('shoalTenant', 'anonymous');
  app.decorateRequest('shoalErrorCode', '');
  app.addHook('onRoute', (opts) => {
    // Mark public routes once, at registration (swagger-ui's /docs routes included).
    if (isPublic(opts.url)) opts.config = { ...opts.config, shoalPublic: true };
    const finite = finiteNumbersHook(opts.schema);
    if (finite) opts.preHandler = [...(opts.preHandler ? [opts.preHandler].flat() : []), finite];
  });

  // Synchronous hooks (no promise per request); children of the histogram cached per label set.
  app.addHook('onResponse', (req, reply, done) => {
    const status = reply.statusCode;
    const ms = reply.elapsedTime;
    metrics.http(req.method, req.routeOptions.url ?? 'unknown', status).observe(ms / 1000);
    // The request log: one line when the request is done (Fastify's own two lines per request
    // are off). 4xx are the caller's: info; 5xx are ours: error.
    if (requestLog === 'all' || (requestLog === 'errors' && status >= 400)) {
      const line = { method: req.method, url: req.url, status, ms: Math.round(ms * 100) / 100, tenant: req.shoalTenant, ...(req.shoalErrorCode ? { code: req.shoalErrorCode } : {}) };
      if (status >= 500) req.log.error(line, 'request failed');
      else req.log.info(line, status >= 400 ? 'request refused' : 'request');
    }
    done();
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown }, req, reply) => {
    let status: number;
    let code: string;
    let message = err.message;
    if (err instanceof ShoalError) {
      status = err.status;
      code = err.code;
    } else {
      status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
      if (err.validation) code = GatewayErrors.BAD_REQUEST.code;
      else if (status === 415) {
        code = Errors.BAD_CONTENT_TYPE.code;
        message = `unsupported content-type ${JSON.stringify(req.headers['content-type'] ?? '')}: ${err.message}`;
      } else if (status === 413) {
        code = GatewayErrors.PAYLOAD_TOO_LARGE.code;
        message = GatewayErrors.PAYLOAD_TOO_LARGE(bodyLimit).message;
      } else if (status === 429) code = GatewayErrors.RATE_LIMITED.code;
      else if (status >= 400 && status < 500) code = GatewayErrors.BAD_REQUEST.code;
      else code = errorCode(err)?.startsWith('SHOAL_ERR_') ? errorCode(err)! : Errors.INTERNAL.code;
    }
    if (status >= 500 && code === Errors.INTERNAL.code) req.log.error({ err, method: req.method, url: req.url }, 'request failed');
    // A body cut off because its connection went away (the client left, or was answered 408 by
    // the client error handler, which counted it) is answered to nobody: not counted again.
    if (!(req.raw.socket?.destroyed && !(err instanceof ShoalError))) metrics.errors.labels(code, String(status)).inc();
    req.shoalErrorCode = code;
    void reply.status(status).send({ error: message, code });
  });
  app.setNotFoundHandler((req, reply) => {
    metrics.errors.labels(GatewayErrors.NOT_FOUND.code, '404').inc();
    req.shoalErrorCode = GatewayErrors.NOT_FOUND.code;
    void reply.status(404).send({ error: `no route ${req.method} ${req.url}`, code: GatewayErrors.NOT_FOUND.code });
  });

  // API keys: `x-api-key: <key>` or `Authorization: Bearer <key>`; the key names the tenant.
  // Then the per-tenant rate limit (per client IP without keys), a fixed window per minute.
  const keys = new Map((deps.apiKeys ?? []).map((k) => [k.key, k]));
  const defaultLimit = deps.rateLimitPerMinute ?? 600_000;
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

  await app.register(swagger, {
    openapi: {
      info: { title: 'Shoal gateway', version: SHOAL_VERSION, description: 'Open Inference Protocol (KServe v2) REST API and /v1 helpers' },
      components: { securitySchemes: { apiKey: { type: 'apiKey', name: 'x-api-key', in: 'header' } } },
      security: keys.size > 0 ? [{ apiKey: [] }] : [],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // Open Inference Protocol (KServe v2) server endpoints.
  app.get('/v2', { schema: { tags: ['oip'], summary: 'Server metadata' } }, async () => ({ name: 'shoal', version: SHOAL_VERSION, extensions: ['binary_tensor_data'] }));
  app.get('/v2/health/live', { schema: { tags: ['oip'], summary: 'Liveness' } }, async () => ({ live: true }));
  app.get('/v2/health/ready', { schema: { tags: ['oip'], summary: 'Readiness (connected to NATS)' } }, async (_req, reply) => {
    const ready = !deps.nc.isClosed() && !deps.nc.isDraining();
    return reply.status(ready ? 200 : 503).send({ ready });
  });

  let inference: InferenceService | undefined;
  if (deps.inference !== false) {
    inference = await InferenceService.create({ nc: deps.nc, subjects: deps.subjects, log: deps.logger, metrics, requestTimeoutMs, ...(deps.coalesce ? { coalesce: deps.coalesce } : {}) });
    registerOipRoutes(app, inference);
    const svc = inference;
    await app.register(async (scope) => {
      forwardedBodies(scope);
      registerOipInferRoutes(scope, svc);
      registerV1Routes(scope, svc);
    });
    registerJobRoutes(app, () => JobClient.open(deps.nc, deps.subjects.prefix));
    app.addHook('onClose', async () => inference?.stop());
  }

  app.get(
    '/v1/status',
    {
      schema: {
        tags: ['cluster'],
        summary: 'Processes seen over NATS and the scheduler status',
        querystring: Type.Object({ waitMs: Type.Integer({ minimum: 50, maximum: 5000, default: 300 }) }),
      },
    },
    async (req) => {
      const [processes, sched] = await Promise.all([
        discover(deps.nc, deps.subjects, req.query.waitMs),
        request<SchedulerStatus>(deps.nc, deps.subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 }).catch((err: unknown) => ({ error: (err as Error).message })),
      ]);
      return { processes, scheduler: sched };
    },
  );

  app.get('/metrics', { schema: { tags: ['ops'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    if (inference) for (const [service, n] of inference.dispatcher.pending()) metrics.pendingRequests.labels(service).set(n);
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  return app;
}
