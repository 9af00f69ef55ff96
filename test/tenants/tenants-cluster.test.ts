/**
 * Tenants against a running cluster with TWO gateway processes (README "Tenants, roles and
 * quotas"): another tenant's model, job or view is the 404 of a name that does not exist (over
 * /v1, /v2, explain, feedback and gRPC); an inference key on an admin route is a 403; one
 * tenant's requests per minute are limited in sum over both gateways; a training budget per day
 * and replicas per tenant hold; a gateway without keys refuses to start unless open; keys given
 * in config never reach a log line.
 */
import { Metadata, credentials, status as Status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey, subjects } from '../../cluster/index.ts';
import { FeatureClient } from '../../ml/index.ts';
import { loadInferencePackage } from '../../gateway/grpc/proto.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestProcess } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const ADMIN = 'test-admin-key-0001';
const ACME = 'test-acme-key-0001';
const GLOBEX = 'test-globex-key-0001';
const TINY = 'test-tiny-key-0001';
const KEYS = [
  { keyHash: hashApiKey(ADMIN), tenant: 'ops', role: 'admin' },
  { key: ACME, tenant: 'acme' },
  { keyHash: hashApiKey(GLOBEX), tenant: 'globex', role: 'inference' },
  { key: TINY, tenant: 'tiny' },
];
const TENANTS = { acme: { maxReplicas: 2, trainingDollarsPerDay: 5 }, tiny: { requestsPerMinute: 6 } };
const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--tenants', JSON.stringify(TENANTS)];
const GW_ARGS = ['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.apiKeys', JSON.stringify(KEYS), ...ARGS];

type Md = Record<string, string>;

