/**
 * Request/reply over NATS with schemas at the edge.
 *
 * `serve()` decodes by content-type, validates against a TypeBox schema (a discriminated union
 * on `type` for protocols), runs the handler and replies in the caller's content-type. A bad
 * message or a failing handler gets an error reply — `Shoal-Error-Code` / `Shoal-Error-Message`
 * headers — never a crash; the subscription keeps serving everyone else.
 *
 * `request()` is the other side: it encodes, sends, and turns error headers, timeouts and
 * no-responders into typed errors.
 */
import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ContentType, decode, encode, parseContentType } from './codec.ts';
import { Errors, ShoalError, errorCode, fromWireError, toWireError } from './errors.ts';
import { Headers } from './subjects.ts';
import type { Logger } from './logger.ts';
import { SpanKind, activeTrace, endSpan, extractTrace, injectTrace, otelContext, startSpan, tracing, withSpan } from './tracing.ts';
import { isJetStreamUnavailable } from './nats-errors.ts';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();
function checker<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = compiled.get(schema);
  if (!c) {
    c = TypeCompiler.Compile(schema);
    compiled.set(schema, c);
  }
  return c as TypeCheck<T>;
}

/** Validates `value` against `schema`; the error names the first offending field. */
export function validate<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  const c = checker(schema);
  if (c.Check(value)) return value as Static<T>;
  const first = c.Errors(value).First();
  const type = value && typeof value === 'object' && 'type' in value ? (value as { type: unknown }).type : undefined;
  // A union on `type` whose discriminator matches no member: say so plainly.
  if (schema.anyOf && typeof type === 'string') {
    const members = schema.anyOf as TSchema[];
    const known = members.map((s) => s.properties?.type?.const).filter((x) => x !== undefined);
    if (known.length > 0 && !known.includes(type)) throw Errors.UNKNOWN_MESSAGE_TYPE(where, type);
    // The discriminator picks the member: report that member's first error, not "expected union".
    const member = members.find((m) => m.properties?.type?.const === type);
    if (member) validate(member, value, where);
  }
  const path = first?.path ? first.path.replace(/^\//, '').replace(/\//g, '.') : '';
  throw Errors.BAD_MESSAGE(where, first ? `${path || '(root)'}: ${first.message}` : 'does not match its schema');
}

export function errorHeaders(err: unknown, ct: ContentType = ContentType.MSGPACK): MsgHdrs {
  const w = toWireError(err);
  const h = natsHeaders();
  h.set(Headers.CONTENT_TYPE, ct);
  h.set(Headers.ERROR_CODE, w.code);
  // Headers are single-line.
  h.set(Headers.ERROR_MESSAGE, w.message.replace(/[\r\n]+/g, ' ').slice(0, 1024));
  return h;
}

export interface ServeOptions {
  queue?: string;
  log?: Logger;
}

export type Handler<T extends TSchema> = (msg: Static<T>, raw: Msg) => unknown | Promise<unknown>;

/**
 * Serves request/reply on `subject`. Handlers run concurrently; per-actor ordering is the actor
 * runtime's job, not this function's.
 */
