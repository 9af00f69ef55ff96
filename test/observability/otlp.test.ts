/**
 * `tracing.endpoint`: spans leave the process over OTLP/HTTP. A collector of the test's own (an
 * HTTP server) receives what the exporter posts — the process's service name and the spans,
 * parent links included — when tracing shuts down (a process's shutdown flushes its spans).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, inSpan, startTracing, tracing } from '../../cluster/index.ts';

interface Posted {
  path: string;
  contentType: string;
  body: string;
}

describe('OTLP/HTTP export', () => {
  let server: Server;
  let url = '';
  const posted: Posted[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posted.push({ path: req.url ?? '', contentType: String(req.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('posts the process\'s spans to the endpoint, with its service name and the parent links', async () => {
    const t = await startTracing({ service: 'shoal-test-process', attributes: { 'shoal.id': 'otlp-1' }, endpoint: url, sampleRatio: 1 });
    expect(tracing.on).toBe(true);
    await inSpan('outer-work', { kind: SpanKind.SERVER }, async () => {
      await inSpan('inner-work', {}, async () => undefined);
    });
    await t.shutdown();
    expect(tracing.on).toBe(false);
    expect(posted.length).toBeGreaterThanOrEqual(1);
    expect(posted[0]!.path).toBe('/v1/traces');
    const body = posted.map((p) => p.body).join('\n');
    expect(body).toContain('shoal-test-process');
    expect(body).toContain('otlp-1');
    const doc = JSON.parse(posted[0]!.body) as { resourceSpans: { scopeSpans: { spans: { name: string; spanId: string; parentSpanId?: string; traceId: string }[] }[] }[] };
    const spans = doc.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    const outer = spans.find((x) => x.name === 'outer-work')!;
    const inner = spans.find((x) => x.name === 'inner-work')!;
    expect(inner.parentSpanId).toBe(outer.spanId);
    expect(inner.traceId).toBe(outer.traceId);
  });

  it('samples new traces by tracing.sampleRatio: 0 records none and sends nothing', async () => {
    const before = posted.length;
    const t = await startTracing({ service: 'shoal-test-process', endpoint: url, sampleRatio: 0 });
    for (let i = 0; i < 20; i++) await inSpan('dropped', {}, async () => undefined);
    await t.shutdown();
    expect(posted.length).toBe(before);
  });
});