describe('tenants, roles and quotas (real cluster, two gateway processes)', () => {
  let c: TestCluster;
  let gws: TestProcess[] = [];
  let urls: string[] = [];
  let grpc1 = '';

  const req = (gw: number, key: string | undefined, method: string, path: string, body?: unknown) =>
    fetch(`${urls[gw]}${path}`, {
      method,
      headers: { ...(key ? { 'x-api-key': key } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  const answer = async (r: Response) => ({ status: r.status, body: (await r.json()) as { code?: string; error?: string } });
  const inferBody = { inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-t', profile: 'cpu-ondemand' }] });
    await c.control.register('acme-m', mlpModel({ seed: 1 }), { aliases: ['production'] });
    await c.control.register('shared', mlpModel({ seed: 2 }), { aliases: ['production'] });
    gws = [c.procs.startGateway(GW_ARGS), c.procs.startGateway(GW_ARGS)];
    const ready = await Promise.all(gws.map((g) => g.ready));
    urls = ready.map((r) => String(r.url));
    grpc1 = String(ready[0]!.grpc);
    // An operator gives acme-m to acme (admin route on one gateway); the other gateway follows the owners bucket.
    expect((await req(0, ADMIN, 'PUT', '/v1/tenants/owners/model/acme-m', { tenant: 'acme' })).status).toBe(200);
    await until(async () => ((await req(1, GLOBEX, 'GET', '/v2/models/acme-m')).status === 404 ? true : undefined), 10_000, 'gateway 2 sees acme-m owned');
    await c.control.deploy('acme-m', { replicas: 1 });
    await c.control.deploy('shared', { replicas: 1 });
    for (const gw of [0, 1]) await until(async () => ((await req(gw, ACME, 'POST', '/v2/models/acme-m/infer', inferBody)).status === 200 ? true : undefined), 30_000, `acme-m served via gateway ${gw + 1}`);
  }, 180_000);

  afterAll(async () => {
    await c?.stop();
  });

  it("another tenant's model is the 404 of an unknown name, on every route; its owner and admins reach it", async () => {
    const unknown = await answer(await req(1, GLOBEX, 'GET', '/v2/models/no-such-model'));
    const hidden = await answer(await req(1, GLOBEX, 'GET', '/v2/models/acme-m'));
    expect(hidden.status).toBe(404);
    expect(hidden.body.code).toBe(unknown.body.code);
    expect(hidden.body.error).toBe(unknown.body.error!.replace('no-such-model', 'acme-m'));
    for (const gw of [0, 1]) {
      for (const [method, path, body] of [
        ['POST', '/v2/models/acme-m/infer', inferBody],
        ['POST', '/v2/models/acme-m/versions/1/infer', inferBody],
        ['GET', '/v2/models/acme-m/ready', undefined],
        ['POST', '/v1/models/acme-m/predict', { instances: randomRows(1) }],
        ['POST', '/v2/models/acme-m/explain', inferBody],
        ['POST', '/v1/models/acme-m:explain', { instances: randomRows(1) }],
        ['POST', '/v1/models/acme-m/feedback', { id: 'x', label: 1 }],
      ] as const) {
        const a = await answer(await req(gw, GLOBEX, method, path, body));
        expect([path, a.status, a.body.code]).toEqual([path, 404, 'SHOAL_ERR_MODEL_NOT_FOUND']);
        // Exactly what a name that does not exist gets on the same route.
        const u = await answer(await req(gw, GLOBEX, method, path.replace('acme-m', 'no-such-model'), body));
        expect([path, u.status, u.body.code, u.body.error!.replace('no-such-model', 'acme-m')]).toEqual([path, a.status, a.body.code, a.body.error]);
      }
      for (const [path, code] of [
        ['/v1/models/acme-m/status', 'SHOAL_ERR_MODEL_NOT_FOUND'],
        ['/v1/models/acme-m/monitoring', 'SHOAL_ERR_DEPLOYMENT_NOT_FOUND'],
      ] as const) {
        const a = await answer(await req(gw, GLOBEX, 'GET', path));
        expect([path, a.status, a.body.code]).toEqual([path, 404, code]);
        const u = await answer(await req(gw, GLOBEX, 'GET', path.replace('acme-m', 'no-such-model')));
        expect([path, u.status, u.body.code]).toEqual([path, a.status, a.body.code]);
      }
    }
    // The shared (default tenant's) model serves every tenant; acme's serves acme and admins.
    expect((await req(1, GLOBEX, 'POST', '/v2/models/shared/infer', inferBody)).status).toBe(200);
    expect((await req(1, ACME, 'GET', '/v2/models/acme-m')).status).toBe(200);
    expect((await req(0, ADMIN, 'GET', '/v1/models/acme-m/status')).status).toBe(200);
  });

  it('over gRPC too: ModelMetadata and ModelInfer of another tenant are NOT_FOUND', async () => {
    const client = new (loadInferencePackage().inference.GRPCInferenceService)(grpc1, credentials.createInsecure());
    const call = (method: string, body: unknown, md: Md) =>
      new Promise<unknown>((resolve, reject) => {
        const meta = new Metadata();
        for (const [k, v] of Object.entries(md)) meta.set(k, v);
        (client as unknown as Record<string, (r: unknown, m: Metadata, cb: (e: ServiceError | null, r: unknown) => void) => void>)[method]!.call(client, body, meta, (e, r) => (e ? reject(e) : resolve(r)));
      });
    const input = { name: 'X', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: randomRows(1).flat() } };
    try {
      for (const [m, body] of [
        ['ModelMetadata', { name: 'acme-m', version: '' }],
        ['ModelInfer', { model_name: 'acme-m', inputs: [input] }],
        ['ModelReady', { name: 'acme-m', version: '' }],
      ] as const) {
        const e = (await call(m, body, { 'x-api-key': GLOBEX }).then(() => expect.unreachable(`${m} succeeded`), (err: ServiceError) => err)) as ServiceError;
        expect([m, e.code, e.details]).toEqual([m, Status.NOT_FOUND, expect.stringMatching(/^SHOAL_ERR_MODEL_NOT_FOUND/)]);
      }
      expect(await call('ModelMetadata', { name: 'acme-m', version: '' }, { 'x-api-key': ACME })).toMatchObject({ name: 'acme-m' });
    } finally {
      client.close();
    }
  });

  it('an inference key on an admin route is a 403 with SHOAL_ERR_FORBIDDEN; the admin key passes', async () => {
    for (const gw of [0, 1]) {
      for (const [method, path, body] of [
        ['GET', '/v1/status', undefined],
        ['PUT', '/v1/tenants/owners/model/shared', { tenant: 'acme' }],
        ['GET', '/v1/tenants/owners?kind=model&tenant=acme', undefined],
        ['GET', '/ui/api/session', undefined],
      ] as const) {
        const a = await answer(await req(gw, ACME, method, path, body));
        expect([path, a.status, a.body.code]).toEqual([path, 403, 'SHOAL_ERR_FORBIDDEN']);
      }
      expect((await req(gw, ADMIN, 'GET', '/v1/status')).status).toBe(200);
      expect(await (await req(gw, ADMIN, 'GET', '/v1/tenants/owners?kind=model&tenant=acme')).json()).toMatchObject({ names: expect.arrayContaining(['acme-m']) });
    }
    // No key at all: 401, before any role is known.
    expect((await answer(await req(0, undefined, 'GET', '/v1/status'))).body.code).toBe('SHOAL_ERR_UNAUTHORIZED');
  });

  it('an owner change is in the audit log: who, the owner before and after, the reason', async () => {
    const put = await req(1, ADMIN, 'PUT', '/v1/tenants/owners/model/audited-m', { tenant: 'globex', reason: 'ticket 42' });
    expect(await put.json()).toEqual({ kind: 'model', name: 'audited-m', tenant: 'globex', previous: 'default' });
    expect(await (await req(1, ADMIN, 'PUT', '/v1/tenants/owners/model/audited-m', { tenant: 'default' })).json()).toMatchObject({ previous: 'globex', tenant: 'default' });
    const { entries } = (await (await req(0, ADMIN, 'GET', '/v1/audit?model=audited-m')).json()) as { entries: { who: string; action: string; why?: string; details?: Record<string, unknown> }[] };
    expect(entries.map((e) => [e.action, e.who, e.why, e.details])).toEqual([
      ['owner', 'tenant:ops', 'ticket 42', { kind: 'model', tenant: 'globex', previous: 'default' }],
      ['owner', 'tenant:ops', undefined, { kind: 'model', tenant: 'default', previous: 'globex' }],
    ]);
    // A malformed body names its field.
    const bad = await answer(await req(0, ADMIN, 'PUT', '/v1/tenants/owners/model/audited-m', { tenant: 'a b' }));
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/tenant/);
  });

  it("a tenant's requests per minute are limited in sum over both gateways (counted in NATS KV)", async () => {
    // Alternate gateways until the first refusal. The counters' own `remaining` tells whether a
    // minute boundary fell inside the run (it would go up): then the run is repeated.
    let accepted = -1;
    for (let attempt = 0; attempt < 3 && accepted < 0; attempt++) {
      let ok = 0;
      let last = Infinity;
      let rolled = false;
      for (let i = 0; i < 20; i++) {
        const r = await req(i % 2, TINY, 'GET', '/v2/models/shared');
        const remaining = Number(r.headers.get('x-ratelimit-remaining'));
        if (remaining > last) rolled = true;
        last = remaining;
        expect(r.headers.get('x-ratelimit-limit')).toBe('6');
        if (r.status === 429) break;
        expect(r.status).toBe(200);
        ok++;
      }
      if (!rolled) accepted = ok;
    }
    expect(accepted).toBe(6);
    for (const gw of [0, 1]) {
      const r = await req(gw, TINY, 'GET', '/v2/models/shared');
      const a = await answer(r);
      expect([a.status, a.body.code]).toEqual([429, 'SHOAL_ERR_RATE_LIMITED']);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    // Another tenant is not affected.
    expect((await req(0, GLOBEX, 'GET', '/v2/models/shared')).status).toBe(200);
  });

  it("jobs belong to their tenant; a day's training budget holds over both gateways; names are not taken over", async () => {
    const spec = (over: Record<string, unknown> = {}) => ({ model: { name: 'acme-trained', type: 'logreg' }, dataset: 'no-such-dataset', hyper: { steps: 5 }, budget: 3, ...over });
    const first = await req(0, ACME, 'POST', '/v1/jobs', { spec: spec() });
    expect(first.status).toBe(202);
    const { id } = (await first.json()) as { id: string };
    // $3 reserved of $5 today: another $3 is refused, on the other gateway too.
    const second = await answer(await req(1, ACME, 'POST', '/v1/jobs', { spec: spec({ model: { name: 'acme-trained-2', type: 'logreg' } }) }));
    expect([second.status, second.body.code]).toEqual([429, 'SHOAL_ERR_QUOTA_EXCEEDED']);
    expect(second.body.error).toMatch(/\$3 on top of \$3\.00 already reserved today exceeds \$5 per day/);
    const noBudget = await answer(await req(1, ACME, 'POST', '/v1/jobs', { spec: spec({ budget: undefined }) }));
    expect([noBudget.status, noBudget.body.code]).toEqual([400, 'SHOAL_ERR_BAD_JOB']);
    // $2 still fits.
    expect((await req(1, ACME, 'POST', '/v1/jobs', { spec: spec({ budget: 2, model: { name: 'acme-trained-3', type: 'logreg' } }) })).status).toBe(202);

    // The job is acme's: globex gets the 404 of an unknown job, on both gateways (once they follow the owner record).
    for (const gw of [0, 1]) {
      const hidden = await until(async () => {
        const a = await answer(await req(gw, GLOBEX, 'GET', `/v1/jobs/${id}`));
        return a.status === 404 ? a : undefined;
      }, 10_000, 'the job hidden from globex');
      expect(hidden.body.code).toBe('SHOAL_ERR_JOB_NOT_FOUND');
      expect((await req(gw, ACME, 'GET', `/v1/jobs/${id}`)).status).toBe(200);
    }
    // The model name acme's job will register is acme's; a shared model cannot be taken over by a job either.
    for (const name of ['acme-trained', 'shared']) {
      const a = await answer(await req(0, GLOBEX, 'POST', '/v1/jobs', { spec: spec({ model: { name, type: 'logreg' }, budget: undefined }) }));
      expect([name, a.status, a.body.code]).toEqual([name, 409, 'SHOAL_ERR_NAME_TAKEN']);
    }
  });

  it("another tenant's feature view: a push is refused exactly as for an unknown view", async () => {
    const features = await FeatureClient.open(c.client, subjects());
    await features.apply({ name: 'acme_txn', entity: ['customer_id'], source: { type: 'push' }, ttlSeconds: 60, features: [{ name: 'spend', type: 'numeric' }] }, [{ spend: 1 }, { spend: 3 }]);
    expect((await req(0, ADMIN, 'PUT', '/v1/tenants/owners/view/acme_txn', { tenant: 'acme' })).status).toBe(200);
    const ev = (id: string) => ({ eventId: id, entity: { customer_id: 'c-1' }, values: { spend: 2 }, eventTime: 1_700_000_000_000 });
    for (const gw of [0, 1]) {
      const hidden = await until(async () => {
        const a = await answer(await req(gw, GLOBEX, 'POST', '/v1/features/acme_txn', ev(`g-${gw}`)));
        return a.status === 400 ? a : undefined;
      }, 10_000, 'the view hidden from globex');
      const unknown = await answer(await req(gw, GLOBEX, 'POST', '/v1/features/no_such_view', ev(`u-${gw}`)));
      expect([hidden.status, hidden.body.code, hidden.body.error]).toEqual([unknown.status, unknown.body.code, unknown.body.error!.replace('no_such_view', 'acme_txn')]);
      expect((await req(gw, ACME, 'POST', '/v1/features/acme_txn', ev(`a-${gw}`))).status).toBe(200);
    }
  });

  it('replicas per tenant are checked at deploy and canary (acme: 2; acme-m runs 1)', async () => {
    const err = await c.control.canary('acme-m', { version: 1, replicas: 2 }).then(() => expect.unreachable('canary accepted'), (e: { code?: string; message: string }) => e);
    expect(err.code).toBe('SHOAL_ERR_QUOTA_EXCEEDED');
    expect(err.message).toMatch(/canary of acme-m asks 2 replicas; the tenant runs 1 of its 2/);
    // The shared model belongs to no tenant: not limited.
    expect((await c.control.deployment('shared'))?.stable.replicas).toBe(1);
  });

  it('a gateway with no keys refuses to start unless gateway.open is set; keys never reach the logs', async () => {
    const refused = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.open', 'false']);
    await expect(refused.ready).rejects.toThrow();
    expect(refused.lines.join('\n')).toMatch(/SHOAL_ERR_BAD_CONFIG.*gateway\.apiKeys.*gateway\.open/);
    const open = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.open', 'true']);
    const info = await open.ready;
    expect((await fetch(`${String(info.url)}/v1/status`)).status).toBe(200);
    open.kill('SIGTERM');
    for (const g of gws) for (const key of [ADMIN, ACME, GLOBEX, TINY]) expect(g.lines.some((l) => l.includes(key))).toBe(false);
  });
});
