/**
 * What a training job stores for explanations (real scheduler, node process, registry service):
 * a background sample of its holdout and the version's global importance, next to the reference
 * profile — and that a replica explains the trained version with that background.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { JobClient, ModelRegistry, explainReference, generateFraud, type DatasetVersion } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const KEY = 'test-key-explain-tr-01';

describe('a trained version carries its background and global importance (real cluster)', () => {
  let c: TestCluster;
  let ds: DatasetVersion;
  let gw: FastifyInstance;
  let base = '';

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    ds = await c.control.registerDataset('fraud-explain', generateFraud({ rows: 4000, seed: 12 }), { splitSeed: 3 });
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: subjects(), logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  const train = async (name: string, model: Record<string, unknown>) => {
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name, ...model }, dataset: 'fraud-explain', hyper: { optimizer: 'adam', lr: 0.05, steps: 20, batchSize: 256, seed: 4 }, workers: 1, checkpointEvery: 10 } as never, { id: `job-${name}` });
    const done = await jobs.follow(`job-${name}`, () => undefined, 180_000);
    expect(done.reason).toBeUndefined();
    const registry = await ModelRegistry.open(c.client);
    const mv = await registry.version(name, (done.result as unknown as { version: number }).version);
    return { mv, ref: explainReference(await registry.loadReference(mv))! };
  };

  it('logistic regression: 32 holdout rows as background, exact importance; the replica explains it exactly with them', async () => {
    const { ref } = await train('fraud-lr', { type: 'logreg' });
    expect(ref.background!.columns).toEqual(ds.columns);
    expect(ref.background!.rows).toHaveLength(32);
    expect(ref.background!.rows[0]).toHaveLength(ds.columns.length);
    expect(ref.importance).toMatchObject({ method: 'exact', link: 'logit', rows: ds.splits.holdout });
    expect(ref.importance!.columns.map((x) => x.name).sort()).toEqual([...ds.columns].sort());
    const imp = ref.importance!.columns.map((x) => x.importance);
    expect(imp).toEqual([...imp].sort((a, b) => b - a));
    expect(imp[0]).toBeGreaterThan(0);

    await c.control.deploy('fraud-lr', { replicas: 1, readyTimeoutMs: 60_000 });
    for (let i = 0; i < 300; i++) {
      if ((await fetch(`${base}/v2/models/fraud-lr/ready`, { headers: { 'x-api-key': KEY } })).status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const r = await fetch(`${base}/v1/models/fraud-lr:explain`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify({ instances: ref.background!.rows.slice(0, 2) }) });
    expect(r.status).toBe(200);
    const b = (await r.json()) as { method: string; features: string[]; background_rows: number };
    expect(b).toMatchObject({ method: 'exact', features: ds.columns, background_rows: 32 });
  }, 300_000);

  it('an MLP: KernelSHAP importance of the logit over holdout rows', async () => {
    const { ref } = await train('fraud-mlp', { type: 'mlp', hidden: 8 });
    expect(ref.background!.rows).toHaveLength(32);
    expect(ref.importance).toMatchObject({ method: 'kernel', link: 'logit', rows: 64 });
    expect(ref.importance!.columns[0]!.importance).toBeGreaterThan(0);
  }, 300_000);
});