export function serve<T extends TSchema>(nc: NatsConnection, subject: string, schema: T, handler: Handler<T>, opts: ServeOptions = {}): Subscription {
  const sub = nc.subscribe(subject, opts.queue ? { queue: opts.queue } : {});
  // A subscription the server refuses (a user whose permissions lack the subject) ends its
  // iterator with the error: logged, never an unhandled rejection that would end the process.
  void (async () => {
    for await (const m of sub) void handleOne(m);
  })().catch((err: unknown) => opts.log?.error({ subject, err: err instanceof Error ? err.message : String(err) }, 'subscription ended: this process no longer serves the subject'));

  async function handleOne(m: Msg): Promise<void> {
    let ct: ContentType = ContentType.MSGPACK;
    try {
      ct = parseContentType(m.headers?.get(Headers.CONTENT_TYPE));
      const body = validate(schema, decode(m.data, ct), m.subject);
      const parent = tracing.on ? extractTrace(m.headers) : undefined;
      const result = parent ? await traced(subject, body, m, parent) : await handler(body, m);
      if (m.reply) {
        const h = natsHeaders();
        h.set(Headers.CONTENT_TYPE, ct);
        m.respond(encode(result ?? null, ct), { headers: h });
      }
    } catch (err) {
      const code = errorCode(err);
      const expected = err instanceof ShoalError && code !== Errors.INTERNAL.code;
      // JetStream settling (a stream electing a leader) is not a bug of the handler: the caller
      // gets the typed, retryable JETSTREAM_UNAVAILABLE (503), not INTERNAL.
      const settling = !expected && isJetStreamUnavailable(err);
      const message = err instanceof Error ? err.message : String(err);
      if (opts.log) {
        if (expected) opts.log.debug({ subject: m.subject, code, err: message }, 'request refused');
        else if (settling) opts.log.warn({ subject: m.subject, err: message }, 'JetStream not available for this request: the caller may ask again');
        else opts.log.error({ subject: m.subject, err }, 'handler failed');
      }
      if (m.reply) m.respond(new Uint8Array(0), { headers: errorHeaders(expected ? err : settling ? Errors.JETSTREAM_UNAVAILABLE(0, message) : Errors.INTERNAL(message), ct) });
    }
  }
  /** A request that carried a trace: handled in a server span, the caller's child (its own requests join the trace). */
  async function traced(pattern: string, body: Static<T>, m: Msg, parent: ReturnType<typeof otelContext.active>): Promise<unknown> {
    const type = (body as { type?: unknown })?.type;
    const span = startSpan(`${pattern}${typeof type === 'string' ? ` ${type}` : ''}`, { kind: SpanKind.SERVER, parent, attributes: { 'messaging.system': 'nats', 'messaging.destination.name': m.subject } });
    try {
      const r = await otelContext.with(withSpan(span, parent), () => handler(body, m));
      endSpan(span);
      return r;
    } catch (err) {
      endSpan(span, err);
      throw err;
    }
  }
  return sub;
}

export interface RequestOptions {
  timeoutMs?: number;
  contentType?: ContentType;
  /**
   * Safe to send twice: a read, or a write the responder de-duplicates (by event id, by
   * content). On a NATS cluster such a request is sent again, within `timeoutMs`, when nobody
   * answers yet (a responder whose server died is reconnecting: "no responders" for a moment) and
   * when this connection reconnects while waiting (the request or its reply went down with the
   * server). Other requests fail as before: sending them twice could apply them twice.
   * @default false
   */
  idempotent?: boolean;
  /** Extra headers (e.g. `Shoal-Actor`: who asks, for the audit log). */
  headers?: Record<string, string>;
}

/** Throws the typed error carried in a reply's headers, if any. */
export function throwIfError(m: Msg): void {
  const code = m.headers?.get(Headers.ERROR_CODE);
  if (code) throw fromWireError({ code, message: m.headers?.get(Headers.ERROR_MESSAGE) ?? code });
}

export function mapRequestError(subject: string, timeoutMs: number, err: unknown): ShoalError {
  if (err instanceof ShoalError) return err;
  const name = err instanceof Error ? `${err.name} ${err.message}` : String(err);
  if (/no ?responders/i.test(name) || (err as { code?: string })?.code === '503') return Errors.NO_RESPONDERS(subject);
  if (/timeout/i.test(name)) return Errors.TIMEOUT(`request on ${subject}`, timeoutMs);
  if (/permission/i.test(name)) return Errors.PERMISSION_DENIED('publish', subject);
  return Errors.INTERNAL(`request on ${subject}: ${name}`);
}

export async function request<R = unknown>(nc: NatsConnection, subject: string, body: unknown, opts: RequestOptions = {}): Promise<R> {
  const ct = opts.contentType ?? ContentType.MSGPACK;
  const timeout = opts.timeoutMs ?? 5000;
  const h = natsHeaders();
  h.set(Headers.CONTENT_TYPE, ct);
  for (const [k, v] of Object.entries(opts.headers ?? {})) h.set(k, v);
  if (tracing.on) {
    const t = activeTrace();
    if (t) injectTrace(t, h);
  }
  const data = encode(body, ct);
  let m: Msg;
  if (opts.idempotent) m = await requestRetrying(nc, subject, data, h, timeout);
  else {
    try {
      m = await nc.request(subject, data, { timeout, headers: h });
    } catch (err) {
      throw mapRequestError(subject, timeout, err);
    }
  }
  throwIfError(m);
  return decode(m.data, parseContentType(m.headers?.get(Headers.CONTENT_TYPE))) as R;
}

/**
 * Publishes a message with a `Nats-Msg-Id` to a stream (which drops a copy with the same id
 * within its duplicate window), sending it again while JetStream cannot answer — the stream
 * electing a new leader after a server died, no ack in time, this connection reconnecting — until
 * `timeoutMs` has passed. A real refusal (a full stream, a permission) fails at once.
 */
