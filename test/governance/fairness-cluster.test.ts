/**
 * The fairness gate, model cards and the audit log on a running cluster (real nats-server,
 * scheduler with the registry service, a node process training real jobs, the gateway):
 * a model trained on the fraud generator, whose scores depend on account age and so on the age
 * band, is audited at registration; a disparate-impact policy blocks its canary (and the
 * training job's automatic canary) naming metric, attribute, groups and interval; an override
 * with a reason goes ahead and is audited; the card renders as JSON and Markdown; the audit log
 * lists the actions in order and is admin-only.
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, seededRandom, subjects } from '../../cluster/index.ts';
import { JobClient, ModelRegistry, RegistryClient, fairnessOf, generateFraud } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const ADMIN = 'test-key-fair-admin-01';
const TENANT = 'test-key-fair-tenant-01';
const MODEL = 'fraud-fair';

describe('fairness gate, model card and audit log (real cluster)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let ops: RegistryClient;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    ops = new RegistryClient(c.client, subjects(), 'cli:alice');
    // A second declared attribute (independent of everything), so the audit has an intersection.
    const d = generateFraud({ rows: 12_000, seed: 21 });
    const r = seededRandom(99);
    d.extraSensitive = [{ name: 'region', values: Uint8Array.from({ length: d.rows }, () => (r() < 0.5 ? 1 : 0)) }];
    await ops.registerDataset('fraud-fair', d, { splitSeed: 5 });
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: subjects(),
      logger: createLogger({ level: 'warn', pretty: false }),
      apiKeys: [
        { key: ADMIN, tenant: 'ops', admin: true },
        { key: TENANT, tenant: 'acme' },
      ],
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  const train = async (id: string, extra: Record<string, unknown> = {}) => {
    const jobs = await JobClient.open(c.client);
    await jobs.submit(
      {
        model: { name: MODEL, type: 'logreg', intendedUse: 'Scoring card transactions for manual fraud review.', limitations: 'Not for credit decisions; age bands under 30 are flagged more often.' },
        dataset: 'fraud-fair',
        hyper: { optimizer: 'adam', lr: 0.05, steps: 30, batchSize: 256, seed: 4 },
        workers: 1,
        checkpointEvery: 10,
        ...extra,
      } as never,
      { id },
    );
    const done = await jobs.follow(id, () => undefined, 180_000);
    expect(done.reason).toBeUndefined();
    return done.result as unknown as { version: number; deployed?: string };
  };

  it('trains, audits at registration, gates canary and the automatic canary, overrides with a reason, renders the card, lists the audit log', async () => {
    // v1: audited at registration — per attribute and the intersection; group sizes add up to the holdout.
    const v1 = await train('job-fair-1');
    const registry = await ModelRegistry.open(c.client);
    const mv1 = await registry.version(MODEL, v1.version);
    const audit = fairnessOf(await registry.loadReference(mv1))!;
    expect(audit.attributes.map((a) => a.attribute)).toEqual(['age_under_30', 'region', 'age_under_30 & region']);
    for (const a of audit.attributes) expect(a.groups.reduce((s, g) => s + g.size, 0)).toBe(audit.rows);
    const age = audit.attributes[0]!;
    const di = age.summary.disparateImpact;
    // The generator gives under-30s younger accounts, which the model scores as riskier.
    expect(di.value).toBeLessThan(0.8);
    expect(di.low).toBeLessThanOrEqual(di.value);
    expect(di.high).toBeGreaterThanOrEqual(di.value);

    await ops.deploy(MODEL, { version: v1.version, replicas: 1, readyTimeoutMs: 60_000 });

    // A policy naming an undeclared attribute is refused when set.
    await expect(ops.setFairnessPolicy(MODEL, { attributes: ['gender'], disparateImpact: { min: 0.8 } })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_FAIRNESS_POLICY', message: expect.stringMatching(/"gender" not declared \(declared: .*"age_under_30"/) });
    await ops.setFairnessPolicy(MODEL, { attributes: ['age_under_30'], disparateImpact: { min: 0.8 } }, 'four-fifths rule for age bands');

    // v2 asks for an automatic canary: blocked (the job still succeeds, saying why).
    const v2 = await train('job-fair-2', { deploy: 'canary' });
    expect(v2.deployed).toMatch(/not deployed: .*blocked by its fairness policy: disparateImpact/);

    // A manual canary: blocked with metric, attribute, groups and interval.
    const blocked = await ops.canary(MODEL, { version: String(v2.version), weight: 0.1 }).catch((e: unknown) => e as { code: string; message: string });
    expect(blocked).toMatchObject({ code: 'SHOAL_ERR_FAIRNESS_BLOCKED' });
    expect((blocked as { message: string }).message).toMatch(/canary of fraud-fair v2 blocked .*disparateImpact \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] for age_under_30 \(groups 0 vs 1\) is not ≥ 0\.8/);
    expect((await ops.deployment(MODEL))?.canary).toBeUndefined();

    // Override: needs a reason (schema), goes ahead, is audited.
    await expect(ops.canary(MODEL, { version: String(v2.version), fairnessOverride: { reason: '' } })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_MESSAGE', message: expect.stringMatching(/fairnessOverride/) });
    await ops.canary(MODEL, { version: String(v2.version), weight: 0.1, readyTimeoutMs: 60_000, fairnessOverride: { reason: 'shadow-evaluation only, approved by risk (ticket RISK-42)' } });
    expect((await ops.deployment(MODEL))?.canary?.version).toBe(v2.version);
    // Promote is gated too.
    await expect(ops.promote(MODEL)).rejects.toMatchObject({ code: 'SHOAL_ERR_FAIRNESS_BLOCKED' });

    // The card: JSON from the gateway (any key), Markdown by Accept and by ?format=md.
    const cardRes = await fetch(`${base}/v1/models/${MODEL}/versions/${v2.version}/card`, { headers: { 'x-api-key': TENANT } });
    expect(cardRes.status).toBe(200);
    const card = (await cardRes.json()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(card).toMatchObject({ model: MODEL, version: v2.version, intendedUse: expect.stringContaining('manual fraud review'), limitations: expect.stringContaining('Not for credit') });
    expect(card.lineage).toMatchObject({ trainingJobId: 'job-fair-2', dataset: { name: 'fraud-fair', sensitiveAttribute: 'age_under_30' } });
    expect(card.metrics.values.find((m: { name: string }) => m.name === 'auc')).toMatchObject({ low: expect.any(Number), high: expect.any(Number) });
    expect(card.fairness.verdict.pass).toBe(false);
    expect(card.importance.columns.length).toBeGreaterThan(0);
    expect(card.overrides).toHaveLength(1);
    expect(card.overrides[0]).toMatchObject({ who: 'cli:alice', why: expect.stringContaining('RISK-42') });
    expect(card.approvals.map((e: { action: string }) => e.action)).toEqual(['canary']);
    const md = await fetch(`${base}/v1/models/${MODEL}/versions/${v2.version}/card`, { headers: { 'x-api-key': TENANT, accept: 'text/markdown' } });
    expect(md.headers.get('content-type')).toMatch(/^text\/markdown/);
    const text = await md.text();
    expect(text).toMatch(/^# Model card: fraud-fair v2/);
    expect(text).toMatch(/## Fairness[\s\S]*### age_under_30[\s\S]*\| disparateImpact \| \d\.\d{3} \| \[/);
    expect(text).toMatch(/## Overrides\n\n- .* override by cli:alice — “shadow-evaluation only/);
    expect(await (await fetch(`${base}/v1/models/${MODEL}/versions/${v2.version}/card?format=md`, { headers: { 'x-api-key': TENANT } })).text()).toBe(text);
    expect((await fetch(`${base}/v1/models/${MODEL}/versions/99/card`, { headers: { 'x-api-key': TENANT } })).status).toBe(404);

    // The audit log: admin only; the actions in order, with who and why (the dataset shares the model's name).
    const denied = await fetch(`${base}/v1/audit`, { headers: { 'x-api-key': TENANT } });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { code: string }).code).toBe('SHOAL_ERR_FORBIDDEN');
    expect((await fetch(`${base}/v1/audit?since=yesterday`, { headers: { 'x-api-key': ADMIN } })).status).toBe(400);
    const log = (await (await fetch(`${base}/v1/audit?model=${MODEL}`, { headers: { 'x-api-key': ADMIN } })).json()) as { entries: { action: string; who: string; version?: number; why?: string; at: number; seq: number }[] };
    expect(log.entries.map((e) => `${e.action}${e.version ? ` v${e.version}` : ''}`)).toEqual(['register-dataset', 'register v1', 'deploy v1', 'fairness-policy', 'register v2', 'override v2', 'canary v2']);
    expect(log.entries.map((e) => e.who)).toEqual(['cli:alice', 'job:job-fair-1', 'cli:alice', 'cli:alice', 'job:job-fair-2', 'cli:alice', 'cli:alice']);
    expect(log.entries.find((e) => e.action === 'fairness-policy')?.why).toBe('four-fifths rule for age bands');
    const seqs = log.entries.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const since = log.entries[4]!.at;
    const later = (await (await fetch(`${base}/v1/audit?model=${MODEL}&since=${since}`, { headers: { 'x-api-key': ADMIN } })).json()) as { entries: { action: string }[] };
    expect(later.entries.map((e) => e.action)).toEqual(['register', 'override', 'canary']);

    // The CLI: the card (Markdown, --json), the policy, a promote past it with a reason, the audit log.
    const env = { ...c.nats.env(Role.CLIENT), SHOAL_ACTOR: 'cli:bob' };
    const shoal = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), ...args], { env, timeout: 120_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
        p.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    let r = await shoal('models', 'card', `${MODEL}@${v2.version}`);
    expect(r.stdout).toBe(`${text}\n`);
    r = await shoal('models', 'card', `${MODEL}@${v2.version}`, '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({ model: MODEL, version: v2.version, overrides: [{ who: 'cli:alice' }] });
    expect((await shoal('models', 'fairness', MODEL)).stdout).toMatch(/"disparateImpact":\{"min":0\.8\}.*set by cli:alice.*four-fifths/);
    r = await shoal('models', 'promote', MODEL);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/promote of fraud-fair v2 blocked by its fairness policy: disparateImpact .* for age_under_30/);
    r = await shoal('models', 'promote', MODEL, '--override-fairness', 'x');
    expect(r.stderr).toMatch(/--override-fairness needs a reason/);
    r = await shoal('models', 'promote', MODEL, '--override-fairness', 'board decision 2026-12-01');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/v2 promoted to stable/);
    r = await shoal('audit', '--model', MODEL, '--since', new Date(since).toISOString());
    const lines = r.stdout.trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/)[1])).toEqual(['register', 'override', 'canary', 'override', 'promote']);
    expect(lines[3]).toMatch(/override +fraud-fair v2 +by cli:bob — board decision 2026-12-01/);
    r = await shoal('audit', '--since', 'soon');
    expect(r.status).toBe(2); // a usage error
    expect(r.stderr).toMatch(/--since: "soon" is not a time/);
  }, 420_000);
});
