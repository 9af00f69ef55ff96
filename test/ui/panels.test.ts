/**
 * The dashboard's Monitoring and Cost pages in a real browser (Debian's Chromium, playwright-core)
 * against a real cluster: nats-server, a scheduler charging every 200 ms, two node processes
 * hosting an inference replica, its monitor and a training job; the gateway in-process with API
 * keys. The fraud model is deployed with monitoring (one-day window, closed by a flush once the
 * monitor has taken every record — nothing waits on the wall clock) and served drifted traffic
 * through the gateway: the Monitoring page must show the shifted features as drifted and an
 * unshifted one as not. The Cost page must show the job's and the model's rows. Screenshots go to
 * docs/screenshots/monitoring.png and cost.png. Last, the scheduler is killed: the Cost panels say
 * so in readable messages instead of going blank.
 *
 * Skipped, with the reason printed, only when /usr/bin/chromium is missing.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, Role, createLogger, subjects } from '../../cluster/index.ts';
import { generateFraud, monitorId, type MonitorStatus, type WindowReport } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { fraudModel, fraudReference, fraudTraffic } from '../fixtures/monitoring-monitor.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[panels.test] SKIPPED: no Chromium at ${CHROMIUM} (Debian: apt-get install chromium, or run scripts/setup.sh)`);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'docs', 'screenshots');
const ARGS = [
  '--membership.heartbeatMs', '200',
  '--membership.deadAfterMs', '3000',
  '--cost.tickMs', '200',
  '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts","shoal:ml/monitoring/monitor-actor.ts"]',
];
const ADMIN = 'test-key-admin-0002';
const INFER = 'test-key-acme-0002';
const DAY = 86_400_000;
const MODEL = 'fraud-ui';
const JOB = 'job-ui-cost';
/** Long enough for a loaded 2-core box; nothing here measures time. */
const WAIT = 30_000;
const s = subjects();
const utf8 = new TextEncoder();

