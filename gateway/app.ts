/**
 * The gateway's Fastify app: the Open Inference Protocol (KServe v2) REST API, a simpler
 * `/v1/models/{name}/predict` with JSON rows, cluster status, Prometheus metrics and OpenAPI
 * docs, and the dashboard at `/ui`. API keys per tenant, a per-tenant rate limit, a body-size limit and a request deadline
 * guard the inference routes; every error is `{"error": "...", "code": "SHOAL_ERR_..."}`.
 */
import { STATUS_CODES, maxHeaderSize, type Server } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  Errors,
  SHOAL_VERSION,
  ShoalError,
  SpanKind,
  SpanStatusCode,
  extractHttpTrace,
  startSpan,
  tracing,
  withSpan,
  type Span,
  type TraceContext,
  type Logger,
  type NatsConnection,
  type Subjects,
} from '../cluster/index.ts';
import { GatewayErrors } from './errors.ts';
import { createMetrics, type GatewayMetrics } from './metrics.ts';
import { InferenceService } from './inference.ts';
import { registerOipInferRoutes, registerOipRoutes } from './routes/oip.ts';
import { registerV1Routes } from './routes/v1.ts';
import { registerExplainRoutes } from './routes/explain.ts';
import { registerModelStatusRoutes } from './routes/model-status.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { registerBatchRoutes } from './routes/batch.ts';
import { registerFeatureRoutes } from './routes/features.ts';
import { registerPrivacyRoutes } from './routes/privacy.ts';
import { registerPipelineRoutes } from './routes/pipelines.ts';
import { registerFeedbackRoutes } from './routes/feedback.ts';
import { registerGovernanceRoutes } from './routes/governance.ts';
import { MonitoringGauges, registerMonitoringRoutes } from './monitoring.ts';
import { JobClient, type TenantQuotas } from '../ml/index.ts';
import { jobTenancy } from './job-tenancy.ts';
import { startTenantNats } from './tenant-nats.ts';
import { startTenantInfer } from './tenant-infer.ts';
import { registerTenantRoutes } from './routes/tenants.ts';
import { installTenantGuard, isPublic, type ApiKey, type TenantGuard } from './tenants.ts';
import { clientErrorOf, finiteNumbersHook, installErrorHandlers, schemaErrors } from './http-errors.ts';
import { registerOpsRoutes } from './routes/ops.ts';
import { registerCostRoutes } from './routes/cost.ts';
import { installBodyLimit } from './body-limit.ts';
import { registerUiRoutes } from './routes/ui.ts';
import { DashboardFeed, type DashboardOptions } from './ui-feed.ts';
import { addPanelSources } from './ui-panels.ts';

export { tenantOf, type ApiKey } from './tenants.ts';

export interface GatewayDeps {
  nc: NatsConnection;
  subjects: Subjects;
  logger: Logger;
  /** Largest request body (413 above, readable by a client still sending: see body-limit.ts). @default 64 MiB */
  bodyLimit?: number;
  /** API keys (`keyHash`, or plain `key` in development). @default [] */
  apiKeys?: ApiKey[];
  /**
   * Serve without keys: no authentication, every caller an admin of the `default` tenant. With
   * `apiKeys` empty and this false, building the gateway fails (the gateway process passes
   * `gateway.open`, false unless set). @default true when `apiKeys` is not given at all (an embedded gateway), else false
   */
  open?: boolean;
  /** Per-tenant quotas (config `tenants`): requests/min, training dollars/day. @default {} */
  tenants?: TenantQuotas;
  /** Count rate limits cluster-wide in NATS KV (`false`: per gateway, for comparison). @default true */
  sharedRateCounts?: boolean;
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
  /** The dashboard at `/ui` (see gateway/routes/ui.ts); `false` turns it off. @default {} (on) */
  dashboard?: false | DashboardOptions;
}

/**
 * What a second front door on the same gateway (the gRPC service, gateway/grpc/) shares with the
 * HTTP routes: the inference service (routing, coalescing, outcome reports), the tenants' keys
 * and rate-limit windows, the metrics, and the limits.
 */
