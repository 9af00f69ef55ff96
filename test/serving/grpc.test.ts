/**
 * The Open Inference Protocol over gRPC end to end: a real cluster (nats-server, scheduler, a
 * node process with real onnxruntime replicas), the gateway in-process with its gRPC service,
 * and a real grpc-js client built from the same grpc_predict_v2.proto. Outputs are compared with
 * what the REST routes of the same gateway answer.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Metadata, credentials, status as Status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { toHalf, type RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startGrpcGateway, type GrpcGateway } from '../../gateway/grpc/server.ts';
import { loadInferencePackage, type ModelInferResponse } from '../../gateway/grpc/proto.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { dtypesModel, fp16Model, intTypesModel, mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const KEY = 'test-key-acme-0001';
const TINY = 'test-key-tiny-0001';

type Md = Record<string, string>;
interface Answer<T> {
  res: T;
  headers: Metadata;
}

describe('OIP over gRPC (KServe v2 GRPCInferenceService; real cluster, real grpc-js client)', () => {
  let c: TestCluster;
  let control: RegistryClient;
  let gw: FastifyInstance;
  let grpcGw: GrpcGateway;
  let client: Client;
  let base = '';

  /** One unary call with metadata; resolves with the response and the response headers. */
  const call = <T>(method: string, req: unknown, md: Md = { 'x-api-key': KEY }): Promise<Answer<T>> =>
    new Promise((resolve, reject) => {
      const meta = new Metadata();
      for (const [k, v] of Object.entries(md)) meta.set(k, v);
      let headers = new Metadata();
      const fn = (client as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: T) => void) => { on(ev: 'metadata', f: (m: Metadata) => void): void }>)[method]!;
      const c2 = fn.call(client, req, meta, (err, res) => (err ? reject(err) : resolve({ res, headers })));
      c2.on('metadata', (m) => (headers = m));
    });
  const refused = (p: Promise<unknown>) => p.then(() => expect.unreachable('the call succeeded')).catch((e: ServiceError) => e);
  const rest = (path: string, body: unknown, headers: Md = {}) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers }, body: JSON.stringify(body) });
  const restOutputs = async (path: string, body: unknown, headers: Md = {}) => {
    const r = await rest(path, body, headers);
    expect(r.status).toBe(200);
    return { version: r.headers.get('x-shoal-model-version'), outputs: ((await r.json()) as { outputs: { name: string; data: number[] }[] }).outputs };
  };
  const f32 = (b: Uint8Array) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  const le = (a: ArrayBufferView) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const fp32Input = (rows: number[][]) => ({ name: 'X', datatype: 'FP32', shape: [rows.length, 32], contents: { fp32_contents: rows.flat() } });

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-g', profile: 'cpu-ondemand' }] });
    control = c.control;
    await control.register('mlp', mlpModel({ seed: 1 }), { aliases: ['production'] });
    await control.register('mlp', mlpModel({ seed: 2 }));
    await control.register('dtypes', dtypesModel());
    await control.register('half', fp16Model());
    await control.register('ints', intTypesModel());
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: KEY, tenant: 'acme' },
        { key: TINY, tenant: 'tiny', rateLimitPerMinute: 2 },
      ],
      bodyLimit: 256 * 1024,
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    grpcGw = await startGrpcGateway(gw.shoal, { host: '127.0.0.1', port: 0 });
    const Service = loadInferencePackage().inference.GRPCInferenceService;
    client = new Service(grpcGw.address, credentials.createInsecure());
    for (const m of ['mlp', 'dtypes', 'half', 'ints']) {
      await until(async () => (await control.deploy(m, { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 30_000, `${m} deployed`);
    }
    for (const m of ['mlp', 'dtypes', 'half', 'ints']) await until(async () => (await call<{ ready: boolean }>('ModelReady', { name: m })).res.ready || undefined, 15_000, `${m} ready over gRPC`);
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await grpcGw?.stop();
    await gw?.close();
    await c?.stop();
  });

  it('answers liveness, readiness and server metadata without a key; model metadata and readiness with one', async () => {
    expect((await call('ServerLive', {}, {})).res).toEqual({ live: true });
    expect((await call('ServerReady', {}, {})).res).toEqual({ ready: true });
    expect((await call('ServerMetadata', {}, {})).res).toMatchObject({ name: 'shoal', extensions: ['binary_tensor_data'] });
    const meta = (await call<{ name: string; versions: string[]; platform: string; inputs: unknown[]; outputs: unknown[] }>('ModelMetadata', { name: 'mlp' })).res;
    // int64 shapes come back as decimal strings (the loader's `longs: String`).
    expect(meta).toEqual({ name: 'mlp', versions: ['1', '2'], platform: 'onnxruntime_onnx', inputs: [{ name: 'X', datatype: 'FP32', shape: ['-1', '32'] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: ['-1', '4'] }] });
    expect((await call('ModelMetadata', { name: 'mlp', version: 'production' })).res).toMatchObject({ versions: ['1'] });
    expect((await call('ModelReady', { name: 'mlp', version: '1' })).res).toEqual({ ready: true });
    // v2 is registered but not deployed: not ready (REST: 503), not an error.
    expect((await call('ModelReady', { name: 'mlp', version: '2' })).res).toEqual({ ready: false });
  });

  it('ModelInfer with typed contents and with raw_input_contents gives what REST gives', async () => {
    const rows = randomRows(3, 32, 11);
    const want = await restOutputs('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [3, 32], datatype: 'FP32', data: rows }] });
    const typed = await call<ModelInferResponse>('ModelInfer', { model_name: 'mlp', id: 'req-7', inputs: [fp32Input(rows)] });
    expect(typed.res).toMatchObject({ model_name: 'mlp', model_version: '1', id: 'req-7', outputs: [{ name: 'Y', datatype: 'FP32', shape: ['3', '4'] }] });
    expect(typed.res.raw_output_contents).toHaveLength(1);
    expect(f32(typed.res.raw_output_contents[0]!)).toEqual(want.outputs[0]!.data);
    expect(typed.headers.get('x-shoal-model-version')).toEqual(['1']);
    expect(typed.headers.get('x-shoal-route')).toEqual(['stable']);
    const raw = await call<ModelInferResponse>('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [3, 32] }], raw_input_contents: [le(Float32Array.from(rows.flat()))] });
    expect(f32(raw.res.raw_output_contents[0]!)).toEqual(want.outputs[0]!.data);
    expect(raw.res.id).toBe('');
  });

  it('carries FP64, INT32, INT64 (exactly, past 2^53), BOOL and FP16, and filters outputs', async () => {
    const big = 2n ** 60n + 3n;
    const r = await call<ModelInferResponse>('ModelInfer', {
      model_name: 'dtypes',
      inputs: [
        { name: 'a', datatype: 'FP64', shape: [2, 2], contents: { fp64_contents: [1.5, 2, 3, 4] } },
        { name: 'b', datatype: 'INT32', shape: [2, 2], contents: { int_contents: [1, -2, 3, 4] } },
        { name: 'c', datatype: 'INT64', shape: [2, 2], contents: { int64_contents: ['10', '-20', '30', big.toString()] } },
        { name: 'd', datatype: 'BOOL', shape: [2, 2], contents: { bool_contents: [true, false, false, true] } },
      ],
      outputs: [{ name: 'c2' }, { name: 'd2' }, { name: 'a2' }],
    });
    // Signature order, only the outputs asked for.
    expect(r.res.outputs.map((o) => o.name)).toEqual(['a2', 'c2', 'd2']);
    const [a2, c2, d2] = r.res.raw_output_contents.map((b) => Buffer.from(b));
    expect(Array.from(new Float64Array(a2!.buffer, a2!.byteOffset, 4))).toEqual([3, 4, 6, 8]);
    expect(Array.from(new BigInt64Array(c2!.buffer.slice(c2!.byteOffset, c2!.byteOffset + 32)))).toEqual([20n, -40n, 60n, 2n * big]);
    expect(Array.from(d2!)).toEqual([0, 1, 1, 0]);
    const half = await call<ModelInferResponse>('ModelInfer', { model_name: 'half', inputs: [{ name: 'h', datatype: 'FP16', shape: [1, 2] }], raw_input_contents: [le(Uint16Array.from([1.5, -2].map(toHalf)))] });
    const h2 = Buffer.from(half.res.raw_output_contents[0]!);
    expect([h2.readUInt16LE(0), h2.readUInt16LE(2)]).toEqual([3, -4].map(toHalf));
  });

  it('refuses bad input with INVALID_ARGUMENT naming the input, the code in the message and the trailers', async () => {
    const cases: [unknown, RegExp][] = [
      // The replica's own checks, as REST has them.
      [{ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 31], contents: { fp32_contents: randomRows(1, 31)[0] } }] }, /input "X": dimension 1 is 31/],
      [{ model_name: 'mlp', inputs: [{ name: 'Z', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: randomRows(1)[0] } }] }, /no input "Z"/],
      [{ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [2, 32], contents: { fp32_contents: randomRows(1)[0] } }] }, /input "X": shape \[2, 32\] needs 64 values, got 32/],
      [{ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32] }], raw_input_contents: [Buffer.alloc(100)] }, /input "X": 100 bytes of FP32 data do not hold 32 elements/],
      // The gRPC conversion's.
      [{ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32], contents: { fp64_contents: randomRows(1)[0] } }] }, /input "X" \(FP32\) takes its values in contents\.fp32_contents, not contents\.fp64_contents/],
      [{ model_name: 'ints', inputs: [{ name: 'i8', datatype: 'INT8', shape: [1, 2], contents: { int_contents: [1, 300] } }] }, /input "i8" \(INT8\): element 1 300 is outside INT8's range/],
      [{ model_name: 'half', inputs: [{ name: 'h', datatype: 'FP16', shape: [1, 2], contents: { fp32_contents: [1, 2] } }] }, /input "h" is FP16, which has no typed contents field: send its bytes in raw_input_contents/],
      [{ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: randomRows(1)[0] } }], raw_input_contents: [Buffer.alloc(128)] }, /input "X" has contents\.fp32_contents but the request uses raw_input_contents/],
      [{ model_name: 'mlp', inputs: [] }, /no inputs/],
    ];
    for (const [req, why] of cases) {
      const e = await refused(call('ModelInfer', req));
      expect(e.code, String(why)).toBe(Status.INVALID_ARGUMENT);
      expect(e.details).toMatch(/^SHOAL_ERR_BAD_INPUT: /);
      expect(e.details).toMatch(why);
      expect(e.metadata.get('shoal-error-code')).toEqual(['SHOAL_ERR_BAD_INPUT']);
    }
    const badName = await refused(call('ModelInfer', { model_name: 'no/such', inputs: [fp32Input(randomRows(1))] }));
    expect([badName.code, badName.details]).toEqual([Status.INVALID_ARGUMENT, expect.stringMatching(/^SHOAL_ERR_BAD_REQUEST: model_name must match/)]);
  });

  it('refuses a call without a known key (UNAUTHENTICATED); takes x-api-key or a Bearer token', async () => {
    const req = { model_name: 'mlp', inputs: [fp32Input(randomRows(1))] };
    for (const md of [{}, { 'x-api-key': 'not-a-key-at-all' }, { authorization: 'Basic abc' }] as Md[]) {
      const e = await refused(call('ModelInfer', req, md));
      expect(e.code).toBe(Status.UNAUTHENTICATED);
      expect(e.details).toMatch(/^SHOAL_ERR_UNAUTHORIZED: (missing|unknown) API key/);
    }
    expect((await refused(call('ModelMetadata', { name: 'mlp' }, {}))).code).toBe(Status.UNAUTHENTICATED);
    expect((await call<ModelInferResponse>('ModelInfer', req, { authorization: `Bearer ${KEY}` })).res.outputs).toHaveLength(1);
  });

  it('answers NOT_FOUND for an unknown model or version, UNAVAILABLE for a version not deployed', async () => {
    const input = [fp32Input(randomRows(1))];
    const nope = await refused(call('ModelInfer', { model_name: 'nope', inputs: input }));
    expect([nope.code, nope.details]).toEqual([Status.NOT_FOUND, expect.stringMatching(/^SHOAL_ERR_MODEL_NOT_FOUND: /)]);
    expect((await refused(call('ModelMetadata', { name: 'nope' }))).code).toBe(Status.NOT_FOUND);
    expect((await refused(call('ModelReady', { name: 'nope' }))).code).toBe(Status.NOT_FOUND);
    const v9 = await refused(call('ModelInfer', { model_name: 'mlp', model_version: '9', inputs: input }));
    expect([v9.code, v9.details]).toEqual([Status.NOT_FOUND, expect.stringMatching(/^SHOAL_ERR_MODEL_VERSION_NOT_FOUND: /)]);
    const v2 = await refused(call('ModelInfer', { model_name: 'mlp', model_version: '2', inputs: input }));
    expect([v2.code, v2.details]).toEqual([Status.UNAVAILABLE, expect.stringMatching(/^SHOAL_ERR_MODEL_NOT_READY: /)]);
  });

  it('limits: the tenant rate limit counts REST and gRPC together; a message over the body limit is RESOURCE_EXHAUSTED', async () => {
    const rows = randomRows(1);
    expect((await rest('/v2/models/mlp/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows }] }, { 'x-api-key': TINY })).status).toBe(200);
    await call('ModelInfer', { model_name: 'mlp', inputs: [fp32Input(rows)] }, { 'x-api-key': TINY });
    const over = await refused(call('ModelInfer', { model_name: 'mlp', inputs: [fp32Input(rows)] }, { 'x-api-key': TINY }));
    expect([over.code, over.details]).toEqual([Status.RESOURCE_EXHAUSTED, expect.stringMatching(/^SHOAL_ERR_RATE_LIMITED: tenant tiny is over its rate limit \(2 requests per/)]);
    expect(Number(over.metadata.get('retry-after')[0])).toBeGreaterThan(0);
    // 300 KiB of FP32: over the 256 KiB body limit, under grpc-js's own ceiling (limit + 64 KiB).
    const n = (300 * 1024) / 4 / 32;
    const big = await refused(call('ModelInfer', { model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [n, 32] }], raw_input_contents: [Buffer.alloc(n * 32 * 4)] }));
    expect([big.code, big.details]).toEqual([Status.RESOURCE_EXHAUSTED, expect.stringMatching(/^SHOAL_ERR_PAYLOAD_TOO_LARGE: /)]);
  });

  it('routes as REST does: the stable/canary split with a sticky key, and version pinning', async () => {
    // A model of its own: the other tests expect mlp without a canary, in any order.
    await control.register('split', mlpModel({ seed: 1 }), { aliases: ['production'] });
    await control.register('split', mlpModel({ seed: 2 }));
    await until(async () => (await control.deploy('split', { replicas: 1, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 30_000, 'split deployed');
    await until(async () => (await control.canary('split', { version: 2, weight: 0.5, sticky: true, replicas: 1, readyTimeoutMs: 20_000 })).canary?.state === 'ready' || undefined, 30_000, 'split canary v2');
    await until(async () => (await call<{ ready: boolean }>('ModelReady', { name: 'split', version: '2' })).res.ready || undefined, 15_000, 'v2 ready over gRPC');
    const rows = randomRows(1, 32, 5);
    const seen = new Set<string>();
    for (const key of ['user-1', 'user-2', 'user-3', 'user-4', 'user-5', 'user-6']) {
      const viaRest = await restOutputs('/v2/models/split/infer', { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: rows }] }, { 'x-shoal-route-key': key });
      const viaGrpc = await call<ModelInferResponse>('ModelInfer', { model_name: 'split', inputs: [fp32Input(rows)] }, { 'x-api-key': KEY, 'x-shoal-route-key': key });
      // The same key lands on the same version over either protocol, with the same outputs.
      expect(viaGrpc.res.model_version).toBe(viaRest.version);
      expect(f32(viaGrpc.res.raw_output_contents[0]!)).toEqual(viaRest.outputs[0]!.data);
      seen.add(viaGrpc.res.model_version);
    }
    // Six keys at weight 0.5 that all hashed to one side would make this test meaningless.
    expect(seen).toEqual(new Set(['1', '2']));
    for (const v of ['1', '2', 'production']) {
      const pinned = await call<ModelInferResponse>('ModelInfer', { model_name: 'split', model_version: v, inputs: [fp32Input(rows)] });
      expect([pinned.res.model_version, pinned.headers.get('x-shoal-route')[0]]).toEqual([v === '2' ? '2' : '1', 'pinned']);
    }
  });

  it('the gateway process serves gRPC on gateway.grpcPort with its API keys, and none with gateway.grpc false', async () => {
    const keys = ['--gateway.apiKeys', JSON.stringify([{ key: KEY, tenant: 'acme' }])];
    const on = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', ...keys]);
    const off = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpc', 'false']);
    const [infoOn, infoOff] = await Promise.all([on.ready, off.ready]);
    expect(infoOff.grpc).toBeUndefined();
    expect(String(infoOn.grpc)).toMatch(/^127\.0\.0\.1:\d+$/);
    const other = new (loadInferencePackage().inference.GRPCInferenceService)(String(infoOn.grpc), credentials.createInsecure());
    const ask = (md: Md) =>
      new Promise<ModelInferResponse>((resolve, reject) => {
        const meta = new Metadata();
        for (const [k, v] of Object.entries(md)) meta.set(k, v);
        (other as unknown as { ModelInfer: (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: ModelInferResponse) => void) => void }).ModelInfer({ model_name: 'mlp', model_version: '1', inputs: [fp32Input(randomRows(1))] }, meta, (e, r) => (e ? reject(e) : resolve(r)));
      });
    try {
      expect((await refused(ask({}))).code).toBe(Status.UNAUTHENTICATED);
      // Its routing table fills from the registry's KV watch: the model is there once it has caught up.
      const r = await until(() => ask({ 'x-api-key': KEY }), 15_000, 'the gateway process serving mlp over gRPC');
      expect(r.model_version).toBe('1');
    } finally {
      other.close();
      on.kill('SIGTERM');
      off.kill('SIGTERM');
    }
  });

  it('counts calls in the gateway metrics by method and status', async () => {
    await call('ModelInfer', { model_name: 'mlp', inputs: [fp32Input(randomRows(1))] });
    await refused(call('ModelInfer', { model_name: 'mlp', inputs: [fp32Input(randomRows(1))] }, {}));
    await refused(call('ModelInfer', { model_name: 'mlp', inputs: [] }));
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/shoal_gateway_grpc_request_duration_seconds_count\{method="ModelInfer",code="OK"\} [1-9]/);
    expect(text).toMatch(/shoal_gateway_grpc_request_duration_seconds_count\{method="ModelInfer",code="UNAUTHENTICATED"\} [1-9]/);
    expect(text).toMatch(/shoal_gateway_errors_total\{code="SHOAL_ERR_BAD_INPUT",status="400"\} [1-9]/);
  });
});
