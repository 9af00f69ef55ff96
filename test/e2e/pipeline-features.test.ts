/**
 * A pipeline on a feature-view training set (issue #16 item 1), on a real cluster (nats-server
 * with auth, the scheduler with its features service and the pipelines leader, a node agent):
 * `data.features` builds the set point-in-time with the label view's labels up to the run's
 * trigger time, pins it by digest, and the job trains on that pinned set — the candidate version's
 * lineage names the view version and the pinned dataset, so it can predict by entity. Labels dated
 * after the trigger time (pushed before the run, so they are in the log when it builds) are not in
 * the set; a label window that holds no labels fails the run naming data.features.labels.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, subjects } from '../../cluster/index.ts';
import { DatasetStore, FeatureClient, JobClient, ModelRegistry, PipelineClient, type RunRecord } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const ACCOUNTS = 300;
const LATE = 80;

describe('pipeline on a feature-view training set (real cluster)', () => {
  let c: TestCluster;
  let pipelines: PipelineClient;
  let features: FeatureClient;
  /** When the labels were dated: after every feature event was ingested, before any run's trigger. */
  let labelAt = 0;
  /** Late labels' time: after the run's trigger (the features service takes event times up to 300 s ahead). */
  let lateAt = 0;
  const done = (name: string, run: number) =>
    until(async () => {
      const r = (await pipelines.runs(name))?.find((x) => x.run === run);
      return r?.state === 'done' ? r : undefined;
    }, 300_000, `${name} run ${run} done`, 500);
  const inChunks = async <T>(items: T[], f: (x: T) => Promise<unknown>) => {
    for (let i = 0; i < items.length; i += 25) await Promise.all(items.slice(i, i + 25).map(f));
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-pf', profile: 'cpu-ondemand' }] });
    features = await FeatureClient.open(c.client, subjects());
    await features.apply({ name: 'spend', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] }] }, [{ amount: 10 }, { amount: 90 }]);
    await features.apply({ name: 'outcome', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'is_fraud', type: 'boolean' }] }, [{ is_fraud: true }]);
    const rand = seededRandom(7);
    const amounts = Array.from({ length: ACCOUNTS }, () => Math.round(rand() * 100));
    const eventTime = Date.now() - 60_000;
    await inChunks([...amounts.keys()], (i) => features.push('spend', { eventId: `s-${i}`, entity: { account_id: `a-${i}` }, values: { amount: amounts[i]! }, eventTime }));
    // Each account's label (high spend, with a little noise), dated after its amount was ingested.
    labelAt = Date.now();
    await inChunks([...amounts.keys()], (i) => features.push('outcome', { eventId: `l-${i}`, entity: { account_id: `a-${i}` }, values: { is_fraud: (amounts[i]! > 50) !== (i % 10 === 0) }, eventTime: labelAt }));
    // v1 trained by a job on the same kind of set; it is production.
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: 'spend-risk', type: 'logreg' }, dataset: { features: ['spend'], labels: { view: 'outcome', label: 'is_fraud' } }, hyper: { optimizer: 'adam', lr: 0.1, steps: 60, batchSize: 64, seed: 1 }, workers: 1 }, { id: 'job-spend-risk-1' });
    expect((await jobs.follow('job-spend-risk-1', () => undefined, 180_000)).reason).toBeUndefined();
    await c.control.setAlias('spend-risk', 'production', 1);
    // Labels dated after the run's trigger time, already in the log when the run builds its set.
    lateAt = Date.now() + 240_000;
    await inChunks([...Array(LATE).keys()], (i) => features.push('outcome', { eventId: `late-${i}`, entity: { account_id: `a-${i}` }, values: { is_fraud: true }, eventTime: lateAt }));
    pipelines = new PipelineClient(c.client, subjects());
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  it('a run builds the set up to the trigger time, pins it, and the job trains on it with the views as lineage', async () => {
    // Without the trigger bound the late labels are there to be read: the set would have them.
    const unbounded = await features.buildDataset({ name: 'pf-unbounded', views: ['spend'], labels: { view: 'outcome', label: 'is_fraud' } });
    expect(unbounded.dataset.rows).toBe(ACCOUNTS + LATE);

    await pipelines.apply({ name: 'pf', model: 'spend-risk', data: { features: { features: ['spend'], labels: { view: 'outcome', label: 'is_fraud' } } }, training: { steps: 60, lr: 0.1, seed: 2 }, gates: { maxDrop: 0.5 }, rollout: { direct: true } });
    await pipelines.run('pf', 'test');
    const rec: RunRecord = await done('pf', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'promoted' });
    const snap = rec.snapshot!;
    expect(snap.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.trigger.at).toBeLessThan(lateAt);
    // Only the labels up to the trigger time: the late batch is not in the set.
    expect(snap.rows).toBe(ACCOUNTS);
    expect(snap).toMatchObject({ dataset: 'pf-features', views: [{ name: 'spend', version: 1 }], labels: { view: 'outcome', label: 'is_fraud', until: rec.trigger.at } });
    expect(snap.labels?.since).toBeUndefined();
    const pinned = await (await DatasetStore.open(c.client)).resolve(`sha256:${snap.digest}`);
    expect(pinned).toMatchObject({ name: 'pf-features', rows: ACCOUNTS, columns: ['spend.amount'] });

    // The job got the views at the snapshot's versions and the set pinned by digest, not a rebuild request.
    const job = await (await JobClient.open(c.client)).get(rec.jobId!);
    expect(job.spec).toMatchObject({ dataset: { features: ['spend@1'], labels: { view: 'outcome', until: rec.trigger.at }, pinned: { digest: snap.digest, views: [{ view: 'spend@1' }] } } });
    // The candidate records the view and the pinned set: it predicts by entity like v1.
    const registry = await ModelRegistry.open(c.client);
    const mv = await registry.version('spend-risk', rec.candidate!.version);
    const view = await features.show('spend', 1);
    expect(mv.lineage).toMatchObject({ datasetDigest: snap.digest, features: { datasetDigest: snap.digest, views: [{ view: 'spend@1', digest: view.digest }], columns: ['spend.amount'] } });
    expect(rec.report?.auc?.candidate).toBeGreaterThan(0.6);
    expect((await registry.get('spend-risk')).aliases['production']).toBe(rec.candidate!.version);
  }, 360_000);

  it('a label window with no labels in it fails the run naming data.features.labels', async () => {
    await pipelines.apply({ name: 'pf-window', model: 'spend-risk', data: { features: { features: ['spend'], labels: { view: 'outcome', label: 'is_fraud', windowMs: 1000 } } }, training: { steps: 20 }, gates: { maxDrop: 0.5 }, rollout: { direct: true } });
    await pipelines.run('pf-window');
    const rec = await done('pf-window', 1);
    // Every label is dated labelAt (over a second before this trigger: v1 trained in between) or lateAt, after it.
    expect(rec.trigger.at).toBeLessThan(lateAt);
    expect(rec.trigger.at - 1000).toBeGreaterThan(labelAt);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'failed' });
    expect(rec.decision?.reason).toMatch(/data\.features\.labels: .*no "is_fraud" events in the range/);
    expect(rec.jobId).toBeUndefined();
  }, 120_000);
});