export async function publishIdempotent(js: JetStreamClient, subject: string, data: Uint8Array, opts: { msgID: string; headers?: MsgHdrs }, timeoutMs = 30_000): Promise<PubAck> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    try {
      return await js.publish(subject, data, { ...opts, timeout: Math.max(1, Math.min(5000, left)) });
    } catch (err) {
      const pause = Math.min(1000, 50 * 2 ** attempt);
      if (!isJetStreamUnavailable(err) || deadline - Date.now() <= pause) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

const RECONNECTED = Symbol('reconnected');

/** An idempotent request: sent again on "no responders" (backing off) and at once after a reconnect, until `timeout` has passed. */
async function requestRetrying(nc: NatsConnection, subject: string, data: Uint8Array, h: MsgHdrs, timeout: number): Promise<Msg> {
  const deadline = Date.now() + timeout;
  // After a reconnect the copy sent at once can still be lost — its reply inbox not yet known
  // across the cluster's routes — so from then on each copy waits a bounded time and a silent
  // one is sent again (the request is idempotent).
  let reconnected = false;
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    if (left <= 0) throw Errors.TIMEOUT(`request on ${subject}`, timeout);
    const reconnect = onNextReconnect(nc);
    if (reconnected) await nc.flush().catch(() => undefined);
    const sent = nc.request(subject, data, { timeout: reconnected ? Math.min(left, RESEND_WAIT_MS) : left, headers: h });
    sent.catch(() => undefined); // abandoned after a reconnect: its late failure is not ours
    try {
      const m = await Promise.race([sent, reconnect.promise]);
      if (m !== RECONNECTED) return m;
      reconnected = true;
    } catch (err) {
      const e = mapRequestError(subject, timeout, err);
      const pause = Math.min(1000, 50 * 2 ** attempt);
      const retry = Errors.NO_RESPONDERS.is(e) || (reconnected && Errors.TIMEOUT.is(e));
      if (!retry || deadline - Date.now() <= pause) throw Errors.TIMEOUT.is(e) ? Errors.TIMEOUT(`request on ${subject}`, timeout) : e;
      await new Promise((r) => setTimeout(r, pause));
    } finally {
      reconnect.cancel();
    }
  }
}

/** How long one copy sent after a reconnect waits before the next is sent. */
const RESEND_WAIT_MS = 2000;

/** Per connection: one watcher of its status events, telling whoever waits that it reconnected. */
const reconnectWaiters = new WeakMap<NatsConnection, Set<() => void>>();

function onNextReconnect(nc: NatsConnection): { promise: Promise<typeof RECONNECTED>; cancel(): void } {
  let waiters = reconnectWaiters.get(nc);
  if (!waiters) {
    const set = new Set<() => void>();
    waiters = set;
    reconnectWaiters.set(nc, set);
    void (async () => {
      for await (const st of nc.status()) {
        if (st.type !== 'reconnect') continue;
        for (const w of [...set]) w();
      }
    })().catch(() => undefined);
  }
  const set = waiters;
  let wake!: () => void;
  const promise = new Promise<typeof RECONNECTED>((resolve) => {
    wake = () => resolve(RECONNECTED);
  });
  set.add(wake);
  return { promise, cancel: () => set.delete(wake) };
}

/** Scatter-gather: every reply that arrives within `maxWaitMs`. Error replies are skipped. */
export async function requestAll<R = unknown>(nc: NatsConnection, subject: string, body: unknown, maxWaitMs = 500): Promise<R[]> {
  const h = natsHeaders();
  h.set(Headers.CONTENT_TYPE, ContentType.MSGPACK);
  const out: R[] = [];
  let iter: AsyncIterable<Msg>;
  try {
    iter = await nc.requestMany(subject, encode(body), { maxWait: maxWaitMs, strategy: 'timer', headers: h });
  } catch (err) {
    throw mapRequestError(subject, maxWaitMs, err);
  }
  try {
    for await (const m of iter) {
      if (m.headers?.get(Headers.ERROR_CODE)) continue;
      out.push(decode(m.data, parseContentType(m.headers?.get(Headers.CONTENT_TYPE))) as R);
    }
  } catch (err) {
    // no responders at all → empty list
    if (mapRequestError(subject, maxWaitMs, err).code !== Errors.NO_RESPONDERS.code) throw mapRequestError(subject, maxWaitMs, err);
  }
  return out;
}
