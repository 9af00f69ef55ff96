/**
 * Sensitive features on feature views (issue #20): a sensitive feature is kept out of the model's
 * vector (unless `useAsFeature`) and a training set built from the view declares it as a dataset
 * sensitive attribute (a group id per row, group labels from the view's vocabulary or buckets) —
 * what the training job's fairness audit and the fairness policy read. A numeric sensitive
 * feature without `bucketize` is refused at apply, naming the feature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, VirtualClock, createLogger, ensureResources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { DatasetStore } from '../../ml/datasets/store.ts';
import { sensitiveColumns } from '../../ml/governance/fairness/training.ts';
import { FeatureClient, encodeRows, startFeatureService, type FeatureService, type FeatureViewDef } from '../../ml/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const T0 = Date.parse('2026-03-01T12:00:00Z');

const people: FeatureViewDef = {
  name: 'people',
  entity: ['person_id'],
  source: { type: 'push' },
  ttlSeconds: 0,
  features: [
    { name: 'income', type: 'numeric', transforms: [{ op: 'standardize' }] },
    { name: 'sex', type: 'categorical', sensitive: true, transforms: [{ op: 'onehot', vocabulary: ['F', 'M'] }] },
    { name: 'age', type: 'numeric', sensitive: true, transforms: [{ op: 'bucketize', boundaries: [30, 50] }] },
    { name: 'senior', type: 'boolean', sensitive: true, useAsFeature: true },
  ],
};
const snapshot = [
  { income: 10, sex: 'F', age: 25, senior: false },
  { income: 30, sex: 'M', age: 60, senior: true },
];

describe('feature views: sensitive features (real nats-server, DuckDB)', () => {
  let nats: TestNats;
  let sched: NatsConnection;
  let service: FeatureService;
  let features: FeatureClient;
  let datasets: DatasetStore;
  const clock = new VirtualClock(T0);

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    service = await startFeatureService({ nc: sched, subjects: subjects(), log: createLogger({ level: 'silent', pretty: false }), clock });
    const cli = await nats.connect(Role.CLIENT);
    features = await FeatureClient.open(cli, subjects(), clock);
    datasets = await DatasetStore.open(cli);
  }, 30_000);
  afterAll(async () => {
    await service?.stop();
    await nats?.stop();
  });

  it('refuses a numeric sensitive feature without bucketize, and useAsFeature without sensitive, naming the feature', async () => {
    const bad: FeatureViewDef = { ...people, name: 'bad', features: [{ name: 'age', type: 'numeric', sensitive: true, transforms: [{ op: 'standardize' }] }] };
    await expect(features.apply(bad, snapshot)).rejects.toThrow(/features\[0\] \(age\)\.sensitive needs groups: a numeric sensitive feature must have a bucketize transform/);
    const bad2: FeatureViewDef = { ...people, name: 'bad2', features: [{ name: 'income', type: 'numeric', useAsFeature: true }] };
    await expect(features.apply(bad2, snapshot)).rejects.toThrow(/features\[0\] \(income\)\.useAsFeature applies to a sensitive feature only/);
  });

  it('a training set built from the view excludes the sensitive features from the vector and declares them as sensitive attributes', async () => {
    const v = (await features.apply(people, snapshot)).version;
    // The vector: income and senior (useAsFeature); sex and age are not encoded.
    expect(v.fitted!.columns).toEqual(['income', 'senior']);
    const push = (id: string, person: string, values: Record<string, string | number | boolean>) => features.push('people', { eventId: id, entity: { person_id: person }, values, eventTime: T0 - 1000 });
    await push('e1', 'p1', { income: 10, sex: 'F', age: 25, senior: false });
    await push('e2', 'p2', { income: 30, sex: 'M', age: 40, senior: false });
    await push('e3', 'p3', { income: 20, sex: 'X', age: 70, senior: true });
    const labels = ['p1', 'p2', 'p3', 'p4'].map((p, i) => ({ entity: { person_id: p }, time: T0, label: i % 2 }));
    const r = await features.buildDataset({ name: 'people-train', views: ['people'], labels });
    expect(r.dataset.columns).toEqual(['people.income', 'people.senior']);
    expect(r.dataset.extraSensitiveNames).toEqual(['sex', 'age', 'senior']);
    const d = await datasets.load(r.dataset);
    const enc = features.views.encoder(v);
    expect(Array.from(d.features)).toEqual(Array.from(encodeRows(enc, [{ income: 10, senior: false }, { income: 30, senior: false }, { income: 20, senior: true }, {}])));
    // Groups: sex by the vocabulary (X and the missing p4 → <unknown>), age by bucket (p4 → the mean fill, 45 → [30, 50)).
    expect(d.extraSensitive!.map((e) => [e.name, Array.from(e.values), e.levels])).toEqual([
      ['sex', [0, 1, 2, 2], ['F', 'M', '<unknown>']],
      ['age', [0, 1, 2, 1], ['< 30', '[30, 50)', '≥ 50']],
      ['senior', [0, 0, 1, 0], ['false', 'true']], // also in the vector (useAsFeature)
    ]);
    // What the training job audits: the attributes with their group labels.
    expect(sensitiveColumns(d, [0, 2]).map((c) => [c.name, Array.from(c.values), c.levels])).toEqual([
      ['sex', [0, 2], ['F', 'M', '<unknown>']],
      ['age', [0, 2], ['< 30', '[30, 50)', '≥ 50']],
      ['senior', [0, 1], ['false', 'true']],
    ]);
  });
});