describe.skipIf(!haveChromium)('dashboard Monitoring and Cost pages (real browser, real cluster)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let browser: Browser;
  let actors: ActorClient;
  let closed: WindowReport;

  const ask = <T>(type: 'status' | 'flush') => actors.ref(monitorId(MODEL, 1)).ask<T>({ type }, { timeoutMs: 15_000 });

  const signedIn = async (): Promise<Page> => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/ui/`);
    await page.getByLabel('Admin API key').fill(ADMIN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.locator('[data-testid="connection"]', { hasText: 'live' }).waitFor({ timeout: WAIT });
    return page;
  };

  /** Opens a page the keyboard way: focus its tab, press Enter. */
  const openTab = async (page: Page, title: string, id: string) => {
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title }).focus();
    await page.keyboard.press('Enter');
    await page.locator(`[data-testid="page-${id}"]`).waitFor({ timeout: WAIT });
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'pn-a', profile: 'cpu-ondemand' }, { id: 'pn-b', profile: 'cpu-spot' }] });
    actors = new ActorClient(c.client, s);
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: s,
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: ADMIN, tenant: 'ops', admin: true },
        { key: INFER, tenant: 'acme' },
      ],
      dashboard: { refreshMs: 500, heartbeatMs: 1000 },
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;

    // The monitored model, served drifted traffic (the generator's drift knob shifts some features).
    await c.control.register(MODEL, fraudModel(), { reference: utf8.encode(JSON.stringify(fraudReference())) });
    const monitoring = { sampleRate: 1, flushMs: 50, batchRecords: 100, windows: [DAY] };
    await until(async () => (await c.control.deploy(MODEL, { replicas: 1, maxBatchSize: 64, readyTimeoutMs: 30_000, monitoring })).stable.state === 'ready' || undefined, 90_000, `${MODEL} deployed`);
    await until(async () => ((await fetch(`${base}/v2/models/${MODEL}/ready`, { headers: { 'x-api-key': INFER } })).status === 200 ? true : undefined), WAIT, 'the gateway sees the model');
    await until(() => ask<MonitorStatus>('status'), 60_000, 'the monitor answers');
    const { rows } = fraudTraffic({ rows: 600, seed: 41, drift: 1 });
    for (let i = 0; i < rows.length; i += 50) {
      const res = await fetch(`${base}/v1/models/${MODEL}/predict`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': INFER }, body: JSON.stringify({ instances: rows.slice(i, i + 50) }) });
      expect(res.status).toBe(200);
    }
    await until(async () => {
      const st = await ask<MonitorStatus>('status');
      return st.counters.records >= 600 ? true : undefined;
    }, 60_000, 'the monitor took every record');
    const flushed = await ask<WindowReport[]>('flush');
    expect(flushed).toHaveLength(1);
    closed = flushed[0]!;

    // A small training job, charged to its job.
    await c.control.registerDataset('fraud-cost-ui', generateFraud({ rows: 2000, seed: 5 }), { splitSeed: 1 });
    const jobs = await c.jobs();
    await jobs.submit({ model: { name: 'fraud', type: 'logreg' }, dataset: 'fraud-cost-ui', hyper: { optimizer: 'adam', lr: 0.05, steps: 20, batchSize: 256, seed: 7 }, workers: 1 }, { id: JOB });
    await jobs.follow(JOB, () => undefined, 120_000);

    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    mkdirSync(SHOTS, { recursive: true });
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await c?.stop();
  });

  it('Monitoring: the drifted window of the deployed model, shifted features drifted and an unshifted one not, with test, p-value and sizes', async () => {
    // The monitor's own verdict (what the page must show, not recompute).
    const byName = new Map(closed.drift!.features.map((f) => [f.feature, f]));
    expect(byName.get('log_amount')!.drifted).toBe(true);
    expect(byName.get('hour_sin')!.drifted).toBe(false);

    const page = await signedIn();
    await openTab(page, 'Monitoring', 'monitoring');
    const card = page.locator(`[data-testid="monitor-${MODEL}-v1"]`);
    await card.waitFor({ timeout: WAIT });
    const table = page.locator(`[data-testid="drift-${MODEL}-v1"]`);
    await table.waitFor({ timeout: WAIT });
    await expect.poll(() => page.locator(`[data-testid="drifted-drift-${MODEL}-v1-log_amount"]`).innerText(), { timeout: WAIT }).toBe('drifted');
    expect(await page.locator(`[data-testid="drifted-drift-${MODEL}-v1-hour_sin"]`).innerText()).toBe('no');
    const row = table.locator('tr', { has: page.locator('th', { hasText: /^log_amount$/ }) });
    const cells = await row.locator('td').allInnerTexts();
    expect(cells[0]).toBe('ks');
    expect(Number(cells[2])).toBeLessThan(0.05);
    expect(cells[5]).toBe(`${closed.drift!.referenceRows} / 600`);
    expect(await page.locator(`[data-testid="share-${MODEL}-v1"]`).innerText()).toMatch(/^\d+(\.\d)?%$/);
    expect(await card.innerText()).toMatch(/dataset drifted/);
    // The alerts raised for this window are listed.
    expect(await page.locator(`[data-testid="alerts-${MODEL}-v1"]`).innerText()).toMatch(/feature-drift[\s\S]*log_amount/);
    await page.screenshot({ path: join(SHOTS, 'monitoring.png'), fullPage: true });
    await page.context().close();
  });

  it('Cost: rows for the training job and the served model, labelled as requests; the recommendations panel answers', async () => {
    const page = await signedIn();
    await openTab(page, 'Cost', 'cost');
    const jobs = page.locator('[data-testid="cost-job"]');
    await jobs.waitFor({ timeout: WAIT });
    const jobRow = jobs.locator('tr', { has: page.locator('th', { hasText: JOB }) });
    await jobRow.waitFor({ timeout: WAIT });
    expect(await jobRow.locator('td').first().innerText()).toMatch(/^\$\d/);
    const models = page.locator('[data-testid="cost-model"]');
    await models.locator('th', { hasText: MODEL }).first().waitFor({ timeout: WAIT });
    expect(await models.locator('thead').innerText()).toMatch(/Requests served/);
    expect(await models.locator('thead').innerText()).not.toMatch(/Predictions/);
    await page.locator('[data-testid="cost-recommendations"]').waitFor({ timeout: WAIT });
    expect(await page.locator('[data-testid="page-cost"]').locator('[role="alert"]').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'cost.png'), fullPage: true });
    await page.context().close();
  });
  it('an API failure shows as a readable message in the Cost panels, not a blank: the scheduler (the ledger) gone', async () => {
    const page = await signedIn();
    await openTab(page, 'Cost', 'cost');
    await page.locator('[data-testid="cost-job"]').waitFor({ timeout: WAIT });
    // Last test: the cluster is not needed after it (the harness started this scheduler).
    c.schedulers.scheduler!.kill('SIGKILL');
    const alert = page.getByRole('alert').filter({ hasText: 'Cost by tenant unavailable' });
    await alert.waitFor({ timeout: WAIT });
    expect(await alert.innerText()).toMatch(/Cost by tenant unavailable: .+/);
    expect(await page.getByRole('alert').filter({ hasText: 'Recommendations unavailable' }).innerText()).toMatch(/Recommendations unavailable: .+/);
    // The page is still there: its title and tabs.
    expect(await page.getByRole('navigation', { name: 'Pages' }).innerText()).toMatch(/Monitoring[\s\S]*Cost/);
    await page.context().close();
  });
});
