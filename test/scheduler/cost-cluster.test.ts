/**
 * Cost accounting on real processes: a real nats-server (auth on), two schedulers (leader and
 * standby), a spot and an on-demand node agent, and a gateway with API keys. A training job
 * submitted over HTTP by tenant `acme` is charged (more than $0, to its job and tenant) and shows
 * in `GET /v1/cost` and `shoal cost --json`; a deployment of 3 replicas with no traffic gets a
 * recommendation to shrink with a negative $/h change; after the leader is killed, the standby
 * resumes the ledger from KV (the job's charge is not lost).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../cluster/index.ts';
import { generateFraud } from '../../ml/index.ts';
import type { CostAdvice, CostReport } from '../../scheduler/cost/cost-wire.ts';
import { costAdvice, costReport } from '../../scheduler/cost/cost-client.ts';
import { subjects } from '../../cluster/index.ts';
import { mlpModel } from '../fixtures/onnx.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { SHOAL } from '../harness/shoal-cli.ts';
import { until } from '../harness/wait.ts';

const run = promisify(execFile);
const ARGS = [
  '--membership.heartbeatMs', '200',
  '--membership.deadAfterMs', '3000',
  '--scheduler.leaseTtlMs', '1500',
  '--cost.tickMs', '200',
  '--cost.rightSizing.minSamples', '3',
  '--actors.modules', '["shoal:ml/training/actors.ts", "shoal:ml/serving/actors.ts"]',
];
const ADMIN = 'cost-admin-key';
const ACME = 'cost-acme-key';
const KEYS = JSON.stringify([{ key: ADMIN, tenant: 'ops', admin: true }, { key: ACME, tenant: 'acme' }]);
const s = subjects();
// A budget any job exceeds: acme's alert must come.
const BUDGETS = JSON.stringify([{ tenant: 'acme', dollars: 1e-9, periodHours: 24 }]);

describe('cost accounting (real processes)', () => {
  let c: TestCluster;
  let base: string;
  const get = async (path: string, key = ADMIN) => {
    const r = await fetch(`${base}${path}`, { headers: { 'x-api-key': key } });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  /** Alerts seen on `shoal.events.alert` (budget alerts among them). */
  const alerts: { rule: string; tenant?: string; severity: string; value: number; threshold: number }[] = [];

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, schedulerArgs: ['--cost.budgets', BUDGETS], schedulers: ['cost-a', 'cost-b'], nodes: [{ id: 'c-spot', profile: 'cpu-spot' }, { id: 'c-od', profile: 'cpu-ondemand' }] });
    const gw = c.procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.apiKeys', KEYS, ...ARGS]);
    base = ((await gw.ready) as { url: string }).url;
    c.client.subscribe(s.event('alert'), { callback: (err, m) => void (err || alerts.push(JSON.parse(new TextDecoder().decode(m.data)))) });
    await c.control.registerDataset('cost-fraud', generateFraud({ rows: 4000, seed: 3 }), { splitSeed: 1 });
  }, 90_000);

  afterAll(async () => c?.stop());

  it('charges a job that ran to its job and tenant, shown by GET /v1/cost and shoal cost', async () => {
    const spec = { model: { name: 'cost-fraud', type: 'logreg' }, dataset: 'cost-fraud', hyper: { optimizer: 'adam', lr: 0.05, steps: 40, batchSize: 256, seed: 7 }, workers: 1, checkpointEvery: 10 };
    const submitted = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { 'x-api-key': ACME, 'content-type': 'application/json' }, body: JSON.stringify({ id: 'cost-job-1', spec }) });
    expect(submitted.status).toBe(202);
    const done = await (await c.jobs()).follow('cost-job-1', () => undefined, 120_000);
    expect(done.state).toBe('succeeded');
    expect(done.tenant).toBe('acme');

    // Charged once the job's actors are gone and a tick has passed: the charge stays after they left.
    const byOwner = await until(async () => {
      const r = (await get('/v1/cost?by=owner')).body as unknown as CostReport;
      const row = r.rows.find((x) => x.job === 'cost-job-1');
      return row && row.dollars > 0 ? r : undefined;
    }, 20_000, 'the job charged');
    const row = byOwner.rows.find((x) => x.job === 'cost-job-1')!;
    expect(row.tenant).toBe('acme');
    expect(row.model).toBe('');
    // Everything charged adds up: the owners' rows sum to the total.
    expect(byOwner.rows.reduce((t, x) => t + x.dollars, 0)).toBeCloseTo(byOwner.totalDollars, 12);
    expect(byOwner.fleetDollarsPerHour).toBeCloseTo(0.012 + 0.04, 9);

    const byJob = (await get('/v1/cost?by=job&since=1h')).body as unknown as CostReport;
    expect(byJob.rows.find((x) => x.job === 'cost-job-1')!.dollars).toBeGreaterThan(0);
    const tenants = (await get('/v1/cost?by=tenant')).body as unknown as CostReport;
    expect(tenants.rows.find((x) => x.tenant === 'acme')!.dollars).toBeGreaterThanOrEqual(row.dollars);

    // Bad input: 400 naming the field; a key that is not an admin key: 403.
    const bad = await get('/v1/cost?since=yesterday');
    expect(bad.status).toBe(400);
    expect(String(bad.body.error)).toMatch(/since/);
    expect((await get('/v1/cost?by=color')).status).toBe(400);
    expect((await get('/v1/cost', ACME)).status).toBe(403);

    const cli = await run(process.execPath, [SHOAL, 'cost', '--by', 'job', '--json'], { env: c.nats.env(Role.CLIENT), timeout: 30_000 });
    const fromCli = JSON.parse(cli.stdout) as CostReport;
    expect(fromCli.by).toBe('job');
    expect(fromCli.rows.find((x) => x.job === 'cost-job-1')!.dollars).toBeGreaterThan(0);
    const text = await run(process.execPath, [SHOAL, 'cost', '--by', 'tenant'], { env: c.nats.env(Role.CLIENT), timeout: 30_000 });
    expect(text.stdout).toMatch(/acme/);

    const alert = await until(() => alerts.find((a) => a.rule === 'cost-budget-exceeded' && a.tenant === 'acme'), 20_000, "acme's budget alert");
    expect(alert.severity).toBe('critical');
    expect(alert.value).toBeGreaterThanOrEqual(alert.threshold);
  }, 180_000);

  it('recommends shrinking a deployment of 3 replicas that gets no traffic, with a negative $/h change', async () => {
    await c.control.register('cost-idle', mlpModel({ features: 4, hidden: 4, outputs: 1 }));
    const dep = await c.control.deploy('cost-idle', { replicas: 3, maxBatchSize: 8, readyTimeoutMs: 30_000 });
    expect(dep.stable.state).toBe('ready');
    const advice = await until(async () => {
      const a = (await get('/v1/cost/recommendations')).body as unknown as CostAdvice;
      return a.recommendations?.some((r) => r.kind === 'replicas' && r.target === 'model-cost-idle-v1') ? a : undefined;
    }, 30_000, 'a replica recommendation for cost-idle');
    const r = advice.recommendations.find((x) => x.target === 'model-cost-idle-v1')!;
    expect(r).toMatchObject({ kind: 'replicas', model: 'cost-idle@v1', current: 3, proposed: 1 });
    expect(r.dollarsPerHourChange).toBeLessThan(0);
    expect(r.evidence.samples).toBeGreaterThanOrEqual(3);
    const cli = await run(process.execPath, [SHOAL, 'cost', 'recommend'], { env: c.nats.env(Role.CLIENT), timeout: 30_000 });
    expect(cli.stdout).toMatch(/model-cost-idle-v1/);

    // Traffic from tenant acme: the version's predictions are counted (from the gateways' outcome
    // reports), it gets a cost per 1,000 predictions, and its replicas' cost goes to acme.
    await until(async () => ((await fetch(`${base}/v2/models/cost-idle/ready`, { headers: { 'x-api-key': ACME } })).status === 200 ? true : undefined), 15_000, 'the gateway sees cost-idle');
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${base}/v2/models/cost-idle/infer`, { method: 'POST', headers: { 'x-api-key': ACME, 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [i, 1, 2, 3] }] }) });
      expect(r.status).toBe(200);
    }
    const byModel = await until(async () => {
      const rep = (await get('/v1/cost?by=model')).body as unknown as CostReport;
      const m = rep.rows.find((x) => x.model === 'cost-idle@v1');
      return m && (m.predictions ?? 0) >= 20 ? m : undefined;
    }, 20_000, 'cost-idle predictions counted');
    expect(byModel.predictions).toBe(20);
    expect(byModel.dollarsPer1kPredictions).toBeGreaterThan(0);
    const acme = await until(async () => {
      const rep = (await get('/v1/cost?by=owner&since=5m')).body as unknown as CostReport;
      return rep.rows.find((x) => x.model === 'cost-idle@v1' && x.tenant === 'acme' && x.dollars > 0);
    }, 20_000, 'cost-idle charged to acme');
    expect(acme.job).toBe('');
  }, 120_000);

  it('a new leader resumes the ledger from KV after the old one is killed', async () => {
    const before = await costReport(c.client, s, { by: 'job' });
    const charged = before.rows.find((x) => x.job === 'cost-job-1')!.dollars;
    c.schedulers['cost-a']!.kill('SIGKILL');
    // The standby answers once it holds the lease; its ledger starts from what the old leader persisted.
    const after = await until(async () => {
      try {
        const st = await c.status();
        if (st.schedulerId !== 'cost-b') return undefined;
        return await costReport(c.client, s, { by: 'job' });
      } catch {
        return undefined;
      }
    }, 30_000, 'the standby leading and answering cost');
    expect(after.rows.find((x) => x.job === 'cost-job-1')!.dollars).toBeCloseTo(charged, 12);
    // The history (kept one KV key per hour) came back too: `since` still sees the job.
    const recent = await costReport(c.client, s, { by: 'job', sinceMs: 3_600_000 });
    expect(recent.rows.find((x) => x.job === 'cost-job-1')!.dollars).toBeCloseTo(charged, 12);
    expect(after.totalDollars).toBeGreaterThanOrEqual(before.totalDollars * 0.999);
    const advice = await costAdvice(c.client, s);
    expect(Array.isArray(advice.recommendations)).toBe(true);
  }, 60_000);
});
