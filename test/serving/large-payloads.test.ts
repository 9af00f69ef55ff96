/**
 * Bodies larger than one NATS message, end to end on real processes: nats-server (max_payload
 * 8 MB), a scheduler, a node agent hosting the replicas (real onnxruntime) and the gateway
 * process with its default body limit (64 MiB). A 20 MiB image in (binary tensor data, and a
 * JSON body over 8 MB), a 20 MiB answer out, each equal to onnxruntime run directly; small
 * requests still coalesce beside a large one; and a 70 MiB body gets a 413 whose JSON body the
 * client reads — from fetch, and from a raw socket that keeps sending (Content-Length or chunked).
 * The gateway's gRPC service takes the same path: a 20 MiB ModelInfer in, 20 MiB out.
 */
import { connect } from 'node:net';
import { Metadata, credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { loadInferencePackage, type ModelInferResponse } from '../../gateway/grpc/proto.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { affineModel, channelSumModel } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["ml/serving/actors.ts"]'];
const MiB = 1024 * 1024;
/** [1, 5, 1024, 1024] FP32: 20 MiB. */
const IMAGE = [1, 5, 1024, 1024];

function image(shape: number[], seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 2 - 1);
}

/** What onnxruntime answers in this process, with the replica's session options. */
async function direct(model: Uint8Array, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
  try {
    const out = await session.run({ X: new ort.Tensor('float32', x, shape) });
    return out.Y!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** Sends raw bytes on a socket as fast as it takes them; resolves with what came back and any socket error. */
function rawExchange(port: number, head: string, body: (write: (b: Buffer) => boolean) => AsyncIterable<void> | void): Promise<{ response: string; error?: string }> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let response = '';
    let error: string | undefined;
    sock.on('data', (d) => (response += d.toString('latin1')));
    sock.on('error', (e) => (error = `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`));
    sock.on('close', () => resolve(error ? { response, error } : { response }));
    sock.write(head);
    void (async () => {
      const it = body((b) => sock.write(b));
      if (it) for await (const _ of it) if (sock.writableNeedDrain) await new Promise((r) => sock.once('drain', r));
      // Sent everything: wait for the full answer, then close our side.
      await until(() => (/\r\n\r\n\{.*\}$/s.test(response) || error ? true : undefined), 20_000, 'the answer', 20).catch(() => undefined);
      sock.end();
    })();
  });
}

async function* chunks(total: number, frame: (b: Buffer) => Buffer, write: (b: Buffer) => boolean, tail?: Buffer): AsyncIterable<void> {
  const chunk = Buffer.alloc(MiB, 0x31);
  for (let sent = 0; sent < total; sent += chunk.length) {
    write(frame(chunk));
    yield;
  }
  if (tail) write(tail);
}

