/**
 * Request ids: every inference request gets one — the caller's `x-request-id` header when it
 * sends a usable one, else a fresh UUIDv7 — and it comes back in the `x-request-id` response
 * header (an OIP body's own `id` wins: the replica logs and returns that one). It is the id a
 * prediction-log record carries and the one feedback (`POST /v1/models/{m}/feedback`) names.
 * A UUIDv7 carries the time it was made, which is how the label join finds the prediction
 * without an index entry per request (ml/monitoring/prediction-lookup.ts); a caller's own id is
 * indexed instead (a caller that sends UUIDv7s made at request time gets the cheap path too).
 */
import { v7 as uuidv7 } from 'uuid';
import type { FastifyRequest } from 'fastify';
import { GatewayErrors } from '../errors.ts';
import { tenantOf } from '../tenants.ts';
import type { RequestMeta } from '../inference.ts';

/** What a caller's request id may look like (it becomes part of a KV key and a log record). */
export const REQUEST_ID = /^[A-Za-z0-9._:\/+=@-]{1,128}$/;

/** The caller's request id (header or gRPC metadata `x-request-id`), else a fresh UUIDv7; a malformed one is a 400 naming the header. */
export function requestIdOf(given: unknown): string {
  if (given === undefined) return uuidv7();
  if (typeof given === 'string' && REQUEST_ID.test(given)) return given;
  throw GatewayErrors.BAD_REQUEST(`x-request-id: use 1 to 128 letters, digits or . _ : / + = @ - (got ${JSON.stringify(String(given).slice(0, 40))})`);
}

export function requestMeta(req: FastifyRequest): RequestMeta {
  const meta: RequestMeta = { requestId: requestIdOf(req.headers['x-request-id']), tenant: tenantOf(req) };
  if (req.shoalTrace) meta.trace = req.shoalTrace;
  return meta;
}
