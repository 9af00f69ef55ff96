/**
 * BYTES (string) tensors end to end: a real cluster (nats-server, scheduler, a node process with
 * real onnxruntime replicas), the gateway in-process with REST and gRPC, serving an ONNX model
 * with a string input built in the test (Identity, LabelEncoder from ai.onnx.ml, Equal on
 * strings) and one with a rank-0 string. JSON, the binary tensor data extension, the NATS binary
 * form and gRPC carry the same strings; several requests' strings share one onnxruntime run; bad
 * input is a 400 naming the input and the replica keeps serving.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Metadata, credentials, status as Status, type Client, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { type InferReply, type ItemOk, type RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startGrpcGateway, type GrpcGateway } from '../../gateway/grpc/server.ts';
import { loadInferencePackage, type ModelInferResponse } from '../../gateway/grpc/proto.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { LABELS, labelModel, scalarStringModel } from '../fixtures/onnx-strings.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const KEY = 'test-key-acme-0001';

/** Length-prefixed elements written by hand: a 4-byte little-endian length, then the bytes. */
function prefixed(...elements: (string | Uint8Array)[]): Buffer {
  const parts = elements.map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8') : Buffer.from(e)));
  return Buffer.concat(parts.flatMap((p) => [Buffer.from(Uint32Array.of(p.length).buffer), p]));
}
/** Length-prefixed bytes → strings (test side, no checks beyond what the test needs). */
function unprefixed(b: Uint8Array): string[] {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out: string[] = [];
  for (let at = 0; at < buf.length; ) {
    const n = buf.readUInt32LE(at);
    out.push(buf.subarray(at + 4, at + 4 + n).toString('utf8'));
    at += 4 + n;
  }
  return out;
}
const label = (s: string) => LABELS[s] ?? -1;
const scalarS = (data: unknown[]) => ({ name: 's', shape: [], datatype: 'BYTES', data });
const scalarN = (data: unknown[]) => ({ name: 'n', shape: [], datatype: 'FP32', data });

type OipOut = { name: string; datatype: string; shape: number[]; data: unknown[] };

