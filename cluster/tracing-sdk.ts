/**
 * The OpenTelemetry SDK side of tracing.ts, loaded only when tracing is on: the tracer provider
 * (W3C trace-context propagation, AsyncLocalStorage context), the sampler, the exporters.
 */
import { appendFileSync } from 'node:fs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { spanRecord, type TracingOptions } from './tracing.ts';
import { SHOAL_VERSION } from './version.ts';

/** Registers a global tracer provider sending to `o`'s endpoint, file and exporters. */
export async function createProvider(o: TracingOptions): Promise<{ shutdown(): Promise<void> }> {
  const processors: SpanProcessor[] = [];
  if (o.endpoint) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: o.endpoint }), { scheduledDelayMillis: 1000 }));
  if (o.file) processors.push(new SimpleSpanProcessor(new JsonLinesSpanExporter(o.file)));
  for (const e of o.exporters ?? []) processors.push(new SimpleSpanProcessor(e));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: o.service, [ATTR_SERVICE_VERSION]: SHOAL_VERSION, ...o.attributes }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.sampleRatio ?? 1) }),
    spanProcessors: processors,
  });
  // The AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  return provider;
}

/**
 * Appends each finished span as one JSON object per line (`SpanRecord`: ids, parent, name, kind,
 * times in µs, status, attributes, links, service) — what a test or a quick `jq` needs.
 */
export class JsonLinesSpanExporter implements SpanExporter {
  constructor(private readonly file: string) {}

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    try {
      appendFileSync(this.file, `${spans.map((s) => JSON.stringify(spanRecord(s))).join('\n')}\n`);
      done({ code: ExportResultCode.SUCCESS });
    } catch (err) {
      done({ code: ExportResultCode.FAILED, error: err as Error });
    }
  }

  async shutdown(): Promise<void> {}
}