export interface GatewayParts {
  /** Undefined when inference routes are off (`inference: false`). */
  inference: InferenceService | undefined;
  tenants: TenantGuard;
  metrics: GatewayMetrics;
  logger: Logger;
  bodyLimit: number;
  requestLog: 'all' | 'errors' | 'off';
  /** Server readiness: connected to NATS. */
  ready: () => boolean;
  /** The dashboard's live data (`/ui`): later panels add their topic with `addSource`. Undefined when `dashboard: false`. */
  dashboard: DashboardFeed | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared with the gRPC service (see {@link GatewayParts}). */
    shoal: GatewayParts;
  }
  interface FastifyRequest {
    /** The tenant the request's API key names (`default` on an open gateway; 'anonymous' before admission). */
    shoalTenant: string;
    /** The request's API key is an admin key (true on an open gateway; false on public routes with keys on). */
    shoalAdmin: boolean;
    /** The error code the request was answered with ('' when it succeeded). */
    shoalErrorCode: string;
    /** The request's server span and its context, when the gateway traces (cluster/tracing.ts). */
    shoalSpan: Span | undefined;
    shoalTrace: TraceContext | undefined;
  }
  interface FastifyContextConfig {
    /** Set at route registration for routes open without an API key (and not rate-limited). */
    shoalPublic?: boolean;
  }
}

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

/** Fastify's options: limits and timeouts, strict schemas, and the documented body for refusals Fastify and Node make themselves. */
function serverOptions(logger: Logger, bodyLimit: number, receiveTimeoutMs: number, refusedEarly: (e: ShoalError, where: Record<string, unknown>) => void): FastifyHttpOptions<Server> {
  return {
    // Fastify's logger type and pino's differ only in fields Fastify never reads.
    loggerInstance: logger as FastifyBaseLogger,
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
          ? GatewayErrors.URI_TOO_LONG(`URL too long: a path parameter is over ${MAX_PARAM_LENGTH} characters`)
          : err.code === 'FST_ERR_BAD_URL'
            ? GatewayErrors.BAD_REQUEST(`invalid URL: ${err.message}`)
            : Errors.INTERNAL(err.message);
      refusedEarly(e, { method: req.method, url: req.url.length > 256 ? `${req.url.slice(0, 256)}…` : req.url });
      void reply.status(e.status).send({ error: e.message, code: e.code });
    },
    // No "incoming request" / "request completed" line per request (they cost a log call each
    // even below the level); failures are still logged by the error handler below.
    logController: new LogController({ disableRequestLogging: true }),
  };
}

/** Per-request hooks: route flags set at registration, then metrics and the request log when each request is done. */
function installRequestHooks(app: FastifyInstance, metrics: GatewayMetrics, requestLog: 'all' | 'errors' | 'off'): void {
  app.decorateRequest('shoalTenant', 'anonymous');
  app.decorateRequest('shoalAdmin', false);
  app.decorateRequest('shoalErrorCode', '');
  app.decorateRequest('shoalSpan', undefined);
  app.decorateRequest('shoalTrace', undefined);
  if (tracing.on) {
    // One server span per request, the child of the caller's `traceparent` when it sends one.
    // Named by the route template (low cardinality); ended when the response is sent.
    app.addHook('onRequest', (req, _reply, done) => {
      const route = req.routeOptions.url ?? 'unknown';
      const parent = extractHttpTrace(req.headers);
      const span = startSpan(`${req.method} ${route}`, {
        kind: SpanKind.SERVER,
        parent,
        attributes: { 'http.request.method': req.method, 'http.route': route, 'url.path': req.url.split('?')[0]! },
      });
      req.shoalSpan = span;
      req.shoalTrace = withSpan(span, parent);
      done();
    });
  }
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
    const span = req.shoalSpan;
    if (span) {
      span.setAttribute('http.response.status_code', status);
      if (req.shoalTenant) span.setAttribute('shoal.tenant', req.shoalTenant);
      if (req.shoalErrorCode) span.setAttribute('shoal.error.code', req.shoalErrorCode);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: req.shoalErrorCode || String(status) });
      span.end();
    }
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
}

