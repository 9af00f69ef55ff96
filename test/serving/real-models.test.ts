/**
 * Models shaped like the ones teams download (issue #13, items 1 and 2), on a real cluster: a
 * real nats-server, a scheduler and a node process serving with real onnxruntime (sessions on
 * worker threads), the gateway in-process answering OIP over HTTP, and the `shoal` CLI as a
 * child process.
 *
 * Warm-up: a 1-D convolution that refuses a 1-long sequence — what a synthetic warm-up sends —
 * deploys with a warning and serves real requests; a sample request stored with the version
 * warms it up instead; a sample that does not fit the signature refuses the registration; a
 * sample onnxruntime refuses fails the deploy, naming the input and onnxruntime's words.
 *
 * Batch axis: a model with a scalar input serves unbatched, rank-0 tensors in JSON and in the
 * binary extension; a recurrent step whose state is [layers, batch, hidden] serves unbatched by
 * default, and batched along axis 1 of the state with `batchAxes`, each request getting exactly
 * its own rows back.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { ModelDeployments, ModelRegistry, registryKeys, sha256, type InferReply, type ItemOk, type ReplicaStats } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { CONV, STATE, convModel, scalarModel, stateModel, stateReference } from '../fixtures/onnx-real.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const KEY = 'test-key-real-0001';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** An OIP request body for the convolution: X [rows, 4, t], values from a formula. */
function convRequest(rows: number, t: number): { inputs: { name: string; shape: number[]; datatype: string; data: number[] }[] } {
  const n = rows * CONV.channels * t;
  return { inputs: [{ name: 'X', shape: [rows, CONV.channels, t], datatype: 'FP32', data: Array.from({ length: n }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000) }] };
}

interface OipOut {
  name: string;
  datatype: string;
  shape: number[];
  data?: number[];
  parameters?: { binary_data_size?: number };
}

