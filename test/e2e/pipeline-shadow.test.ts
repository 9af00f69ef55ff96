/**
 * The pipeline's shadow stage end to end on a real cluster (nats-server with auth, a scheduler
 * running the default control modules — the rollout controller and the pipeline runner — a node
 * agent with real onnxruntime replicas, and a gateway in this process): v1 serves; a pipeline run
 * trains a candidate, passes its gates, and serves it as a shadow while callers send traffic
 * through the gateway — every caller's answer comes from v1, the candidate's answers are only
 * compared — then the run goes on to the canary and promotes it. A candidate trained on inverted
 * labels passes a gate set loose enough (maxDrop 1) but disagrees with production in the shadow:
 * the run is rejected with the shadow's reason, the candidate marked rejected, production untouched.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { JobClient, ModelRegistry, PipelineClient, generateFraud, type Dataset, type RunRecord } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const MODEL = 'fraud-sh';
const ROWS_PER_REQUEST = 10;

describe('pipeline shadow stage (real cluster, traffic through the gateway)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let pipelines: PipelineClient;
  let registry: ModelRegistry;
  let data: Dataset;
  let cols = 0;

  const runOf = async (name: string) => (await pipelines.runs(name))?.find((x) => x.run === 1);
  /** One OIP v2 request of ten dataset rows: its status and the version that answered (body and header). */
  const infer = async (i: number): Promise<string> => {
    const at = (i * ROWS_PER_REQUEST) % (data.rows - ROWS_PER_REQUEST);
    const rows = Array.from(data.features.subarray(at * cols, (at + ROWS_PER_REQUEST) * cols));
    const res = await fetch(`${base}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'X', shape: [ROWS_PER_REQUEST, cols], datatype: 'FP32', data: rows }] }) });
    if (res.status !== 200) return `status ${res.status}: ${await res.text()}`;
    const body = (await res.json()) as { model_version: string };
    return `${body.model_version}/${res.headers.get('x-shoal-model-version') ?? 'no header'}`;
  };
  /** Sends traffic while run 1 of `name` is in its shadow stage; the run once done, and every answer (`<body version>/<header version>`). */
  const trafficDuringShadow = async (name: string): Promise<{ rec: RunRecord; answers: string[] }> => {
    const answers: string[] = [];
    let i = 0;
    const rec = await until(
      async () => {
        const r = await runOf(name);
        if (r?.state === 'done') return r;
        if (r?.state === 'shadow') answers.push(...(await Promise.all(Array.from({ length: 8 }, () => infer(i++).catch((err: unknown) => `failed: ${String(err)}`)))));
        return undefined;
      },
      300_000,
      `${name} run 1 done`,
      50,
    );
    return { rec, answers };
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-sh', profile: 'cpu-ondemand' }] });
    data = generateFraud({ rows: 6000, seed: 41 });
    cols = data.columns.length;
    await c.control.registerDataset(MODEL, data, { splitSeed: 5 });
    // The same rows with every label inverted: a model trained on them says the opposite of v1.
    await c.control.registerDataset(`${MODEL}-inverted`, { ...data, labels: data.labels.map((y) => 1 - y) }, { splitSeed: 5 });
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: MODEL, type: 'logreg' }, dataset: MODEL, hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 1 }, workers: 1 } as never, { id: 'job-fraud-sh-1' });
    expect((await jobs.follow('job-fraud-sh-1', () => undefined, 180_000)).reason).toBeUndefined();
    await c.control.setAlias(MODEL, 'production', 1);
    await until(async () => (await c.control.deploy(MODEL, { replicas: 1, readyTimeoutMs: 30_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 60_000, `${MODEL} v1 deployed`);
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: subjects(), logger: createLogger({ level: 'error', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(() => fetch(`${base}/v2/models/${MODEL}/ready`).then((r) => (r.status === 200 ? true : undefined)), 20_000, 'the gateway serving v1');
    registry = await ModelRegistry.open(c.client);
    pipelines = new PipelineClient(c.client, subjects());
  }, 360_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('a candidate shadows production (callers answered by v1 only), is judged on the compared rows, then rolls out', async () => {
    const shadow = { fraction: 0.5, durationMs: 3000, minCompared: 200, minAgreement: 0.8, maxDistance: 2 };
    await pipelines.apply({ name: 'sh', model: MODEL, data: { dataset: MODEL }, training: { steps: 80, seed: 2 }, gates: { maxDrop: 0.05, holdout: MODEL }, shadow, rollout: { steps: [100], stepMs: 500 } });
    expect(await pipelines.run('sh', 'test')).toEqual({ run: 1, coalesced: false });
    const { rec, answers } = await trafficDuringShadow('sh');
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'promoted' });
    expect(rec.candidate?.version).toBe(2);
    const report = rec.shadowReport!;
    expect(report, JSON.stringify(rec)).toMatchObject({ pass: true });
    expect(report.skipped).toBeUndefined();
    expect(report.compared).toBeGreaterThanOrEqual(shadow.minCompared);
    expect(report.agreement).toBeGreaterThanOrEqual(0);
    expect(report.agreement).toBeLessThanOrEqual(1);
    expect(Number.isFinite(report.distance)).toBe(true);
    // The shadow's answers were never returned: every caller's came from the stable version.
    expect(answers.length).toBeGreaterThan(0);
    expect(new Set(answers)).toEqual(new Set(['1/1']));
    // Then the canary, and promotion; the shadow is gone from the deployment.
    expect(rec.steps.map((s) => s.percent)).toEqual([100]);
    const dep = await c.control.deployment(MODEL);
    expect(dep?.stable.version).toBe(2);
    expect(dep?.shadow).toBeUndefined();
    expect(dep?.history.some((h) => h.event === 'shadow-ready' && h.version === 2)).toBe(true);
    expect(dep?.history.some((h) => h.event === 'shadow-cleared' && h.version === 2)).toBe(true);
  }, 420_000);

  it('a candidate that disagrees with production fails its shadow: rejected with the reason, production untouched', async () => {
    await pipelines.apply({ name: 'sh-bad', model: MODEL, data: { dataset: `${MODEL}-inverted` }, training: { steps: 80, seed: 3 }, gates: { maxDrop: 1, holdout: MODEL }, shadow: { fraction: 1, durationMs: 2000, minCompared: 200 } });
    await pipelines.run('sh-bad');
    const { rec, answers } = await trafficDuringShadow('sh-bad');
    expect(rec.report?.pass, JSON.stringify(rec.report)).toBe(true);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'rejected' });
    expect(rec.shadowReport).toMatchObject({ pass: false });
    expect(rec.shadowReport!.compared).toBeGreaterThanOrEqual(200);
    expect(rec.decision?.reason).toMatch(/^shadow: agreement .* below 90\.0%/);
    expect(answers.length).toBeGreaterThan(0);
    expect(new Set(answers)).toEqual(new Set(['2/2']));
    const candidate = await registry.version(MODEL, rec.candidate!.version);
    expect(candidate.rejected?.reason).toMatch(/sh-bad run 1 shadow: agreement/);
    expect((await registry.get(MODEL)).aliases['production']).toBe(2);
    const dep = await c.control.deployment(MODEL);
    expect(dep?.stable.version).toBe(2);
    expect(dep?.shadow).toBeUndefined();
    expect(dep?.canary).toBeUndefined();
    expect(rec.steps).toEqual([]);
  }, 420_000);
});
