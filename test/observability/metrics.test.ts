/**
 * Metrics on every process: a real scheduler and node agent, each serving its own Prometheus
 * registry on `metrics.port`, and a gateway (in-process) serving its own on `/metrics` — after
 * real activity (a model deployed and inferred on, an actor left pending), each exposition
 * holds the named series with values that activity produced.
 */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Errors, Role, createLogger, loadConfig, processRegistry, request, serveMetrics, subjects } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const s = subjects();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The value of one series (`name{labels}`, labels in exposition order) in a Prometheus text exposition. */
function value(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return undefined;
}

const scrape = async (url: string) => {
  const r = await fetch(url);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
  return r.text();
};

describe('metrics on every process (real scheduler and node processes, in-process gateway)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let schedulerUrl = '';
  let nodeUrl = '';

  beforeAll(async () => {
    const [sp, np] = [await freePort(), await freePort()];
    schedulerUrl = `http://127.0.0.1:${sp}/metrics`;
    nodeUrl = `http://127.0.0.1:${np}/metrics`;
    c = await startCluster({
      args: ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts"]'],
      schedulerArgs: ['--metrics.port', String(sp)],
      nodes: [{ id: 'metrics-a', profile: 'cpu-ondemand', args: ['--metrics.port', String(np)] }],
    });
    await c.control.register('mm', mlpModel({ seed: 3 }));
    await until(async () => (await c.control.deploy('mm', { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 40_000, 'mm deployed');
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(() => fetch(`${base}/v2/models/mm/ready`).then((r) => (r.status === 200 ? true : undefined)), 20_000, 'the gateway sees mm');
    // Real traffic: a few requests of 3 rows each.
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${base}/v2/models/mm/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'X', shape: [3, 32], datatype: 'FP32', data: randomRows(3, 32, i) }] }),
      });
      expect(r.status).toBe(200);
    }
    // An actor that cannot be placed: pinned to a node that does not exist.
    const pending = await c.actors.spawn({ type: 'shoal-inference', id: 'metrics-pinned', args: { model: 'mm', version: 1 }, constraints: { nodeId: 'ghost-node' } });
    expect(pending.actors[0]!.state).toBe('pending');
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('a node agent serves its actors, mailboxes, batches, worker pool, kernels and heartbeat lag', async () => {
    const text = await until(async () => {
      const t = await scrape(nodeUrl);
      // Heartbeats every 200 ms: a few have been observed by now.
      return (value(t, 'shoal_node_heartbeat_lag_seconds_count') ?? 0) >= 2 ? t : undefined;
    }, 20_000, 'heartbeat lag observed');
    expect(value(text, 'shoal_node_actors{type="shoal-inference",state="running"}')).toBe(1);
    expect(value(text, 'shoal_node_mailbox_depth{type="shoal-inference"}')).toBe(0);
    expect(text).toContain('# TYPE shoal_node_actor_restarts_total counter');
    expect(value(text, 'shoal_node_messages_processed_total')).toBeGreaterThanOrEqual(4);
    expect(value(text, 'shoal_node_rejected_tells_total')).toBe(0);
    // Four requests of 3 rows, each in its own batch or sharing one: every batch has 3..12 rows.
    const batches = value(text, 'shoal_node_batch_size_count{model="mm",version="1"}')!;
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(value(text, 'shoal_node_batch_size_sum{model="mm",version="1"}')).toBeGreaterThanOrEqual(12);
    expect(value(text, 'shoal_node_batch_size_bucket{le="2",model="mm",version="1"}')).toBe(0);
    expect(value(text, 'shoal_node_inference_run_seconds_count{model="mm",version="1"}')).toBe(batches);
    expect(value(text, 'shoal_node_batch_queue_rows{model="mm",version="1"}')).toBe(0);
    expect(value(text, 'shoal_node_inference_requests_total{model="mm",version="1"}')).toBeGreaterThanOrEqual(4);
    expect(value(text, 'shoal_node_worker_pool_threads')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'shoal_node_worker_pool_busy')).toBe(0);
    expect(value(text, 'shoal_node_worker_pool_queued')).toBe(0);
    expect(text).toContain('# TYPE shoal_node_kernel_step_seconds histogram');
    // Node's own process metrics, under its role's prefix.
    expect(text).toMatch(/^shoal_node_process_resident_memory_bytes \d+/m);
  });

  it('the scheduler serves leadership, placements, pending actors by reason and autoscaler counters', async () => {
    const text = await until(async () => {
      const t = await scrape(schedulerUrl);
      return value(t, 'shoal_scheduler_pending_actors{reason="node-unavailable"}') === 1 ? t : undefined;
    }, 20_000, 'the pinned actor counted as pending (node-unavailable)');
    expect(value(text, 'shoal_scheduler_is_leader')).toBe(1);
    expect(value(text, 'shoal_scheduler_leader_changes_total{change="acquired"}')).toBe(1);
    expect(value(text, 'shoal_scheduler_placements_total{outcome="placed"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'shoal_scheduler_placements_total{outcome="pending"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'shoal_scheduler_placement_duration_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(value(text, 'shoal_scheduler_nodes{state="alive"}')).toBe(1);
    expect(text).toContain('# TYPE shoal_scheduler_autoscaler_decisions_total counter');
    expect(text).toContain('# TYPE shoal_scheduler_spot_notices_total counter');
    expect(text).toMatch(/^shoal_scheduler_process_cpu_seconds_total \d/m);
  });

  it('the gateway serves its requests, inference latency and batch sizes on its own /metrics', async () => {
    const text = await scrape(`${base}/metrics`);
    expect(value(text, 'shoal_gateway_inference_requests_total{model="mm",version="1",route="stable",code="ok"}')).toBe(4);
    expect(value(text, 'shoal_gateway_inference_duration_seconds_count{model="mm",version="1",route="stable"}')).toBe(4);
    expect(value(text, 'shoal_gateway_batch_size_count{model="mm",version="1"}')).toBe(4);
    expect(value(text, 'shoal_gateway_http_request_duration_seconds_count{method="POST",route="/v2/models/:name/infer",status="200"}')).toBe(4);
  });

  it('answers only GET /metrics (404 naming what is served), and a taken port turns metrics off instead of failing', async () => {
    const r = await fetch(nodeUrl.replace('/metrics', '/other'));
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: expect.stringContaining('/metrics') });
    const port = Number(new URL(nodeUrl).port);
    const warnings: string[] = [];
    const log = createLogger({ level: 'silent' });
    log.warn = ((o: unknown, msg?: string) => void warnings.push(`${JSON.stringify(o)} ${msg}`)) as typeof log.warn;
    expect(await serveMetrics({ registry: processRegistry('test'), host: '127.0.0.1', port, log })).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/metrics are off/);
  });

  it('docs/grafana-dashboard.json charts only series these processes serve, and docs/prometheus.yml scrapes what shoal up writes', async () => {
    const ROOT = join(import.meta.dirname, '..', '..');
    const typed = new Set<string>();
    for (const url of [nodeUrl, schedulerUrl, `${base}/metrics`]) for (const m of (await scrape(url)).matchAll(/^# TYPE (\S+) /gm)) typed.add(m[1]!);
    const dash = JSON.parse(readFileSync(join(ROOT, 'docs', 'grafana-dashboard.json'), 'utf8')) as { title: string; uid: string; panels: { type: string; gridPos: object; targets?: { expr: string }[] }[] };
    expect(dash).toMatchObject({ title: expect.any(String), uid: 'shoal-cluster' });
    const exprs = dash.panels.flatMap((p) => (p.type === 'row' ? [] : (p.targets ?? []).map((t) => t.expr)));
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\bshoal_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))));
    const missing = [...used].filter((n) => !typed.has(n));
    expect(missing).toEqual([]);
    // Every series this issue names is on the dashboard.
    for (const n of ['shoal_node_actors', 'shoal_node_mailbox_depth', 'shoal_node_actor_restarts_total', 'shoal_node_batch_size', 'shoal_node_worker_pool_busy', 'shoal_node_kernel_step_seconds', 'shoal_node_heartbeat_lag_seconds', 'shoal_scheduler_placements_total', 'shoal_scheduler_placement_duration_seconds', 'shoal_scheduler_pending_actors', 'shoal_scheduler_autoscaler_decisions_total', 'shoal_scheduler_spot_notices_total', 'shoal_scheduler_leader_changes_total']) expect(used).toContain(n);
    const prom = parseYaml(readFileSync(join(ROOT, 'docs', 'prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string; file_sd_configs?: { files: string[] }[] }[] };
    expect(prom.scrape_configs[0]).toMatchObject({ job_name: 'shoal', file_sd_configs: [{ files: ['.shoal/prometheus-targets.json'] }] });
  });

  it('refuses a bad metrics or tracing setting at start, naming the field', () => {
    const bad = (argv: string[]) => {
      try {
        loadConfig({ argv, env: {}, cwd: '/' });
      } catch (err) {
        return err as Error;
      }
      throw new Error('accepted');
    };
    const port = bad(['--metrics.port', '70000']);
    expect(Errors.BAD_CONFIG.is(port)).toBe(true);
    expect(port.message).toContain('metrics.port');
    const endpoint = bad(['--tracing.endpoint', 'collector:4318']);
    expect(endpoint.message).toContain('tracing.endpoint');
    expect(bad(['--tracing.sampleRatio', '2']).message).toContain('tracing.sampleRatio');
    // OpenTelemetry's own variable sets the endpoint too.
    expect(loadConfig({ argv: [], env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }, cwd: '/' }).tracing.endpoint).toBe('http://127.0.0.1:4318/v1/traces');
  });

  // Last: the node drains and leaves.
  it('counts a spot preemption notice by pool; a notice for an unknown node is refused and not counted', async () => {
    const nodes = subjects().scheduler('nodes');
    const unknown = await request(c.client, nodes, { type: 'preempt', nodeId: 'no-such-node' }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'SHOAL_ERR_UNKNOWN_NODE' });
    await request(c.client, nodes, { type: 'preempt', nodeId: 'metrics-a', noticeMs: 5000 });
    const text = await scrape(schedulerUrl);
    expect(value(text, 'shoal_scheduler_spot_notices_total{pool="cpu-ondemand"}')).toBe(1);
    expect(text).not.toContain('shoal_scheduler_spot_notices_total{pool="unknown"}');
  });
});
