/**
 * Explanations of a model trained on feature views, on a real cluster (features service, online
 * store, a replica with real onnxruntime, the gateway): by entity like a prediction, with the
 * attributions summed per raw feature (one-hot columns → their feature).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { DatasetStore, FeatureClient, type BuildResult } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { customerSnapshot, customerView, featureEvents, featureModel, merchantSnapshot, merchantView } from '../fixtures/feature-predict.ts';
import { referenceWithBackground } from '../fixtures/explain.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const KEY = 'test-key-explain-fv-01';

interface Explained {
  method: string;
  features: string[];
  explanations: { prediction: number; base_value: number; attributions: Record<string, number>; column_attributions: Record<string, number>; efficiency_gap: number }[];
  entities?: unknown[];
}

describe('explanations by entity, per raw feature (real cluster)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let built: BuildResult;
  let width = 0;
  const entities = Array.from({ length: 4 }, (_, i) => ({ customer_id: `c-${i}`, merchant_id: `m-${i % 3}` }));
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as Explained & { code?: string; error?: string } };
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    const fc = await FeatureClient.open(c.client, s);
    const cust = (await fc.apply(customerView(), customerSnapshot())).version;
    const merch = (await fc.apply(merchantView(), merchantSnapshot())).version;
    width = cust.fitted!.width + merch.fitted!.width;
    const ev = featureEvents(5, 3, Date.now() - 60_000);
    for (const e of ev.cust) await fc.push('cust', e);
    for (const e of ev.merch) await fc.push('merch', e);
    const t = Date.now() + 1;
    built = await fc.buildDataset({ name: 'fraud-explain', views: ['cust', 'merch'], labels: entities.map((e, i) => ({ entity: e, time: t, label: i % 2 })) });
    const data = await (await DatasetStore.open(c.client)).load(built.dataset);
    const rows = Array.from({ length: data.rows }, (_, i) => Array.from(data.features.subarray(i * width, (i + 1) * width)));
    const lineage = {
      datasetDigest: built.dataset.digest,
      features: { views: built.lineage.views.map((v) => ({ view: `${v.name}@${v.version}`, digest: v.digest, through: v.through })), datasetDigest: built.dataset.digest, columns: built.dataset.columns },
    };
    await c.control.register('fv', featureModel(width), { lineage, reference: referenceWithBackground(built.dataset.columns, rows) });
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await c.untilNodes();
    await c.control.deploy('fv', { replicas: 1, readyTimeoutMs: 60_000 });
    for (let i = 0; i < 300; i++) {
      const r = await fetch(`${base}/v2/models/fv/ready`, { headers: { 'x-api-key': KEY } });
      if (r.status === 200) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }, 180_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('explains by entity (v1 and OIP): one attribution per raw feature, the one-hot columns summed', async () => {
    const r = await post('/v1/models/fv:explain', { entities });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const b = r.body;
    expect(b.method).toBe('kernel');
    expect(b.entities).toHaveLength(4);
    // The one-hot country columns (`cust.country=FR`, …, `cust.country=<unknown>`) are one feature.
    const countryCols = built.dataset.columns.filter((c) => c.startsWith('cust.country='));
    expect(countryCols.length).toBeGreaterThan(1);
    expect(b.features).toContain('cust.country');
    expect(b.features.some((f) => f.includes('='))).toBe(false);
    expect(b.features).toHaveLength(built.dataset.columns.length - countryCols.length + 1);
    for (const e of b.explanations) {
      const sumCountry = countryCols.reduce((s, c) => s + e.column_attributions[c]!, 0);
      expect(e.attributions['cust.country']).toBeCloseTo(sumCountry, 9);
      const total = Object.values(e.attributions).reduce((p, q) => p + q, 0);
      expect(Math.abs(e.prediction - e.base_value - total)).toBeLessThan(1e-6);
    }
    const o = await post('/v2/models/fv/explain', { parameters: { entities } });
    expect(o.status, JSON.stringify(o.body)).toBe(200);
    expect(o.body.features).toEqual(b.features);
    o.body.explanations.forEach((e, i) => expect(e.attributions['cust.country']).toBeCloseTo(b.explanations[i]!.attributions['cust.country']!, 9));
  });
});
