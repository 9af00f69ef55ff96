/**
 * Pre/post-processing modules end to end (ml/serving/processor.ts): a real cluster (nats-server,
 * scheduler, a node process with real onnxruntime), the gateway in-process. A version registered
 * with `processor` shows the module's public signature, decodes and encodes against it, runs
 * preprocess before batching and postprocess per request on a worker thread, and a module that
 * throws (or gives the wrong tensors) fails only its own request. Bad modules are refused at
 * registration and nothing is stored.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { RegistryClient, type ModelVersion } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel } from '../fixtures/onnx.ts';
import { BAD_PROCESSORS, NUMERIC_PROCESSOR, source, textClassifierModel, textClassifierProcessor } from '../fixtures/onnx-pipes.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const KEY = 'test-key-proc-0001';

interface OipOut {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

describe('pre/post-processing modules (real cluster, real onnxruntime)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let control: RegistryClient;
  const model = mlpModel({ features: 4, outputs: 2, seed: 7 });
  let mv: ModelVersion;

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const infer = (rows: number[][]) => post('/v2/models/proc/infer', { inputs: [{ name: 'a', shape: [rows.length, 4], datatype: 'FP64', data: rows }] });

  /** What the processor + model must answer: argmax/max of the model on a / 2, by a direct onnxruntime call. */
  const expected = async (rows: number[][]) => {
    const session = await ort.InferenceSession.create(model);
    const x = Float32Array.from(rows.flat(), (v) => v / 2);
    const y = (await session.run({ X: new ort.Tensor('float32', x, [rows.length, 4]) })).Y!.data as Float32Array;
    await session.release();
    const best = rows.map((_, r) => (y[r * 2 + 1]! > y[r * 2]! ? 1 : 0));
    return { best, prob: rows.map((_, r) => y[r * 2 + best[r]!]!) };
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-p', profile: 'cpu-ondemand' }] });
    control = c.control;
    mv = await control.register('proc', model, { processor: { bytes: source(NUMERIC_PROCESSOR), filename: 'numeric.ts' } });
    const gnc = await c.nats.connect(Role.GATEWAY);
    gw = await buildGateway({ nc: gnc, subjects: subjects(), logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(async () => (await control.deploy('proc', { replicas: 1, maxBatchSize: 16, maxQueueDelayMs: 5, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 30_000, 'proc deployed');
    await until(() => get('/v2/models/proc/ready').then((r) => (r.status === 200 ? true : undefined)), 15_000, 'the gateway sees proc ready');
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('stores the module with the version; clients see its public signature', async () => {
    expect(mv.processor).toMatchObject({ filename: 'numeric.ts', sizeBytes: source(NUMERIC_PROCESSOR).length, modelSignature: { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }] } });
    expect(mv.signature.inputs).toEqual([{ name: 'a', datatype: 'FP64', shape: [-1, 4] }]);
    const meta = (await (await get('/v2/models/proc')).json()) as { inputs: unknown[]; outputs: unknown[] };
    expect(meta.inputs).toEqual([{ name: 'a', datatype: 'FP64', shape: [-1, 4] }]);
    expect(meta.outputs).toEqual([
      { name: 'best', datatype: 'INT32', shape: [-1] },
      { name: 'prob', datatype: 'FP32', shape: [-1] },
      { name: 'main', datatype: 'BOOL', shape: [-1] },
    ]);
  });

  it('preprocesses, batches, postprocesses per request — on a worker thread, not the event loop', async () => {
    // Concurrent requests of different row counts share batches; each gets its own rows back.
    const reqs = Array.from({ length: 12 }, (_, k) => Array.from({ length: 1 + (k % 3) }, (_, r) => [k * 0.3 - 1, r * 0.7, -0.5 * k, 1 + r]));
    const answers = await Promise.all(reqs.map((rows) => infer(rows)));
    for (const [k, res] of answers.entries()) {
      expect(res.status).toBe(200);
      const out = Object.fromEntries(((await res.json()) as { outputs: OipOut[] }).outputs.map((o) => [o.name, o]));
      const want = await expected(reqs[k]!);
      expect(out.best).toMatchObject({ datatype: 'INT32', shape: [reqs[k]!.length], data: want.best });
      (out.prob!.data as number[]).forEach((v, i) => expect(v).toBeCloseTo(want.prob[i]!, 5));
      expect(out.main).toMatchObject({ datatype: 'BOOL', data: reqs[k]!.map(() => false) });
    }
    // /v1 predict goes through the same module.
    const v1 = await post('/v1/models/proc/predict', { instances: [[1, 2, 3, 4]] });
    expect(v1.status).toBe(200);
    const want = await expected([[1, 2, 3, 4]]);
    expect(((await v1.json()) as { predictions: { best: number }[] }).predictions[0]).toMatchObject({ best: want.best[0] });
  });

  it('a module that throws, or gives tensors that do not fit, fails only its request; the replica keeps serving', async () => {
    const cases: [number, number, string, RegExp][] = [
      [666, 500, 'SHOAL_ERR_PREPROCESS', /preprocess of proc v1 failed: the module refuses 666 \(proc v1\)/],
      [555, 400, 'SHOAL_ERR_BAD_INPUT', /a\[0\] may not be 555/],
      [777, 500, 'SHOAL_ERR_PREPROCESS', /model input "X": dimension 1 is 3, expected \[-1, 4\]/],
      [778, 500, 'SHOAL_ERR_PREPROCESS', /model input "X" is INT32 where FP32 is expected/],
      [888, 500, 'SHOAL_ERR_POSTPROCESS', /postprocess of proc v1 failed: postprocess refuses 888/],
      [889, 500, 'SHOAL_ERR_POSTPROCESS', /postprocess gave "extra", which is not an output of the public signature/],
    ];
    const good = [[0.1, 0.2, 0.3, 0.4]];
    // Bad and good requests at once: the good ones share batches with the bad ones' neighbours.
    const [bad, fine] = await Promise.all([Promise.all(cases.map(([v]) => infer([[v, 0, 0, 0]]))), Promise.all(cases.map(() => infer(good)))]);
    for (const [i, [, status, code, msg]] of cases.entries()) {
      const body = (await bad[i]!.json()) as { error: string; code: string };
      expect({ status: bad[i]!.status, code: body.code, error: body.error }).toMatchObject({ status, code, error: expect.stringMatching(msg) });
    }
    const want = await expected(good);
    for (const r of fine) {
      expect(r.status).toBe(200);
      expect(((await r.json()) as { outputs: OipOut[] }).outputs[0]!.data).toEqual(want.best);
    }
    // Public-signature checks still come first: a request that does not fit is a 400 naming the input.
    const wrong = await post('/v2/models/proc/infer', { inputs: [{ name: 'a', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/input "a": datatype FP32 where the model takes FP64/);
    expect((await infer(good)).status).toBe(200);
  });

  it('a sample request is in the public signature: checked against it, and warms up through preprocess', async () => {
    const sample = (first: number) => new TextEncoder().encode(JSON.stringify({ inputs: [{ name: 'a', shape: [1, 4], datatype: 'FP64', data: [first, 0.5, 0.25, 1] }] }));
    // A sample in the ONNX file's own signature (X, FP32) does not fit what clients send.
    const modelShaped = new TextEncoder().encode(JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
    await expect(control.register('proc-s0', model, { processor: { bytes: source(NUMERIC_PROCESSOR), filename: 'numeric.ts' }, sample: modelShaped })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_MODEL', message: expect.stringMatching(/sample request does not fit/) });
    // A public sample: deployed with warmup "sample", the replica runs it through the module and the model.
    await control.register('proc-s1', model, { processor: { bytes: source(NUMERIC_PROCESSOR), filename: 'numeric.ts' }, sample: sample(1) });
    const t = await control.deploy('proc-s1', { replicas: 1, warmup: 'sample', readyTimeoutMs: 20_000 });
    expect(t.stable.state).toBe('ready');
    await until(() => get('/v2/models/proc-s1/ready').then((r) => (r.status === 200 ? true : undefined)), 15_000, 'the gateway sees proc-s1 ready');
    const meta = (await (await get('/v2/models/proc-s1')).json()) as { parameters?: { warmup?: { mode: string; ok: boolean } } };
    expect(meta.parameters?.warmup).toMatchObject({ mode: 'sample', ok: true });
    // A sample the module refuses (666 throws in preprocess) fails the deploy, saying so.
    await control.register('proc-s2', model, { processor: { bytes: source(NUMERIC_PROCESSOR), filename: 'numeric.ts' }, sample: sample(666) });
    await expect(control.deploy('proc-s2', { replicas: 1, warmup: 'sample', readyTimeoutMs: 10_000 })).rejects.toThrow(/preprocess refused the sample request: .*the module refuses 666/);
    await control.undeploy('proc-s1');
  });

  it('refuses a bad module at registration, saying why, and stores nothing', async () => {
    for (const b of BAD_PROCESSORS) {
      const name = `bad-${b.filename.replace(/\W/g, '-')}`;
      await expect(control.register(name, model, { processor: { bytes: source(b.source), filename: b.filename } }), b.why).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_MODEL', message: expect.stringMatching(b.message) });
      await expect((await control.reader()).get(name), `${b.why}: nothing stored`).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_FOUND' });
    }
  });

  // The example text classifier: raw strings in, label + score out. Needs BYTES tensors (issue #13 item 5).
  it('serves the text classifier example: raw strings in, label and score out', async () => {
    await control.register('sentiment', textClassifierModel(), { processor: textClassifierProcessor() });
    await until(async () => (await control.deploy('sentiment', { replicas: 1, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 30_000, 'sentiment deployed');
    await until(() => get('/v2/models/sentiment/ready').then((r) => (r.status === 200 ? true : undefined)), 15_000, 'the gateway sees sentiment ready');
    const res = await post('/v2/models/sentiment/infer', { inputs: [{ name: 'text', shape: [2], datatype: 'BYTES', data: ['I love it, great support!', 'Awful and slow. I want a refund.'] }] });
    expect(res.status).toBe(200);
    const out = Object.fromEntries(((await res.json()) as { outputs: OipOut[] }).outputs.map((o) => [o.name, o]));
    expect(out.label).toMatchObject({ datatype: 'BYTES', shape: [2], data: ['positive', 'negative'] });
    expect(out.score).toMatchObject({ datatype: 'FP32', shape: [2] });
    for (const s of out.score!.data as number[]) expect(s).toBeGreaterThan(0.9);
  });
});
