/**
 * Pipeline models end to end (ml/serving/pipeline.ts, pipeline-actor.ts): a real cluster with
 * the pipeline example's two step models deployed on their own, the pipeline registered from
 * examples/pipeline/pipeline.json and deployed under its own name. Its answer must equal running
 * the two steps by hand; bad input is a 400 naming the input; a failing step, a step model that
 * is not deployed (at deploy time and after), and a bad spec each say which step.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, request, subjects } from '../../cluster/index.ts';
import { serviceName, type InferReply, type RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { flakyModel } from '../fixtures/onnx.ts';
import { IRIS_MEAN, classifierModel, irisPipelineSpec, scalerModel } from '../fixtures/onnx-pipes.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const KEY = 'test-key-pipe-0001';
const s = subjects();

interface OipOut {
  name: string;
  datatype: string;
  shape: number[];
  data: number[];
}

const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.0, 2.9, 4.5, 1.5],
  [6.9, 3.1, 5.4, 2.1],
];

describe('pipeline models (real cluster: steps on their own replicas)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let control: RegistryClient;

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const deploy = async (name: string) => {
    await until(async () => (await control.deploy(name, { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 30_000, `${name} deployed`);
    await until(() => get(`/v2/models/${name}/ready`).then((r) => (r.status === 200 ? true : undefined)), 15_000, `the gateway sees ${name} ready`);
  };
  const outputs = async (r: Response) => Object.fromEntries(((await r.json()) as { outputs: OipOut[] }).outputs.map((o) => [o.name, o]));

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-q', profile: 'cpu-ondemand' }] });
    control = c.control;
    await control.register('iris-scaler', scalerModel());
    await control.register('iris-classifier', classifierModel());
    await control.register('flaky', flakyModel({ features: 4, outputs: 3 }));
    const gnc = await c.nats.connect(Role.GATEWAY);
    gw = await buildGateway({ nc: gnc, subjects: s, logger: createLogger({ level: 'fatal', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await deploy('iris-scaler');
    await deploy('iris-classifier');
    await deploy('flaky');
    await control.registerPipeline('iris', irisPipelineSpec());
    await deploy('iris');
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('registers with a derived signature and serves it as metadata', async () => {
    const mv = await (await control.reader()).resolve('iris');
    expect(mv.format).toBe('pipeline');
    expect(mv.pipeline?.steps.map((x) => x.model)).toEqual(['iris-scaler', 'iris-classifier']);
    const meta = (await (await get('/v2/models/iris')).json()) as { platform: string; inputs: unknown[]; outputs: unknown[] };
    expect(meta.platform).toBe('ensemble');
    expect(meta.inputs).toEqual([{ name: 'measurements', datatype: 'FP32', shape: [-1, 4] }]);
    expect(meta.outputs).toEqual([{ name: 'probs', datatype: 'FP32', shape: [-1, 3] }]);
  });

  it("answers what running the two steps by hand answers (HTTP and the binary wire form)", async () => {
    const scaled = await outputs(await post('/v2/models/iris-scaler/infer', { inputs: [{ name: 'X', shape: [3, 4], datatype: 'FP32', data: ROWS }] }));
    const byHand = await outputs(await post('/v2/models/iris-classifier/infer', { inputs: [{ name: 'Z', shape: [3, 4], datatype: 'FP32', data: scaled.Z!.data }] }));
    const res = await post('/v2/models/iris/infer', { id: 'p-1', inputs: [{ name: 'measurements', shape: [3, 4], datatype: 'FP32', data: ROWS }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { id: string; model_name: string; outputs: OipOut[] };
    expect(body).toMatchObject({ id: 'p-1', model_name: 'iris', outputs: [{ name: 'probs', datatype: 'FP32', shape: [3, 3] }] });
    body.outputs[0]!.data.forEach((v, i) => expect(v).toBeCloseTo(byHand.P!.data[i]!, 6));
    // The classes the example's weights are meant to give: setosa, versicolor, virginica.
    const argmax = (r: number) => [0, 1, 2].reduce((b, k) => (body.outputs[0]!.data[r * 3 + k]! > body.outputs[0]!.data[r * 3 + b]! ? k : b), 0);
    expect([0, 1, 2].map(argmax)).toEqual([0, 1, 2]);
    // The binary wire form on the pipeline's service subject, as a NATS client sends it.
    const data = new Uint8Array(Float32Array.from(ROWS.flat()).buffer);
    const wire = await request<InferReply>(c.client, s.service(serviceName('iris', 1)), { type: 'infer', items: [{ inputs: [{ name: 'measurements', datatype: 'FP32', shape: [3, 4], data }] }] }, { timeoutMs: 10_000 });
    const r = wire.results[0]!;
    if ('error' in r) throw new Error(r.error.message);
    const probs = new Float32Array(Uint8Array.from(r.outputs[0]!.data).buffer);
    Array.from(probs).forEach((v, i) => expect(v).toBeCloseTo(byHand.P!.data[i]!, 6));
    // Many at once (their steps travel coalesced): every request gets its own rows back.
    const order = Array.from({ length: 24 }, (_, k) => (k * 7) % 3);
    const many = await Promise.all(order.map((i) => post('/v1/models/iris/predict', { instances: [ROWS[i]] })));
    for (const [j, m] of many.entries()) {
      expect(m.status).toBe(200);
      const p = ((await m.json()) as { predictions: number[][] }).predictions[0]!;
      p.forEach((v, k) => expect(v).toBeCloseTo(byHand.P!.data[order[j]! * 3 + k]!, 6));
    }
  });

  it('bad input is a 400 naming the pipeline input; the pipeline keeps serving', async () => {
    const cases: [unknown, RegExp][] = [
      [{ inputs: [{ name: 'measurements', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }, /input "measurements": dimension 1 is 3, the model takes \[-1, 4\]/],
      [{ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }, /has no input "X" \(inputs: measurements\)/],
      [{ inputs: [{ name: 'measurements', shape: [1, 4], datatype: 'FP32', data: [1, 'x', 3, 4] }] }, /input "measurements" \(FP32\): element 1 must be a number/],
    ];
    for (const [body, msg] of cases) {
      const r = await post('/v2/models/iris/infer', body);
      const b = (await r.json()) as { error: string; code: string };
      expect({ status: r.status, code: b.code, error: b.error }).toMatchObject({ status: 400, code: 'SHOAL_ERR_BAD_INPUT', error: expect.stringMatching(msg) });
    }
    expect((await post('/v2/models/iris/infer', { inputs: [{ name: 'measurements', shape: [1, 4], datatype: 'FP32', data: ROWS[0] }] })).status).toBe(200);
  });

  it("a step's error names the step and keeps its code", async () => {
    await control.registerPipeline('pflaky', {
      inputs: [{ name: 'm' }],
      outputs: [{ name: 'y' }],
      steps: [
        { model: 'iris-scaler', input_map: { X: 'm' }, output_map: { Z: 's' } },
        { model: 'flaky', input_map: { X: 's' }, output_map: { Y: 'y' } },
      ],
    });
    await deploy('pflaky');
    // x0 at the mean scales to 0: the flaky model's gather stays in range.
    const ok = await post('/v2/models/pflaky/infer', { inputs: [{ name: 'm', shape: [1, 4], datatype: 'FP32', data: [IRIS_MEAN[0], 3, 4, 1] }] });
    expect(ok.status).toBe(200);
    const bad = await post('/v2/models/pflaky/infer', { inputs: [{ name: 'm', shape: [1, 4], datatype: 'FP32', data: [9, 3, 4, 1] }] });
    const b = (await bad.json()) as { error: string; code: string };
    expect({ status: bad.status, code: b.code, error: b.error }).toMatchObject({ status: 500, code: 'SHOAL_ERR_INFERENCE_FAILED', error: expect.stringMatching(/^pipeline pflaky v1, step "flaky" \(model flaky\): inference on flaky v1 failed/) });
  });

  it('refuses a bad spec at registration naming the step, and stores nothing', async () => {
    const reader = await control.reader();
    const specs: [string, object, RegExp][] = [
      ['p-unknown', { inputs: [{ name: 'm' }], outputs: [{ name: 'y' }], steps: [{ model: 'nope', input_map: { X: 'm' }, output_map: { Z: 'y' } }] }, /step "nope": model nope is not registered/],
      [
        'p-shape',
        { inputs: [{ name: 'm' }], outputs: [{ name: 'y' }], steps: [{ model: 'iris-classifier', input_map: { Z: 'm' }, output_map: { P: 'p' } }, { model: 'iris-scaler', input_map: { X: 'p' }, output_map: { Z: 'y' } }] },
        /step "iris-scaler": input "X" takes \[-1, 4\] but "p" from step "iris-classifier" is \[-1, 3\]/,
      ],
      ['p-unfed', { inputs: [{ name: 'm' }], outputs: [{ name: 'y' }], steps: [{ model: 'iris-scaler', input_map: {}, output_map: { Z: 'y' } }] }, /step "iris-scaler": input "X" \(FP32 \[-1, 4\]\) is not fed/],
    ];
    for (const [name, spec, msg] of specs) {
      await expect(control.registerPipeline(name, spec)).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_MODEL', message: expect.stringMatching(msg) });
      await expect(reader.get(name)).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_FOUND' });
    }
  });

  it('shoal models register takes --pipeline, and --file with --processor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-pipes-cli-'));
    writeFileSync(join(dir, 'scaler.onnx'), scalerModel());
    const proc = "export const signature = { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'Z', datatype: 'FP32', shape: [-1, 4] }] };\nexport const preprocess = (inputs: unknown) => inputs;\n";
    writeFileSync(join(dir, 'identity.ts'), proc);
    const shoal = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', ...args], { env: c.nats.env(Role.CLIENT), cwd: dir, timeout: 60_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (x: Buffer) => (stdout += x.toString('utf8')));
        p.stderr.on('data', (x: Buffer) => (stderr += x.toString('utf8')));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const pipe = await shoal('register', 'iris-cli', '--pipeline', join(import.meta.dirname, '..', '..', 'examples', 'pipeline', 'pipeline.json'));
    expect(pipe.stderr).toBe('');
    expect(pipe.stdout).toMatch(/registered pipeline iris-cli v1 \(2 steps: iris-scaler, iris-classifier; in measurements:FP32\[-1,4\] out probs:FP32\[-1,3\]\)/);
    const withProc = await shoal('register', 'scaler-cli', '--file', 'scaler.onnx', '--processor', 'identity.ts', '--json');
    expect(withProc.stderr).toBe('');
    expect(JSON.parse(withProc.stdout)).toMatchObject({ name: 'scaler-cli', version: 1, processor: { filename: 'identity.ts' } });
    const missing = await shoal('register', 'scaler-cli', 'scaler.onnx', '--processor', 'nope.ts');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read --processor nope\.ts: ENOENT/);
  });

  it('a step model that is not deployed: the deploy is refused, and requests get a 503 naming the step', async () => {
    await control.register('lonely', scalerModel());
    await control.registerPipeline('p-lonely', { inputs: [{ name: 'm' }], outputs: [{ name: 'y' }], steps: [{ model: 'lonely', input_map: { X: 'm' }, output_map: { Z: 'y' } }] });
    await expect(control.deploy('p-lonely', { readyTimeoutMs: 5000 })).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_READY', message: expect.stringMatching(/model lonely is not ready: pipeline p-lonely v1 needs it for step "lonely", and it is not deployed/) });
    // A step model undeployed under a serving pipeline.
    await control.undeploy('iris-classifier');
    const r = await until(async () => {
      const res = await post('/v2/models/iris/infer', { inputs: [{ name: 'measurements', shape: [1, 4], datatype: 'FP32', data: ROWS[0] }] });
      return res.status === 503 ? res : undefined;
    }, 15_000, 'the pipeline noticing its step is gone');
    const b = (await r.json()) as { error: string; code: string };
    expect(b).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_READY', error: expect.stringMatching(/model iris-classifier is not ready: pipeline iris v1 needs it for step "iris-classifier", and it is not deployed/) });
  });
});
