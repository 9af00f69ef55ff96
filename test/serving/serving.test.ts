/**
 * Inference serving end to end: a real nats-server, a real scheduler and node processes hosting
 * inference replicas (real onnxruntime), and the gateway (in-process, connected as the gateway
 * role) answering the Open Inference Protocol over HTTP.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, createLogger, subjects, type NatsConnection } from '../../cluster/index.ts';
import { DEFAULT_POLICY, JobClient, ModelRegistry, RegistryClient, registryKeys, toBytes, type InferReply, type ReplicaStats } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestNats } from '../harness/nats.ts';
import type { TestProcess } from '../harness/processes.ts';
import { INT_TYPES, brokenModel, dtypesModel, flakyModel, fp16Model, intTypesModel, mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const KEY = 'test-key-acme-0001';
const TINY = 'test-key-tiny-0001';

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('inference serving (real cluster, real onnxruntime, OIP over HTTP)', () => {
  let c: TestCluster;
  let nats: TestNats;
  let nc: NatsConnection;
  let gw: FastifyInstance;
  let base = '';
  /** Reads of the registry (the client may read its bucket). */
  let registry: ModelRegistry;
  /** Every change goes through the registry service in the scheduler process. */
  let control: RegistryClient;
  const nodes: Record<string, TestProcess> = {};
  const mlpV1 = mlpModel({ seed: 1 });
  const mlpV2 = mlpModel({ seed: 2 });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const infer = (rows: number[][], path = '/v2/models/mlp/infer', extra: Record<string, unknown> = {}) =>
    post(path, { inputs: [{ name: 'X', shape: [rows.length, 32], datatype: 'FP32', data: rows }], ...extra });
  const ready = (path: string, what: string) => until(() => get(path).then((r) => (r.status === 200 ? true : undefined)), 15_000, what);
  /**
   * A model of the test's own, so that no test depends on what another did to a shared one:
   * v1 (the MLP) deployed as stable, `more` registered as v2, v3 … Rollbacks are for errors
   * only: on a loaded CI box a healthy canary's p99 is noise (the latency rule is tested on its
   * own in batcher.test.ts).
   */
  const ownModel = async (name: string, more: Uint8Array[], replicas = 1) => {
    await control.register(name, mlpV1, { aliases: ['production'] });
    for (const m of more) await control.register(name, m);
    await until(async () => (await control.deploy(name, { replicas, maxBatchSize: 32, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 30_000, `${name} deployed`);
    await ready(`/v2/models/${name}/ready`, `the gateway sees ${name}`);
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }, { id: 'node-b', profile: 'cpu-ondemand' }] });
    nats = c.nats;
    nodes.a = c.nodes['node-a']!;
    nodes.b = c.nodes['node-b']!;
    nc = c.client;
    registry = await ModelRegistry.open(nc);
    control = c.control;
    await control.register('mlp', mlpV1, { aliases: ['production'], metrics: { auc: 0.91 } });
    await control.register('mlp', mlpV2, { metrics: { auc: 0.93 } });
    await control.register('dtypes', dtypesModel());
    await control.register('half', fp16Model());
    await control.register('ints', intTypesModel());
    const gnc = await nats.connect(Role.GATEWAY);
    gw = await buildGateway({
      nc: gnc,
      subjects: s,
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: KEY, tenant: 'acme' },
        { key: TINY, tenant: 'tiny', rateLimitPerMinute: 2 },
      ],
      bodyLimit: 256 * 1024,
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    // Replicas spawn as soon as both nodes are in the scheduler's view.
    // Rollbacks here are for errors only: on a loaded CI box a healthy canary's p99 is noise (the
    // latency rule is tested on its own in batcher.test.ts).
    const policy = { minP99DeltaMs: 60_000 };
    await until(async () => (await control.deploy('mlp', { replicas: 2, maxBatchSize: 32, maxQueueDelayMs: 2, readyTimeoutMs: 20_000, policy })).stable.state === 'ready' || undefined, 30_000, 'mlp deployed');
    await control.deploy('dtypes', { replicas: 1 });
    await control.deploy('half', { replicas: 1 });
    await control.deploy('ints', { replicas: 1 });
    await until(() => ((gw as unknown as { inference?: unknown }) && true ? get('/v2/models/mlp/ready').then((r) => (r.status === 200 ? true : undefined)) : undefined), 10_000, 'gateway sees mlp ready');
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('serves OIP server and model metadata, health and readiness', async () => {
    expect(await (await get('/v2')).json()).toMatchObject({ name: 'shoal' });
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    const meta = (await (await get('/v2/models/mlp')).json()) as { versions: string[]; inputs: unknown[]; outputs: unknown[] };
    expect(meta).toMatchObject({ name: 'mlp', versions: ['1', '2'], platform: 'onnxruntime_onnx', inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 32] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 4] }] });
    expect(await (await get('/v2/models/mlp/versions/production')).json()).toMatchObject({ versions: ['1'] });
    expect((await get('/v2/models/mlp/versions/1/ready')).status).toBe(200);
    expect((await get('/v2/models/mlp/versions/2/ready')).status).toBe(503);
    const missing = await get('/v2/models/nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_FOUND' });
    expect((await get('/v2/models/mlp/versions/9')).status).toBe(404);
    const docs = await fetch(`${base}/docs/json`);
    expect(((await docs.json()) as { paths: Record<string, unknown> }).paths).toHaveProperty('/v2/models/{name}/infer');
  });

  it('readiness is a live probe: a deployment record that says ready, with no replica answering, is not ready', async () => {
    await control.register('orphan', mlpV1);
    const now = Date.now();
    // As if every replica's node had died before the scheduler re-placed them: the record says ready.
    const record = { model: 'orphan', stable: { version: 1, service: 'model-orphan-v1', replicas: 1, state: 'ready', maxBatchSize: 8, maxQueueDelayMs: 0, since: now }, policy: DEFAULT_POLICY, history: [], updatedAt: now };
    // Forged with the scheduler's rights: no other role may write the bucket.
    const models = (await ModelRegistry.open(await nats.connect(Role.SCHEDULER))).kv;
    await models.create(registryKeys.deployment('orphan'), new TextEncoder().encode(JSON.stringify(record)));
    const body = await until(async () => {
      const r = await get('/v2/models/orphan/ready');
      const b = (await r.json()) as { ready: boolean; reason?: string };
      return r.status === 503 && /probe/.test(b.reason ?? '') ? b : undefined;
    }, 10_000, 'the gateway probes the orphan deployment');
    expect(body).toMatchObject({ name: 'orphan', ready: false });
    // A deployed model with replicas answers the probe.
    expect(await (await get('/v2/models/mlp/ready')).json()).toEqual({ name: 'mlp', ready: true });
    await models.delete(registryKeys.deployment('orphan'));
  });

  it('a training job on a cluster whose nodes load only the serving actors is refused, or fails at once, saying why', async () => {
    const spec = { model: { name: 'fraud', type: 'logreg' }, dataset: 'whatever', hyper: { steps: 5 }, workers: 1 };
    const jobs = await JobClient.open(nc);
    // JobClient (the CLI, the gateway) asks the fleet first.
    await expect(jobs.submit(spec, { id: 'job-nowhere' })).rejects.toMatchObject({ code: 'SHOAL_ERR_UNKNOWN_JOB_TYPE', message: expect.stringMatching(/"training-job" is not a job type: no live node offers it \(job types: none\)/) });
    // A submitter on NATS skips that check; the scheduler's job queue fails the job instead.
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    await jetstream(nc).publish(s.jobsSubmit, new TextEncoder().encode(JSON.stringify({ id: 'job-nowhere', spec })), { headers: h, msgID: 'job-nowhere' });
    const rec = await until(async () => {
      const r = await jobs.get('job-nowhere');
      return r.state === 'failed' ? r : undefined;
    }, 15_000, 'job-nowhere failed');
    expect(rec.reason).toMatch(/cannot start the job: "training-job" is not a job type: no live node offers it/);
  });

  it('infers: nested and flat data agree, outputs match a direct onnxruntime call, id is echoed', async () => {
    const rows = randomRows(5);
    const nested = (await (await infer(rows, '/v2/models/mlp/infer', { id: 'req-1' })).json()) as { id: string; model_version: string; outputs: { name: string; shape: number[]; data: number[] }[] };
    const flatRes = await post('/v2/models/mlp/versions/1/infer', { inputs: [{ name: 'X', shape: [5, 32], datatype: 'FP32', data: rows.flat() }] });
    expect(flatRes.status).toBe(200);
    const flat = (await flatRes.json()) as typeof nested;
    expect(nested.id).toBe('req-1');
    expect(nested.model_version).toBe('1');
    expect(nested.outputs[0]).toMatchObject({ name: 'Y', datatype: 'FP32', shape: [5, 4] });
    expect(flat.outputs[0]!.data).toEqual(nested.outputs[0]!.data);
    const session = await ort.InferenceSession.create(mlpV1);
    const direct = await session.run({ X: new ort.Tensor('float32', Float32Array.from(rows.flat()), [5, 32]) });
    const want = Array.from((direct.Y as ort.Tensor).data as Float32Array);
    nested.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    await session.release();
  });

  it('serves FP64, INT32, INT64 and BOOL, and filters outputs', async () => {
    const res = await post('/v2/models/dtypes/infer', {
      inputs: [
        { name: 'a', shape: [2, 2], datatype: 'FP64', data: [1.5, 2, 3, 4] },
        { name: 'b', shape: [2, 2], datatype: 'INT32', data: [[1, 2], [3, 4]] },
        { name: 'c', shape: [2, 2], datatype: 'INT64', data: [10, 20, 30, 9007199254740] },
        { name: 'd', shape: [2, 2], datatype: 'BOOL', data: [true, false, false, true] },
      ],
    });
    expect(res.status).toBe(200);
    const out = Object.fromEntries(((await res.json()) as { outputs: { name: string; datatype: string; data: unknown[] }[] }).outputs.map((o) => [o.name, o]));
    expect(out.a2).toMatchObject({ datatype: 'FP64', data: [3, 4, 6, 8] });
    expect(out.b2).toMatchObject({ datatype: 'INT32', data: [2, 4, 6, 8] });
    expect(out.c2).toMatchObject({ datatype: 'INT64', data: [20, 40, 60, 18014398509480] });
    expect(out.d2).toMatchObject({ datatype: 'BOOL', data: [false, true, true, false] });
    const some = await post('/v2/models/dtypes/infer', {
      inputs: [
        { name: 'a', shape: [1, 2], datatype: 'FP64', data: [1, 2] },
        { name: 'b', shape: [1, 2], datatype: 'INT32', data: [1, 2] },
        { name: 'c', shape: [1, 2], datatype: 'INT64', data: [1, 2] },
        { name: 'd', shape: [1, 2], datatype: 'BOOL', data: [true, true] },
      ],
      outputs: [{ name: 'b2' }],
    });
    expect(((await some.json()) as { outputs: { name: string }[] }).outputs.map((o) => o.name)).toEqual(['b2']);
  });

  it('serves FP16 (half-precision bits to onnxruntime, numbers in JSON), refusing values FP16 cannot hold', async () => {
    const res = await post('/v2/models/half/infer', { inputs: [{ name: 'h', shape: [2, 2], datatype: 'FP16', data: [[1.5, -2], [0.1, 30000]] }] });
    expect(res.status).toBe(200);
    const out = ((await res.json()) as { outputs: { name: string; datatype: string; shape: number[]; data: number[] }[] }).outputs[0];
    // 0.1 is 0.0999755859375 in FP16; doubled exactly.
    expect(out).toEqual({ name: 'h2', datatype: 'FP16', shape: [2, 2], data: [3, -4, 0.199951171875, 60000] });
    const over = await post('/v2/models/half/infer', { inputs: [{ name: 'h', shape: [1, 2], datatype: 'FP16', data: [70000, 1] }] });
    expect(over.status).toBe(400);
    expect(((await over.json()) as { error: string }).error).toMatch(/element 0 70000 overflows FP16/);
    expect(await (await get('/v2/models/half')).json()).toMatchObject({ inputs: [{ name: 'h', datatype: 'FP16', shape: [-1, 2] }] });
  });

  it('speaks the binary tensor data extension (Triton/KServe clients): binary inputs, binary outputs, same answers as JSON', async () => {
    expect(((await (await get('/v2')).json()) as { extensions: string[] }).extensions).toContain('binary_tensor_data');
    const rows = randomRows(3);
    const viaJson = (await (await infer(rows)).json()) as { outputs: { data: number[] }[] };
    const x = Buffer.from(Float32Array.from(rows.flat()).buffer);
    const binary = (header: unknown, tail: Buffer, contentType?: string) => {
      const head = Buffer.from(JSON.stringify(header));
      return fetch(`${base}/v2/models/mlp/infer`, {
        method: 'POST',
        headers: { 'x-api-key': KEY, 'inference-header-content-length': String(head.length), ...(contentType ? { 'content-type': contentType } : {}) },
        body: Buffer.concat([head, tail]),
      });
    };
    const input = { name: 'X', shape: [3, 32], datatype: 'FP32', parameters: { binary_data_size: x.length } };
    // Binary in, JSON out (no content type at all, as tritonclient sends it).
    const r1 = await binary({ inputs: [input] }, x);
    expect(r1.status).toBe(200);
    expect(((await r1.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data).toEqual(viaJson.outputs[0]!.data);
    // Binary in, binary out.
    const r2 = await binary({ id: 'b2', inputs: [input], parameters: { binary_data_output: true } }, x, 'application/octet-stream');
    expect(r2.status).toBe(200);
    expect(r2.headers.get('content-type')).toMatch(/octet-stream/);
    const hl = Number(r2.headers.get('inference-header-content-length'));
    const raw = Buffer.from(await r2.arrayBuffer());
    const head = JSON.parse(raw.subarray(0, hl).toString()) as { id: string; outputs: { name: string; shape: number[]; parameters: { binary_data_size: number }; data?: unknown }[] };
    expect(head).toMatchObject({ id: 'b2', outputs: [{ name: 'Y', shape: [3, 4], parameters: { binary_data_size: 48 } }] });
    expect(head.outputs[0]!.data).toBeUndefined();
    const y = raw.subarray(hl);
    expect(y.length).toBe(48);
    expect(Array.from(new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + 48)))).toEqual(viaJson.outputs[0]!.data);
    // Mistakes are 400s naming what is wrong.
    const short = await binary({ inputs: [{ ...input, parameters: { binary_data_size: x.length + 8 } }] }, x);
    expect(short.status).toBe(400);
    expect(((await short.json()) as { error: string }).error).toMatch(/runs past the end of the body/);
    const extra = await binary({ inputs: [input] }, Buffer.concat([x, Buffer.alloc(4)]));
    expect(((await extra.json()) as { error: string }).error).toMatch(/4 bytes of binary data that no input/);
    const wrongShape = await binary({ inputs: [{ ...input, shape: [2, 32] }] }, x);
    expect(((await wrongShape.json()) as { error: string }).error).toMatch(/384 bytes of FP32 data do not hold 64 elements/);
    const noHeader = await post('/v2/models/mlp/infer', { inputs: [input] });
    expect(((await noHeader.json()) as { error: string }).error).toMatch(/no Inference-Header-Content-Length header/);
    const badHeader = await fetch(`${base}/v2/models/mlp/infer`, { method: 'POST', headers: { 'x-api-key': KEY, 'inference-header-content-length': 'ten' }, body: x });
    expect(badHeader.status).toBe(400);
  });

  it('backpressure: past a replica\'s queue bound the gateway answers 429 at once, serves the rest, and keeps serving', async () => {
    await control.register('queue', mlpV1);
    // A queue of 64 rows and requests of 40: two that arrive together do not fit (the gateway
    // coalesces a burst into few messages, so they do arrive together).
    await control.deploy('queue', { replicas: 1, maxBatchSize: 64, maxQueueRows: 64 });
    await until(() => get('/v2/models/queue/ready').then((r) => (r.status === 200 ? true : undefined)), 10_000, 'queue ready');
    const rows = randomRows(40);
    const burst = await Promise.all(
      Array.from({ length: 100 }, () => infer(rows, '/v2/models/queue/infer').then(async (r) => ({ status: r.status, body: (await r.json()) as { code?: string } }))),
    );
    const refused = burst.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.body.code === 'SHOAL_ERR_MAILBOX_FULL')).toBe(true);
    expect(burst.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    expect(burst.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    expect((await infer(randomRows(1), '/v2/models/queue/infer')).status).toBe(200);
    await control.undeploy('queue');
  });

  it('serves INT8, INT16, UINT8, UINT16, UINT32, UINT64 at their limits, and refuses values out of range', async () => {
    const edges: Record<string, number[]> = {
      INT8: [-128, 127, 0, -1],
      INT16: [-32768, 32767, 1, -1],
      UINT8: [0, 255, 1, 254],
      UINT16: [0, 65535, 1, 2],
      UINT32: [0, 4294967295, 7, 8],
      UINT64: [0, 9007199254740991, 5, 6],
    };
    const res = await post('/v2/models/ints/infer', { inputs: INT_TYPES.map(([name, dt]) => ({ name, datatype: dt, shape: [2, 2], data: edges[dt] })) });
    expect(res.status).toBe(200);
    const out = Object.fromEntries(((await res.json()) as { outputs: { name: string; datatype: string; data: number[] }[] }).outputs.map((o) => [o.name, o]));
    for (const [name, dt] of INT_TYPES) expect(out[`${name}_o`]).toMatchObject({ datatype: dt, data: edges[dt] });
    const over = await post('/v2/models/ints/infer', { inputs: INT_TYPES.map(([name, dt]) => ({ name, datatype: dt, shape: [1, 2], data: dt === 'UINT8' ? [256, 0] : [0, 0] })) });
    expect(over.status).toBe(400);
    expect(((await over.json()) as { error: string }).error).toMatch(/input "u8" \(UINT8\): element 0 256 is outside UINT8's range 0\.\.255/);
  });

  it('POST /v1/models/{name}/predict takes JSON rows', async () => {
    const rows = randomRows(3);
    const res = await post('/v1/models/mlp/predict', { instances: rows });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { predictions: number[][]; model_version: string };
    expect(body.predictions).toHaveLength(3);
    expect(body.predictions[0]).toHaveLength(4);
    const oip = (await (await infer(rows)).json()) as { outputs: { data: number[] }[] };
    expect(body.predictions.flat()).toEqual(oip.outputs[0]!.data);
  });

  it('bad input gets a clear 4xx with the OIP error body, and serving goes on', async () => {
    const rows = randomRows(2);
    const cases: [Promise<Response>, number, RegExp][] = [
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [2, 31], datatype: 'FP32', data: rows }] }), 400, /dimension 1 is 31/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP32', data: rows.flat().slice(1) }] }), 400, /needs 64 values, got 63/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP64', data: rows }] }), 400, /datatype FP64 where the model takes FP32/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [2, 32], datatype: 'BF16', data: rows }] }), 400, /unsupported datatype BF16/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'Z', shape: [2, 32], datatype: 'FP32', data: rows }] }), 400, /no input "Z"/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: [[...rows[0]!.slice(1), 'x']] }] }), 400, /must be a number/],
      [post('/v2/models/mlp/infer', `{"inputs":[{"name":"X","shape":[1,32],"datatype":"FP32","data":[${[1e999, ...rows[0]!.slice(1)].join(',')}]}]}`.replace('Infinity', '1e999')), 400, /Infinity/],
      [post('/v2/models/mlp/infer', '{"inputs": [ {"name": NaN'), 400, /JSON/i],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows[0] }], outputs: [{ name: 'nope' }] }), 400, /no output "nope"/],
      [post('/v2/models/ghost/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows[0] }] }), 404, /not registered/],
      [post('/v2/models/mlp/versions/7/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows[0] }] }), 404, /no version or alias "7"/],
      [post('/v2/models/mlp/versions/2/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows[0] }] }), 503, /not deployed/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows[0] }] }, { 'x-api-key': 'wrong-key-0000' }), 401, /unknown API key/],
      [fetch(`${base}/v2/models/mlp/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), 401, /missing API key/],
      [post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [3000, 32], datatype: 'FP32', data: randomRows(3000).flat() }] }), 413, /larger than the limit/],
      [post('/v2/models/mlp/infer', { inputs: [] }), 400, /inputs/],
    ];
    for (const [p, status, msg] of cases) {
      const r = await p;
      const body = (await r.json()) as { error: string; code: string };
      expect({ status: r.status, error: body.error }).toMatchObject({ status, error: expect.stringMatching(msg) });
      expect(body.code).toMatch(/^SHOAL_ERR_/);
    }
    // The per-tenant rate limit (2/min for "tiny") answers 429 with the same body.
    const tiny = await Promise.all([1, 2, 3].map(() => infer(rows, '/v2/models/mlp/infer').then(() => post('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP32', data: rows }] }, { 'x-api-key': TINY }))));
    const limited = tiny.find((r) => r.status === 429)!;
    expect(limited).toBeDefined();
    expect(await limited.json()).toMatchObject({ code: 'SHOAL_ERR_RATE_LIMITED' });
    expect((await infer(rows)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/shoal_gateway_errors_total\{code="SHOAL_ERR_BAD_INPUT",status="400"\} \d+/);
    expect(metrics).toMatch(/shoal_gateway_inference_requests_total\{model="mlp",version="1",route="stable",code="ok"\}/);
  });

  it('dynamic batching: concurrent single-row messages share onnxruntime runs (average batch > 1)', async () => {
    // Straight to the service subject, one request per NATS message, so only the replica batches.
    const client = new ActorClient(nc, s);
    const svc = client.service('model-mlp-v1');
    const row = Float32Array.from(randomRows(1)[0]!);
    const msg = { type: 'infer', items: [{ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32], data: toBytes(row) }] }] };
    const before = await Promise.all(['model-mlp-v1-1', 'model-mlp-v1-2'].map((id) => client.ref(id).ask<ReplicaStats>({ type: 'stats' })));
    const replies = await Promise.all(Array.from({ length: 400 }, () => svc.ask<InferReply>(msg, { timeoutMs: 10_000 })));
    expect(replies.every((r) => 'outputs' in r.results[0]!)).toBe(true);
    expect(Math.max(...replies.map((r) => ('batch' in r.results[0]! ? r.results[0].batch : 0)))).toBeGreaterThan(1);
    const after = await Promise.all(['model-mlp-v1-1', 'model-mlp-v1-2'].map((id) => client.ref(id).ask<ReplicaStats>({ type: 'stats' })));
    const batches = after.reduce((a, x, i) => a + x.batches - before[i]!.batches, 0);
    const rows = after.reduce((a, x, i) => a + x.rows - before[i]!.rows, 0);
    expect(rows).toBe(400);
    expect(rows / batches).toBeGreaterThan(1);
    // Through the gateway too: its batch-size histogram saw batches above 1.
    await Promise.all(Array.from({ length: 64 }, () => infer(randomRows(1))));
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const le1 = Number(/shoal_gateway_batch_size_bucket\{le="1",model="mlp",version="1"\} (\d+)/.exec(metrics)?.[1]);
    const count = Number(/shoal_gateway_batch_size_count\{model="mlp",version="1"\} (\d+)/.exec(metrics)?.[1]);
    expect(count).toBeGreaterThan(le1);
  });

  it('canary: the split follows its weight, sticky keys stick, promote moves stable and the alias', async () => {
    await ownModel('split', [mlpV2], 2);
    const d = await control.canary('split', { version: 2, weight: 0.3, replicas: 1 });
    expect(d.canary).toMatchObject({ version: 2, state: 'ready', weight: 0.3 });
    await until(() => get('/v2/models/split/versions/2/ready').then((r) => (r.status === 200 ? true : undefined)), 10_000, 'gateway sees the canary');
    const N = 400;
    const versions: string[] = [];
    for (let i = 0; i < N; i += 40) {
      const rs = await Promise.all(Array.from({ length: 40 }, () => infer(randomRows(1), '/v2/models/split/infer')));
      versions.push(...rs.map((r) => r.headers.get('x-shoal-model-version')!));
    }
    const share = versions.filter((v) => v === '2').length / N;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.4);
    await control.setWeight('split', 0.5);
    const dep = await control.deployment('split');
    await control.rollback('split', 'test: re-run as sticky', dep!.canary!.version);
    await control.canary('split', { version: 2, weight: 0.5, sticky: true });
    await until(() => get('/v2/models/split/versions/2/ready').then((r) => (r.status === 200 ? true : undefined)), 10_000, 'gateway sees the sticky canary');
    for (const key of ['user-1', 'user-2', 'user-3', 'user-4']) {
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++) seen.add((await infer(randomRows(1), '/v2/models/split/infer', {}).then(async (r) => r)).headers.get('x-shoal-model-version')!);
      const stuck = new Set<string>();
      for (let i = 0; i < 6; i++) stuck.add((await post('/v2/models/split/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] }, { 'x-shoal-route-key': key })).headers.get('x-shoal-model-version')!);
      expect(stuck.size).toBe(1);
    }
    // The canary runs 1 replica, stable v1 runs 2: promotion first gives v2 the stable's capacity.
    const promoted = await control.promote('split');
    expect(promoted.stable.version).toBe(2);
    expect(promoted.stable.replicas).toBe(2);
    const v2 = await Promise.all(['model-split-v2-1', 'model-split-v2-2'].map((id) => new ActorClient(nc, s).ref(id).ask<ReplicaStats>({ type: 'stats' })));
    expect(v2.map((r) => r.version)).toEqual([2, 2]);
    expect(promoted.canary).toBeUndefined();
    expect((await registry.get('split')).aliases.production).toBe(2);
    await until(() => infer(randomRows(1), '/v2/models/split/infer').then((r) => (r.headers.get('x-shoal-model-version') === '2' ? true : undefined)), 10_000, 'traffic on v2');
    // The old stable's replicas are gone.
    await until(() => get('/v2/models/split/versions/1/ready').then((r) => (r.status === 503 ? true : undefined)), 10_000, 'v1 no longer served');
  });

  it('a canary that fails its warm-up never gets traffic and leaves nothing behind', async () => {
    await ownModel('warmup', []);
    // With a sample request the warm-up is a real request, and onnxruntime refusing it fails the
    // start (a synthetic warm-up that fails is only a warning: see real-models.test.ts).
    const sample = { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] };
    await control.register('warmup', brokenModel(), { sample: new TextEncoder().encode(JSON.stringify(sample)) });
    const err = await control.canary('warmup', { version: 2, weight: 0.5, readyTimeoutMs: 15_000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_READY', message: expect.stringMatching(/start failed|failed/) });
    const d = await control.deployment('warmup');
    expect(d?.canary).toBeUndefined();
    expect(d?.history.at(-1)).toMatchObject({ event: 'canary-failed', version: 2 });
    expect((await get('/v2/models/warmup/versions/2/ready')).status).toBe(503);
  });

  it('a canary that starts failing is rolled back automatically; callers still get answers', async () => {
    await ownModel('flaky', [flakyModel()]);
    await control.canary('flaky', { version: 2, weight: 0.5 });
    await ready('/v2/models/flaky/versions/2/ready', 'the gateway sees the failing canary');
    const statuses: number[] = [];
    const dep = await until(async () => {
      const rs = await Promise.all(Array.from({ length: 20 }, () => infer(randomRows(1), '/v2/models/flaky/infer')));
      statuses.push(...rs.map((r) => r.status));
      const d = await control.deployment('flaky');
      return d && !d.canary ? d : undefined;
    }, 20_000, 'automatic rollback');
    expect(dep.stable.version).toBe(1);
    expect(dep.history.at(-1)).toMatchObject({ event: 'rolled-back', version: 2, detail: expect.stringMatching(/automatic: canary error rate/) });
    // Failed canary requests were retried on stable: nobody saw a 500.
    expect(statuses.every((x) => x === 200)).toBe(true);
    // Counted once the rollback (record, then the canary's replicas stopped) is done.
    await until(() => fetch(`${base}/metrics`).then(async (r) => (/shoal_gateway_canary_rollbacks_total\{model="flaky"\} 1/.test(await r.text()) ? true : undefined)), 10_000, 'rollback counted');
  });

  it('gateways judge a canary on their combined traffic: neither alone has enough requests, together they roll it back', async () => {
    const gnc2 = await nats.connect(Role.GATEWAY);
    const gw2 = await buildGateway({ nc: gnc2, subjects: s, logger: createLogger({ level: 'error', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    try {
      await gw2.listen({ host: '127.0.0.1', port: 0 });
      const base2 = `http://127.0.0.1:${(gw2.server.address() as AddressInfo).port}`;
      // All traffic to the flaky v2: every canary request fails (and is answered by stable).
      await ownModel('two-gateways', [flakyModel()]);
      await control.canary('two-gateways', { version: 2, weight: 1 });
      for (const b of [base, base2]) {
        await until(() => fetch(`${b}/v2/models/two-gateways/versions/2/ready`, { headers: { 'x-api-key': KEY } }).then((r) => (r.status === 200 ? true : undefined)), 10_000, 'both gateways see the canary');
      }
      // 12 canary requests through each gateway: below minRequests (20) on either, 24 together.
      const body = (rows: number[][]) => JSON.stringify({ inputs: [{ name: 'X', shape: [rows.length, 32], datatype: 'FP32', data: rows }] });
      const statuses = await Promise.all(
        [base, base2].flatMap((b) => Array.from({ length: 12 }, () => fetch(`${b}/v2/models/two-gateways/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: body(randomRows(1)) }).then((r) => r.status))),
      );
      expect(statuses.every((x) => x === 200)).toBe(true);
      const dep = await until(async () => {
        const d = await control.deployment('two-gateways');
        return d && !d.canary ? d : undefined;
      }, 10_000, 'rollback on the combined outcomes');
      expect(dep.history.at(-1)).toMatchObject({ event: 'rolled-back', version: 2, detail: expect.stringMatching(/automatic: canary error rate 100\.0%/) });
      // One verdict, taken once: both gateways hear of one rollback, and the record has one.
      for (const b of [base, base2]) await until(() => fetch(`${b}/metrics`).then(async (r) => (/shoal_gateway_canary_rollbacks_total\{model="two-gateways"\} 1/.test(await r.text()) ? true : undefined)), 10_000, 'the rollback counted on each gateway');
      expect(dep.history.filter((e) => e.event === 'rolled-back')).toHaveLength(1);
    } finally {
      await gw2.close();
    }
  });

  it('killing a replica node mid-load loses no request (idempotent inference is retried)', async () => {
    await ownModel('survivor', [], 2);
    const stats = await Promise.all(['model-survivor-v1-1', 'model-survivor-v1-2'].map((id) => new ActorClient(nc, s).ref(id).ask<ReplicaStats>({ type: 'stats' })));
    // Anti-affinity put one replica on each node.
    expect(new Set(stats.map((x) => x.nodeId)).size).toBe(2);
    const victim = stats[0]!.nodeId;
    const key = victim === 'node-a' ? 'a' : 'b';
    let stop = false;
    const results: number[] = [];
    const failures: string[] = [];
    const load = Promise.all(
      Array.from({ length: 12 }, async () => {
        while (!stop) {
          const r = await infer(randomRows(2), '/v2/models/survivor/infer');
          results.push(r.status);
          if (r.status !== 200) failures.push(`${r.status} ${((await r.json()) as { error: string }).error}`);
        }
      }),
    );
    await until(() => (results.length > 100 ? true : undefined), 20_000, 'load running');
    nodes[key]!.kill('SIGKILL');
    const at = results.length;
    await until(() => (results.length > at + 300 ? true : undefined), 30_000, 'load after the kill');
    stop = true;
    await load;
    expect(failures).toEqual([]);
    // Leave the cluster as the other tests found it: the node comes back under its id, and the
    // actors it ran are re-placed (it is a new incarnation).
    nodes[key] = await c.startNode({ id: victim, profile: 'cpu-ondemand' });
    for (const m of ['mlp', 'dtypes', 'half', 'ints', 'survivor']) await ready(`/v2/models/${m}/ready`, `${m} serving again`);
  });
});
