/**
 * The dashboard's Pipelines page in a real browser (Debian's Chromium, playwright-core) against a
 * real cluster: nats-server, a scheduler running the pipelines service and the leader's runner, a
 * node agent training the jobs; the gateway in-process with API keys. As in
 * test/e2e/pipeline-ct.test.ts: a dataset is registered, v1 trained and made production, then
 * - `ct` (same data) runs and is promoted: the page shows the run, its decision, and gate numbers
 *   (AUC candidate vs production and its lower bound, ECE, each check's message) equal to the run
 *   record's; the screenshot is docs/screenshots/pipelines.png;
 * - `ct-shuffled` (labels shuffled) is rejected: the page shows the reason the record gives;
 * - `ct-slow` (a long job) is shown in flight at its current stage; then the scheduler is killed
 *   and the page says the runner is unavailable in a readable message, the runs still listed;
 * - records of stages added later (a `shadow` state with a `shadowReport`, a state the page does
 *   not know), written into the bucket once no runner is left to drive them, are shown by name.
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
import { Role, createLogger, seededRandom, subjects } from '../../cluster/index.ts';
import { JobClient, PipelineClient, PipelineStore, generateFraud, type RunRecord } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`[pipelines-page.test] SKIPPED: no Chromium at ${CHROMIUM} (Debian: apt-get install chromium, or run scripts/setup.sh)`);

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHOTS = join(ROOT, 'docs', 'screenshots');
const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const ADMIN = 'test-key-admin-0003';
/** Long enough for a loaded 2-core box; nothing here measures time. */
const WAIT = 60_000;
const f3 = (x: number | undefined) => x!.toFixed(3);
const signed = (x: number | undefined) => (x! >= 0 ? `+${f3(x)}` : f3(x));

