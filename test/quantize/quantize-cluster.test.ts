/**
 * Quantization end to end on a real cluster (nats-server with auth, scheduler with the registry
 * service, a node agent): an MLP trained by a Shoal job is quantized to int8 with the client's
 * rights, registered as the next version with lineage and its report, deployed and served over
 * NATS within the accuracy bound on its holdout; a rejected version is refused by deploy and
 * canary with the reason; a model with ops the quantizer does not handle is refused with their
 * list and nothing is registered.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, request, subjects } from '../../cluster/index.ts';
import { floatTensor, onnxModel } from '../../kernels/index.ts';
import { DatasetStore, EVAL_BATCH, JobClient, ModelRegistry, evaluate, generateFraud, quantizeVersion, serviceName, split, take, type DatasetVersion, type InferReply, type QuantizationReport } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const s = subjects();
/** Few timed runs: the test checks the report's shape and the registry, never the timings. */
const LATENCY = { rounds: 2, iterations: 20, warmup: 5 };

describe('int8 quantization of a trained MLP (real cluster)', () => {
  let c: TestCluster;
  let ds: DatasetVersion;
  let registry: ModelRegistry;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-q', profile: 'cpu-ondemand' }] });
    ds = await c.control.registerDataset('fraud-quant', generateFraud({ rows: 6000, seed: 21 }), { splitSeed: 9 });
    registry = await ModelRegistry.open(c.client);
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: 'fraud-q', type: 'mlp', hidden: [64, 32] }, dataset: 'fraud-quant', hyper: { optimizer: 'adam', lr: 0.01, steps: 60, batchSize: 512, seed: 2 }, workers: 1, checkpointEvery: 20 } as never, { id: 'job-fraud-q' });
    const done = await jobs.follow('job-fraud-q', () => undefined, 180_000);
    expect(done.reason).toBeUndefined();
  }, 240_000);

  afterAll(async () => {
    await c?.stop();
  });

  it('registers v2 with lineage and its report, and v2 serves within a point of v1 on the holdout', async () => {
    const v1 = await registry.version('fraud-q', 1);
    const { version: v2, report } = await quantizeVersion(c.client, s, 'fraud-q', 1, { mode: 'int8', latency: LATENCY });
    expect(v2.version).toBe(2);
    expect(v2.lineage).toMatchObject({ parentVersion: 1, datasetDigest: ds.digest, sourceTrainingJobId: 'job-fraud-q', quantizedFrom: { name: 'fraud-q', version: 1, sha256: v1.sha256, mode: 'int8', format: 'integer' } });
    expect(v2.lineage.trainingJobId).toBeUndefined();
    expect(v2.signature.inputs).toEqual(v1.signature.inputs);
    // The report is stored with the version, as returned.
    expect(v2.quantization).toEqual(JSON.parse(JSON.stringify(report)));
    expect(report.sizeBytes).toBe(v2.sizeBytes);
    expect(report.sizeRatio).toBeCloseTo(v2.sizeBytes / v1.sizeBytes, 9);
    // Each float weight (4 bytes) became one int8 byte; a model this small also carries graph overhead.
    const weights = ds.columns.length * 64 + 64 * 32 + 32;
    expect(v1.sizeBytes - v2.sizeBytes).toBeGreaterThan(2 * weights);
    expect(report.quantizedWeights).toBe(3);
    expect(report.latency.map((l) => [l.batch, l.runs, l.roundRatios.length])).toEqual([[1, 40, 2], [32, 40, 2]]);
    for (const l of report.latency) expect(l.ratio).toBeCloseTo(l.quantizedMs / l.floatMs, 9);
    // Holdout: the same rows the job held out, scored by both models.
    const h = report.holdout as Exclude<QuantizationReport['holdout'], { skipped: string }>;
    expect(h).toMatchObject({ dataset: `fraud-quant@${ds.digest}`, rows: ds.splits.holdout, mainMetric: 'auc' });
    const auc = h.metrics.find((m) => m.metric === 'auc')!;
    expect(Math.abs(auc.delta)).toBeLessThan(0.01);
    expect(v2.metrics.auc).toBeCloseTo(auc.quantized, 9);
    // The rejection follows the report (whichever way the timings went on this machine).
    expect(Boolean(v2.rejected)).toBe(report.verdict.rejected);
    expect(v2.rejected?.reason ?? '').toBe(report.verdict.reasons.join('; '));

    // Served through the cluster: the replica answers the holdout rows like onnxruntime runs v2 here.
    await c.control.deploy('fraud-q', { version: 2, replicas: 1, readyTimeoutMs: 60_000, allowRejected: true });
    const data = await (await DatasetStore.open(c.client)).load(ds);
    const rows = take(data, split(data.rows, ds.splits.seed).holdout);
    const n = rows.y.length;
    const D = rows.d;
    const served = new Float32Array(n);
    // In batches of EVAL_BATCH rows, as the report scored them (dynamic int8 scales each batch's activations).
    for (let at = 0; at < n; at += EVAL_BATCH) {
      const k = Math.min(EVAL_BATCH, n - at);
      const x = rows.x.slice(at * D, (at + k) * D);
      const reply = await request<InferReply>(c.client, s.service(serviceName('fraud-q', 2)), { type: 'infer', items: [{ inputs: [{ name: 'X', datatype: 'FP32', shape: [k, D], data: new Uint8Array(x.buffer) }] }] }, { timeoutMs: 20_000 });
      const r = reply.results[0]!;
      if ('error' in r) throw new Error(r.error.message);
      served.set(new Float32Array(Uint8Array.from(r.outputs[0]!.data).buffer), at);
    }
    const { bytes: floatBytes } = await registry.loadArtifact('fraud-q', 1);
    const sess = await ort.InferenceSession.create(floatBytes);
    const pf = (await sess.run({ X: new ort.Tensor('float32', rows.x, [n, D]) })).Y!.data as Float32Array;
    await sess.release();
    const aucServed = evaluate(served, rows.y, h.threshold).auc;
    const aucFloat = evaluate(pf, rows.y, h.threshold).auc;
    expect(aucFloat).toBeCloseTo(auc.source, 6);
    expect(aucServed).toBeCloseTo(auc.quantized, 6);
    expect(Math.abs(aucServed - aucFloat)).toBeLessThan(0.01);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(served[i]! - pf[i]!));
    expect(worst).toBeGreaterThan(0); // it is the quantized model that answered
    expect(worst).toBeLessThan(0.05);
  }, 240_000);

  it('a version registered as rejected is refused by deploy and canary with its reason, and served when allowed', async () => {
    const { bytes } = await registry.loadArtifact('fraud-q', 2);
    const bad = await c.control.register('fraud-q', bytes, { rejected: { reason: 'slower at batch 1: 1.4×' }, lineage: { parentVersion: 1 } });
    expect((await registry.version('fraud-q', bad.version)).rejected).toEqual({ reason: 'slower at batch 1: 1.4×' });
    await expect(c.control.deploy('fraud-q', { version: bad.version })).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_REJECTED', message: expect.stringContaining(`fraud-q v${bad.version} is marked rejected (slower at batch 1: 1.4×)`) });
    await expect(c.control.canary('fraud-q', { version: bad.version })).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_REJECTED' });
    // Nothing changed: v2 still serves alone.
    const d = await c.control.deployment('fraud-q');
    expect(d?.stable.version).toBe(2);
    expect(d?.canary).toBeUndefined();
    const canary = await c.control.canary('fraud-q', { version: bad.version, allowRejected: true, readyTimeoutMs: 60_000 });
    expect(canary.canary?.version).toBe(bad.version);
    await expect(c.control.promote('fraud-q')).rejects.toMatchObject({ code: 'SHOAL_ERR_MODEL_REJECTED' });
    expect((await c.control.promote('fraud-q', { allowRejected: true })).stable.version).toBe(bad.version);
  }, 120_000);

  it('shoal models quantize NAME@V --fp16 prints the report and registers the next version; usage errors are named', async () => {
    const shoal = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', 'quantize', ...args], { env: c.nats.env(Role.CLIENT), timeout: 120_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (x: Buffer) => (stdout += x.toString('utf8')));
        p.stderr.on('data', (x: Buffer) => (stderr += x.toString('utf8')));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const before = (await registry.get('fraud-q')).latest;
    const text = await shoal('fraud-q@1', '--fp16', '--rounds', '1', '--iterations', '10');
    const mv = await registry.version('fraud-q', before + 1);
    const report = mv.quantization as unknown as QuantizationReport;
    expect(text.status).toBe(report.verdict.rejected ? 3 : 0);
    expect(text.stdout).toContain(`fraud-q v${before + 1}: fp16 of v1`);
    expect(text.stdout).toMatch(/batch 1 .* interleaved runs each\)\n {2}batch 32 /);
    expect(text.stdout).toMatch(/holdout {3}\d+ rows of fraud-quant@/);
    expect(mv.lineage).toMatchObject({ parentVersion: 1, quantizedFrom: { mode: 'fp16' } });
    expect(report.sizeRatio).toBeLessThan(0.6);
    const usage = await shoal('fraud-q@1');
    expect(usage.status).not.toBe(0);
    expect(usage.stderr).toContain('give exactly one of --int8 or --fp16');
    expect((await registry.get('fraud-q')).latest).toBe(before + 1);
  }, 180_000);

  it('a model with ops the quantizer does not handle: refused with their list, nothing registered', async () => {
    const odd = onnxModel(
      {
        name: 'odd',
        nodes: [
          { op: 'MatMul', inputs: ['X', 'W'], outputs: ['a'] },
          { op: 'Softsign', inputs: ['a'], outputs: ['b'] },
          { op: 'Sin', inputs: ['b'], outputs: ['Y'] },
        ],
        initializers: [floatTensor('W', [8, 8], new Float32Array(64).fill(0.25))],
        inputs: [{ name: 'X', dims: ['N', 8] }],
        outputs: [{ name: 'Y', dims: ['N', 8] }],
      },
      { irVersion: 7, opset: 13, producer: 'test' },
    );
    await c.control.register('odd', odd);
    await expect(quantizeVersion(c.client, s, 'odd', 'latest', { mode: 'int8', latency: LATENCY })).rejects.toMatchObject({
      code: 'SHOAL_ERR_QUANTIZE_UNSUPPORTED',
      message: expect.stringMatching(/^odd v1 cannot be quantized: it uses ops the quantizer does not handle: Sin, Softsign \(it handles .*\); nothing was registered$/),
    });
    await expect(quantizeVersion(c.client, s, 'odd', 1, { mode: 'fp16', latency: LATENCY })).rejects.toMatchObject({ code: 'SHOAL_ERR_QUANTIZE_UNSUPPORTED' });
    expect((await registry.get('odd')).versions).toEqual([1]);
  }, 60_000);
});
