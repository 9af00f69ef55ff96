/**
 * Predictions by entity (issue #14 item 5) on a real cluster: a scheduler running the features
 * service, a node process hosting the replica (real onnxruntime), the gateway over HTTP. Two views
 * are applied and fitted, events pushed, a point-in-time training set built; a model written with
 * the repo's ONNX writer is registered with that training set's lineage (views and columns) and
 * deployed. A prediction by entity must equal, bit for bit, the prediction by tensor on the
 * training set's row for the same entities — and on vectors made by the views' encoder with
 * request-time values laid over the online ones.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, createLogger, subjects, type NatsConnection } from '../../cluster/index.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { ContentType, decode, resources } from '../../cluster/index.ts';
import { DatasetStore, FeatureClient, MlErrors, ModelRegistry, RegistryClient, batchRecords, checkFeatureInput, encodeOne, type BuildResult, type FeatureViewDef, type FeatureViewVersion, type InferJsonReply, type PredictionRecord, type RawValue } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { serveJson } from '../../ml/serving/serve-requests.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { customerSnapshot, customerView, featureEvents, featureModel, merchantSnapshot, merchantView } from '../fixtures/feature-predict.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const KEY = 'test-key-entity-0001';

interface PredictBody {
  predictions: number[][];
  entities?: { found: Record<string, boolean>; filled: string[] }[];
  code?: string;
  error?: string;
}

describe('predictions by entity (real cluster, online store, real onnxruntime)', () => {
  let c: TestCluster;
  let nc: NatsConnection;
  let gw: FastifyInstance;
  let base = '';
  let fc: FeatureClient;
  let cust: FeatureViewVersion;
  let merch: FeatureViewVersion;
  let built: BuildResult;
  let width = 0;
  const entities = Array.from({ length: 5 }, (_, i) => ({ customer_id: `c-${i}`, merchant_id: `m-${i % 3}` }));

  const post = async (path: string, body: unknown): Promise<{ status: number; body: PredictBody & Record<string, unknown> }> => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as PredictBody & Record<string, unknown> };
  };
  const predict = (body: unknown, model = 'fraud') => post(`/v1/models/${model}/predict`, body);
  /** The lineage a training job records: the views it was built from and its columns. */
  const lineageOf = (b: BuildResult, over: Partial<{ views: unknown; columns: string[] }> = {}) => ({
    datasetDigest: b.dataset.digest,
    features: { views: b.lineage.views.map((v) => ({ view: `${v.name}@${v.version}`, digest: v.digest, through: v.through })), datasetDigest: b.dataset.digest, columns: b.dataset.columns, ...over },
  });
  /** The vector the views' own encoders make of raw values (the serving path of FeatureClient). */
  const vector = (custRaw: Record<string, RawValue>, merchRaw: Record<string, RawValue>) => [...encodeOne(fc.views.encoder(cust), custRaw), ...encodeOne(fc.views.encoder(merch), merchRaw)];

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    nc = c.client;
    fc = await FeatureClient.open(nc, s);
    cust = (await fc.apply(customerView(), customerSnapshot())).version;
    merch = (await fc.apply(merchantView(), merchantSnapshot())).version;
    width = cust.fitted!.width + merch.fitted!.width;
    const ev = featureEvents(5, 3, Date.now() - 60_000);
    for (const e of ev.cust) await fc.push('cust', e);
    for (const e of ev.merch) await fc.push('merch', e);
    // Label time after every push: the point-in-time row of each entity is what the online store holds now.
    const t = Date.now() + 1;
    built = await fc.buildDataset({ name: 'fraud-entity', views: ['cust', 'merch'], labels: entities.map((e, i) => ({ entity: e, time: t, label: i % 2 })) });
    await c.control.register('fraud', featureModel(width), { lineage: lineageOf(built) });
    const gnc = await c.nats.connect(Role.GATEWAY);
    gw = await buildGateway({ nc: gnc, subjects: s, logger: createLogger({ level: 'warn', pretty: false }), apiKeys: [{ key: KEY, tenant: 'acme' }], bodyLimit: 1024 * 1024 });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await c.untilNodes();
    await c.control.deploy('fraud', { replicas: 1, maxBatchSize: 64, readyTimeoutMs: 60_000 });
    await until(async () => ((await fetch(`${base}/v2/models/fraud/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 30_000, 'fraud ready at the gateway');
  }, 180_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('records the training layout: the views and the columns the training set was built with', () => {
    expect(built.dataset.columns).toHaveLength(width);
    expect(built.dataset.columns.slice(0, 2)).toEqual(['cust.txn_count', 'cust.avg_amount']);
    expect(built.dataset.columns.at(-1)).toBe('merch.category');
  });

  it('the OpenAPI document shows both request forms of /v1 predict and OIP infer', async () => {
    const doc = JSON.stringify(await (await fetch(`${base}/docs/json`)).json());
    const paths = JSON.parse(doc) as { paths: Record<string, { post?: unknown }> };
    expect(JSON.stringify(paths.paths['/v1/models/{name}/predict']!.post)).toMatch(/"entities".*"on_missing"|"on_missing".*"entities"/);
    expect(JSON.stringify(paths.paths['/v2/models/{name}/infer']!.post)).toContain('"entities"');
  });

  it('predict-by-entity equals predict-by-tensor on the training set rows, bit for bit (v1 and OIP)', async () => {
    const data = await (await DatasetStore.open(nc)).load(built.dataset);
    const rows = entities.map((_, i) => Array.from(data.features.subarray(i * width, (i + 1) * width)));
    const byTensor = await predict({ instances: rows });
    expect(byTensor.status).toBe(200);
    const byEntity = await predict({ entities, id: 'r-1' });
    expect(byEntity.status, JSON.stringify(byEntity.body)).toBe(200);
    expect(byEntity.body.id).toBe('r-1');
    expect(byEntity.body.predictions).toHaveLength(5);
    // JSON numbers written from float32 outputs: equal text ⇔ equal bits.
    // Y is [N, 1]: each prediction a one-element row.
    expect(Float32Array.from(byEntity.body.predictions.flat())).toEqual(Float32Array.from(byTensor.body.predictions.flat()));
    expect(byEntity.body.predictions).toEqual(byTensor.body.predictions);
    // c-1 never got avg_amount, and nobody got amount (a request-time value): both filled.
    expect(byEntity.body.entities![1]).toEqual({ found: { cust: true, merch: true }, filled: ['cust.avg_amount', 'cust.amount'] });
    expect(byEntity.body.entities![0]!.filled).toEqual(['cust.amount']);
    // OIP: the same request in `parameters`, no inputs.
    const oip = await post('/v2/models/fraud/infer', { id: 'o-1', parameters: { entities } });
    expect(oip.status, JSON.stringify(oip.body)).toBe(200);
    const out = (oip.body as unknown as { outputs: { name: string; shape: number[]; data: number[] }[]; parameters: { entities: unknown[] } });
    expect(out.outputs[0]!.shape).toEqual([5, 1]);
    expect(out.outputs[0]!.data).toEqual(byTensor.body.predictions.flat());
    expect(out.parameters.entities).toHaveLength(5);
  });

  it('adds request-time values (shared or per row) over the online ones, through the same encoder', async () => {
    const online = await fc.rows('cust', entities.map((e) => ({ customer_id: e.customer_id })));
    const merchRows = await fc.rows('merch', entities.map((e) => ({ merchant_id: e.merchant_id })));
    const amounts = [12.5, 9000, 0, 310.25, 77];
    const expected = entities.map((_, i) => vector({ ...online[i]!.values, amount: amounts[i]!, ...(i === 3 ? { country: 'DE' } : {}) }, merchRows[i]!.values));
    const byTensor = await predict({ instances: expected });
    const perRow = await predict({ entities, features: amounts.map((amount, i) => (i === 3 ? { amount, 'cust.country': 'DE' } : { amount })) });
    expect(perRow.status, JSON.stringify(perRow.body)).toBe(200);
    expect(perRow.body.predictions).toEqual(byTensor.body.predictions);
    expect(perRow.body.entities![0]!.filled).toEqual([]);
    const shared = await predict({ entities, features: { amount: 42, risk: null } });
    const sharedTensor = await predict({ instances: entities.map((_, i) => vector({ ...online[i]!.values, amount: 42 }, merchRows[i]!.values)) });
    expect(shared.body.predictions).toEqual(sharedTensor.body.predictions);
  });

  it('a missing entity gets every feature fill (the training rule); on_missing "error" refuses it with a 404', async () => {
    const unknown = [{ customer_id: 'c-nobody', merchant_id: 'm-0' }];
    const r = await predict({ entities: unknown });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.entities![0]!.found).toEqual({ cust: false, merch: true });
    expect(r.body.entities![0]!.filled).toEqual(['cust.txn_count', 'cust.avg_amount', 'cust.country', 'cust.is_vip', 'cust.amount']);
    const [m0] = await fc.rows('merch', [{ merchant_id: 'm-0' }]);
    const t = await predict({ instances: [vector({}, m0!.values)] });
    expect(r.body.predictions).toEqual(t.body.predictions);
    const refused = await predict({ entities: unknown, on_missing: 'error' });
    expect(refused.status).toBe(404);
    expect(refused.body).toMatchObject({ code: 'SHOAL_ERR_ENTITY_NOT_FOUND' });
    expect(refused.body.error).toMatch(/entities\[0\].*cust/);
  });

  it('bad input is a 400 naming the field (and a typed NATS error reply); the replica keeps serving', async () => {
    const cases: [unknown, RegExp][] = [
      [{ entities: [{ customer_id: 'c-0', merchant_id: 'm-0', cust_id: 'x' }] }, /entities\[0\]\.cust_id: not an entity column/],
      [{ entities: [{ customer_id: 17, merchant_id: 'm-0' }] }, /entities\[0\]\.customer_id: must be a non-empty string/],
      [{ entities: [{ customer_id: 'c-0' }] }, /entities\[0\]\.merchant_id: missing/],
      [{ entities, features: { amout: 3 } }, /features\.amout: not a feature/],
      [{ entities, features: { amount: 'lots' } }, /features\.amount: "lots" is not a numeric value/],
      [{ entities, features: { is_vip: 1 } }, /features\.is_vip: 1 is not a boolean value/],
      [{ entities, features: [{ amount: 1 }] }, /features: has 1 rows where entities has 5/],
      [{ entities, on_missing: 'guess' }, /body\/on_missing/],
      [{ entities, instances: [[1]] }, /either "instances".*or "entities"/],
      [{ entities: [] }, /body\/entities/],
    ];
    for (const [body, msg] of cases) {
      const r = await predict(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.code).toBe('SHOAL_ERR_BAD_INPUT');
      expect(r.body.error).toMatch(msg);
    }
    const oip = await post('/v2/models/fraud/infer', { parameters: { entities: [{ customer_id: 5, merchant_id: 'm-0' }] } });
    expect(oip.status).toBe(400);
    expect(oip.body.error).toMatch(/parameters\.entities\[0\]\.customer_id/);
    // Over NATS, straight to the replica's service: a typed error per item, the good item answered.
    const svc = new ActorClient(nc, s).service('model-fraud-v1');
    const enc = (b: unknown) => new TextEncoder().encode(JSON.stringify(b));
    const reply = await svc.ask<InferJsonReply>({ type: 'infer-json', items: [{ format: 'v1', body: enc({ entities: [{ customer_id: [] }] }) }, { format: 'v1', body: enc({ entities: entities.slice(0, 1) }) }] }, { timeoutMs: 10_000 });
    expect(reply.results[0]).toMatchObject({ error: { code: MlErrors.BAD_INPUT.code } });
    expect((reply.results[0] as { error: { message: string } }).error.message).toMatch(/entities\[0\]\.customer_id/);
    expect(reply.results[1]).toHaveProperty('body');
    expect((await predict({ entities })).status).toBe(200);
  });

  it('deploy: a re-fitted view stays compatible (pinned parameters); a dropped feature, a changed digest or layout is refused with the reason', async () => {
    const registry = await ModelRegistry.open(nc);
    const mv = await registry.version('fraud', 1);
    // A re-fit on other rows: new parameters, same features → still compatible, and served with the pinned ones.
    const refit = (await fc.apply(customerView(), customerSnapshot(64, 99))).version;
    expect(refit.version).toBe(2);
    await expect(checkFeatureInput(nc, s.prefix, mv)).resolves.toBeUndefined();
    const before = await predict({ entities });
    expect(before.status).toBe(200);
    // A layout that is not the views' columns, and a digest that is not the recorded version's.
    await c.control.register('fraud', featureModel(width), { lineage: lineageOf(built, { columns: [...built.dataset.columns].reverse() }) });
    await expect(c.control.deploy('fraud', { version: 2, readyTimeoutMs: 20_000 })).rejects.toThrow(/SHOAL_ERR_FEATURES_INCOMPATIBLE|recorded input layout/);
    const badDigest = built.lineage.views.map((v) => ({ view: `${v.name}@${v.version}`, digest: '0'.repeat(64), through: v.through }));
    await c.control.register('fraud', featureModel(width), { lineage: lineageOf(built, { views: badDigest }) });
    await expect(c.control.deploy('fraud', { version: 3, readyTimeoutMs: 20_000 })).rejects.toThrow(/not the one it was trained on/);
    // The view's current version drops a feature the model reads: its online value would go stale.
    expect((await fc.apply(customerView({ withoutVip: true }), customerSnapshot())).version.version).toBe(3);
    await c.control.register('fraud', featureModel(width), { lineage: lineageOf(built) });
    const err = await c.control.deploy('fraud', { version: 4, readyTimeoutMs: 20_000 }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err?.code).toBe('SHOAL_ERR_FEATURES_INCOMPATIBLE');
    expect(err?.message).toMatch(/current version 3 no longer has feature "is_vip"/);
    // Nothing was started for the refused versions, and v1 still serves.
    expect((await predict({ entities })).body.predictions).toEqual(before.body.predictions);
  });

  it("a view's sensitive features: out of the model's vector, on the logged record's groups (their bucket or category), never in its features", async () => {
    const people: FeatureViewDef = {
      name: 'people',
      entity: ['customer_id'],
      source: { type: 'push' },
      ttlSeconds: 0,
      features: [
        { name: 'tenure', type: 'numeric' },
        { name: 'sex', type: 'categorical', sensitive: true, transforms: [{ op: 'onehot', vocabulary: ['F', 'M'] }] },
        { name: 'age', type: 'numeric', sensitive: true, transforms: [{ op: 'bucketize', boundaries: [30, 50] }] },
        // Sensitive and PII: audited at training, never logged (not even its group).
        { name: 'zip', type: 'categorical', sensitive: true, pii: true, transforms: [{ op: 'onehot', vocabulary: ['75001'] }] },
      ],
    };
    const pv = (await fc.apply(people, [{ tenure: 1, sex: 'F', age: 20, zip: '75001' }, { tenure: 3, sex: 'M', age: 60, zip: '75001' }])).version;
    expect(pv.fitted!.columns).toEqual(['tenure']);
    const t0 = Date.now() - 1000;
    await fc.push('people', { eventId: 'p0', entity: { customer_id: 'c-0' }, values: { tenure: 2, sex: 'F', age: 25, zip: '75001' }, eventTime: t0 });
    await fc.push('people', { eventId: 'p1', entity: { customer_id: 'c-1' }, values: { tenure: 5, sex: 'M', age: 55 }, eventTime: t0 });
    const b = await fc.buildDataset({ name: 'people-entity', views: ['cust', 'people'], labels: [0, 1].map((i) => ({ entity: { customer_id: `c-${i}` }, time: Date.now() + 1, label: i })) });
    expect(b.dataset.columns.filter((col) => col.startsWith('people.'))).toEqual(['people.tenure']);
    expect(b.dataset.extraSensitiveNames).toEqual(['sex', 'age', 'zip']);
    await c.control.register('fraud-s', featureModel(b.dataset.columns.length), { lineage: lineageOf(b) });
    await c.control.deploy('fraud-s', { replicas: 1, maxBatchSize: 64, readyTimeoutMs: 60_000, monitoring: { sampleRate: 1, flushMs: 50, monitor: false } });
    await until(async () => ((await fetch(`${base}/v2/models/fraud-s/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 30_000, 'fraud-s ready at the gateway');
    const r = await predict({ entities: [{ customer_id: 'c-0' }, { customer_id: 'c-1' }], id: 'grp-1' }, 'fraud-s');
    expect(r.status).toBe(200);
    const jsm = await jetstreamManager(await c.nats.connect(Role.SCHEDULER));
    const logged = async (): Promise<PredictionRecord[] | undefined> => {
      const info = await jsm.streams.info(resources().streams.predictions);
      const out: PredictionRecord[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const m = await jsm.streams.getMessage(resources().streams.predictions, { seq }).catch(() => undefined);
        if (m) out.push(...(batchRecords(decode(m.data, ContentType.MSGPACK)) ?? []).filter((x) => x.model === 'fraud-s'));
      }
      return out.length >= 2 ? out : undefined;
    };
    const recs = await until(logged, 10_000, 'the two fraud-s records logged');
    expect(recs.map((x) => [x.id, x.groups])).toEqual([
      ['grp-1:0', { sex: 'F', age: '< 30' }],
      ['grp-1:1', { sex: 'M', age: '≥ 50' }],
    ]);
    // The vector (the logged features) has the model's width: the sensitive values are not in it.
    expect(Object.keys(recs![0]!.features)).toHaveLength(b.dataset.columns.length);
    expect(JSON.stringify(recs![0]!.features)).not.toMatch(/"F"|"M"/);
    expect(JSON.stringify(recs)).not.toContain('75001');
    // The fairness policy accepts the attributes the view-built dataset declares, and only those.
    const ops = new RegistryClient(c.client, s, 'cli:alice');
    await expect(ops.setFairnessPolicy('fraud-s', { attributes: ['religion'], disparateImpact: { min: 0.8 } })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_FAIRNESS_POLICY', message: expect.stringMatching(/"religion" not declared \(declared: "sex", "age", "zip"\)/) });
    expect((await ops.setFairnessPolicy('fraud-s', { attributes: ['sex', 'age'], disparateImpact: { min: 0.8 } })).policy?.policy.attributes).toEqual(['sex', 'age']);
  });
});

describe('a model that records no feature views', () => {
  it('answers a request by entity with a 400 that says so (not a schema error about "instances")', async () => {
    const runner = {
      signature: { inputs: [{ name: 'X', datatype: 'FP32' as const, shape: [-1, 4] }], outputs: [{ name: 'Y', datatype: 'FP32' as const, shape: [-1, 1] }] },
      label: 'plain v1',
      name: 'plain',
      version: 1,
      run: () => Promise.reject(new Error('not reached')),
      failure: (err: unknown) => ({ error: { code: (err as { code: string }).code, message: (err as Error).message } }),
    };
    const body = new TextEncoder().encode(JSON.stringify({ entities: [{ customer_id: 'c-1' }] }));
    const [r] = await serveJson(runner, [{ format: 'v1', body }]);
    expect(r).toMatchObject({ error: { code: 'SHOAL_ERR_BAD_INPUT' } });
    expect((r as { error: { message: string } }).error.message).toMatch(/plain v1 records no feature views.*send "instances"/);
  });
});
