/**
 * Explanations over gRPC (`shoal.v1.ExplainService/ModelExplain`, gateway/grpc/shoal_explain.proto)
 * end to end: a real nats-server, scheduler and node process (real onnxruntime), the gateway
 * in-process with its gRPC service, a real grpc-js client. Attributions are compared with the HTTP
 * explain route's for the same rows; refusals (no background, bad options, another tenant's model,
 * no key, rate limit) carry the same codes as ModelInfer's.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Metadata, credentials, status as Status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, hashApiKey, subjects } from '../../cluster/index.ts';
import type { RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startGrpcGateway, type GrpcGateway } from '../../gateway/grpc/server.ts';
import { loadExplainPackage } from '../../gateway/grpc/proto.ts';
import type { ModelExplainResponse } from '../../gateway/grpc/explain.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { logisticOnnx, mlpOnnx, referenceWithBackground, rowsOf } from '../fixtures/explain.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const ACME = 'test-key-explain-acme-01';
const GLOBEX = 'test-key-explain-globex1';
const TINY = 'test-key-explain-tiny-01';
const ADMIN = 'test-key-explain-admin01';

type Md = Record<string, string>;

describe('explanations over gRPC (real cluster, real grpc-js client)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let grpcGw: GrpcGateway;
  let client: Client;
  let control: RegistryClient;
  let base = '';
  const cols = ['amount', 'age', 'hour'];
  const background = [[0, 0, 0], [2, 2, 2]];

  const explain = (req: unknown, md: Md = { 'x-api-key': ACME }): Promise<ModelExplainResponse> =>
    new Promise((resolve, reject) => {
      const meta = new Metadata();
      for (const [k, v] of Object.entries(md)) meta.set(k, v);
      const fn = (client as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: ModelExplainResponse) => void) => void>).ModelExplain!;
      fn.call(client, req, meta, (err, res) => (err ? reject(err) : resolve(res)));
    });
  const refused = (p: Promise<unknown>) => p.then(() => expect.unreachable('the call succeeded')).catch((e: ServiceError) => e);
  const codeOf = (e: ServiceError) => e.metadata.get('shoal-error-code')[0];
  const fp32 = (model: string, rows: number[][], extra: Record<string, unknown> = {}) => ({
    model_name: model,
    inputs: [{ name: 'X', datatype: 'FP32', shape: [rows.length, rows[0]!.length], contents: { fp32_contents: rows.flat() } }],
    ...extra,
  });
  const http = async (path: string, rows: number[][], key = ACME) => {
    const r = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify({ inputs: [{ name: 'X', shape: [rows.length, rows[0]!.length], datatype: 'FP32', data: rows.flat() }] }),
    });
    return { status: r.status, body: (await r.json()) as ModelExplainResponse & { code?: string; error?: string } };
  };

  const deploy = async (name: string) => {
    await until(async () => (await control.deploy(name, { replicas: 1, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 40_000, `${name} deployed`);
    await until(() => fetch(`${base}/v2/models/${name}/ready`, { headers: { 'x-api-key': ACME } }).then((r) => (r.status === 200 ? true : undefined)), 20_000, `gateway sees ${name}`);
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-x', profile: 'cpu-ondemand' }] });
    control = c.control;
    await control.register('logit', logisticOnnx([2, -1, 0.5], 0.1), { reference: referenceWithBackground(cols, background) });
    await control.register('net', mlpOnnx(4, 8, 5).bytes, { reference: referenceWithBackground(['a', 'b', 'c', 'd'], rowsOf(16, 4, 3)) });
    await control.register('bare', logisticOnnx([1, 1, 1], 0));
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: ACME, tenant: 'acme' },
        { key: GLOBEX, tenant: 'globex' },
        { key: TINY, tenant: 'tiny', rateLimitPerMinute: 1 },
        { keyHash: hashApiKey(ADMIN), tenant: 'ops', role: 'admin' },
      ],
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    grpcGw = await startGrpcGateway(gw.shoal, { host: '127.0.0.1', port: 0 });
    client = new (loadExplainPackage().shoal.v1.ExplainService)(grpcGw.address, credentials.createInsecure());
    // `net` is acme's: globex gets the NOT_FOUND of an unknown model.
    const own = await fetch(`${base}/v1/tenants/owners/model/net`, { method: 'PUT', headers: { 'content-type': 'application/json', 'x-api-key': ADMIN }, body: JSON.stringify({ tenant: 'acme' }) });
    expect(own.status).toBe(200);
    await deploy('logit');
    await deploy('net');
    await deploy('bare');
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await grpcGw?.stop();
    await gw?.close();
    await c?.stop();
  });

  it('exact SHAP of a logistic model: the same attributions, base value and prediction as the HTTP route', async () => {
    const rows = [[3, 0, 1], [1, 1, 1], [-1, 2, 0.5]];
    const g = await explain(fp32('logit', rows, { id: 'ex-1' }));
    const h = await http('/v2/models/logit/explain', rows);
    expect(h.status).toBe(200);
    expect(g).toMatchObject({ model_name: 'logit', model_version: '1', id: 'ex-1', method: 'exact', link: 'logit', features: cols, background_rows: 2 });
    expect(g.explanations).toHaveLength(3);
    expect(g.explanations[0]!.attributions.amount).toBeCloseTo(4, 3);
    expect(g.explanations[0]!.base_value).toBeCloseTo(1.6, 3);
    expect(g.explanations[0]!.prediction).toBeCloseTo(6.6, 3);
    for (let i = 0; i < rows.length; i++) {
      const [ge, he] = [g.explanations[i]!, h.body.explanations[i]!];
      expect(Object.keys(ge.attributions).sort()).toEqual([...cols].sort());
      for (const f of cols) expect(ge.attributions[f]).toBeCloseTo(he.attributions[f]!, 9);
      expect(ge.base_value).toBeCloseTo(he.base_value, 9);
      expect(ge.prediction).toBeCloseTo(he.prediction, 9);
      expect(ge.efficiency_gap).toBeCloseTo(he.efficiency_gap, 9);
    }
  });

  it('options travel: KernelSHAP and integrated gradients on an MLP equal HTTP with the same query; raw_input_contents works; a pinned version', async () => {
    const rows = [[0.5, -1, 1.5, 0.2], [1, 0, -0.5, 2]];
    const k = await explain(fp32('net', rows, { method: 'kernel', samples: 64 }));
    const hk = await http('/v2/models/net/explain?method=kernel&samples=64', rows);
    expect(k).toMatchObject({ method: 'kernel', samples: 64, features: ['a', 'b', 'c', 'd'] });
    expect(Number(k.run_rows)).toBe(hk.body.run_rows);
    for (let i = 0; i < 2; i++) for (const f of ['a', 'b', 'c', 'd']) expect(k.explanations[i]!.attributions[f]).toBeCloseTo(hk.body.explanations[i]!.attributions[f]!, 9);
    const raw = Buffer.from(Float32Array.from(rows.flat()).buffer);
    const ig = await explain({ model_name: 'net', model_version: '1', inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 4] }], raw_input_contents: [raw], method: 'ig', steps: 16, link: 'identity' });
    const hig = await http('/v2/models/net/versions/1/explain?method=ig&steps=16&link=identity', rows);
    expect(ig).toMatchObject({ method: 'ig', steps: 16, link: 'identity' });
    for (let i = 0; i < 2; i++) for (const f of ['a', 'b', 'c', 'd']) expect(ig.explanations[i]!.attributions[f]).toBeCloseTo(hig.body.explanations[i]!.attributions[f]!, 9);
  });

  it('refusals: no background, bad options and inputs, the same codes and words as HTTP', async () => {
    const nb = await refused(explain(fp32('bare', [[1, 2, 3]])));
    const hnb = await http('/v2/models/bare/explain', [[1, 2, 3]]);
    expect(hnb.body.code).toBe('SHOAL_ERR_NO_BACKGROUND');
    expect([nb.code, codeOf(nb), nb.details]).toEqual([Status.INVALID_ARGUMENT, 'SHOAL_ERR_NO_BACKGROUND', `SHOAL_ERR_NO_BACKGROUND: ${hnb.body.error}`]);
    const m = await refused(explain(fp32('logit', [[1, 2, 3]], { method: 'magic' })));
    expect([m.code, codeOf(m)]).toEqual([Status.INVALID_ARGUMENT, 'SHOAL_ERR_BAD_REQUEST']);
    expect(m.details).toContain('method');
    const s = await refused(explain(fp32('logit', [[1, 2, 3]], { samples: 1 })));
    expect([s.code, codeOf(s)]).toEqual([Status.INVALID_ARGUMENT, 'SHOAL_ERR_BAD_REQUEST']);
    expect(s.details).toContain('samples');
    const bad = await refused(explain(fp32('logit', [[1, 2, 3, 4]])));
    expect([bad.code, codeOf(bad)]).toEqual([Status.INVALID_ARGUMENT, 'SHOAL_ERR_BAD_INPUT']);
    const ex = await refused(explain(fp32('net', [[1, 2, 3, 4]], { method: 'exact' })));
    expect([ex.code, codeOf(ex)]).toEqual([Status.INVALID_ARGUMENT, 'SHOAL_ERR_EXPLAIN_UNSUPPORTED']);
    const nope = await refused(explain(fp32('nope', [[1, 2, 3]])));
    expect([nope.code, codeOf(nope)]).toEqual([Status.NOT_FOUND, 'SHOAL_ERR_MODEL_NOT_FOUND']);
    // The replica keeps serving.
    expect((await explain(fp32('logit', [[1, 2, 3]]))).explanations).toHaveLength(1);
  });

  it("tenants: another tenant's model is NOT_FOUND as for an unknown one; no key is UNAUTHENTICATED; the rate limit holds", async () => {
    const hidden = await refused(explain(fp32('net', [[1, 2, 3, 4]]), { 'x-api-key': GLOBEX }));
    expect([hidden.code, codeOf(hidden)]).toEqual([Status.NOT_FOUND, 'SHOAL_ERR_MODEL_NOT_FOUND']);
    expect((await explain(fp32('net', [[1, 2, 3, 4]]), { authorization: `Bearer ${ADMIN}` })).explanations).toHaveLength(1);
    expect((await explain(fp32('logit', [[1, 2, 3]]), { 'x-api-key': GLOBEX })).explanations).toHaveLength(1);
    const anon = await refused(explain(fp32('logit', [[1, 2, 3]]), {}));
    expect(anon.code).toBe(Status.UNAUTHENTICATED);
    await explain(fp32('logit', [[1, 2, 3]]), { 'x-api-key': TINY });
    const over = await refused(explain(fp32('logit', [[1, 2, 3]]), { 'x-api-key': TINY }));
    expect([over.code, codeOf(over)]).toEqual([Status.RESOURCE_EXHAUSTED, 'SHOAL_ERR_RATE_LIMITED']);
  });
});
