/**
 * Explanations end to end: a real nats-server, scheduler and node process hosting the replicas
 * (real onnxruntime), the gateway in-process; both explain routes, the methods, and the refusals.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import type { RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { logisticOnnx, mlpOnnx, referenceWithBackground, rowsOf } from '../fixtures/explain.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const KEY = 'test-key-explain-0001';

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Explained {
  model_name: string;
  model_version: string;
  method: string;
  link: string;
  features: string[];
  background_rows: number;
  explanations: { prediction: number; output: number; base_value: number; attributions: Record<string, number>; efficiency_gap: number }[];
}

describe('explanations (real cluster, real onnxruntime, HTTP)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let control: RegistryClient;
  let base = '';
  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const oip = (rows: number[][], d: number) => ({ inputs: [{ name: 'X', shape: [rows.length, d], datatype: 'FP32', data: rows.flat() }] });
  const cols = ['amount', 'age', 'hour'];
  // Background mean [1, 1, 1] (rows 0 and 2): the hand-computed case of the unit test.
  const background = [[0, 0, 0], [2, 2, 2]];

  const deploy = async (name: string) => {
    await until(async () => (await control.deploy(name, { replicas: 1, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 40_000, `${name} deployed`);
    await until(() => fetch(`${base}/v2/models/${name}/ready`, { headers: { 'x-api-key': KEY } }).then((r) => (r.status === 200 ? true : undefined)), 20_000, `gateway sees ${name}`);
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    control = c.control;
    await control.register('logit', logisticOnnx([2, -1, 0.5], 0.1), { reference: referenceWithBackground(cols, background) });
    await control.register('net', mlpOnnx(4, 8, 5).bytes, { reference: referenceWithBackground(['a', 'b', 'c', 'd'], rowsOf(16, 4, 3)) });
    await control.register('bare', logisticOnnx([1, 1, 1], 0));
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: subjects(), logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await deploy('logit');
    await deploy('net');
    await deploy('bare');
  }, 180_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('GET /v2 lists the explain extension', async () => {
    const r = (await (await fetch(`${base}/v2`, { headers: { 'x-api-key': KEY } })).json()) as { extensions: string[] };
    expect(r.extensions).toContain('explain');
  });

  it('a logistic model: exact SHAP of the logit per row, named by the background columns, efficient', async () => {
    const r = await post('/v2/models/logit/explain', oip([[3, 0, 1], [1, 1, 1]], 3));
    expect(r.status).toBe(200);
    expect(r.headers.get('x-shoal-model-version')).toBe('1');
    const b = (await r.json()) as Explained;
    expect(b).toMatchObject({ model_name: 'logit', model_version: '1', method: 'exact', link: 'logit', features: cols, background_rows: 2 });
    const [e0, e1] = b.explanations;
    expect(e0!.attributions.amount).toBeCloseTo(4, 3);
    expect(e0!.attributions.age).toBeCloseTo(1, 3);
    expect(e0!.attributions.hour).toBeCloseTo(0, 3);
    expect(e0!.base_value).toBeCloseTo(1.6, 3);
    expect(e0!.prediction).toBeCloseTo(6.6, 3);
    expect(e0!.output).toBeCloseTo(1 / (1 + Math.exp(-6.6)), 4);
    // The background mean itself: nothing to attribute.
    for (const v of Object.values(e1!.attributions)) expect(Math.abs(v)).toBeLessThan(1e-3);
  });

  it('KernelSHAP (?method=kernel) agrees with exact SHAP on the logistic model; /v1 :explain answers the same', async () => {
    const rows = [[3, 0, 1], [-1, 2, 0.5]];
    const exact = (await (await post('/v2/models/logit/versions/1/explain', oip(rows, 3))).json()) as Explained;
    const kr = await post('/v2/models/logit/explain?method=kernel', oip(rows, 3));
    expect(kr.status).toBe(200);
    const kern = (await kr.json()) as Explained;
    expect(kern.method).toBe('kernel');
    for (let i = 0; i < 2; i++) for (const f of cols) expect(Math.abs(kern.explanations[i]!.attributions[f]! - exact.explanations[i]!.attributions[f]!)).toBeLessThan(1e-3);
    const v1 = await post('/v1/models/logit:explain', { instances: rows });
    expect(v1.status).toBe(200);
    const b1 = (await v1.json()) as Explained;
    expect(b1.method).toBe('exact');
    expect(b1.explanations[1]!.attributions.age).toBeCloseTo(exact.explanations[1]!.attributions.age!, 5);
  });

  it('an MLP: KernelSHAP by default (efficient to 1e-6), integrated gradients on request through the backward pass, exact refused', async () => {
    const rows = [[0.5, -1, 1.5, 0.2]];
    const k = (await (await post('/v1/models/net:explain', { instances: rows })).json()) as Explained;
    expect(k).toMatchObject({ method: 'kernel', link: 'logit', features: ['a', 'b', 'c', 'd'] });
    const e = k.explanations[0]!;
    const s = Object.values(e.attributions).reduce((p, q) => p + q, 0);
    expect(Math.abs(e.prediction - e.base_value - s)).toBeLessThan(1e-6);
    expect(Math.max(...Object.values(e.attributions).map(Math.abs))).toBeGreaterThan(1e-4);
    // The served output came from the same run: the logit's inverse.
    expect(e.output).toBeCloseTo(1 / (1 + Math.exp(-e.prediction)), 5);
    // One batched run: the 16 background rows, then the row and all 2^4 − 2 = 14 coalitions × 16 background rows.
    expect((k as unknown as { run_rows: number }).run_rows).toBe(16 + 1 + 14 * 16);
    const igr = await post('/v1/models/net:explain?method=ig&steps=64', { instances: rows });
    const ig = (await igr.json()) as Explained;
    expect(ig, JSON.stringify(ig)).toHaveProperty('method');
    expect(ig.method).toBe('ig');
    // A Shoal-trained MLP: gradients by the kernels' backward pass, one row per path point.
    expect(ig).toMatchObject({ gradients: 'backward', run_rows: 1 + 1 + 64 });
    const g = ig.explanations[0]!;
    // The midpoint rule's error at the ReLU kinks the path crosses: a few % of |prediction − base| at 64 steps, < 1e-3 at 1024.
    expect(Math.abs(g.efficiency_gap)).toBeLessThanOrEqual(0.03 * Math.abs(g.prediction - g.base_value) + 2e-3);
    // Without `steps`, the backward path takes 1024 (one row each): efficient within 1e-3.
    const fine = (await (await post('/v1/models/net:explain?method=ig', { instances: rows })).json()) as Explained;
    expect(fine).toMatchObject({ gradients: 'backward', steps: 1024, run_rows: 1 + 1 + 1024 });
    expect(Math.abs(fine.explanations[0]!.efficiency_gap)).toBeLessThan(1e-3);
    const ex = await post('/v2/models/net/explain?method=exact', oip(rows, 4));
    expect(ex.status).toBe(400);
    expect(await ex.json()).toMatchObject({ code: 'SHOAL_ERR_EXPLAIN_UNSUPPORTED', error: expect.stringContaining('Relu') });
  });

  it('a model without a background: 400 saying how to provide one; bad bodies and options are named; the replica keeps serving', async () => {
    const r = await post('/v2/models/bare/explain', oip([[1, 2, 3]], 3));
    expect(r.status).toBe(400);
    const b = (await r.json()) as { code: string; error: string };
    expect(b.code).toBe('SHOAL_ERR_NO_BACKGROUND');
    expect(b.error).toContain('--reference');
    expect(b.error).toContain('"background"');
    const bad = await post('/v2/models/logit/explain', { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', error: expect.stringContaining('X') });
    const opt = await post('/v2/models/logit/explain?method=magic', oip([[1, 2, 3]], 3));
    expect(opt.status).toBe(400);
    expect(await opt.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_REQUEST', error: expect.stringContaining('method') });
    const range = await post('/v1/models/logit:explain?samples=1', { instances: [[1, 2, 3]] });
    expect(range.status).toBe(400);
    expect(await range.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_REQUEST', error: expect.stringContaining('samples') });
    expect((await post('/v1/models/logit:explain?bogus=1', { instances: [[1, 2, 3]] })).status).toBe(400);
    // The backward pass takes 1 + rows + rows·steps rows: 500 rows at 1024 steps are over the 500,000-row limit of one run.
    const big = await post('/v1/models/net:explain?method=ig&steps=1024', { instances: rowsOf(500, 4, 9) });
    expect(big.status).toBe(400);
    expect(await big.json()).toMatchObject({ code: 'SHOAL_ERR_EXPLAIN_UNSUPPORTED', error: expect.stringContaining('500000') });
    const ok = await post('/v2/models/bare/infer', oip([[1, 2, 3]], 3));
    expect(ok.status).toBe(200);
    expect((await post('/v2/models/logit/explain', oip([[1, 2, 3]], 3))).status).toBe(200);
  });
});
