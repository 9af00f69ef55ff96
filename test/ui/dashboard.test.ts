/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core against a real
 * cluster (nats-server, a scheduler, two node processes hosting inference replicas and a
 * training job) and the gateway in-process with API keys on. Each page renders real data (node
 * ids, model names, the job), a canary weight change made through the registry API appears on the
 * open page without a reload, an unauthorised user gets the key prompt (and a readable refusal
 * for a non-admin key), and a dropped live stream reconnects. Screenshots of each page go to
 * docs/screenshots/ (the README shows them).
 *
 * Skipped, with the reason printed, only when /usr/bin/chromium is missing (scripts/setup.sh
 * installs it). Kept in its own file: vitest runs files in parallel, and one browser is enough.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, subjects } from '../../cluster/index.ts';
import { generateFraud, type RegistryClient } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[dashboard.test] SKIPPED: no Chromium at ${CHROMIUM} (Debian: apt-get install chromium, or run scripts/setup.sh)`);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'docs', 'screenshots');
const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const ADMIN = 'test-key-admin-0001';
const INFER = 'test-key-acme-0001';
/** Long enough for a loaded 2-core CI box; nothing here measures time. */
const WAIT = 30_000;

describe.skipIf(!haveChromium)('dashboard at /ui (real browser, real cluster)', () => {
  let c: TestCluster;
  let control: RegistryClient;
  let gw: FastifyInstance;
  let port = 0;
  let base = '';
  let browser: Browser;

  const startGateway = async (listenPort: number) => {
    const app = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: ADMIN, tenant: 'ops', admin: true },
        { key: INFER, tenant: 'acme' },
      ],
      // Pushes and samples every 500 ms; a ping every second (a stale stream is dropped after 3 s).
      dashboard: { refreshMs: 500, heartbeatMs: 1000 },
    });
    await app.listen({ host: '127.0.0.1', port: listenPort });
    return app;
  };

  /** A page signed in with the admin key (the key kept in the tab's session storage). */
  const signedIn = async (hash: string, origin = base): Promise<Page> => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await ctx.newPage();
    await page.goto(`${origin}/ui/`);
    await page.getByLabel('Admin API key').fill(ADMIN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.locator('[data-testid="connection"]', { hasText: 'live' }).waitFor({ timeout: WAIT });
    await page.evaluate((h) => ((globalThis as unknown as { location: { hash: string } }).location.hash = h), hash);
    return page;
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'ui-spot', profile: 'cpu-spot' }, { id: 'ui-ondemand', profile: 'cpu-ondemand' }] });
    control = c.control;
    // The gateway first: its dashboard feed follows the job's progress events from the start.
    gw = await startGateway(0);
    port = (gw.server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    await control.register('mlp', mlpModel({ seed: 1 }), { aliases: ['production'], metrics: { auc: 0.91 } });
    await control.register('mlp', mlpModel({ seed: 2 }), { metrics: { auc: 0.93 } });
    await until(async () => (await control.deploy('mlp', { replicas: 1, maxBatchSize: 32, readyTimeoutMs: 20_000, policy: { minP99DeltaMs: 60_000 } })).stable.state === 'ready' || undefined, WAIT, 'mlp deployed');
    await control.canary('mlp', { version: 2, weight: 0.3, replicas: 1, readyTimeoutMs: 20_000 });
    // A small training job, for the Jobs page's table and curves.
    await control.registerDataset('fraud-ui', generateFraud({ rows: 3000, seed: 3 }), { splitSeed: 1 });
    const jobs = await c.jobs();
    await jobs.submit({ model: { name: 'fraud', type: 'logreg' }, dataset: 'fraud-ui', hyper: { optimizer: 'adam', lr: 0.05, steps: 30, batchSize: 256, seed: 7 }, workers: 1, checkpointEvery: 10 }, { id: 'job-ui-train' });
    await jobs.follow('job-ui-train', () => undefined, 120_000);

    await until(() => fetch(`${base}/v2/models/mlp/versions/2/ready`, { headers: { 'x-api-key': INFER } }).then((r) => (r.status === 200 ? true : undefined)), WAIT, 'the gateway sees the canary');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    mkdirSync(SHOTS, { recursive: true });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await c?.stop();
  });

  it('the data API needs an admin key: 401 without a key, 403 with an inference key, both readable JSON', async () => {
    const none = await fetch(`${base}/ui/api/state`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'SHOAL_ERR_UNAUTHORIZED', error: expect.stringMatching(/API key/) });
    const tenant = await fetch(`${base}/ui/api/state`, { headers: { 'x-api-key': INFER } });
    expect(tenant.status).toBe(403);
    expect(await tenant.json()).toMatchObject({ code: 'SHOAL_ERR_FORBIDDEN', error: expect.stringMatching(/admin API key.*acme/) });
    // The page itself is open (it holds no data): the browser needs it to ask for a key.
    const shell = await fetch(`${base}/ui/`);
    expect(shell.status).toBe(200);
    expect(await shell.text()).toMatch(/<script type="module" src="app.js">/);
    // The dashboard's routes stay out of the API documentation.
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/ui'))).toEqual([]);
    const ok = await fetch(`${base}/ui/api/state`, { headers: { 'x-api-key': ADMIN } });
    expect(ok.status).toBe(200);
    expect(Object.keys((await ok.json()) as object).sort()).toEqual(['cluster', 'cost', 'events', 'jobs', 'models', 'monitoring', 'pipelines']);
  });

  it('an unauthorised user gets the key prompt, and a non-admin key is refused with a readable message', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/ui`);
    await page.getByLabel('Admin API key').waitFor({ timeout: WAIT });
    expect(await page.locator('table').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'login.png') });
    await page.getByLabel('Admin API key').fill(INFER);
    await page.keyboard.press('Enter');
    const alert = page.getByRole('alert');
    await alert.waitFor({ timeout: WAIT });
    expect(await alert.textContent()).toMatch(/needs an admin API key; the key of tenant acme is not one.*SHOAL_ERR_FORBIDDEN/);
    expect(await page.locator('table').count()).toBe(0);
    await ctx.close();
  });

  it('Cluster: nodes with pool, market and price, actors and processes, from the running cluster', async () => {
    const page = await signedIn('#/cluster');
    const nodes = page.locator('[data-testid="nodes"]');
    await nodes.locator('tbody tr', { hasText: 'ui-ondemand' }).waitFor({ timeout: WAIT });
    await nodes.locator('tbody tr', { hasText: 'ui-spot' }).waitFor({ timeout: WAIT });
    const spot = (await nodes.locator('tbody tr', { hasText: 'ui-spot' }).innerText()).replace(/\s+/g, ' ');
    const onDemand = (await nodes.locator('tbody tr', { hasText: 'ui-ondemand' }).innerText()).replace(/\s+/g, ' ');
    expect(spot).toMatch(/\bspot\b/);
    expect(onDemand).toMatch(/on-demand/);
    expect(spot).toMatch(/\$[\d.]+\/h/);
    // The replicas of both tracks are in the actor directory, each on a node.
    const actors = page.locator('[data-testid="actors"]');
    await actors.locator('tbody tr', { hasText: 'model-mlp-v2' }).waitFor({ timeout: WAIT });
    expect(await actors.locator('tbody tr', { hasText: 'model-mlp-v1' }).innerText()).toMatch(/ui-(spot|ondemand)/);
    expect(await page.locator('[data-testid="processes"]').innerText()).toMatch(/scheduler/);
    expect(await page.locator('[data-testid="pending"]').innerText()).toMatch(/No actor is waiting/);
    await page.screenshot({ path: join(SHOTS, 'cluster.png'), fullPage: true });
    await page.context().close();
  });

  it('Models: versions, aliases, split and history; a canary weight change appears live, without a reload', async () => {
    const page = await signedIn('#/models');
    const card = page.locator('[data-testid="model-mlp"]');
    await card.waitFor({ timeout: WAIT });
    // Traffic while the page is open, until its numbers show it (the gateway samples its own metrics).
    const rows = randomRows(4, 32, 5);
    const stats = page.locator('[data-testid="stats-mlp"]');
    await until(async () => {
      for (let i = 0; i < 10; i++) {
        const r = await fetch(`${base}/v2/models/mlp/infer`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': INFER }, body: JSON.stringify({ inputs: [{ name: 'X', shape: [4, 32], datatype: 'FP32', data: rows }] }) });
        expect(r.status).toBe(200);
      }
      const text = (await stats.count()) > 0 ? await stats.innerText() : '';
      const rps = Number(/([\d.]+) req\/s/.exec(text)?.[1] ?? 0);
      // A few samples with traffic, so the charts (and the screenshot) have lines, not a dot.
      const state = (await (await fetch(`${base}/ui/api/state`, { headers: { 'x-api-key': ADMIN } })).json()) as { models: { models: { name: string; series: { rps: number[] } | null }[] } };
      const busy = state.models.models.find((m) => m.name === 'mlp')?.series?.rps.filter((x) => x > 0).length ?? 0;
      return rps > 0 && busy >= 5 && /[\d.]+ ms p99/.test(text) && /[\d.]+ rows per batch/.test(text) ? true : undefined;
    }, 60_000, 'the Models page showing mlp\'s traffic');
    const weight = page.locator('[data-testid="canary-weight-mlp"]');
    await weight.filter({ hasText: '30%' }).waitFor({ timeout: WAIT });
    expect(await page.locator('[data-testid="versions-mlp"]').innerText()).toMatch(/v2[\s\S]*v1\s+production/);
    expect(await page.locator('[data-testid="history-mlp"]').innerText()).toMatch(/canary/);
    expect(await page.locator('[data-testid="split-mlp"] [role="img"]').getAttribute('aria-label')).toMatch(/stable v1 70%, canary v2 30%/);
    await page.screenshot({ path: join(SHOTS, 'models.png'), fullPage: true });

    // The change goes through the registry API; the open page follows it over the live stream.
    await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));
    await control.setWeight('mlp', 0.6);
    await weight.filter({ hasText: '60%' }).waitFor({ timeout: WAIT });
    expect(await page.locator('[data-testid="split-mlp"] [role="img"]').getAttribute('aria-label')).toMatch(/stable v1 40%, canary v2 60%/);
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await page.context().close();
  });

  it('Jobs: the training job with its state, progress, cost and loss curve', async () => {
    const page = await signedIn('#/jobs');
    const row = page.locator('[data-testid="jobs"] tbody tr', { hasText: 'job-ui-train' });
    await row.waitFor({ timeout: WAIT });
    const text = (await row.innerText()).replace(/\s+/g, ' ');
    expect(text).toMatch(/succeeded/);
    expect(text).toMatch(/30\/30 \(100%\)/);
    expect(text).toMatch(/\$\d/);
    const curves = page.locator('[data-testid="job-curves"]');
    await curves.waitFor({ timeout: WAIT });
    // The gateway followed the job from its first step: a curve, not just the last point.
    const state = (await (await fetch(`${base}/ui/api/state`, { headers: { 'x-api-key': ADMIN } })).json()) as { jobs: { jobs: { id: string; curve: { step: number; loss?: number }[] }[] } };
    const curve = state.jobs.jobs.find((j) => j.id === 'job-ui-train')!.curve;
    expect(curve.length).toBeGreaterThan(2);
    expect(curve.every((p, i) => i === 0 || p.step > curve[i - 1]!.step)).toBe(true);
    expect(curve.every((p) => typeof p.loss === 'number')).toBe(true);
    expect(curve.at(-1)!.step).toBe(30);
    expect(await curves.locator('canvas').count()).toBeGreaterThan(0);
    expect(await curves.locator('[role="img"]').first().getAttribute('aria-label')).toMatch(/Training loss\. Latest loss: \d/);
    await page.screenshot({ path: join(SHOTS, 'jobs.png'), fullPage: true });
    await page.context().close();
  });

  it('keyboard: the skip link and the page tabs work with Tab and Enter; a job is picked with the keyboard', async () => {
    const page = await signedIn('#/cluster');
    await page.locator('[data-testid="page-cluster"]').waitFor({ timeout: WAIT });
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement.textContent)).toBe('Skip to content');
    // Tab on to the Jobs tab (skip link, Cluster, Models, Jobs), then Enter.
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { textContent: string } } }).document.activeElement.textContent)).toBe('Jobs');
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="page-jobs"]').waitFor({ timeout: WAIT });
    const pick = page.getByRole('button', { name: 'job-ui-train' });
    await pick.focus();
    await page.keyboard.press('Enter');
    expect(await pick.getAttribute('aria-pressed')).toBe('true');
    await page.context().close();
  });

  it('a dropped live stream reconnects: the gateway restarts on its port and the page is live again, with data', async () => {
    const page = await signedIn('#/cluster');
    await page.locator('[data-testid="nodes"] tbody tr', { hasText: 'ui-spot' }).waitFor({ timeout: WAIT });
    await gw.close();
    await page.locator('[data-testid="connection"]', { hasText: 'reconnecting' }).waitFor({ timeout: WAIT });
    gw = await startGateway(port);
    await page.locator('[data-testid="connection"]', { hasText: /^live$/ }).waitFor({ timeout: WAIT });
    await page.locator('[data-testid="nodes"] tbody tr', { hasText: 'ui-ondemand' }).waitFor({ timeout: WAIT });
    await page.context().close();
  });

  it('a stale live stream (open, but silent) is dropped and opened again', async () => {
    // A TCP proxy in front of the gateway that can freeze the connections open now: they stay
    // open but nothing passes, as behind a dead load balancer; new connections pass.
    const pairs = new Set<[Socket, Socket]>();
    const proxy: Server = createServer((down) => {
      const up = connect(port, '127.0.0.1');
      const pair: [Socket, Socket] = [down, up];
      pairs.add(pair);
      down.pipe(up);
      up.pipe(down);
      const end = () => {
        pairs.delete(pair);
        down.destroy();
        up.destroy();
      };
      down.on('close', end).on('error', end);
      up.on('close', end).on('error', end);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const page = await signedIn('#/cluster', origin);
      await page.locator('[data-testid="nodes"] tbody tr', { hasText: 'ui-spot' }).waitFor({ timeout: WAIT });
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
      }
      const conn = page.locator('[data-testid="connection"]');
      await conn.filter({ hasText: /reconnecting.*no data for/ }).waitFor({ timeout: WAIT });
      await conn.filter({ hasText: /^live$/ }).waitFor({ timeout: WAIT });
      // Live again: a change made now reaches the page.
      await page.evaluate((h) => ((globalThis as unknown as { location: { hash: string } }).location.hash = h), '#/models');
      await control.setWeight('mlp', 0.2);
      await page.locator('[data-testid="canary-weight-mlp"]').filter({ hasText: '20%' }).waitFor({ timeout: WAIT });
      await page.context().close();
    } finally {
      for (const [down, up] of pairs) {
        down.destroy();
        up.destroy();
      }
      proxy.close();
    }
  });

  it('an API failure shows as a readable message in its panel, not a blank page: the scheduler gone, the Cluster page says so', async () => {
    const page = await signedIn('#/cluster');
    await page.locator('[data-testid="nodes"] tbody tr', { hasText: 'ui-spot' }).waitFor({ timeout: WAIT });
    // Last test: the cluster is not needed after it.
    c.schedulers.scheduler!.kill('SIGKILL');
    const alert = page.getByRole('alert').filter({ hasText: 'Scheduler unavailable' });
    await alert.waitFor({ timeout: WAIT });
    expect(await alert.innerText()).toMatch(/Scheduler unavailable: .+/);
    // The rest of the page is still there: the header, the tabs, the other panels.
    expect(await page.getByRole('navigation', { name: 'Pages' }).innerText()).toMatch(/Cluster[\s\S]*Models[\s\S]*Jobs/);
    expect(await page.locator('[data-testid="processes"]').count()).toBe(1);
    await page.context().close();
  });
});
