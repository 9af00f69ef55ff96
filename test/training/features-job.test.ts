/**
 * Training on a feature-view training set (issue #14 part 6), real processes: a job spec whose
 * `dataset` is `{features: [...], labels: [...]}` has its coordinator (on a node) ask the
 * scheduler's features service to build the set point-in-time, trains on it, and registers a
 * model version whose lineage names the view versions and the built dataset. A bad features
 * spec is refused naming the field: its shape at submission, an unknown view by the job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, subjects } from '../../cluster/index.ts';
import { DatasetStore, FeatureClient, JobClient, ModelRegistry, encodeRows, fairnessOf } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

const ARGS = ['--actors.modules', '["shoal:ml/training/actors.ts"]'];
const T0 = Date.parse('2026-03-01T12:00:00Z');
/**
 * The label time: after the events' ingestion (the scheduler's real clock) as well as their event
 * times, so each row sees its account's last amount (exclusion of later and late values is
 * offline.test.ts's, with a virtual clock).
 */
const LABEL_AT = Date.parse('2040-01-01T00:00:00Z');

describe('training on a feature-view training set (real processes)', () => {
  let c: TestCluster;
  let jobs: JobClient;
  let features: FeatureClient;
  /** Label rows: an account's label is 1 when its last spend is high. */
  const last = new Map<string, number>();
  const labels: { entity: { account_id: string }; time: number; label: 0 | 1 }[] = [];

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: ['train-a'] });
    jobs = await JobClient.open(c.client);
    features = await FeatureClient.open(c.client, subjects());
    await features.apply(
      { name: 'spend', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] }] },
      [{ amount: 10 }, { amount: 90 }],
    );
    const rand = seededRandom(3);
    // 300 events, 100 accounts, event times before T0; each account's label follows its last amount.
    for (let i = 0; i < 300; i++) {
      const acct = `a-${i % 100}`;
      const amount = Math.round(rand() * 100);
      last.set(acct, amount);
      await features.push('spend', { eventId: `e-${i}`, entity: { account_id: acct }, values: { amount }, eventTime: T0 - 300_000 + i * 1000 });
    }
    for (const [acct, amount] of last) labels.push({ entity: { account_id: acct }, time: LABEL_AT, label: amount > 50 ? 1 : 0 });
  }, 90_000);
  afterAll(async () => c?.stop());

  it('builds the set point-in-time before training; the model version names the view version and the built dataset', async () => {
    await jobs.submit(
      { model: { name: 'spend-risk', type: 'logreg' }, dataset: { features: ['spend@1'], labels }, hyper: { optimizer: 'adam', lr: 0.1, steps: 30, batchSize: 64, seed: 1 }, workers: 1 },
      { id: 'job-feat' },
    );
    const rec = await jobs.follow('job-feat', () => undefined, 120_000);
    expect(rec.reason).toBeUndefined();
    expect(rec.state).toBe('succeeded');
    const result = rec.result as { version: number; datasetDigest: string };
    const built = await (await DatasetStore.open(c.client)).resolve('spend-risk-features');
    expect(built).toMatchObject({ digest: result.datasetDigest, rows: 100, columns: ['spend.amount'] });
    expect(built.source).toContain('spend@1');
    // Point-in-time: each row is the account's last amount known at its label time, encoded by the view's encoder.
    const d = await (await DatasetStore.open(c.client)).load(built);
    const enc = features.views.encoder(await features.show('spend', 1));
    const want = encodeRows(enc, [...last.values()].map((amount) => ({ amount })));
    expect(Array.from(d.features)).toEqual(Array.from(want));
    expect(Array.from(d.labels)).toEqual(labels.map((l) => l.label));
    const mv = await (await ModelRegistry.open(c.client)).version('spend-risk', result.version);
    const view = await features.show('spend', 1);
    expect(mv.lineage).toMatchObject({
      datasetDigest: built.digest,
      trainingJobId: 'job-feat',
      features: { datasetDigest: built.digest, views: [{ view: 'spend@1', digest: view.digest, through: expect.any(Number) }], columns: ['spend.amount'] },
    });
  });

  it("a view's sensitive feature is kept out of the model's input and audited: the version's fairness audit covers it, by group label", async () => {
    await features.apply(
      { name: 'person', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'band', type: 'categorical', sensitive: true, transforms: [{ op: 'onehot', vocabulary: ['x', 'y'] }] }] },
      [{ band: 'x' }, { band: 'y' }],
    );
    for (let i = 0; i < 100; i++) await features.push('person', { eventId: `p-${i}`, entity: { account_id: `a-${i}` }, values: { band: i % 2 ? 'x' : 'y' }, eventTime: T0 - 400_000 });
    await jobs.submit(
      { model: { name: 'spend-fair', type: 'logreg' }, dataset: { features: ['spend@1', 'person'], labels }, hyper: { optimizer: 'adam', lr: 0.1, steps: 30, batchSize: 64, seed: 1 }, workers: 1 },
      { id: 'job-feat-fair' },
    );
    const rec = await jobs.follow('job-feat-fair', () => undefined, 120_000);
    expect(rec.reason).toBeUndefined();
    const result = rec.result as { version: number; datasetDigest: string };
    const built = await (await DatasetStore.open(c.client)).resolve('spend-fair-features');
    expect(built).toMatchObject({ digest: result.datasetDigest, columns: ['spend.amount'], extraSensitiveNames: ['band'] });
    const registry = await ModelRegistry.open(c.client);
    const mv = await registry.version('spend-fair', result.version);
    expect(mv.lineage).toMatchObject({ features: { columns: ['spend.amount'] } });
    const audit = fairnessOf(await registry.loadReference(mv))!;
    expect(audit.attributes.map((a) => a.attribute)).toEqual(['band']);
    expect(audit.attributes[0]!.groups.map((g) => g.group).sort()).toEqual(['x', 'y']);
    expect(audit.attributes[0]!.groups.reduce((n, g) => n + g.size, 0)).toBe(audit.rows);
  });

  it('a bad features spec is refused naming the field', async () => {
    const base = { model: { name: 'spend-bad', type: 'logreg' }, hyper: { steps: 5 }, workers: 1 };
    // Its shape, at submission (a 400 at the gateway).
    const bad = jobs.submit({ ...base, dataset: { features: ['spend@x'], labels } }, { id: 'job-f-bad' });
    await expect(bad).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_JOB' });
    await expect(bad).rejects.toThrow(/dataset\.features\.0: /);
    await expect(jobs.submit({ ...base, dataset: { features: ['spend'], labels: [{ entity: { account_id: 'a-1' }, time: T0, label: 7 }] } }, { id: 'job-f-bad' })).rejects.toThrow(/dataset\.labels\.0\.label: /);
    // An unknown view, by the job (a view may be applied between submission and start).
    await jobs.submit({ ...base, dataset: { features: ['no_such_view'], labels } }, { id: 'job-f-noview' });
    const noview = await jobs.follow('job-f-noview', () => undefined, 60_000);
    expect(noview.state).toBe('failed');
    expect(noview.reason).toMatch(/dataset\.features: .*no_such_view/);
    // Label rows missing the view's entity column, by the job.
    await jobs.submit({ ...base, dataset: { features: ['spend'], labels: [{ entity: { customer: 'c-1' }, time: T0, label: 1 }] } }, { id: 'job-f-nokey' });
    const nokey = await jobs.follow('job-f-nokey', () => undefined, 60_000);
    expect(nokey.state).toBe('failed');
    expect(nokey.reason).toMatch(/dataset\.labels: .*labels\[0\]\.entity/);
  });
});
