/**
 * Distributed tracing with OpenTelemetry, off by default (config `tracing.*`).
 *
 * One trace follows a request from the gateway's HTTP span over NATS (a W3C `traceparent`
 * header on the message) into the replica — its mailbox, its batch, the onnxruntime run — and
 * a training job's steps from the coordinator to each worker. Spans leave each process through
 * an OTLP/HTTP exporter (`tracing.endpoint`), or as JSON lines in a file (`tracing.file`), or
 * through an exporter a test passes in.
 *
 * When tracing is off the hot paths pay one boolean test: every helper here checks
 * `tracing.on` before it touches a header or makes a span object, and callers check it
 * before they capture a context.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Attributes, type Context, type Link, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { SHOAL_VERSION } from './version.ts';

export { SpanKind, SpanStatusCode, context as otelContext, trace as otelTrace, ROOT_CONTEXT, type Context as TraceContext, type Span, type Link as SpanLink, type Attributes as SpanAttributes };

/** `tracing.on`: whether this process records spans. Read it before any tracing work on a hot path. */
export const tracing = { on: false };
let tracer: Tracer | undefined;
let provider: { shutdown(): Promise<void> } | undefined;

export interface TracingOptions {
  /** `service.name` of this process's spans: `shoal-gateway`, `shoal-node`, `shoal-scheduler`. */
  service: string;
  /** Resource attributes besides the service (node id, role…). */
  attributes?: Attributes;
  /** OTLP/HTTP traces URL. */
  endpoint?: string;
  /** A JSON-lines file each finished span is appended to. */
  file?: string;
  /** Exporters of the caller's own (tests: `InMemorySpanExporter`), each behind a simple processor. */
  exporters?: SpanExporter[];
  /** @default 1 */
  sampleRatio?: number;
}

/**
 * Starts recording spans in this process when there is somewhere to send them; resolves with
 * the shutdown (flushes what is buffered). Without an endpoint, file or exporter it does
 * nothing — and never loads the OpenTelemetry SDK (a few hundred ms of imports), only the API.
 */
export async function startTracing(o: TracingOptions): Promise<{ shutdown(): Promise<void> }> {
  if (!o.endpoint && !o.file && !o.exporters?.length) return { shutdown: async () => undefined };
  if (provider) throw new Error('tracing already started in this process');
  const { createProvider } = await import('./tracing-sdk.ts');
  const p = await createProvider(o);
  provider = p;
  tracer = trace.getTracer('shoal', SHOAL_VERSION);
  tracing.on = true;
  return {
    shutdown: async () => {
      tracing.on = false;
      tracer = undefined;
      provider = undefined;
      await p.shutdown().catch(() => undefined);
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** Starts a span (call only when `tracing.on`); `parent` undefined: the active context. */
export function startSpan(name: string, o: { kind?: SpanKind; parent?: Context; attributes?: Attributes; links?: Link[] } = {}): Span {
  return tracer!.startSpan(name, { kind: o.kind ?? SpanKind.INTERNAL, ...(o.attributes ? { attributes: o.attributes } : {}), ...(o.links ? { links: o.links } : {}) }, o.parent ?? context.active());
}

/** The context with `span` as its current span. */
export function withSpan(span: Span, parent: Context = context.active()): Context {
  return trace.setSpan(parent, span);
}

/** Ends `span`, marking it an error (with the error's code and message) when `err` is given. */
export function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    const code = (err as { code?: unknown })?.code;
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    if (typeof code === 'string') span.setAttribute('shoal.error.code', code);
  }
  span.end();
}

/**
 * Runs `fn` in a new span, ended when its promise settles (an error status when it rejects);
 * without tracing it is just `fn()`.
 */
export async function inSpan<T>(name: string, o: { kind?: SpanKind; parent?: Context; attributes?: Attributes; links?: Link[] }, fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  if (!tracing.on) return fn(undefined);
  const span = startSpan(name, o);
  try {
    const r = await context.with(withSpan(span, o.parent ?? context.active()), () => fn(span));
    endSpan(span);
    return r;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}

/** The active context when tracing is on and it holds a span; undefined otherwise (nothing to carry). */
export function activeTrace(): Context | undefined {
  if (!tracing.on) return undefined;
  const c = context.active();
  return trace.getSpan(c) ? c : undefined;
}

const setter: TextMapSetter<MsgHdrs> = { set: (h, k, v) => h.set(k, v) };
const getter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, k) => h?.get(k) || undefined,
  keys: (h) => (h ? [...h.keys()] : []),
};

/** Adds `traceparent` (and `tracestate`) of `ctx` to NATS headers, creating them if needed. */
export function injectTrace(ctx: Context, h?: MsgHdrs): MsgHdrs {
  const out = h ?? natsHeaders();
  propagation.inject(ctx, out, setter);
  return out;
}

/** The remote parent a NATS message carries, or undefined (no header, or tracing off). */
export function extractTrace(h: MsgHdrs | undefined): Context | undefined {
  if (!tracing.on || !h || !h.get('traceparent')) return undefined;
  return propagation.extract(ROOT_CONTEXT, h, getter);
}

/** The remote parent an HTTP request's headers carry (a client that traces), else the root. */
export function extractHttpTrace(headers: Record<string, string | string[] | undefined>): Context {
  return propagation.extract(ROOT_CONTEXT, headers, {
    get: (c, k) => {
      const v = c[k];
      return Array.isArray(v) ? v[0] : v;
    },
    keys: (c) => Object.keys(c),
  });
}

/** A span link to the span of `ctx` (requests that share a batch with the one that parents it). */
export function linkTo(ctx: Context): Link | undefined {
  const sc = trace.getSpanContext(ctx);
  return sc ? { context: sc } : undefined;
}

/** A finished span as a plain object (the JSON-lines exporter's line). */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: string;
  service: string;
  startUs: number;
  endUs: number;
  status: { code: number; message?: string };
  attributes: Attributes;
  links: { traceId: string; spanId: string }[];
}

const micros = (t: [number, number]) => Math.round(t[0] * 1e6 + t[1] / 1e3);

/** A finished span as the JSON-lines exporter writes it. */
export function spanRecord(s: ReadableSpan): SpanRecord {
  const sc = s.spanContext();
  return {
    traceId: sc.traceId,
    spanId: sc.spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    name: s.name,
    kind: SpanKind[s.kind] ?? String(s.kind),
    service: String(s.resource.attributes['service.name'] ?? ''),
    startUs: micros(s.startTime),
    endUs: micros(s.endTime),
    status: s.status.message ? { code: s.status.code, message: s.status.message } : { code: s.status.code },
    attributes: s.attributes,
    links: s.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId })),
  };
}
