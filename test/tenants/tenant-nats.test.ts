/**
 * Tenants over NATS (README "Tenants over NATS") against a running cluster: a tenant's own NATS
 * user (an NKey, `tenant-<name>`) submits, follows, lists and cancels jobs on
 * `shoal.t.<tenant>.jobs.*`, served by two gateways in one queue group. The tenant is the
 * subject's; the job is that tenant's (another tenant gets the JOB_NOT_FOUND of an unknown job,
 * over NATS and over HTTP), the model name it will register is reserved for it, its budget counts
 * against the tenant's training dollars per day together with its HTTP submissions, and bad
 * input is a typed error reply. Inference on `shoal.t.<tenant>.infer.<model>` answers what HTTP
 * answers, with another tenant's model hidden. The user cannot go around the gateway (no
 * JetStream at all).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { headers as natsHeaders, type Msg } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, newTenantNkey, subjects, type NatsConnection, type TenantJobOp } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const ACME_KEY = 'test-acme-nats-key-01';
const GLOBEX_KEY = 'test-globex-nats-key1';
const ADMIN_KEY = 'test-admin-nats-key-01';
const TENANTS = { acme: { trainingDollarsPerDay: 6 }, slow: { requestsPerMinute: 2 } };
const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--tenants', JSON.stringify(TENANTS)];
const s = subjects();

interface Reply {
  ok: boolean;
  body: Record<string, unknown>;
  code?: string;
  error?: string;
}

describe('tenants over NATS: job requests with a tenant NATS user (real cluster, two gateways)', () => {
  let c: TestCluster;
  const gws: FastifyInstance[] = [];
  let base = '';
  const users: Record<string, NatsConnection> = {};

  /** A request as any language's client would send it: JSON with a content-type header. */
  const ask = async (tenant: string, op: TenantJobOp | string, body: unknown, as = tenant): Promise<Reply> => {
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    const m: Msg = await users[as]!.request(`${s.prefix}.t.${tenant}.jobs.${op}`, new TextEncoder().encode(JSON.stringify(body)), { timeout: 15_000, headers: h });
    const code = m.headers?.get('Shoal-Error-Code');
    if (code) return { ok: false, body: {}, code, error: m.headers!.get('Shoal-Error-Message') };
    return { ok: true, body: JSON.parse(new TextDecoder().decode(m.data)) as Record<string, unknown> };
  };
  const http = async (key: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: { 'x-api-key': key, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, body: (await r.json()) as { code?: string; error?: string; id?: string } };
  };
  // A job that queues (its dataset does not exist: it fails when it starts, after admission).
  const spec = (model: string, budget?: number) => ({ model: { name: model, type: 'logreg' }, dataset: 'no-such-dataset', hyper: { steps: 5 }, ...(budget !== undefined ? { budget } : {}) });

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-tn', profile: 'cpu-ondemand' }] });
    await c.control.register('shared', mlpModel({ seed: 3 }));
    await c.control.register('acme-m', mlpModel({ seed: 4 }));
    const keys = { acme: newTenantNkey(), globex: newTenantNkey(), slow: newTenantNkey() };
    await c.nats.addTenants(Object.entries(keys).map(([tenant, k]) => ({ tenant, nkey: k.nkey })));
    for (const [tenant, k] of Object.entries(keys)) users[tenant] = await c.nats.connectTenant(tenant, k.seed);
    const apiKeys = [
      { key: ACME_KEY, tenant: 'acme' },
      { key: GLOBEX_KEY, tenant: 'globex' },
      { key: ADMIN_KEY, tenant: 'ops', role: 'admin' as const },
    ];
    for (let i = 0; i < 2; i++) gws.push(await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'warn', pretty: false }), apiKeys, tenants: TENANTS, inference: i === 0 }));
    await gws[0]!.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gws[0]!.server.address() as AddressInfo).port}`;
    expect((await http(ADMIN_KEY, 'PUT', '/v1/tenants/owners/model/acme-m', { tenant: 'acme' })).status).toBe(200);
    for (const m of ['shared', 'acme-m']) {
      await until(async () => (await c.control.deploy(m, { replicas: 1, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, 40_000, `${m} deployed`);
      await until(async () => ((await fetch(`${base}/v2/models/${m}/ready`, { headers: { 'x-api-key': ACME_KEY } })).status === 200 ? true : undefined), 20_000, `gateway sees ${m}`);
    }
  }, 180_000);

  afterAll(async () => {
    for (const g of gws) await g.close();
    await c?.stop();
  });

  it("acme submits over NATS with its own credentials: the job is acme's, its model name acme's, its budget acme's", async () => {
    const sub = await ask('acme', 'submit', { spec: spec('acme-nats-m', 3) });
    expect(sub).toMatchObject({ ok: true, body: { duplicate: false } });
    const id = sub.body.id as string;
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    // The record the scheduler writes carries acme as the tenant charged.
    const rec = await until(async () => {
      const r = await ask('acme', 'status', { id });
      return r.ok ? r.body : undefined;
    }, 20_000, 'the job record');
    expect(rec).toMatchObject({ id, tenant: 'acme' });
    // Over HTTP the same job is acme's too: globex's key gets the 404 of an unknown job.
    // (Once this gateway's owners cache has the claim: the submission may have gone through the other one.)
    expect((await http(ACME_KEY, 'GET', `/v1/jobs/${id}`)).status).toBe(200);
    const hidden = await until(async () => {
      const a = await http(GLOBEX_KEY, 'GET', `/v1/jobs/${id}`);
      return a.status === 404 ? a : undefined;
    }, 10_000, 'the job hidden from globex over HTTP');
    expect(hidden.body.code).toBe('SHOAL_ERR_JOB_NOT_FOUND');
    // The model name is reserved for acme: globex may not take it, over HTTP or NATS; nor may acme take the shared model.
    expect(await http(GLOBEX_KEY, 'POST', '/v1/jobs', { spec: spec('acme-nats-m') })).toMatchObject({ status: 409, body: { code: 'SHOAL_ERR_NAME_TAKEN' } });
    expect(await ask('globex', 'submit', { spec: spec('acme-nats-m') })).toMatchObject({ ok: false, code: 'SHOAL_ERR_NAME_TAKEN' });
    expect(await ask('acme', 'submit', { spec: spec('shared') })).toMatchObject({ ok: false, code: 'SHOAL_ERR_NAME_TAKEN' });
    // $3 of acme's $6 a day reserved over NATS: $4 more is refused (NATS), $2 fits (HTTP), then $1 more is over (NATS).
    const over = await ask('acme', 'submit', { spec: spec('acme-nats-2', 4) });
    expect(over).toMatchObject({ ok: false, code: 'SHOAL_ERR_QUOTA_EXCEEDED' });
    expect(over.error).toMatch(/\$4 on top of \$3\.00 already reserved today exceeds \$6 per day/);
    expect((await http(ACME_KEY, 'POST', '/v1/jobs', { spec: spec('acme-http-3', 2) })).status).toBe(202);
    expect(await ask('acme', 'submit', { spec: spec('acme-nats-4', 1.5) })).toMatchObject({ ok: false, code: 'SHOAL_ERR_QUOTA_EXCEEDED' });
    // A tenant with no budget quota: its jobs queue without one.
    expect(await ask('globex', 'submit', { spec: spec('globex-m') })).toMatchObject({ ok: true });
  });

  it('another tenant can neither see nor cancel it; list is per tenant; the owner cancels; an id is submitted once over both gateways', async () => {
    // acme has a budget quota, so its jobs name a budget ($5 of $6 are reserved by now).
    const sub = await ask('acme', 'submit', { id: 'acme-job-fixed', spec: spec('acme-nats-5', 0.5) });
    expect(sub, JSON.stringify(sub)).toMatchObject({ ok: true, body: { id: 'acme-job-fixed', duplicate: false } });
    // The same id again: a duplicate, answered by whichever gateway takes it (one queue group), nothing charged twice.
    expect(await ask('acme', 'submit', { id: 'acme-job-fixed', spec: spec('acme-nats-5', 0.5) })).toMatchObject({ ok: true, body: { duplicate: true } });
    for (const op of ['status', 'cancel'] as const) expect(await ask('globex', op, { id: 'acme-job-fixed' })).toMatchObject({ ok: false, code: 'SHOAL_ERR_JOB_NOT_FOUND' });
    // list reads a gateway's copy of the owners book: the other gateway may take a watch delivery to see it.
    const mine = await until(async () => {
      const r = await ask('acme', 'list', {});
      return (r.body.ids as string[] | undefined)?.includes('acme-job-fixed') ? r : undefined;
    }, 10_000, "acme's list with its job");
    expect(mine.body.tenant).toBe('acme');
    // globex's own job only (its refused submissions own nothing).
    const theirs = await until(async () => {
      const r = await ask('globex', 'list', {});
      return (r.body.ids as string[] | undefined)?.length === 1 ? r : undefined;
    }, 10_000, "globex's list with its one job");
    expect(theirs.body.ids).not.toContain('acme-job-fixed');
    await until(async () => ((await ask('acme', 'status', { id: 'acme-job-fixed' })).ok ? true : undefined), 20_000, 'the job record');
    const cancelled = await ask('acme', 'cancel', { id: 'acme-job-fixed' });
    expect(cancelled).toMatchObject({ ok: true, body: { id: 'acme-job-fixed', tenant: 'acme' } });
  });

  it('bad input is a typed error reply naming the field; the gateways keep serving', async () => {
    const noSpec = await ask('acme', 'submit', { id: 'x1' });
    expect(noSpec.code).toBe('SHOAL_ERR_BAD_MESSAGE');
    expect(noSpec.error).toContain('spec');
    const extra = await ask('acme', 'status', { id: 'x1', sneaky: true });
    expect(extra.code).toBe('SHOAL_ERR_BAD_MESSAGE');
    const badId = await ask('acme', 'status', { id: 'has spaces' });
    expect(badId.code).toBe('SHOAL_ERR_BAD_MESSAGE');
    expect(badId.error).toContain('id');
    const badSpec = await ask('acme', 'submit', { spec: { model: { name: 'acme-bad', type: 'no-such-type' }, dataset: 'd' } });
    expect(badSpec.code).toBe('SHOAL_ERR_BAD_JOB');
    expect(await ask('acme', 'frobnicate', {})).toMatchObject({ ok: false, code: 'SHOAL_ERR_NOT_FOUND' });
    // Not JSON although it says so.
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    const raw = await users.acme!.request(s.tenantJobs('acme', 'list'), new TextEncoder().encode('{nope'), { timeout: 15_000, headers: h });
    expect(raw.headers?.get('Shoal-Error-Code')).toBe('SHOAL_ERR_DECODE_FAILED');
    expect(await ask('acme', 'list', {})).toMatchObject({ ok: true });
  });

  it("inference over NATS: the tenant's own model and shared ones answer as over HTTP; another tenant's is MODEL_NOT_FOUND", async () => {
    const body = { inputs: [{ name: 'X', shape: [2, 32], datatype: 'FP32', data: randomRows(2, 32, 5) }] };
    const infer = async (tenant: string, model: string, b: unknown = body) => {
      const m = await users[tenant]!.request(s.tenantInfer(tenant, model), new TextEncoder().encode(JSON.stringify(b)), { timeout: 15_000 });
      const code = m.headers?.get('Shoal-Error-Code');
      return code ? { code, error: m.headers!.get('Shoal-Error-Message') } : { version: m.headers?.get('Shoal-Model-Version'), body: JSON.parse(new TextDecoder().decode(m.data)) as { outputs: { name: string; data: number[] }[] } };
    };
    for (const model of ['acme-m', 'shared']) {
      const viaNats = await infer('acme', model);
      const viaHttp = await fetch(`${base}/v2/models/${model}/infer`, { method: 'POST', headers: { 'x-api-key': ACME_KEY, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(viaHttp.status).toBe(200);
      const want = (await viaHttp.json()) as { outputs: { data: number[] }[] };
      expect(viaNats).toMatchObject({ version: '1' });
      expect((viaNats as { body: { outputs: { data: number[] }[] } }).body.outputs[0]!.data).toEqual(want.outputs[0]!.data);
    }
    const hidden = await infer('globex', 'acme-m');
    const unknown = await infer('globex', 'no-such-model');
    expect(hidden).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_FOUND' });
    expect((hidden as { error: string }).error).toBe((unknown as { error: string }).error.replace('no-such-model', 'acme-m'));
    expect(await infer('globex', 'shared')).toMatchObject({ version: '1' });
    const bad = await infer('acme', 'acme-m', { inputs: [{ name: 'X', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] });
    expect(bad).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT' });
    expect((bad as { error: string }).error).toContain('X');
    // acme's user may not ask as globex.
    await expect(users.acme!.request(s.tenantInfer('globex', 'shared'), new TextEncoder().encode(JSON.stringify(body)), { timeout: 15_000 })).rejects.toThrow();
  });

  it("the tenant's rate limit counts its NATS requests", async () => {
    expect((await ask('slow', 'list', {})).ok).toBe(true);
    expect((await ask('slow', 'list', {})).ok).toBe(true);
    const third = await ask('slow', 'list', {});
    expect(third).toMatchObject({ ok: false, code: 'SHOAL_ERR_RATE_LIMITED' });
    expect(third.error).toContain('tenant slow');
    // Inference over NATS counts in the same window.
    const h = natsHeaders();
    h.set('content-type', 'application/json');
    const inf = await users.slow!.request(s.tenantInfer('slow', 'shared'), new TextEncoder().encode('{"inputs": []}'), { timeout: 15_000, headers: h });
    expect(inf.headers?.get('Shoal-Error-Code')).toBe('SHOAL_ERR_RATE_LIMITED');
  });

  it("a tenant user cannot go around the gateway: no JetStream (the job queue), no other tenant's subjects", async () => {
    const js = await Promise.race([
      jetstream(users.acme!)
        .publish(s.jobsSubmit, new TextEncoder().encode(JSON.stringify({ id: 'sneaky', spec: spec('sneaky'), tenant: 'globex' })), { msgID: 'sneaky' })
        .then(() => 'accepted', (e: Error) => `refused: ${e.message}`),
      new Promise<string>((r) => setTimeout(() => r('refused: no answer'), 5000)),
    ]);
    expect(js).toMatch(/^refused/);
    const other = await ask('globex', 'list', {}, 'acme').then(
      (r) => `answered ${JSON.stringify(r)}`,
      (e: Error) => `refused: ${e.message}`,
    );
    expect(other).toMatch(/^refused/);
    expect((await http(GLOBEX_KEY, 'GET', '/v1/jobs/sneaky')).status).toBe(404);
  });
});
