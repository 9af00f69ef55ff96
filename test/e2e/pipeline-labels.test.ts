/**
 * New-label triggers end to end (issue #16 item 1) on a real cluster: nats-server with auth, a
 * scheduler running the default control modules (the feedback service, the label join, the
 * pipelines service and the leader's runner), a node agent hosting the replica (real
 * onnxruntime), and the gateway in-process. A trained fraud model is deployed with its
 * predictions logged; predictions go through the gateway (OIP v2 infer, each with its own id) and
 * labels come back through `POST /v1/models/{m}/feedback`. Two pipelines watch the model's labels:
 * `labels-a` retrains at N-1 new labeled rows, `labels-b` at N. After N-1 labels are joined (the
 * join's counter says so), `labels-a` has run and `labels-b` has not — the runner checks
 * pipelines in name order within a tick, so the tick that fired `labels-a` checked `labels-b` on
 * the same N-1 rows; the Nth label then fires `labels-b`, whose record names the count, and whose
 * data (`data.labeled`) is the dataset plus the N labeled rows, a new version pinned by digest.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, request, subjects } from '../../cluster/index.ts';
import { DatasetStore, JobClient, PipelineClient, generateFraud, type RunRecord } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const s = subjects();
const KEY = 'test-key-pl-labels-01';
const MODEL = 'fraud-pl';
/** `labels-b` retrains at this many new labeled rows, `labels-a` at one fewer. */
const N = 4;

describe('a newLabels pipeline on a real cluster', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let pipelines: PipelineClient;
  const data = generateFraud({ rows: 3000, seed: 41 });
  const cols = data.columns.length;

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const joinStats = () => request<{ indexed: number; joined: number }>(c.client, s.feedbackJoinStats, {});
  const runsOf = async (name: string): Promise<RunRecord[]> => (await pipelines.runs(name)) ?? [];
  const done = (name: string, run: number) =>
    until(async () => {
      const r = (await runsOf(name)).find((x) => x.run === run);
      return r?.state === 'done' ? r : undefined;
    }, 300_000, `${name} run ${run} done`, 500);

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-pl', profile: 'cpu-ondemand' }] });
    await c.control.registerDataset('fraud-pl', data, { splitSeed: 5 });
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: MODEL, type: 'logreg' }, dataset: 'fraud-pl', hyper: { optimizer: 'adam', lr: 0.05, steps: 40, batchSize: 512, seed: 1 }, workers: 1 } as never, { id: 'job-fraud-pl-1' });
    expect((await jobs.follow('job-fraud-pl-1', () => undefined, 180_000)).reason).toBeUndefined();
    await until(async () => (await c.control.deploy(MODEL, { replicas: 1, readyTimeoutMs: 30_000, monitoring: { sampleRate: 1, flushMs: 20, labelType: 'number' } })).stable.state === 'ready' || undefined, 120_000, `${MODEL} deployed`);
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(async () => ((await fetch(`${base}/v2/models/${MODEL}/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 30_000, `the gateway sees ${MODEL}`);
    pipelines = new PipelineClient(c.client, s);
  }, 360_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it(`fires at ${N} joined labels and not at ${N - 1}; the run records the count`, async () => {
    const common = { model: MODEL, data: { dataset: 'fraud-pl' }, training: { steps: 20, seed: 2 }, gates: { maxDrop: 1, holdout: 'fraud-pl' }, rollout: { direct: true } };
    expect(await pipelines.apply({ name: 'labels-a', triggers: { newLabels: N - 1 }, ...common })).toMatchObject({ created: true, spec: { triggers: { newLabels: N - 1 } } });
    // labels-b trains on the dataset plus the labeled rows (data.labeled).
    await pipelines.apply({ name: 'labels-b', triggers: { newLabels: N }, ...common, data: { dataset: 'fraud-pl', labeled: true } });

    // N predictions through the gateway, each with its own id, logged and indexed by the join.
    const before = await joinStats();
    for (let i = 0; i < N; i++) {
      const row = Array.from(data.features.subarray(i * cols, (i + 1) * cols));
      const res = await post(`/v2/models/${MODEL}/infer`, { id: `pl-${i}`, inputs: [{ name: 'X', shape: [1, cols], datatype: 'FP32', data: row }] });
      expect(res.status, await res.clone().text()).toBe(200);
    }
    await until(async () => ((await joinStats()).indexed >= before.indexed + N ? true : undefined), 60_000, 'the join indexing the predictions');
    expect(await runsOf('labels-a')).toEqual([]);

    // N-1 labels: labels-a fires, labels-b does not.
    const fb = await post(`/v1/models/${MODEL}/feedback`, Array.from({ length: N - 1 }, (_, i) => ({ id: `pl-${i}`, label: data.labels[i]! })));
    expect(fb.status).toBe(200);
    await until(async () => ((await joinStats()).joined >= before.joined + N - 1 ? true : undefined), 60_000, `the join joining ${N - 1} labels`);
    const a = await until(async () => (await runsOf('labels-a'))[0], 60_000, 'labels-a run 1');
    expect(a.trigger).toMatchObject({ kind: 'labels', detail: `${N - 1} labeled rows since the pipeline was applied` });
    await done('labels-a', 1);
    expect(await runsOf('labels-b')).toEqual([]);

    // The Nth label: labels-b fires; labels-a (counting since its run 1) does not fire again.
    expect((await post(`/v1/models/${MODEL}/feedback`, { id: `pl-${N - 1}`, label: data.labels[N - 1]! })).status).toBe(200);
    await until(async () => ((await joinStats()).joined >= before.joined + N ? true : undefined), 60_000, `the join joining label ${N}`);
    const b = await until(async () => (await runsOf('labels-b'))[0], 60_000, 'labels-b run 1');
    expect(b.trigger).toMatchObject({ kind: 'labels', detail: `${N} labeled rows since the pipeline was applied` });
    const rec = await done('labels-b', 1);
    // Its snapshot: a new dataset version, the N labeled rows appended, pinned by digest.
    const base = await (await DatasetStore.open(c.client)).resolve('fraud-pl');
    expect(rec.snapshot).toMatchObject({ dataset: 'fraud-pl-labeled', rows: data.rows + N, labeledRows: N, skippedRows: 0 });
    expect(rec.snapshot!.digest).not.toBe(base.digest);
    expect(await (await DatasetStore.open(c.client)).resolve(`sha256:${rec.snapshot!.digest}`)).toMatchObject({ name: 'fraud-pl-labeled', rows: data.rows + N });
    expect(rec.decision?.outcome, JSON.stringify(rec.decision)).not.toBe('failed');
    // labels-a pinned the dataset as it is.
    expect((await runsOf('labels-a'))[0]!.snapshot).toEqual({ digest: base.digest, rows: data.rows });
    expect((await runsOf('labels-a')).map((x) => x.run)).toEqual([1]);
  }, 600_000);
});