/** Fastify's default limit on a path parameter's length (the router refuses longer ones). */
const MAX_PARAM_LENGTH = 100;

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const bodyLimit = deps.bodyLimit ?? 64 * 1024 * 1024;
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
  const app = Fastify(serverOptions(deps.logger, bodyLimit, receiveTimeoutMs, refusedEarly)).withTypeProvider<TypeBoxTypeProvider>();
  installRequestHooks(app, metrics, requestLog);
  installErrorHandlers(app, metrics, bodyLimit);
  installBodyLimit(app, bodyLimit, refusedEarly);

  const tenants = await installTenantGuard(app, {
    apiKeys: deps.apiKeys ?? [],
    open: deps.open ?? deps.apiKeys === undefined,
    ...(deps.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: deps.rateLimitPerMinute } : {}),
    ...(deps.tenants ? { quotas: deps.tenants } : {}),
    nc: deps.nc,
    prefix: deps.subjects.prefix,
    log: deps.logger,
    ...(deps.sharedRateCounts === false ? { sharedCounts: false } : {}),
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Shoal gateway', version: SHOAL_VERSION, description: 'Open Inference Protocol (KServe v2) REST API and /v1 helpers' },
      components: { securitySchemes: { apiKey: { type: 'apiKey', name: 'x-api-key', in: 'header' } } },
      security: tenants.open ? [] : [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  let inference: InferenceService | undefined;
  if (deps.inference !== false) {
    inference = await InferenceService.create({ nc: deps.nc, subjects: deps.subjects, log: deps.logger, metrics, requestTimeoutMs, ...(deps.coalesce ? { coalesce: deps.coalesce } : {}) });
    registerOipRoutes(app, inference);
    registerModelStatusRoutes(app, inference);
    const svc = inference;
    await app.register(async (scope) => {
      forwardedBodies(scope);
      registerOipInferRoutes(scope, svc);
      registerV1Routes(scope, svc);
      registerExplainRoutes(scope, svc);
    });
    registerJobRoutes(app, () => JobClient.open(deps.nc, deps.subjects.prefix), jobTenancy(deps.nc, deps.subjects.prefix, tenants, deps.tenants ?? {}));
    registerBatchRoutes(app, { nc: deps.nc, prefix: deps.subjects.prefix, jobs: () => JobClient.open(deps.nc, deps.subjects.prefix), tenancy: jobTenancy(deps.nc, deps.subjects.prefix, tenants, deps.tenants ?? {}), guard: tenants });
    // Tenants' inference over NATS (`<prefix>.t.<tenant>.infer.<model>`), in the same queue group as their job requests.
    const tenantInfer = startTenantInfer({ nc: deps.nc, subjects: deps.subjects, guard: tenants, inference: svc, bodyLimit, log: deps.logger });
    app.addHook('onClose', async () => tenantInfer.stop());
    app.addHook('onClose', async () => inference?.stop());
  }

  registerTenantRoutes(app, tenants, { nc: deps.nc, subjects: deps.subjects });
  // Tenants' job requests over NATS (`<prefix>.t.<tenant>.jobs.*`), shared by the gateways in a queue group.
  const tenantNats = startTenantNats({ nc: deps.nc, subjects: deps.subjects, guard: tenants, tenancy: jobTenancy(deps.nc, deps.subjects.prefix, tenants, deps.tenants ?? {}), log: deps.logger });
  app.addHook('onClose', async () => tenantNats.stop());
  registerFeatureRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  registerFeedbackRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  registerGovernanceRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  registerPrivacyRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  registerPipelineRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  // Model monitors' latest windows: gauges on /metrics and GET /v1/models/{name}/monitoring.
  const monitoring = new MonitoringGauges(metrics.registry).start(deps.nc, deps.subjects);
  app.addHook('onClose', async () => monitoring.stop());
  registerMonitoringRoutes(app, { nc: deps.nc, subjects: deps.subjects, gauges: monitoring });
  registerOpsRoutes(app, { nc: deps.nc, subjects: deps.subjects, metrics, inference });
  registerCostRoutes(app, { nc: deps.nc, subjects: deps.subjects });
  let dashboard: DashboardFeed | undefined;
  if (deps.dashboard !== false) {
    const feed = (dashboard = new DashboardFeed({ nc: deps.nc, subjects: deps.subjects, metrics, logger: deps.logger }, deps.dashboard ?? {}));
    addPanelSources(feed, { nc: deps.nc, subjects: deps.subjects, gauges: monitoring });
    await registerUiRoutes(app, { feed, auth: !tenants.open, logger: deps.logger });
    void feed.start();
  }
  const ready = () => !deps.nc.isClosed() && !deps.nc.isDraining();
  app.decorate('shoal', { inference, tenants, metrics, logger: deps.logger, bodyLimit, requestLog, ready, dashboard } satisfies GatewayParts);
  return app;
}