describe.skipIf(!haveChromium)('dashboard Pipelines page (real browser, real cluster)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let browser: Browser;
  let pipelines: PipelineClient;

  const done = (name: string, run: number) =>
    until(async () => {
      const r = (await pipelines.runs(name))?.find((x) => x.run === run);
      return r?.state === 'done' ? r : undefined;
    }, 400_000, `${name} run ${run} done`, 500);

  const signedIn = async (): Promise<Page> => {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${base}/ui/#/pipelines`);
    await page.getByLabel('Admin API key').fill(ADMIN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.locator('[data-testid="connection"]', { hasText: 'live' }).waitFor({ timeout: WAIT });
    await page.locator('[data-testid="page-pipelines"]').waitFor({ timeout: WAIT });
    return page;
  };

  /** Selects a run (keyboard: focus its button, Enter) and waits for its record. */
  const openRun = async (page: Page, id: string) => {
    const button = page.locator(`[data-testid="run-${id}"] th button`);
    await button.waitFor({ timeout: WAIT });
    await button.focus();
    await page.keyboard.press('Enter');
    const detail = page.locator(`[data-testid="run-detail-${id}"]`);
    await detail.waitFor({ timeout: WAIT });
    return detail;
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-plui', profile: 'cpu-ondemand' }] });
    const data = generateFraud({ rows: 6000, seed: 31 });
    await c.control.registerDataset('fraud-plui', data, { splitSeed: 5 });
    // The same rows with the labels shuffled: a model trained on them has learnt nothing.
    const labels = Uint8Array.from(data.labels);
    const r = seededRandom(99);
    for (let i = labels.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [labels[i], labels[j]] = [labels[j]!, labels[i]!];
    }
    await c.control.registerDataset('fraud-plui-shuffled', { ...data, labels }, { splitSeed: 5 });
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: 'fraud-plui', type: 'logreg' }, dataset: 'fraud-plui', hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 1 }, workers: 1 } as never, { id: 'job-fraud-plui-1' });
    expect((await jobs.follow('job-fraud-plui-1', () => undefined, 240_000)).reason).toBeUndefined();
    await c.control.setAlias('fraud-plui', 'production', 1);
    pipelines = new PipelineClient(c.client, subjects());

    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [{ key: ADMIN, tenant: 'ops', admin: true }],
      dashboard: { refreshMs: 500, heartbeatMs: 1000 },
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    mkdirSync(SHOTS, { recursive: true });
  }, 400_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await c?.stop();
  });

  it('a promoted run: its timeline, decision and gate numbers equal to the run record', async () => {
    await pipelines.apply({ name: 'ct', model: 'fraud-plui', triggers: { onAlert: ['drift'] }, data: { dataset: 'fraud-plui' }, training: { steps: 80, seed: 2 }, gates: { maxDrop: 0.05, maxEce: 0.6, holdout: 'fraud-plui' } });
    expect(await pipelines.run('ct', 'from the ui test')).toEqual({ run: 1, coalesced: false });
    const rec: RunRecord = await done('ct', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'promoted' });
    const rep = rec.report!;
    expect(rep.auc).toBeDefined();
    expect(rep.ece).toBeDefined();

    const page = await signedIn();
    const card = page.locator('[data-testid="pipeline-ct"]');
    await card.waitFor({ timeout: WAIT });
    expect(await card.innerText()).toMatch(/model fraud-plui/);
    expect(await card.innerText()).toMatch(/manual · on drift alert/);
    await expect.poll(() => page.locator('[data-testid="state-ct-1"]').innerText(), { timeout: WAIT }).toBe('promoted');
    // The timeline: every stage filled, the gates chip with the record's AUCs.
    const timeline = page.locator('[data-testid="timeline-ct-1"]');
    expect(await timeline.locator('li').evaluateAll((els) => els.map((e) => e.getAttribute('data-stage')))).toEqual(['trigger', 'snapshot', 'job', 'gates', 'shadow', 'canary', 'decision']);
    // No shadow in this spec: the stage says it was skipped and why (not an agreement of 0).
    expect(await page.locator('[data-testid="stage-ct-1-shadow"]').innerText()).toContain(`skipped: ${rec.shadowReport!.reason}`);
    expect(await page.locator('[data-testid="stage-ct-1-trigger"]').innerText()).toMatch(/manual: from the ui test/);
    expect(await page.locator('[data-testid="stage-ct-1-snapshot"]').innerText()).toContain(rec.snapshot!.digest.slice(0, 12));
    expect(await page.locator('[data-testid="stage-ct-1-job"]').innerText()).toContain(`${rec.jobId} → v${rec.candidate!.version}`);
    expect(await page.locator('[data-testid="stage-ct-1-gates"]').innerText()).toContain(`AUC ${f3(rep.auc!.candidate)} vs ${f3(rep.auc!.production)}`);
    expect(await timeline.locator('[aria-current="step"]').count()).toBe(0);

    // The full record: the AUC comparison, ECE and every check's message, as recorded.
    const detail = await openRun(page, 'ct-1');
    expect(await page.locator('[data-testid="auc-candidate-ct-1"]').innerText()).toBe(f3(rep.auc!.candidate));
    expect(await page.locator('[data-testid="auc-production-ct-1"]').innerText()).toBe(f3(rep.auc!.production));
    expect(await page.locator('[data-testid="auc-low-ct-1"]').innerText()).toBe(signed(rep.auc!.low));
    expect(await page.locator('[data-testid="ece-ct-1"]').innerText()).toBe(f3(rep.ece));
    const rows = await page.locator('[data-testid="checks-ct-1"] tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => (td.textContent ?? "").trim())));
    expect(rows).toEqual(rep.checks.map((x) => [x.gate, x.pass ? 'pass' : 'fail', x.message]));
    expect(await page.locator('[data-testid="reason-ct-1"]').innerText()).toBe(rec.decision!.reason);
    expect(await detail.innerText()).toContain(rec.snapshot!.digest);
    expect(await page.locator('[data-testid="page-pipelines"]').locator('[role="alert"]').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, 'pipelines.png'), fullPage: true });
    await page.context().close();
  }, 600_000);

  it('a rejected run shows its decision and the reason the record gives, the failed AUC check with its message', async () => {
    await pipelines.apply({ name: 'ct-shuffled', model: 'fraud-plui', data: { dataset: 'fraud-plui-shuffled' }, training: { steps: 80, seed: 3 }, gates: { maxDrop: 0.02, holdout: 'fraud-plui' } });
    await pipelines.run('ct-shuffled');
    const rec = await done('ct-shuffled', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'rejected' });
    const page = await signedIn();
    await expect.poll(() => page.locator('[data-testid="state-ct-shuffled-1"]').innerText(), { timeout: WAIT }).toBe('rejected');
    expect(await page.locator('[data-testid="stage-ct-shuffled-1-gates"]').getAttribute('class')).toContain('stage-fail');
    expect(await page.locator('[data-testid="stage-ct-shuffled-1-canary"]').innerText()).toMatch(/skipped/);
    await openRun(page, 'ct-shuffled-1');
    expect(await page.locator('[data-testid="reason-ct-shuffled-1"]').innerText()).toBe(rec.decision!.reason);
    expect(rec.decision!.reason).toMatch(/AUC .* vs production/);
    const aucRow = page.locator('[data-testid="checks-ct-shuffled-1"] tbody tr', { has: page.locator('th', { hasText: /^auc$/ }) });
    expect(await aucRow.locator('td').allInnerTexts()).toEqual(['fail', rec.report!.checks.find((x) => x.gate === 'auc')!.message]);
    await page.context().close();
  }, 600_000);

  it('the run in flight is highlighted at its current stage; with the scheduler killed the page says the runner is unavailable, runs still listed', async () => {
    // A long job: the run stays in training while the page is read.
    await pipelines.apply({ name: 'ct-slow', model: 'fraud-plui', data: { dataset: 'fraud-plui' }, training: { steps: 500_000, seed: 5 }, gates: { maxDrop: 0.05, holdout: 'fraud-plui' } });
    const page = await signedIn();
    await pipelines.run('ct-slow', 'slow');
    const state = page.locator('[data-testid="state-ct-slow-1"]');
    await expect.poll(() => state.innerText(), { timeout: WAIT }).toBe('in flight: training');
    expect(await page.locator('[data-testid="run-ct-slow-1"]').getAttribute('class')).toContain('inflight');
    const current = page.locator('[data-testid="timeline-ct-slow-1"] [aria-current="step"]');
    expect(await current.getAttribute('data-stage')).toBe('job');
    expect(await page.locator('[data-testid="pipeline-ct-slow"]').innerText()).toMatch(/run 1 in flight/);

    // Last test: the cluster is not needed after it (the harness started this scheduler).
    c.schedulers.scheduler!.kill('SIGKILL');
    const alert = page.locator('[data-testid="pipelines-runner"]');
    await alert.waitFor({ timeout: WAIT });
    expect(await alert.getAttribute('role')).toBe('alert');
    expect(await alert.innerText()).toMatch(/Pipeline runner unavailable: the scheduler leader, which drives the runs, did not answer: .+/);
    // The records are still there (KV), the run still shown in flight.
    expect(await state.innerText()).toBe('in flight: training');
    expect(await page.locator('[data-testid="state-ct-1"]').innerText()).toBe('promoted');
    expect(await page.getByRole('navigation', { name: 'Pages' }).innerText()).toMatch(/Cost[\s\S]*Pipelines/);

    // Stages added later (a `shadow` state with its `shadowReport`, or any state this page does not
    // know): records in that shape, written straight into the bucket now that no runner drives them.
    const nc = await c.nats.connect(Role.SCHEDULER);
    const store = await PipelineStore.open(nc);
    const slow = (await store.getSpec('ct-slow'))!;
    const base: RunRecord = { ...(await store.getRun('ct', 1))!.record, steps: [], updatedAt: Date.now() };
    delete base.decision;
    for (const [name, state, extra] of [
      ['ct-next', 'shadow', { shadowReport: { compared: 500, agreement: 0.97, distance: 0.031, pass: true } }],
      ['ct-later', 'audit', {}],
    ] as const) {
      await store.putSpec({ ...slow.spec, name });
      await store.trigger(name, { kind: 'manual', at: Date.now() });
      const made = (await store.getRun(name, 1))!;
      expect(await store.casRun({ ...base, pipeline: name, run: 1, state, ...extra } as unknown as RunRecord, made.revision)).toBeDefined();
    }
    await expect.poll(() => page.locator('[data-testid="state-ct-next-1"]').innerText(), { timeout: WAIT }).toBe('in flight: shadow');
    expect(await page.locator('[data-testid="timeline-ct-next-1"] [aria-current="step"]').getAttribute('data-stage')).toBe('shadow');
    expect(await page.locator('[data-testid="stage-ct-next-1-shadow"]').innerText()).toMatch(/agreement 0\.970 · pass/);
    await openRun(page, 'ct-next-1');
    expect(await page.locator('[data-testid="shadow-ct-next-1"]').innerText()).toMatch(/Compared\s+500\s+Agreement\s+0\.970\s+Distance\s+0\.031\s+Result\s+pass/);
    await expect.poll(() => page.locator('[data-testid="state-ct-later-1"]').innerText(), { timeout: WAIT }).toBe('in flight: audit');
    const later = page.locator('[data-testid="timeline-ct-later-1"] [aria-current="step"]');
    expect(await later.getAttribute('data-stage')).toBe('audit');
    expect(await later.innerText()).toMatch(/audit/);
    await nc.close();
    await page.context().close();
  }, 600_000);
});