describe('BYTES (string) tensors served (real cluster, real onnxruntime; REST, binary extension, NATS, gRPC)', () => {
  let c: TestCluster;
  let control: RegistryClient;
  let gw: FastifyInstance;
  let grpcGw: GrpcGateway;
  let client: Client;
  let base = '';

  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const binary = (path: string, header: unknown, tail: Buffer) => {
    const head = Buffer.from(JSON.stringify(header));
    return fetch(`${base}${path}`, { method: 'POST', headers: { 'x-api-key': KEY, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) }, body: Buffer.concat([head, tail]) });
  };
  const grpc = <T>(method: string, req: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      const meta = new Metadata();
      meta.set('x-api-key', KEY);
      const fn = (client as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: T) => void) => void>)[method]!;
      fn.call(client, req, meta, (err, res) => (err ? reject(err) : resolve(res)));
    });
  const refused = (p: Promise<unknown>) => p.then(() => expect.unreachable('the call succeeded')).catch((e: ServiceError) => e);
  const error = async (r: Response) => ({ status: r.status, ...((await r.json()) as { error: string; code: string }) });

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-s', profile: 'cpu-ondemand' }] });
    control = c.control;
    await control.register('labels', labelModel());
    await control.register('scalar-str', scalarStringModel());
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [{ key: KEY, tenant: 'acme' }],
      bodyLimit: 256 * 1024,
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    grpcGw = await startGrpcGateway(gw.shoal, { host: '127.0.0.1', port: 0 });
    client = new (loadInferencePackage().inference.GRPCInferenceService)(grpcGw.address, credentials.createInsecure());
    for (const m of ['labels', 'scalar-str']) {
      await until(async () => (await control.deploy(m, { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 30_000, `${m} deployed`);
      await until(() => get(`/v2/models/${m}/ready`).then((r) => (r.status === 200 ? true : undefined)), 15_000, `the gateway sees ${m}`);
    }
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await grpcGw?.stop();
    await gw?.close();
    await c?.stop();
  });

  it('model metadata shows BYTES inputs and outputs (REST and gRPC)', async () => {
    const meta = await (await get('/v2/models/labels')).json();
    expect(meta).toMatchObject({
      name: 'labels',
      inputs: [{ name: 'S', datatype: 'BYTES', shape: [-1, 2] }],
      outputs: [
        { name: 'T', datatype: 'BYTES', shape: [-1, 2] },
        { name: 'id', datatype: 'INT64', shape: [-1, 2] },
        { name: 'B', datatype: 'BOOL', shape: [-1, 2] },
      ],
    });
    expect(await (await get('/v2/models/scalar-str')).json()).toMatchObject({
      inputs: [
        { name: 's', datatype: 'BYTES', shape: [] },
        { name: 'n', datatype: 'FP32', shape: [] },
      ],
      outputs: [
        { name: 't', datatype: 'BYTES', shape: [] },
        { name: 'm', datatype: 'FP32', shape: [] },
      ],
    });
    const g = await grpc<{ inputs: unknown[] }>('ModelMetadata', { name: 'labels' });
    expect(g.inputs).toEqual([{ name: 'S', datatype: 'BYTES', shape: ['-1', '2'] }]);
  });

  it('JSON in, JSON out: strings through Identity, LabelEncoder and Equal; /v1 predict too', async () => {
    const rows = [
      ['cat', 'dog'],
      ['crème brûlée', '猫'],
      ['', 'zebra 🦓'],
    ];
    const r = await post('/v2/models/labels/infer', { id: 'j1', inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', data: rows }] });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { id: string; outputs: OipOut[] };
    expect(body.id).toBe('j1');
    expect(body.outputs).toEqual([
      { name: 'T', datatype: 'BYTES', shape: [3, 2], data: rows.flat() },
      { name: 'id', datatype: 'INT64', shape: [3, 2], data: rows.flat().map(label) },
      { name: 'B', datatype: 'BOOL', shape: [3, 2], data: rows.flat().map((s) => s === 'dog') },
    ]);
    expect(rows.flat().map(label)).toEqual([0, 1, 2, 3, 4, -1]);
    // {"b64": …} elements are taken as Triton takes them.
    const b64 = await post('/v2/models/labels/infer', { inputs: [{ name: 'S', shape: [1, 2], datatype: 'BYTES', data: [{ b64: Buffer.from('猫').toString('base64') }, 'dog'] }], outputs: [{ name: 'id' }] });
    expect(((await b64.json()) as { outputs: OipOut[] }).outputs).toEqual([{ name: 'id', datatype: 'INT64', shape: [1, 2], data: [3, 1] }]);
    const v1 = await post('/v1/models/labels/predict', { instances: [['dog', 'cat']] });
    expect(v1.status).toBe(200);
    expect(((await v1.json()) as { predictions: unknown[] }).predictions).toEqual([{ T: ['dog', 'cat'], id: [1, 0], B: [true, false] }]);
    // Rank 0: one string, no batch axis.
    const s = await post('/v2/models/scalar-str/infer', { inputs: [scalarS(['héllo wörld']), scalarN([2.5])] });
    expect(((await s.json()) as { outputs: OipOut[] }).outputs).toEqual([
      { name: 't', datatype: 'BYTES', shape: [], data: ['héllo wörld'] },
      { name: 'm', datatype: 'FP32', shape: [], data: [2.5] },
    ]);
  });

  it('the binary tensor data extension: length-prefixed strings in, length-prefixed strings out', async () => {
    const flat = ['dog', '', '猫', 'a🐟b'];
    const x = prefixed(...flat);
    const r = await binary('/v2/models/labels/infer', { inputs: [{ name: 'S', shape: [2, 2], datatype: 'BYTES', parameters: { binary_data_size: x.length } }], parameters: { binary_data_output: true } }, x);
    expect(r.status).toBe(200);
    const hl = Number(r.headers.get('inference-header-content-length'));
    const raw = Buffer.from(await r.arrayBuffer());
    const head = JSON.parse(raw.subarray(0, hl).toString('utf8')) as { outputs: { name: string; datatype: string; shape: number[]; parameters: { binary_data_size: number } }[] };
    const sizes = head.outputs.map((o) => o.parameters.binary_data_size);
    expect(head.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['T', 'BYTES', [2, 2]],
      ['id', 'INT64', [2, 2]],
      ['B', 'BOOL', [2, 2]],
    ]);
    expect(sizes).toEqual([x.length, 32, 4]);
    const t = raw.subarray(hl, hl + sizes[0]!);
    expect(Buffer.from(t)).toEqual(x);
    expect(unprefixed(t)).toEqual(flat);
    const ids = raw.subarray(hl + sizes[0]!, hl + sizes[0]! + 32);
    expect(Array.from(new BigInt64Array(ids.buffer.slice(ids.byteOffset, ids.byteOffset + 32)), Number)).toEqual(flat.map(label));
    // Rank 0 in the binary form.
    const one = prefixed('ß');
    const s = await binary('/v2/models/scalar-str/infer', { inputs: [{ name: 's', shape: [], datatype: 'BYTES', parameters: { binary_data_size: one.length } }, scalarN([1])], outputs: [{ name: 't' }] }, one);
    expect(((await s.json()) as { outputs: OipOut[] }).outputs).toEqual([{ name: 't', datatype: 'BYTES', shape: [], data: ['ß'] }]);
  });

  it('the NATS binary form: several requests of several rows in one message run as one batch, each gets its own strings back', async () => {
    const requests = [['cat', 'dog', 'x', ''], ['猫', 'crème brûlée'], ['dog', 'dog', 'a', 'b', 'c', 'd']];
    const items = requests.map((flat) => ({ inputs: [{ name: 'S', datatype: 'BYTES', shape: [flat.length / 2, 2], data: prefixed(...flat) }] }));
    const reply = await c.actors.service('model-labels-v1').ask<InferReply>({ type: 'infer', items }, { timeoutMs: 10_000 });
    expect(reply.results).toHaveLength(3);
    reply.results.forEach((res, k) => {
      const ok = res as ItemOk;
      expect(ok.outputs, JSON.stringify(res)).toBeDefined();
      // The requests of one message are queued together and taken in one run: 6 rows.
      expect(ok.batch).toBe(6);
      const flat = requests[k]!;
      const [t, id, b] = ok.outputs;
      expect(t).toMatchObject({ name: 'T', datatype: 'BYTES', shape: [flat.length / 2, 2] });
      expect(unprefixed(t!.data)).toEqual(flat);
      expect(id).toMatchObject({ name: 'id', datatype: 'INT64', shape: [flat.length / 2, 2] });
      const ids = Buffer.from(id!.data);
      expect(Array.from(new BigInt64Array(ids.buffer.slice(ids.byteOffset, ids.byteOffset + ids.length)), Number)).toEqual(flat.map(label));
      expect(Array.from(b!.data)).toEqual(flat.map((s) => (s === 'dog' ? 1 : 0)));
    });
    // A lying length in one item is that item's error; the others in the message are answered.
    const lying = prefixed('cat', 'dog');
    lying.writeUInt32LE(99, 7);
    const mixed = await c.actors.service('model-labels-v1').ask<InferReply>({ type: 'infer', items: [items[1]!, { inputs: [{ name: 'S', datatype: 'BYTES', shape: [1, 2], data: lying }] }] }, { timeoutMs: 10_000 });
    expect(unprefixed((mixed.results[0] as ItemOk).outputs[0]!.data)).toEqual(requests[1]);
    expect(mixed.results[1]).toEqual({ error: { code: 'SHOAL_ERR_BAD_INPUT', message: 'input "S" (BYTES): element 1: its length says 99 bytes but only 3 are left' } });
  });

  it('concurrent HTTP requests of several rows each get their own strings back (whatever batches they shared)', async () => {
    const words = Object.keys(LABELS).concat(['x', 'y', 'zz']);
    const reqs = Array.from({ length: 24 }, (_, k) => Array.from({ length: 2 * (1 + (k % 3)) }, (_, i) => words[(k + i) % words.length]!));
    const answers = await Promise.all(
      reqs.map(async (flat) => {
        const r = await post('/v2/models/labels/infer', { inputs: [{ name: 'S', shape: [flat.length / 2, 2], datatype: 'BYTES', data: flat }] });
        expect(r.status).toBe(200);
        return ((await r.json()) as { outputs: OipOut[] }).outputs;
      }),
    );
    answers.forEach((outs, k) => {
      expect(outs[0]!.data).toEqual(reqs[k]);
      expect(outs[1]!.data).toEqual(reqs[k]!.map(label));
    });
  });

  it('gRPC: bytes_contents and raw_input_contents in, length-prefixed raw_output_contents out', async () => {
    const flat = ['cat', '猫', '', 'dog'];
    const typed = await grpc<ModelInferResponse>('ModelInfer', { model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [2, 2], contents: { bytes_contents: flat.map((s) => Buffer.from(s)) } }] });
    expect(typed.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['T', 'BYTES', ['2', '2']],
      ['id', 'INT64', ['2', '2']],
      ['B', 'BOOL', ['2', '2']],
    ]);
    expect(unprefixed(typed.raw_output_contents[0]!)).toEqual(flat);
    const ids = Buffer.from(typed.raw_output_contents[1]!);
    expect(Array.from(new BigInt64Array(ids.buffer.slice(ids.byteOffset, ids.byteOffset + 32)), Number)).toEqual(flat.map(label));
    const raw = await grpc<ModelInferResponse>('ModelInfer', { model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [2, 2] }], raw_input_contents: [prefixed(...flat)] });
    expect(Buffer.from(raw.raw_output_contents[0]!)).toEqual(prefixed(...flat));
    const cases: [unknown, RegExp][] = [
      [{ model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [2, 2], contents: { bytes_contents: [Buffer.from('a')] } }] }, /input "S" \(BYTES\): the data holds 1 element, the shape needs 4/],
      [{ model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [1, 2], contents: { bytes_contents: [Buffer.from('a'), Buffer.from([0xff, 0xfe])] } }] }, /input "S" \(BYTES\): element 1 is not valid UTF-8/],
      [{ model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [1, 2] }], raw_input_contents: [prefixed('a', 'b').subarray(0, 9)] }, /input "S" \(BYTES\): element 1: its length says 1 bytes but only 0 are left/],
      [{ model_name: 'labels', inputs: [{ name: 'S', datatype: 'BYTES', shape: [1, 2], contents: { int_contents: [1, 2] } }] }, /input "S" \(BYTES\) takes its values in contents\.bytes_contents, not contents\.int_contents/],
    ];
    for (const [req, why] of cases) {
      const e = await refused(grpc('ModelInfer', req));
      expect(e.code, String(why)).toBe(Status.INVALID_ARGUMENT);
      expect(e.details).toMatch(/^SHOAL_ERR_BAD_INPUT: /);
      expect(e.details).toMatch(why);
    }
  });

  it('bad input is a 400 naming the input, and the replica keeps serving', async () => {
    const oip = (data: unknown, datatype = 'BYTES', shape = [1, 2]) => post('/v2/models/labels/infer', { inputs: [{ name: 'S', shape, datatype, data }] });
    expect(await error(await oip(['cat', 7]))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S" (BYTES): element 1 must be a string, got number' });
    expect(await error(await oip([1, 2], 'INT64'))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S": datatype INT64 where the model takes BYTES' });
    expect(await error(await oip('cat'))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'body/inputs/0/data: Expected array' });
    const lie = (data: Buffer) => binary('/v2/models/labels/infer', { inputs: [{ name: 'S', shape: [1, 2], datatype: 'BYTES', parameters: { binary_data_size: data.length } }] }, data);
    const longer = prefixed('cat', 'dog');
    longer.writeUInt32LE(1000, 7);
    expect(await error(await lie(longer))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S" (BYTES): element 1: its length says 1000 bytes but only 3 are left' });
    const shorter = prefixed('cat', 'dog');
    shorter.writeUInt32LE(1, 7);
    expect(await error(await lie(shorter))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S" (BYTES): 2 bytes left after the 2 elements the shape holds (each element is a 4-byte little-endian length, then its bytes)' });
    expect(await error(await lie(prefixed('ok', Buffer.from([0xc0, 0xaf]))))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S" (BYTES): element 1 is not valid UTF-8 (BYTES elements are text here: ONNX string tensors)' });
    // onnxruntime-node would cut "dog\0" to "dog" (and label it 1): refused instead.
    expect(await error(await oip(['cat', 'dog\0']))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "S" (BYTES): element 1 holds a NUL character, at which onnxruntime cuts a string short' });
    // A string where a number goes; a rank-0 input sent with a shape.
    const scalar = (inputs: unknown[]) => post('/v2/models/scalar-str/infer', { inputs });
    expect(await error(await scalar([scalarS(['a']), scalarN(['2.5'])]))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "n" (FP32): element 0 must be a number, got string' });
    expect(await error(await scalar([scalarS([3]), scalarN([2.5])]))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "s" (BYTES): element 0 must be a string, got number' });
    expect(await error(await scalar([{ ...scalarS(['a']), shape: [1] }, scalarN([2.5])]))).toEqual({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: 'input "s": shape [1] has rank 1, the model takes []' });
    expect((await scalar([scalarS(['a']), scalarN([2.5])])).status).toBe(200);
    // Still serving.
    const ok = await oip(['cat', 'dog']);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { outputs: OipOut[] }).outputs[1]!.data).toEqual([0, 1]);
  });
});
