/**
 * Bad input at the edge: whatever a client sends — a missing or malformed body, unknown fields,
 * an internal actor type as a job, a number too big to be one, broken HTTP framing, headers
 * or a URL too long, a body that never finishes — gets a 4xx with the documented
 * `{"error", "code"}` body naming what was wrong, never a 500 and never a bare socket error.
 * A real nats-server, scheduler and node process (serving and training actors, a real replica),
 * and in-process gateways over real HTTP (raw sockets where fetch would refuse to send it).
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, request, subjects, type NatsConnection, type SchedulerStatus } from '../../cluster/index.ts';
import { JobClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["shoal:ml/serving/actors.ts", "shoal:ml/training/actors.ts"]'];
const s = subjects();

interface Answer {
  status: number;
  headers: string;
  body: string;
}

/** Sends bytes on a raw TCP connection and reads the one response (until the server closes). */
function raw(port: number, data: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', (err) => (chunks.length ? undefined : reject(err)));
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body: rest.join('\r\n\r\n') });
    });
    sock.write(data);
  });
}

describe('bad input at the edge (real cluster, gateway over HTTP)', () => {
  let c: TestCluster;
  let nats: TestNats;
  let nc: NatsConnection;
  let gw: FastifyInstance;
  let slow: FastifyInstance;
  let base = '';
  let port = 0;
  let slowPort = 0;
  const rows = randomRows(2);

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'edge-a', profile: 'cpu-ondemand' }] });
    nats = c.nats;
    nc = c.client;
    // A client changes models through the registry service (it may write no KV or store of its own).
    const control = c.control;
    await control.register('mlp', mlpModel({ seed: 1 }));
    await until(async () => (await control.deploy('mlp', { replicas: 1, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 30_000, 'mlp deployed');
    const logger = createLogger({ level: 'silent', pretty: false });
    gw = await buildGateway({ nc: await nats.connect(Role.GATEWAY), subjects: s, logger });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    port = (gw.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    // A gateway that gives clients one second to send a whole request.
    slow = await buildGateway({ nc: await nats.connect(Role.GATEWAY), subjects: s, logger, inference: false, receiveTimeoutMs: 1000 });
    await slow.listen({ host: '127.0.0.1', port: 0 });
    slowPort = (slow.server.address() as AddressInfo).port;
    await until(async () => ((await fetch(`${base}/v2/models/mlp/ready`)).status === 200 ? true : undefined), 15_000, 'gateway sees mlp ready');
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    await slow?.close();
    await c?.stop();
  });

  const expectError = async (r: Response, status: number, code: string | RegExp, error: RegExp) => {
    const text = await r.text();
    expect({ status: r.status, type: r.headers.get('content-type') }, text).toMatchObject({ status, type: expect.stringMatching(/^application\/json/) });
    const body = JSON.parse(text) as { error: string; code: string };
    expect(body.code).toMatch(code);
    expect(body.error).toMatch(error);
  };

  it('an inference POST with a missing, empty or malformed body is a 4xx naming what is wrong, never a 500', async () => {
    // fetch labels a string body text/plain when no content-type is given; raw() sends none.
    const post = (path: string, body: string | Uint8Array | undefined, contentType?: string) =>
      fetch(`${base}${path}`, { method: 'POST', ...(contentType ? { headers: { 'content-type': contentType } } : {}), ...(body !== undefined ? { body } : {}) });
    for (const path of ['/v2/models/mlp/infer', '/v2/models/mlp/versions/1/infer', '/v1/models/mlp/predict']) {
      const top = path.startsWith('/v1') ? /instances/ : /inputs/;
      const cases: [string | Uint8Array | undefined, string | undefined, number, string, RegExp][] = [
        [undefined, undefined, 400, 'SHOAL_ERR_BAD_INPUT', /body is empty/],
        ['', 'text/plain', 400, 'SHOAL_ERR_BAD_INPUT', /body is empty/],
        ['', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /body is empty/],
        ['null', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /^body: Expected object/],
        ['[]', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /^body: Expected object/],
        ['[{"name":"X"}]', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /^body: Expected object/],
        ['"x"', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /^body: Expected object/],
        ['42', undefined, 400, 'SHOAL_ERR_BAD_INPUT', /^body: Expected object/],
        ['{}', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', top],
        ['{"inputs": null, "instances": null}', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', top],
        ['{"inputs": [', 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /not valid JSON/],
        [new Uint8Array([0xff, 0xfe]), 'application/json', 400, 'SHOAL_ERR_BAD_INPUT', /not valid JSON/],
        ['{}', 'no slash here', 415, 'SHOAL_ERR_BAD_CONTENT_TYPE', /content-type/i],
      ];
      for (const [body, ct, status, code, error] of cases) {
        const r = await post(path, body, ct);
        await expectError(r, status, code, error).catch((err: Error) => {
          throw new Error(`${path} with body ${JSON.stringify(body)} and content-type ${JSON.stringify(ct)}: ${err.message}`);
        });
      }
      // No content-type at all: no body, an empty chunked body, a body.
      for (const [head, body, error] of [
        ['Content-Length: 0', '', /body is empty/],
        ['Transfer-Encoding: chunked', '0\r\n\r\n', /body is empty/],
        ['Content-Length: 4', 'null', /^body: Expected object/],
      ] as const) {
        const a = await raw(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${head}\r\n\r\n${body}`);
        expect({ status: a.status, body: JSON.parse(a.body) as unknown }, `${path} ${head}`).toMatchObject({ status: 400, body: { code: 'SHOAL_ERR_BAD_INPUT', error: expect.stringMatching(error) } });
      }
    }
    // And serving goes on.
    const ok = await post('/v2/models/mlp/infer', JSON.stringify({ inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP32', data: rows }] }), 'application/json');
    expect(ok.status).toBe(200);
  });

  it('POST /v1/jobs refuses unknown fields and actor types that are not job entry points', async () => {
    const spec = { model: { name: 'edge', type: 'logreg' }, dataset: 'no-such-dataset', hyper: { steps: 5 }, workers: 1 };
    const submit = (body: unknown) => fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await expectError(await submit({ id: 'edge-typo', spec, actortype: 'training-job' }), 400, 'SHOAL_ERR_BAD_REQUEST', /additional propert.*"actortype"/);
    await expectError(await submit({ id: 'edge-extra', spec, priority: 3 }), 400, 'SHOAL_ERR_BAD_REQUEST', /"priority"/);
    // Nodes report the job types they load next to their actor types.
    const st = await request<SchedulerStatus>(nc, s.scheduler('status'), { type: 'status' });
    expect(st.nodes[0]?.capabilities).toMatchObject({ jobTypes: ['training-job'], actorTypes: expect.arrayContaining(['training-job', 'trainer-worker', 'shoal-inference']) });
    for (const actorType of ['trainer-worker', 'shoal-inference', 'no-such-type']) {
      await expectError(await submit({ id: `edge-${actorType}`, spec, actorType }), 400, 'SHOAL_ERR_UNKNOWN_JOB_TYPE', new RegExp(`"${actorType}".*job types: training-job`));
    }
    const jobs = await JobClient.open(nc);
    // Refused before anything was queued.
    await expect(jobs.get('edge-trainer-worker')).rejects.toThrow(/not found/);
    // A job type, by default or by name, is accepted (this one then fails on its dataset).
    for (const [id, body] of [
      ['edge-default', { id: 'edge-default', spec }],
      ['edge-named', { id: 'edge-named', spec, actorType: 'training-job' }],
    ] as const) {
      const r = await submit(body);
      expect(r.status, await r.clone().text()).toBe(202);
      expect(await r.json()).toEqual({ id, duplicate: false });
    }
    // The same refusal from JobClient itself (the CLI, product code).
    await expect(jobs.submit({}, { id: 'edge-client', actorType: 'trainer-worker' })).rejects.toMatchObject({ code: 'SHOAL_ERR_UNKNOWN_JOB_TYPE', status: 400 });
  });

  it('a job submitted over raw NATS with an actor type no live node offers as a job type fails at once, saying why', async () => {
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    await jetstream(nc).publish(s.jobsSubmit, new TextEncoder().encode(JSON.stringify({ id: 'edge-raw', actorType: 'trainer-worker', spec: {} })), { headers: h, msgID: 'edge-raw' });
    const jobs = await JobClient.open(nc);
    const rec = await until(async () => {
      const r = await jobs.get('edge-raw');
      return r.state === 'failed' ? r : undefined;
    }, 15_000, 'edge-raw failed');
    expect(rec.reason).toMatch(/"trainer-worker" is not a job type.*job types: training-job/);
  });

  it('GET /v1/status refuses a waitMs out of range, non-finite ones included; querystring numbers still coerce', async () => {
    const status = (q: string) => fetch(`${base}/v1/status?waitMs=${q}`);
    for (const q of ['9'.repeat(400), '1e400', '-1e400', '5001', '49', '1e4']) await expectError(await status(q), 400, 'SHOAL_ERR_BAD_REQUEST', /querystring\/waitMs must be/);
    for (const q of ['abc', 'NaN', 'Infinity', '100.5']) await expectError(await status(q), 400, 'SHOAL_ERR_BAD_REQUEST', /querystring\/waitMs must be/);
    const ok = await status('1e2');
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { processes: unknown[] }).processes.length).toBeGreaterThan(0);
  });

  it("errors of Node's HTTP layer and of the router carry the documented body", async () => {
    const parse = (a: Answer) => {
      expect(a.headers).toMatch(/content-type: application\/json/i);
      return JSON.parse(a.body) as { error: string; code: string };
    };
    const framing = await raw(port, 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    expect(framing.status).toBe(400);
    expect(parse(framing)).toMatchObject({ code: 'SHOAL_ERR_BAD_REQUEST', error: expect.stringMatching(/malformed HTTP request.*Content-Length/i) });
    const bigHeaders = await raw(port, `GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(bigHeaders.status).toBe(431);
    expect(parse(bigHeaders)).toMatchObject({ code: 'SHOAL_ERR_HEADERS_TOO_LARGE', error: expect.stringMatching(/headers/) });
    const longUrl = await raw(port, `GET /v2/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(longUrl.status).toBe(414);
    expect(parse(longUrl)).toMatchObject({ code: 'SHOAL_ERR_URI_TOO_LONG' });
    // The router's own refusals: a path parameter over its length limit, a broken %-escape.
    await expectError(await fetch(`${base}/v2/models/${'m'.repeat(200)}/ready`), 414, 'SHOAL_ERR_URI_TOO_LONG', /too long/);
    await expectError(await fetch(`${base}/v2/models/%E0%A4%A/ready`), 400, 'SHOAL_ERR_BAD_REQUEST', /url/i);
    // The gateway is fine afterwards.
    expect((await fetch(`${base}/v2/health/live`)).status).toBe(200);
  });

  it('a request whose body never finishes is answered 408 at the receive timeout, not at Node\'s 30 s check', { timeout: 20_000 }, async () => {
    // Headers and half a body, then nothing: the gateway (1 s receive timeout) must answer by itself.
    const body = await raw(slowPort, 'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"spec":');
    expect(body.status).toBe(408);
    expect(JSON.parse(body.body)).toMatchObject({ code: 'SHOAL_ERR_REQUEST_TIMEOUT', error: expect.stringMatching(/1000 ms/) });
    // Headers that never finish (slowloris) likewise.
    const head = await raw(slowPort, 'GET /v2 HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    expect(head.status).toBe(408);
    expect(JSON.parse(head.body)).toMatchObject({ code: 'SHOAL_ERR_REQUEST_TIMEOUT' });
  });
});
