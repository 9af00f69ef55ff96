/**
 * Typed errors with stable `SHOAL_ERR_*` codes.
 *
 * Every package defines its codes with {@link defineError}; each definition lands in one
 * registry so a test can check that every code is unique and documented in `docs/errors.md`.
 * Errors that cross a thread or the network travel as `{ code, message }` (see
 * {@link toWireError} / {@link fromWireError}); never rely on `instanceof` across a boundary.
 */

export interface ShoalErrorInit {
  cause?: unknown;
  /** Extra structured facts (the offending field, the op, a dimension…). */
  details?: Record<string, unknown>;
}

export class ShoalError extends Error {
  readonly code: string;
  /** HTTP status the gateway maps this error to. */
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, status = 500, init: ShoalErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ShoalError';
    this.code = code;
    this.status = status;
    this.details = init.details;
  }

  toJSON(): WireError {
    return toWireError(this);
  }
}

export interface ErrorDefinition<A extends unknown[]> {
  readonly code: string;
  readonly status: number;
  /** Builds the error: `Errs.BAD_CONFIG('nats.port', 'must be ≤ 65535')`. */
  (...args: A): ShoalError;
  /** True when `err` (possibly from another process) carries this code. */
  is(err: unknown): err is ShoalError;
}

const registry = new Map<string, { status: number; where: string }>();

/**
 * Registers a code and returns a factory for it. Throws at import time if the code is
 * registered twice, so a duplicate can never ship.
 */
export function defineError<A extends unknown[]>(
  code: `SHOAL_ERR_${string}`,
  status: number,
  message: (...args: A) => string,
  where = 'cluster',
): ErrorDefinition<A> {
  if (registry.has(code)) throw new Error(`duplicate error code ${code}`);
  registry.set(code, { status, where });
  const make = (...args: A): ShoalError => {
    // The last argument may be an init object only when the message function does not use it.
    return new ShoalError(code, message(...args), status);
  };
  const def = Object.assign(make, {
    code,
    status,
    is: (err: unknown): err is ShoalError => errorCode(err) === code,
  });
  return def as ErrorDefinition<A>;
}

/** All registered codes (for the uniqueness/documentation test and `docs/errors.md`). */
export function registeredErrorCodes(): ReadonlyMap<string, { status: number; where: string }> {
  return registry;
}

/** The stable code of any error-like value, or undefined. */
export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

export interface WireError {
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export function toWireError(err: unknown): WireError {
  if (err instanceof ShoalError) {
    return err.details ? { code: err.code, message: err.message, details: err.details } : { code: err.code, message: err.message };
  }
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && code.startsWith('SHOAL_ERR_')) return { code, message };
  return { code: Errors.INTERNAL.code, message };
}

export function fromWireError(w: WireError): ShoalError {
  const status = registry.get(w.code)?.status ?? 500;
  return new ShoalError(w.code, w.message, status, w.details ? { details: w.details } : {});
}

/** Attach details to an error built by a factory (kept out of the factory signature). */
export function withDetails(err: ShoalError, details: Record<string, unknown>): ShoalError {
  return new ShoalError(err.code, err.message, err.status, { details, cause: err.cause });
}

// ---- the runtime's own codes ------------------------------------------------------------------

