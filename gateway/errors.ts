import { defineError } from '../cluster/index.ts';

/** The gateway's own codes (HTTP edge). */
export const GatewayErrors = {
  NOT_FOUND: defineError('SHOAL_ERR_NOT_FOUND', 404, (what: string) => `${what} not found`, 'gateway'),
  BAD_REQUEST: defineError('SHOAL_ERR_BAD_REQUEST', 400, (why: string) => why, 'gateway'),
  UNAUTHORIZED: defineError('SHOAL_ERR_UNAUTHORIZED', 401, (why: string) => why, 'gateway'),
  FORBIDDEN: defineError('SHOAL_ERR_FORBIDDEN', 403, (why: string) => why, 'gateway'),
  RATE_LIMITED: defineError('SHOAL_ERR_RATE_LIMITED', 429, (tenant: string, max: number, window: string) => `tenant ${tenant} is over its rate limit (${max} requests per ${window}); retry later`, 'gateway'),
  PAYLOAD_TOO_LARGE: defineError('SHOAL_ERR_PAYLOAD_TOO_LARGE', 413, (limit: number) => `request body is larger than the limit of ${limit} bytes`, 'gateway'),
  TENANCY_UNAVAILABLE: defineError('SHOAL_ERR_TENANCY_UNAVAILABLE', 503, (why: string) => `tenant requests over NATS cannot be served yet: ${why}; retry later`, 'gateway'),
  OVERLOADED: defineError('SHOAL_ERR_OVERLOADED', 503, (target: string, pending: number) => `${target} has ${pending} requests waiting in this gateway; retry later`, 'gateway'),
  // Refusals of Node's HTTP parser and of the router, before any route runs.
  REQUEST_TIMEOUT: defineError('SHOAL_ERR_REQUEST_TIMEOUT', 408, (ms: number) => `the request (headers and body) was not received in full within ${ms} ms`, 'gateway'),
  URI_TOO_LONG: defineError('SHOAL_ERR_URI_TOO_LONG', 414, (why: string) => why, 'gateway'),
  HEADERS_TOO_LARGE: defineError('SHOAL_ERR_HEADERS_TOO_LARGE', 431, (limit: number) => `the request line and headers are larger than the limit of ${limit} bytes`, 'gateway'),
} as const;
