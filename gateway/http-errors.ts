/**
 * How the gateway words its refusals: every error is `{"error": "...", "code": "SHOAL_ERR_..."}`,
 * whether a route, the router, a schema or Node's HTTP parser refused the request.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaValidationError, RouteOptions } from 'fastify';
import { Errors, ShoalError, errorCode } from '../cluster/index.ts';
import { jsonErrorMessage } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import type { GatewayMetrics } from './metrics.ts';

/**
 * Schema errors as Ajv words them, with the field named where Ajv leaves it in `params`: an
 * unknown field is `body must NOT have additional property "actortype"`.
 */
export function schemaErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
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
export function finiteNumbersHook(schema: RouteOptions['schema']): ((req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void) | undefined {
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
export function clientErrorOf(err: Error & { code?: string; reason?: string; bytesParsed?: number; rawPacket?: unknown }, receiveTimeoutMs: number, headerLimit: number): ShoalError | undefined {
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

/** The app's error and not-found handlers: the documented body, counted by code and status. */
export function installErrorHandlers(app: FastifyInstance, metrics: GatewayMetrics, bodyLimit: number): void {
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
      // Fastify's JSON parser: V8's message quotes the body (personal data, maybe): not echoed.
      else if (err instanceof SyntaxError && status === 400) {
        code = GatewayErrors.BAD_REQUEST.code;
        message = `the request body is not valid JSON: ${jsonErrorMessage(err)}`;
      }
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
}