export const Errors = {
  INTERNAL: defineError('SHOAL_ERR_INTERNAL', 500, (what: string) => `internal error: ${what}`),
  BAD_CONFIG: defineError('SHOAL_ERR_BAD_CONFIG', 400, (field: string, why: string) => `invalid config ${field}: ${why}`),
  BAD_MESSAGE: defineError('SHOAL_ERR_BAD_MESSAGE', 400, (subject: string, why: string) => `invalid message on ${subject}: ${why}`),
  BAD_CONTENT_TYPE: defineError('SHOAL_ERR_BAD_CONTENT_TYPE', 415, (ct: string) => `unsupported content-type "${ct}" (use application/msgpack or application/json)`),
  DECODE_FAILED: defineError('SHOAL_ERR_DECODE_FAILED', 400, (ct: string, why: string) => `could not decode ${ct} payload: ${why}`),
  UNKNOWN_MESSAGE_TYPE: defineError('SHOAL_ERR_UNKNOWN_MESSAGE_TYPE', 400, (subject: string, type: string) => `unknown message type "${type}" on ${subject}`),
  NATS_SERVER_NOT_FOUND: defineError('SHOAL_ERR_NATS_SERVER_NOT_FOUND', 500, (tried: string) => `nats-server binary not found (tried ${tried}); install it (scripts/setup.sh does) or set SHOAL_NATS_SERVER`),
  NATS_SERVER_FAILED: defineError('SHOAL_ERR_NATS_SERVER_FAILED', 500, (why: string) => `nats-server failed to start: ${why}`),
  PORT_IN_USE: defineError('SHOAL_ERR_PORT_IN_USE', 500, (what: string, port: number) => `${what} port ${port} is already in use (pick another with the config or a flag)`),
  STORE_NOT_WRITABLE: defineError('SHOAL_ERR_STORE_NOT_WRITABLE', 500, (dir: string, why: string) => `store directory ${dir} is not writable: ${why}`),
  CONNECT_FAILED: defineError('SHOAL_ERR_CONNECT_FAILED', 503, (servers: string, why: string) => `cannot connect to NATS at ${servers}: ${why}`),
  /** `ms`: how long it was asked; 0 when a service's step met it once (its caller may ask again). */
  JETSTREAM_UNAVAILABLE: defineError('SHOAL_ERR_JETSTREAM_UNAVAILABLE', 503, (ms: number, why: string) => `JetStream is not available ${ms > 0 ? `after ${ms} ms` : 'now'} (a cluster still electing its meta leader, or too few servers up for its quorum): ${why}`),
  AUTH_FAILED: defineError('SHOAL_ERR_AUTH_FAILED', 401, (why: string) => `NATS authorization failed: ${why}`),
  PERMISSION_DENIED: defineError('SHOAL_ERR_PERMISSION_DENIED', 403, (op: string, subject: string) => `permission denied to ${op} on ${subject}`),
  TIMEOUT: defineError('SHOAL_ERR_TIMEOUT', 504, (what: string, ms: number) => `${what} timed out after ${ms} ms`),
  NO_RESPONDERS: defineError('SHOAL_ERR_NO_RESPONDERS', 503, (subject: string) => `no responders on ${subject}`),
  CHILD_EXITED: defineError('SHOAL_ERR_CHILD_EXITED', 500, (name: string, how: string) => `process ${name} exited unexpectedly (${how})`),
  USAGE: defineError('SHOAL_ERR_USAGE', 400, (why: string) => why),
  // actors
  ACTOR_NOT_FOUND: defineError('SHOAL_ERR_ACTOR_NOT_FOUND', 404, (actorId: string) => `actor ${actorId} is not running (no responders)`),
  UNKNOWN_ACTOR_TYPE: defineError('SHOAL_ERR_UNKNOWN_ACTOR_TYPE', 400, (type: string, known: string) => `unknown actor type "${type}" (known: ${known || 'none'})`),
  MAILBOX_FULL: defineError('SHOAL_ERR_MAILBOX_FULL', 429, (actorId: string, capacity: number) => `mailbox of ${actorId} is full (${capacity} messages); retry later`),
  ACTOR_FAILED: defineError('SHOAL_ERR_ACTOR_FAILED', 500, (actorId: string, why: string) => `actor ${actorId} failed: ${why}`),
  ACTOR_STOPPED: defineError('SHOAL_ERR_ACTOR_STOPPED', 503, (actorId: string, state: string) => `actor ${actorId} is ${state} and takes no more messages`),
  ACTOR_ALREADY_RUNNING: defineError('SHOAL_ERR_ACTOR_ALREADY_RUNNING', 409, (actorId: string, nodeId: string) => `actor ${actorId} already runs on ${nodeId}`),
  PLACEMENT_CONFLICT: defineError('SHOAL_ERR_PLACEMENT_CONFLICT', 409, (actorId: string) => `directory entry of ${actorId} changed while placing it (compare-and-swap lost)`),
  NODE_DRAINING: defineError('SHOAL_ERR_NODE_DRAINING', 503, (nodeId: string) => `node ${nodeId} is draining and accepts no new actors`),
  NODE_FULL: defineError('SHOAL_ERR_NODE_FULL', 503, (nodeId: string, max: number) => `node ${nodeId} is full (${max} actors)`),
  NO_NODE_AVAILABLE: defineError('SHOAL_ERR_NO_NODE_AVAILABLE', 503, (actorId: string, reason: string) => `no node for ${actorId}: ${reason}`),
  // large bodies (cluster/payloads.ts)
  PAYLOAD_GONE: defineError('SHOAL_ERR_PAYLOAD_GONE', 503, (subject: string) => `the body at ${subject} is no longer held by its sender (answered, expired, or its process restarted)`),
  // jobs
  UNKNOWN_JOB_TYPE: defineError('SHOAL_ERR_UNKNOWN_JOB_TYPE', 400, (type: string, why: string, offered: string) => `"${type}" is not a job type: ${why} (job types: ${offered || 'none'})`),
  JOB_NOT_FOUND: defineError('SHOAL_ERR_JOB_NOT_FOUND', 404, (job: string) => `job ${job} not found`),
  JOB_CONFLICT: defineError('SHOAL_ERR_JOB_CONFLICT', 409, (job: string, attempts: number) => `the record of job ${job} kept changing under us (compare-and-swap lost ${attempts} times); retry`),
} as const;

export type ErrorName = keyof typeof Errors;