describe('serving real-world models (real cluster, real onnxruntime)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let registry: ModelRegistry;
  const work = mkdtempSync(join(tmpdir(), 'shoal-real-models-'));

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const get = async <T = Record<string, unknown>>(path: string): Promise<T> => (await (await fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } })).json()) as T;
  const ready = (name: string) => until(async () => ((await fetch(`${base}/v2/models/${name}/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 15_000, `the gateway sees ${name} ready`);
  /** The `shoal` CLI, as a user runs it (client role credentials in the environment). */
  const shoal = (args: string[]) => spawnSync(process.execPath, [join(ROOT, 'bin', 'shoal.mjs'), ...args], { cwd: work, env: c.nats.env(Role.CLIENT), encoding: 'utf8', timeout: 120_000 });
  /** What onnxruntime answers for the convolution, in this process. */
  const convDirect = async (rows: number, t: number): Promise<number[]> => {
    const session = await ort.InferenceSession.create(convModel());
    const x = convRequest(rows, t).inputs[0]!;
    const out = await session.run({ X: new ort.Tensor('float32', Float32Array.from(x.data), x.shape) });
    await session.release();
    return Array.from((out.Y as ort.Tensor).data as Float32Array);
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-r', profile: 'cpu-ondemand' }] });
    registry = await ModelRegistry.open(c.client);
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 90_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  describe('warm-up', () => {
    it('a model that refuses the synthetic warm-up deploys with a warning (status, metadata, CLI) and serves real requests', async () => {
      await c.control.register('conv', convModel());
      const d = await c.control.deploy('conv', { replicas: 1, readyTimeoutMs: 30_000 });
      expect(d.stable.state).toBe('ready');
      const warning = d.stable.serving?.warmup.warning ?? '';
      expect(d.stable.serving?.warmup).toMatchObject({ mode: 'synthetic', ok: false });
      expect(warning).toMatch(/synthetic warm-up failed \(input "X" FP32 \[1, 4, 1\]\): onnxruntime: .*Invalid input shape/);
      await ready('conv');
      // Real requests (sequences at least as long as the kernel) are served, as onnxruntime answers them.
      const r = await post('/v2/models/conv/infer', convRequest(2, 8));
      expect(r.status).toBe(200);
      const out = ((await r.json()) as { outputs: OipOut[] }).outputs[0]!;
      expect(out.shape).toEqual([2, CONV.filters]);
      const want = await convDirect(2, 8);
      out.data!.forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
      // A request the model refuses is the caller's answer, not the replica's end.
      const short = await post('/v2/models/conv/infer', convRequest(1, 2));
      expect(short.status).toBe(500);
      expect(((await short.json()) as { error: string }).error).toMatch(/Invalid input shape/);
      expect((await post('/v2/models/conv/infer', convRequest(1, 5))).status).toBe(200);
      // The warning is where an operator looks: model metadata, the status route, the live status, the CLI.
      const meta = await get<{ parameters: { deployed: boolean; warmup: { warning: string }; batching: { batched: boolean; dim: string } } }>('/v2/models/conv');
      expect(meta.parameters).toMatchObject({ deployed: true, warmup: { mode: 'synthetic', ok: false, warning }, batching: { batched: true, dim: 'N', maxBatchSize: 32 }, instances: 1, intraOpThreads: 1 });
      const status = await get<{ ready: boolean; stable: { warnings: string[]; batching: string } }>('/v1/models/conv/status');
      expect(status).toMatchObject({ ready: true, stable: { warnings: [warning], batching: 'batched along "N" up to 32 rows' } });
      const live = await (await ModelDeployments.open(c.client, s)).live('conv');
      expect(live.stable.warnings).toEqual([warning]);
      const cli = shoal(['models', 'status', 'conv']);
      expect(cli.status).toBe(0);
      expect(cli.stdout).toMatch(/conv: ready/);
      expect(cli.stdout).toContain(`WARNING: ${warning}`);
      expect(cli.stdout).toContain('batched along "N" up to 32 rows');
    });

    it('a sample request registered with the version (shoal models register --sample) is the warm-up: no warning', async () => {
      const file = join(work, 'conv-v2.onnx');
      writeFileSync(file, convModel(4));
      const sample = join(work, 'sample.json');
      writeFileSync(sample, JSON.stringify(convRequest(1, 16)));
      const reg = shoal(['models', 'register', 'conv', file, '--sample', sample, '--json']);
      expect(reg.status, reg.stderr).toBe(0);
      const mv = JSON.parse(reg.stdout) as { version: number; sample: { sha256: string } };
      expect(mv.version).toBe(2);
      // Content-addressed in the artifacts store like the model.
      expect(mv.sample.sha256).toBe(sha256(new TextEncoder().encode(JSON.stringify(convRequest(1, 16)))));
      expect(await registry.loadSample(await registry.version('conv', 2))).toBeDefined();
      const dep = shoal(['models', 'deploy', 'conv', '--version', '2']);
      expect(dep.status, dep.stderr).toBe(0);
      const d = await c.control.deployment('conv');
      expect(d?.stable).toMatchObject({ version: 2, serving: { warmup: { mode: 'sample', ok: true } } });
      expect(d?.stable.serving?.warmup.warning).toBeUndefined();
      const r = await post('/v2/models/conv/versions/2/infer', convRequest(1, 6));
      expect(r.status).toBe(200);
    });

    it('a sample that does not fit the signature refuses the registration, naming the input; nothing is stored', async () => {
      const model = convModel(77);
      const before = (await registry.get('conv')).versions;
      const bad = { inputs: [{ name: 'X', shape: [1, 3, 8], datatype: 'FP32', data: Array.from({ length: 24 }, () => 0) }] };
      const err = await c.control.register('conv', model, { sample: new TextEncoder().encode(JSON.stringify(bad)) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'SHOAL_ERR_BAD_MODEL', message: expect.stringMatching(/the sample request does not fit the model's signature: input "X": dimension 1 is 3, the model takes \[-1, 4, -1\]/) });
      const notJson = await c.control.register('conv', model, { sample: new TextEncoder().encode('{"inputs": [') }).catch((e: unknown) => e);
      expect(notJson).toMatchObject({ code: 'SHOAL_ERR_BAD_MODEL', message: expect.stringMatching(/sample request .* not valid JSON/) });
      expect((await registry.get('conv')).versions).toEqual(before);
      const store = await registry.store();
      expect(await store.info(registryKeys.artifact(sha256(model)))).toBeNull();
      // The CLI says the same, in one line, with a non-zero exit.
      const file = join(work, 'bad-sample.json');
      writeFileSync(file, JSON.stringify({ inputs: [{ name: 'Z', shape: [1], datatype: 'FP32', data: [1] }] }));
      const onnx = join(work, 'conv-77.onnx');
      writeFileSync(onnx, model);
      const cli = shoal(['models', 'register', 'conv', onnx, '--sample', file]);
      expect(cli.status).not.toBe(0);
      expect(cli.stderr).toMatch(/has no input "Z"/);
    });

    it('a sample onnxruntime refuses fails the deploy, naming the input and onnxruntime\'s message; warmup "sample" without one is refused', async () => {
      await c.control.register('convbad', convModel(), { sample: new TextEncoder().encode(JSON.stringify(convRequest(1, 2))) });
      // The node's threads: a start that fails must end the session workers it began (three here).
      const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${c.nodes['node-r']!.pid}/status`, 'utf8'))![1]);
      const before = threads();
      const err = await c.control.deploy('convbad', { replicas: 1, instances: 3, readyTimeoutMs: 30_000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_READY', message: expect.stringMatching(/warm-up with the sample request failed \(input "X" FP32 \[1, 4, 2\]\): onnxruntime: .*Invalid input shape/) });
      expect(threads()).toBeLessThanOrEqual(before + 1);
      expect(await c.control.deployment('convbad')).toBeUndefined();
      // The same file deploys with the synthetic warm-up (whose failure is only a warning).
      const d = await c.control.deploy('convbad', { replicas: 1, warmup: 'synthetic', readyTimeoutMs: 30_000 });
      expect(d.stable.serving?.warmup).toMatchObject({ mode: 'synthetic', ok: false });
      await c.control.undeploy('convbad');
      // Asking for the sample warm-up of a version that has none: refused before anything starts.
      await c.control.register('nosample', convModel());
      await expect(c.control.deploy('nosample', { warmup: 'sample' })).rejects.toMatchObject({ code: 'SHOAL_ERR_USAGE', message: expect.stringMatching(/nosample v1 has no sample request/) });
      // And off: nothing runs, nothing to warn about.
      const off = await c.control.deploy('nosample', { warmup: 'off', readyTimeoutMs: 30_000 });
      expect(off.stable.serving?.warmup).toEqual({ mode: 'off', ok: true });
      await c.control.undeploy('nosample');
    });
  });

  describe('batch axis', () => {
    it('a scalar input: served unbatched, rank-0 tensors in JSON and in the binary extension; a scalar sent with a shape is a 400 naming it', async () => {
      await c.control.register('scalar', scalarModel());
      const d = await c.control.deploy('scalar', { replicas: 1, readyTimeoutMs: 30_000 });
      expect(d.stable.serving?.batching).toEqual({ batched: false, maxBatchSize: 0, reason: 'input "temperature" is a scalar (shape [])' });
      await ready('scalar');
      const meta = await get<{ inputs: unknown[]; parameters: { batching: unknown } }>('/v2/models/scalar');
      expect(meta.inputs).toEqual([
        { name: 'X', datatype: 'FP32', shape: [-1, 4] },
        { name: 'temperature', datatype: 'FP32', shape: [] },
      ]);
      expect(meta.parameters.batching).toMatchObject({ batched: false, maxBatchSize: 0 });
      const r = await post('/v2/models/scalar/infer', {
        inputs: [
          { name: 'X', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] },
          { name: 'temperature', shape: [], datatype: 'FP32', data: [2] },
        ],
      });
      expect(r.status).toBe(200);
      const outs = ((await r.json()) as { outputs: OipOut[] }).outputs;
      expect(outs).toEqual([
        { name: 'Y', datatype: 'FP32', shape: [2, 4], data: [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4] },
        { name: 't2', datatype: 'FP32', shape: [], data: [4] },
      ]);
      // Binary in, binary out: a rank-0 tensor is 4 bytes.
      const x = Buffer.from(Float32Array.from([2, 4, 6, 8]).buffer);
      const t = Buffer.from(Float32Array.from([4]).buffer);
      const head = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'X', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } },
            { name: 'temperature', shape: [], datatype: 'FP32', parameters: { binary_data_size: 4 } },
          ],
          parameters: { binary_data_output: true },
        }),
      );
      const b = await fetch(`${base}/v2/models/scalar/infer`, { method: 'POST', headers: { 'x-api-key': KEY, 'inference-header-content-length': String(head.length) }, body: Buffer.concat([head, x, t]) });
      expect(b.status).toBe(200);
      const hl = Number(b.headers.get('inference-header-content-length'));
      const raw = Buffer.from(await b.arrayBuffer());
      const header = JSON.parse(raw.subarray(0, hl).toString()) as { outputs: OipOut[] };
      expect(header.outputs).toEqual([
        { name: 'Y', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
        { name: 't2', datatype: 'FP32', shape: [], parameters: { binary_data_size: 4 } },
      ]);
      const floats = new Float32Array(raw.buffer.slice(raw.byteOffset + hl, raw.byteOffset + raw.length));
      expect(Array.from(floats)).toEqual([0.5, 1, 1.5, 2, 8]);
      // A scalar sent with a shape: 400 naming the input, in JSON and in binary.
      const withShape = await post('/v2/models/scalar/infer', {
        inputs: [
          { name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
          { name: 'temperature', shape: [1], datatype: 'FP32', data: [2] },
        ],
      });
      expect(withShape.status).toBe(400);
      expect(await withShape.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', error: expect.stringMatching(/input "temperature": shape \[1\] has rank 1, the model takes \[\]/) });
      const head2 = Buffer.from(JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', parameters: { binary_data_size: 16 } }, { name: 'temperature', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }] }));
      const b2 = await fetch(`${base}/v2/models/scalar/infer`, { method: 'POST', headers: { 'x-api-key': KEY, 'inference-header-content-length': String(head2.length) }, body: Buffer.concat([head2, x, t]) });
      expect(b2.status).toBe(400);
      expect(((await b2.json()) as { error: string }).error).toMatch(/input "temperature"/);
      // Unbatched: two requests in one message run one at a time, each with its own shapes.
      const rep = await c.actors.ref('model-scalar-v1-1').ask<InferReply>({
        type: 'infer',
        items: [1, 3].map((rows, k) => ({
          inputs: [
            { name: 'X', datatype: 'FP32' as const, shape: [rows, 4], data: new Uint8Array(Float32Array.from({ length: rows * 4 }, () => k + 1).buffer) },
            { name: 'temperature', datatype: 'FP32' as const, shape: [], data: new Uint8Array(Float32Array.from([k + 1]).buffer) },
          ],
        })),
      });
      expect(rep.results.map((x) => (x as ItemOk).batch)).toEqual([1, 1]);
      expect(rep.results.map((x) => (x as ItemOk).outputs[0]!.shape)).toEqual([[1, 4], [3, 4]]);
    });

    it('a version registered before dimension names were kept is still read; its replica takes them from the model', async () => {
      const mv = await c.control.register('legacy', convModel());
      // The record as the registry wrote it before: shapes with -1, no dimParams.
      const strip = (t: { name: string; datatype: string; shape: number[] }) => ({ name: t.name, datatype: t.datatype, shape: t.shape });
      const old = { ...mv, signature: { inputs: mv.signature.inputs.map(strip), outputs: mv.signature.outputs.map(strip) } };
      const kv = (await ModelRegistry.open(await c.nats.connect(Role.SCHEDULER))).kv;
      await kv.put(registryKeys.version('legacy', 1), new TextEncoder().encode(JSON.stringify(old)));
      expect((await registry.version('legacy', 1)).signature.inputs).toEqual([{ name: 'X', datatype: 'FP32', shape: [-1, 4, -1] }]);
      // Not serving yet: metadata cannot say how it will batch, and does not guess.
      const before = await until(async () => {
        const m = await get<{ inputs: unknown[]; parameters: Record<string, unknown> }>('/v2/models/legacy');
        return m.parameters && !('batching' in m.parameters) ? m : undefined;
      }, 10_000, 'the gateway reading the legacy record');
      expect(before.parameters).toEqual({ deployed: false });
      const d = await c.control.deploy('legacy', { replicas: 1, warmup: 'off', readyTimeoutMs: 30_000 });
      expect(d.stable.serving?.batching).toEqual({ batched: true, maxBatchSize: 32, dim: 'N', axes: { X: 0, Y: 0 } });
      await c.control.undeploy('legacy');
    });

    it('a recurrent state [layers, batch, hidden]: unbatched by default; batched along axis 1 with batchAxes, each request gets its own rows', async () => {
      const { layers: L, hidden: H } = STATE;
      await c.control.register('rnn', stateModel());
      const plain = await c.control.deploy('rnn', { replicas: 1, readyTimeoutMs: 30_000 });
      expect(plain.stable.serving?.batching).toMatchObject({ batched: false, reason: 'input "h" has a fixed first dimension ([2, batch, 3])' });
      // The same version, batched along the state's axis 1 (redeployed as a canary of itself is not allowed: a second model name).
      await c.control.register('rnn-batched', stateModel());
      const bad = await c.control.deploy('rnn-batched', { batchAxes: { h: 0 } }).catch((e: unknown) => e);
      expect(bad).toMatchObject({ code: 'SHOAL_ERR_USAGE', message: expect.stringMatching(/batchAxes.h is 0, but that dimension of "h" \[2, batch, 3\] is not a named dynamic dimension/) });
      const batched = await c.control.deploy('rnn-batched', { replicas: 1, batchAxes: { h: 1 }, maxBatchSize: 16, readyTimeoutMs: 30_000 });
      expect(batched.stable.serving?.batching).toEqual({ batched: true, maxBatchSize: 16, dim: 'batch', axes: { x: 0, h: 1, y: 0, h_out: 1 } });
      await ready('rnn-batched');
      expect((await get<{ parameters: { batching: unknown } }>('/v2/models/rnn-batched')).parameters.batching).toMatchObject({ batched: true, dim: 'batch', axes: { h: 1 } });
      const cli = shoal(['models', 'status', 'rnn-batched']);
      expect(cli.stdout).toContain('batched along "batch" up to 16 rows (batch axis h:1, h_out:1; others 0)');
      expect(shoal(['models', 'status', 'rnn']).stdout).toMatch(/unbatched \(each request runs alone\): input "h" has a fixed first dimension/);

      // Three requests of 1, 2 and 3 rows in one message: one run of 6 rows when batched; unbatched,
      // three runs, each one request (`batch` counts rows of the batch axis, so 1 where there is none).
      const reqs = [1, 2, 3].map((batch, k) => ({
        batch,
        x: Array.from({ length: batch * H }, (_, i) => (k + 1) * 0.1 + i * 0.01),
        h: Array.from({ length: L * batch * H }, (_, i) => (k + 1) * -0.2 + i * 0.03),
      }));
      const message = {
        type: 'infer' as const,
        items: reqs.map((r) => ({
          inputs: [
            { name: 'x', datatype: 'FP32' as const, shape: [r.batch, H], data: new Uint8Array(Float32Array.from(r.x).buffer) },
            { name: 'h', datatype: 'FP32' as const, shape: [L, r.batch, H], data: new Uint8Array(Float32Array.from(r.h).buffer) },
          ],
        })),
      };
      const floats = (d: Uint8Array) => Array.from(new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength)));
      for (const [id, batches] of [
        ['model-rnn-batched-v1-1', [6, 6, 6]],
        ['model-rnn-v1-1', [1, 1, 1]],
      ] as const) {
        const rep = await c.actors.ref(id).ask<InferReply>(message);
        expect(rep.results.map((x) => (x as ItemOk).batch)).toEqual(batches);
        rep.results.forEach((res, k) => {
          const want = stateReference(reqs[k]!.x, reqs[k]!.h, reqs[k]!.batch);
          const outs = Object.fromEntries((res as ItemOk).outputs.map((o) => [o.name, o]));
          expect(outs.y!.shape).toEqual([reqs[k]!.batch, H]);
          expect(outs.h_out!.shape).toEqual([L, reqs[k]!.batch, H]);
          floats(outs.y!.data).forEach((v, i) => expect(v).toBeCloseTo(want.y[i]!, 5));
          floats(outs.h_out!.data).forEach((v, i) => expect(v).toBeCloseTo(want.h_out[i]!, 5));
        });
      }
      expect(await c.actors.ref('model-rnn-batched-v1-1').ask<ReplicaStats>({ type: 'stats' })).toMatchObject({ batches: 1, requests: 3, rows: 6, maxBatchSeen: 6, instances: 1 });
      expect(await c.actors.ref('model-rnn-v1-1').ask<ReplicaStats>({ type: 'stats' })).toMatchObject({ batches: 3, requests: 3, maxBatchSize: 1 });
      // Over HTTP too: the state's rows must agree with the input's.
      const mismatch = await post('/v2/models/rnn-batched/infer', {
        inputs: [
          { name: 'x', shape: [2, H], datatype: 'FP32', data: Array.from({ length: 2 * H }, () => 0) },
          { name: 'h', shape: [L, 1, H], datatype: 'FP32', data: Array.from({ length: L * H }, () => 0) },
        ],
      });
      expect(mismatch.status).toBe(400);
      expect(((await mismatch.json()) as { error: string }).error).toMatch(/input "h" has 1 rows \(dimension 1\) where "x" has 2 \(dimension 0\)/);
    });
  });
});