describe('large tensors through the gateway (real processes)', () => {
  let c: TestCluster;
  let base = '';
  let port = 0;
  let grpc: Client;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    const gw = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', ...ARGS]);
    const info = (await gw.ready) as { url: string; grpc: string };
    base = info.url;
    // grpc-js clients take at most 4 MiB per message unless told otherwise.
    grpc = new (loadInferencePackage().inference.GRPCInferenceService)(info.grpc, credentials.createInsecure(), { 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 });
    port = Number(new URL(base).port);
    await c.control.register('pool', channelSumModel());
    await c.control.register('affine', affineModel());
    for (const name of ['pool', 'affine']) {
      await until(async () => (await c.control.deploy(name, { replicas: 1, maxBatchSize: 8, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 40_000, `${name} deployed`);
      await until(async () => ((await fetch(`${base}/v2/models/${name}/ready`)).status === 200 ? true : undefined), 15_000, `the gateway sees ${name}`);
    }
  }, 120_000);

  afterAll(async () => {
    grpc?.close();
    await c?.stop();
  });

  const binary = (model: string, x: Float32Array, shape: number[], binaryOut: boolean) => {
    const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'X', shape, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }], ...(binaryOut ? { parameters: { binary_data_output: true } } : {}) }));
    return fetch(`${base}/v2/models/${model}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) },
      body: Buffer.concat([head, Buffer.from(x.buffer, x.byteOffset, x.byteLength)]),
    });
  };

  it('a 20 MiB image (binary tensor data) is answered as onnxruntime answers it', async () => {
    const x = image(IMAGE, 1);
    expect(x.byteLength).toBe(20 * MiB);
    const r = await binary('pool', x, IMAGE, false);
    const body = (await r.json()) as { outputs: { name: string; shape: number[]; data: number[] }[] };
    expect(r.status, JSON.stringify(body)).toBe(200);
    expect(body.outputs[0]).toMatchObject({ name: 'Y', shape: [1, 5] });
    expect(Float32Array.from(body.outputs[0]!.data)).toEqual(await direct(channelSumModel(), x, IMAGE));
  });

  it('a JSON body over one NATS message (≈ 11 MB) is answered as onnxruntime answers it', async () => {
    const shape = [1, 1, 1024, 1024];
    const x = image(shape, 2);
    const text = JSON.stringify({ inputs: [{ name: 'X', shape, datatype: 'FP32', data: Array.from(x) }] });
    expect(text.length).toBeGreaterThan(8 * MiB);
    const r = await fetch(`${base}/v2/models/pool/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
    const body = (await r.json()) as { outputs: { data: number[] }[] };
    expect(r.status, JSON.stringify(body)).toBe(200);
    expect(Float32Array.from(body.outputs[0]!.data)).toEqual(await direct(channelSumModel(), x, shape));
  });

  it('a 20 MiB answer (larger than one NATS message) comes back whole', async () => {
    const x = image(IMAGE, 3);
    const r = await binary('affine', x, IMAGE, true);
    expect(r.status).toBe(200);
    const raw = Buffer.from(await r.arrayBuffer());
    const hl = Number(r.headers.get('inference-header-content-length'));
    const head = JSON.parse(raw.subarray(0, hl).toString()) as { outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[] };
    expect(head.outputs[0]).toMatchObject({ name: 'Y', shape: IMAGE, parameters: { binary_data_size: 20 * MiB } });
    const y = raw.subarray(hl);
    expect(y.length).toBe(20 * MiB);
    const want = await direct(affineModel(), x, IMAGE);
    expect(Buffer.compare(y, Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(0);
  });

  it('over gRPC too: a 20 MiB ModelInfer (raw contents) in, a 20 MiB answer out, as onnxruntime answers it', async () => {
    const x = image(IMAGE, 6);
    const res = await new Promise<ModelInferResponse>((resolve, reject) =>
      (grpc as unknown as { ModelInfer: (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: ModelInferResponse) => void) => void }).ModelInfer(
        { model_name: 'affine', inputs: [{ name: 'X', datatype: 'FP32', shape: IMAGE }], raw_input_contents: [Buffer.from(x.buffer, x.byteOffset, x.byteLength)] },
        new Metadata(),
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );
    const y = res.raw_output_contents[0]!;
    expect(y.length).toBe(20 * MiB);
    const want = await direct(affineModel(), x, IMAGE);
    expect(Buffer.compare(Buffer.from(y), Buffer.from(want.buffer, want.byteOffset, want.byteLength))).toBe(0);
  });

  it('small requests still coalesce into shared NATS messages while a large one is in flight', async () => {
    const small = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 3, 4, 4], datatype: 'FP32', data: Array.from(image([1, 3, 4, 4], 4)) }] });
    const want = await direct(channelSumModel(), image([1, 3, 4, 4], 4), [1, 3, 4, 4]);
    const coalesced = async () => {
      const m = await (await fetch(`${base}/metrics`)).text();
      const num = (k: string) => Number(new RegExp(`shoal_gateway_nats_message_requests_${k}\\{service="model-pool-v1"\\} ([\\d.e+]+)`).exec(m)?.[1] ?? 0);
      return { requests: num('sum'), messages: num('count') };
    };
    const before = await coalesced();
    // Bursts until one message carried several requests (a burst's requests reach the gateway in one or a few turns).
    await until(async () => {
      const large = binary('pool', image(IMAGE, 5), IMAGE, false);
      const answers = await Promise.all(Array.from({ length: 48 }, () => fetch(`${base}/v2/models/pool/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: small })));
      for (const a of answers) expect(Float32Array.from(((await a.json()) as { outputs: { data: number[] }[] }).outputs[0]!.data)).toEqual(want);
      expect((await large).status).toBe(200);
      const now = await coalesced();
      return now.requests - before.requests > now.messages - before.messages ? true : undefined;
    }, 60_000, 'a NATS message carrying more than one request');
  });

  it('70 MiB against the 64 MiB limit: fetch gets the 413 and its JSON body', async () => {
    const r = await fetch(`${base}/v2/models/pool/infer`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '10' }, body: Buffer.alloc(70 * MiB) });
    expect(r.status).toBe(413);
    expect(await r.json()).toMatchObject({ code: 'SHOAL_ERR_PAYLOAD_TOO_LARGE', error: expect.stringMatching(/larger than the limit of 67108864 bytes/) });
  });

  it('70 MiB from a raw socket that keeps sending (Content-Length, then chunked): the 413 is read, no reset', async () => {
    const total = 70 * MiB;
    const withLength = await rawExchange(port, `POST /v2/models/pool/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${total}\r\n\r\n`, (w) => chunks(total, (b) => b, w));
    const chunked = await rawExchange(port, `POST /v2/models/pool/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`, (w) =>
      chunks(total, (b) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from('\r\n')]), w, Buffer.from('0\r\n\r\n')),
    );
    for (const got of [withLength, chunked]) {
      expect(got.error).toBeUndefined();
      expect(got.response).toMatch(/^HTTP\/1\.1 413 /);
      expect(JSON.parse(got.response.slice(got.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'SHOAL_ERR_PAYLOAD_TOO_LARGE' });
    }
  });

  it('a body declared far past the limit is refused and cut, not read (the drain is bounded)', async () => {
    // 1 GiB declared: the server answers and closes instead of reading on, so sending 64 MiB of
    // it fails (a drained body would be taken whole, as the 70 MiB ones above are). Whether the
    // 413 itself is read first is up to the race the drain exists to avoid.
    const got = await rawExchange(port, `POST /v2/models/pool/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 * MiB}\r\n\r\n`, (w) => chunks(64 * MiB, (b) => b, w));
    expect(got.error).toMatch(/EPIPE|ECONNRESET/);
  });

  it('a client that asks first (Expect: 100-continue) is answered 413 before it sends the body', async () => {
    const got = await rawExchange(port, `POST /v2/models/pool/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${70 * MiB}\r\nExpect: 100-continue\r\n\r\n`, () => undefined);
    expect(got.error).toBeUndefined();
    expect(got.response).not.toMatch(/100 Continue/);
    expect(got.response).toMatch(/^HTTP\/1\.1 413 /);
    expect(JSON.parse(got.response.slice(got.response.indexOf('\r\n\r\n') + 4))).toMatchObject({ code: 'SHOAL_ERR_PAYLOAD_TOO_LARGE' });
  });
});
