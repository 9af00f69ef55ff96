/**
 * Distributed tracing across real processes: the gateway runs in this process with an
 * in-memory exporter; the node agents are real processes whose spans go to JSON-lines files
 * (`tracing.file`). One inference request makes one trace — the caller's `traceparent` → the
 * gateway's HTTP span → the NATS publish → the replica's receive → its batch → the onnxruntime
 * run — and a training job makes one trace of its steps, each step the parent of every worker's
 * gradient, across node processes.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { startGrpcGateway } from '../../gateway/grpc/server.ts';
import { loadInferencePackage } from '../../gateway/grpc/proto.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, inSpan, spanRecord, startTracing, subjects, tracing, type SpanRecord } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { JobClient, generateFraud } from '../../ml/index.ts';
import { TRAINER_WORKER_ACTOR } from '../../ml/training/actors.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const s = subjects();
/** A fresh random W3C id of `n` hex digits (trace ids 32, span ids 16): no two tests share a trace. */
const hex = (n: number) => randomBytes(n / 2).toString('hex');

describe('distributed tracing (gateway in-process, real node processes)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let dir = '';
  const memory = new InMemorySpanExporter();
  let stopTracing: (() => Promise<void>) | undefined;
  const files = () => ['trace-a', 'trace-b', 'scheduler'].map((n) => join(dir, `${n}.jsonl`));

  /** Every span the node and scheduler processes wrote so far. */
  const nodeSpans = (): SpanRecord[] =>
    files()
      .filter((f) => existsSync(f))
      .flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SpanRecord));
  const gatewaySpans = (): SpanRecord[] => memory.getFinishedSpans().map(spanRecord);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-traces-'));
    // Before the gateway is built: its request hooks are installed only when tracing is on.
    stopTracing = (await startTracing({ service: 'shoal-gateway', exporters: [memory] })).shutdown;
    c = await startCluster({
      args: ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts", "shoal:ml/training/actors.ts"]'],
      schedulerArgs: ['--tracing.file', files()[2]!],
      nodes: [
        { id: 'trace-a', profile: 'cpu-ondemand', args: ['--tracing.file', files()[0]!] },
        { id: 'trace-b', profile: 'cpu-ondemand', args: ['--tracing.file', files()[1]!] },
      ],
    });
    await c.control.register('tm', mlpModel({ seed: 5 }));
    await until(async () => (await c.control.deploy('tm', { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 40_000, 'tm deployed');
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(() => fetch(`${base}/v2/models/tm/ready`).then((r) => (r.status === 200 ? true : undefined)), 20_000, 'the gateway sees tm');
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
    await stopTracing?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('one inference request is one trace: HTTP span → NATS publish → replica receive → batch → onnxruntime run', async () => {
    // The caller traces too: its traceparent is the root the gateway continues.
    const traceId = hex(32);
    const callerSpan = hex(16);
    const r = await fetch(`${base}/v2/models/tm/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpan}-01` },
      body: JSON.stringify({ inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP32', data: randomRows(2, 32, 4) }] }),
    });
    expect(r.status).toBe(200);

    const all = await until(() => {
      const spans = [...gatewaySpans(), ...nodeSpans()].filter((x) => x.traceId === traceId);
      return spans.some((x) => x.name === 'onnxruntime.run') && spans.some((x) => x.kind === 'SERVER') ? spans : undefined;
    }, 20_000, 'the request\'s spans from the gateway and the node');
    const byId = new Map(all.map((x) => [x.spanId, x]));
    const one = (name: string | RegExp) => {
      const found = all.filter((x) => (typeof name === 'string' ? x.name === name : name.test(x.name)));
      expect(found, `spans named ${String(name)}`).toHaveLength(1);
      return found[0]!;
    };

    const http = one('POST /v2/models/:name/infer');
    expect(http).toMatchObject({ kind: 'SERVER', service: 'shoal-gateway', parentSpanId: callerSpan });
    expect(http.attributes).toMatchObject({ 'http.response.status_code': 200, 'http.route': '/v2/models/:name/infer' });

    const publish = one('shoal.svc.model-tm-v1 publish');
    expect(publish).toMatchObject({ kind: 'PRODUCER', service: 'shoal-gateway', parentSpanId: http.spanId });
    expect(publish.attributes).toMatchObject({ 'messaging.system': 'nats', 'messaging.batch.message_count': 1 });

    const receive = one(/receive infer-json$/);
    expect(receive).toMatchObject({ kind: 'CONSUMER', service: 'shoal-node', parentSpanId: publish.spanId });
    expect(receive.attributes['shoal.actor.type']).toBe('shoal-inference');

    const batch = one('inference.batch');
    expect(batch).toMatchObject({ service: 'shoal-node', parentSpanId: receive.spanId });
    expect(batch.attributes).toMatchObject({ 'shoal.model': 'tm', 'shoal.model.version': 1, 'shoal.batch.rows': 2, 'shoal.batch.requests': 1 });

    const run = one('onnxruntime.run');
    expect(run).toMatchObject({ service: 'shoal-node', parentSpanId: batch.spanId });

    // Nested in time as in the tree (each child within its parent), all ok.
    for (const child of [publish, receive, batch, run]) {
      const parent = byId.get(child.parentSpanId!)!;
      expect(child.startUs).toBeGreaterThanOrEqual(parent.startUs - 1000); // clocks of two processes on one machine
      expect(child.status.code).not.toBe(2);
    }
    expect(run.endUs).toBeLessThanOrEqual(batch.endUs + 1);
  });

  it('concurrent requests each keep their trace: a shared message or batch is the child of one and links the others', async () => {
    const ids = Array.from({ length: 8 }, () => hex(32));
    const rs = await Promise.all(
      ids.map((traceId, i) =>
        fetch(`${base}/v2/models/tm/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${hex(16)}-01` },
          body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1, 32, 20 + i) }] }),
        }),
      ),
    );
    for (const r of rs) expect(r.status).toBe(200);
    const want = new Set(ids);
    const https = await until(() => {
      const h = gatewaySpans().filter((x) => x.kind === 'SERVER' && want.has(x.traceId));
      return h.length === ids.length ? h : undefined;
    }, 20_000, 'the eight server spans');
    // Every request reaches a publish span: its own child, or a link from another request's.
    const publishes = await until(() => {
      const p = gatewaySpans().filter((x) => x.kind === 'PRODUCER' && want.has(x.traceId));
      const reached = (h: SpanRecord) => p.some((x) => x.parentSpanId === h.spanId || x.links.some((l) => l.spanId === h.spanId && l.traceId === h.traceId));
      return https.every(reached) ? p : undefined;
    }, 20_000, 'every request reaching a publish span');
    const links = publishes.reduce((n, x) => n + x.links.length, 0);
    expect(publishes.length + links).toBe(ids.length);
    for (const x of publishes) expect(x.attributes['messaging.batch.message_count']).toBe(1 + x.links.length);
    // Every message was received and run; batch spans account for every message they served.
    const runs = await until(() => {
      const spans = nodeSpans().filter((x) => want.has(x.traceId));
      const receives = spans.filter((x) => /receive infer-json$/.test(x.name));
      return publishes.every((p) => receives.some((r) => r.parentSpanId === p.spanId)) ? spans : undefined;
    }, 20_000, 'every message received');
    const receives = runs.filter((x) => /receive infer-json$/.test(x.name));
    const batches = await until(() => {
      const b = nodeSpans().filter((x) => x.name === 'inference.batch' && want.has(x.traceId));
      const covered = (r: SpanRecord) => b.some((x) => x.parentSpanId === r.spanId || x.links.some((l) => l.spanId === r.spanId));
      return receives.every(covered) ? b : undefined;
    }, 20_000, 'every message in a batch');
    expect(batches.reduce((n, b) => n + Number(b.attributes['shoal.batch.requests']), 0)).toBe(ids.length);
  });

  it('a gRPC ModelInfer is one trace the same way, under its server span (traceparent in the call metadata)', async () => {
    const grpc = await startGrpcGateway(gw.shoal, { host: '127.0.0.1', port: 0 });
    const client = new (loadInferencePackage().inference.GRPCInferenceService)(grpc.address, credentials.createInsecure());
    try {
      const traceId = hex(32);
      const meta = new Metadata();
      const callerSpan = hex(16);
      meta.set('traceparent', `00-${traceId}-${callerSpan}-01`);
      const rows = randomRows(2, 32, 5);
      await new Promise((resolve, reject) =>
        (client as unknown as { ModelInfer: (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: unknown) => void) => void }).ModelInfer(
          { model_name: 'tm', inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 32], contents: { fp32_contents: rows.flat() } }] },
          meta,
          (e, r) => (e ? reject(e) : resolve(r)),
        ),
      );
      const all = await until(() => {
        const spans = [...gatewaySpans(), ...nodeSpans()].filter((x) => x.traceId === traceId);
        return spans.some((x) => x.name === 'onnxruntime.run') && spans.some((x) => x.kind === 'SERVER') ? spans : undefined;
      }, 20_000, 'the call\'s spans');
      const server = all.find((x) => x.name === 'inference.GRPCInferenceService/ModelInfer')!;
      expect(server).toMatchObject({ kind: 'SERVER', service: 'shoal-gateway', parentSpanId: callerSpan });
      const publish = all.find((x) => x.kind === 'PRODUCER')!;
      expect(publish.parentSpanId).toBe(server.spanId);
      const receive = all.find((x) => x.kind === 'CONSUMER')!;
      expect(receive.parentSpanId).toBe(publish.spanId);
      const batch = all.find((x) => x.name === 'inference.batch')!;
      expect(batch.parentSpanId).toBe(receive.spanId);
      expect(all.find((x) => x.name === 'onnxruntime.run')!.parentSpanId).toBe(batch.spanId);
    } finally {
      client.close();
      await grpc.stop();
    }
  });

  it('a refused request ends its spans with the error (the gateway\'s span carries the code)', async () => {
    const traceId = hex(32);
    const r = await fetch(`${base}/v2/models/tm/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${hex(16)}-01` },
      body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 7], datatype: 'FP32', data: [[1, 2, 3, 4, 5, 6, 7]] }] }),
    });
    expect(r.status).toBe(400);
    const http = await until(() => gatewaySpans().find((x) => x.traceId === traceId && x.kind === 'SERVER'), 10_000, 'the refused request\'s span');
    expect(http.attributes).toMatchObject({ 'http.response.status_code': 400, 'shoal.error.code': 'SHOAL_ERR_BAD_INPUT' });
    // The replica refused it before any batch: no run in this trace.
    await until(() => nodeSpans().find((x) => x.traceId === traceId && /receive infer-json$/.test(x.name)), 10_000, 'the replica\'s receive span');
    expect(nodeSpans().filter((x) => x.traceId === traceId && x.name === 'onnxruntime.run')).toHaveLength(0);
  });

  it('a request without a traceparent starts its own trace at the gateway, sampled', async () => {
    const before = new Set(gatewaySpans().map((x) => x.traceId));
    const r = await fetch(`${base}/v2/models/tm/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1, 32, 8) }] }),
    });
    expect(r.status).toBe(200);
    const http = await until(() => gatewaySpans().find((x) => x.kind === 'SERVER' && !before.has(x.traceId)), 10_000, 'a new trace');
    expect(http.parentSpanId).toBeUndefined();
    await until(() => nodeSpans().find((x) => x.traceId === http.traceId && x.name === 'onnxruntime.run'), 20_000, 'the run in the new trace');
  });

  it('a training job is one trace: the job span, its workers\' placement through the scheduler, a span per step, and every worker\'s gradient under its step', async () => {
    await c.control.registerDataset('trace-fraud', generateFraud({ rows: 3000, seed: 4 }), { splitSeed: 1 });
    const jobs = await JobClient.open(c.client);
    const steps = 4;
    await jobs.submit(
      { model: { name: 'trace-fraud', type: 'logreg' }, dataset: 'trace-fraud', hyper: { optimizer: 'adam', lr: 0.05, steps, batchSize: 256, seed: 3 }, workers: 2, checkpointEvery: 2 },
      { id: 'job-traced' },
    );
    const done = await jobs.follow('job-traced', () => undefined, 120_000);
    expect(done.reason).toBeUndefined();
    expect(done.state).toBe('succeeded');

    const job = await until(() => nodeSpans().find((x) => x.name === 'training.job' && x.attributes['shoal.job.id'] === 'job-traced'), 20_000, 'the job span');
    expect(job.parentSpanId).toBeUndefined();
    const inTrace = nodeSpans().filter((x) => x.traceId === job.traceId);
    // The workers' placement joins the trace: the coordinator's spawn request, handled by the
    // scheduler, which has each worker's node start it.
    const placement = inTrace.find((x) => x.name === 'shoal.sched.actors spawn')!;
    expect(placement).toMatchObject({ kind: 'SERVER', service: 'shoal-scheduler', parentSpanId: job.spanId });
    const spawns = inTrace.filter((x) => /^shoal\.node\.trace-[ab]\.ctl spawn$/.test(x.name));
    expect(spawns.length).toBeGreaterThanOrEqual(2);
    for (const sp of spawns) expect(sp).toMatchObject({ service: 'shoal-node', parentSpanId: placement.spanId });
    const stepSpans = inTrace.filter((x) => x.name === 'training.step').sort((a, b) => a.startUs - b.startUs);
    expect(stepSpans.map((x) => x.attributes['shoal.job.step'])).toEqual([1, 2, 3, 4]);
    for (const step of stepSpans) {
      expect(step.parentSpanId).toBe(job.spanId);
      const grads = inTrace.filter((x) => x.parentSpanId === step.spanId && x.name === `${TRAINER_WORKER_ACTOR} receive grad`);
      // One gradient per worker (a retried ask may add one more, never fewer).
      expect(new Set(grads.map((g) => g.attributes['shoal.actor.id'])).size).toBe(2);
      for (const g of grads) expect(g).toMatchObject({ kind: 'CONSUMER', service: 'shoal-node' });
    }
  });

  it('carries a traceparent on an actor message only inside a span while on; none, and no span, once off', async () => {
    // A node's user may read actor subjects: see exactly what goes on the wire.
    const nc = await c.nats.connect(Role.NODE, { nodeId: 'trace-a' });
    const sub = nc.subscribe(s.actor('trace-probe'), { max: 3 });
    await nc.flush();
    const got = (async () => {
      const out: (string | undefined)[] = [];
      for await (const m of sub) out.push(m.headers?.get('traceparent') || undefined);
      return out;
    })();
    const ref = c.actors.ref('trace-probe');
    ref.tell({ type: 'outside-any-span' });
    await inSpan('probe', {}, async () => ref.tell({ type: 'inside-a-span' }));
    expect(tracing.on).toBe(true);
    await stopTracing!();
    stopTracing = undefined;
    expect(tracing.on).toBe(false);
    const before = memory.getFinishedSpans().length;
    await inSpan('probe-off', {}, async () => ref.tell({ type: 'tracing-off' }));
    const headers = await got;
    expect(headers[0]).toBeUndefined();
    expect(headers[1]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(headers[2]).toBeUndefined();
    expect(memory.getFinishedSpans().length).toBe(before);
    await nc.close();
  });
});
