/**
 * Training-set labels read from a label view's events (delayed labels pushed as they come back,
 * `labels: {view, label}`), on a real nats-server with the features service: the set equals the
 * one built from the same rows given inline (same dataset digest); a label pushed again for the
 * same entity and time replaces the first; `since`/`until` bound the label times; a label view
 * that lacks a feature view's key column, or a label feature that is not there, is a 400 naming it;
 * the training spec and the CLI accept the form. And backfills: history pushed today with its
 * `knownAt` is joined as it was known then (without it, as known only from now).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, VirtualClock, createLogger, ensureResources, request, subjects, type NatsConnection } from '../../cluster/index.ts';
import { FeatureClient, startFeatureService, type FeatureService, type FeatureViewDef, type LabelRow } from '../../ml/index.ts';
import { parseTrainingSpec } from '../../ml/training/spec.ts';
import { runFeatures } from '../../cli/features.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const T0 = Date.parse('2026-04-01T09:00:00Z');
const acct: FeatureViewDef = { name: 'acct', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] }] };
const outcome: FeatureViewDef = { name: 'outcome', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'is_fraud', type: 'boolean' }, { name: 'note', type: 'categorical', transforms: [{ op: 'ordinal', vocabulary: ['x'] }] }] };
const byTxn: FeatureViewDef = { name: 'by_txn', entity: ['txn_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'is_fraud', type: 'boolean' }] };

describe('training-set labels from a label view (real nats-server, DuckDB)', () => {
  let nats: TestNats;
  let cli: NatsConnection;
  let service: FeatureService;
  let features: FeatureClient;
  const clock = new VirtualClock(T0);
  const s = subjects();

  beforeAll(async () => {
    nats = await startTestNats();
    const sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    service = await startFeatureService({ nc: sched, subjects: s, log: createLogger({ level: 'silent', pretty: false }), clock });
    cli = await nats.connect(Role.CLIENT);
    features = await FeatureClient.open(cli, s, clock);
    await features.apply(acct, [{ amount: 1 }, { amount: 9 }]);
    await features.apply(outcome, [{ is_fraud: true, note: 'x' }]);
    await features.apply(byTxn, [{ is_fraud: true }]);
  }, 30_000);
  afterAll(async () => {
    await service?.stop();
    await nats?.stop();
  });

  it('labels pushed days later, read from the label view, give the same set as the same rows inline', async () => {
    // Transactions (features) at T0 + k·10 s; their labels come back two days later, dated at the transaction.
    for (let k = 0; k < 6; k++) await features.push('acct', { eventId: `f${k}`, entity: { account_id: `a-${k % 3}` }, values: { amount: 10 * k }, eventTime: T0 + k * 10_000 });
    clock.advanceTo(T0 + 2 * 86_400_000);
    const inline: LabelRow[] = [];
    for (let k = 0; k < 6; k++) {
      const label = k % 2 === 0;
      await features.push('outcome', { eventId: `l${k}`, entity: { account_id: `a-${k % 3}` }, values: { is_fraud: label }, eventTime: T0 + k * 10_000 });
      inline.push({ entity: { account_id: `a-${k % 3}` }, time: T0 + k * 10_000, label });
    }
    // A correction: the label of a-1 at T0+10 s is pushed again, reversed; the later push wins.
    await features.push('outcome', { eventId: 'l1-fix', entity: { account_id: 'a-1' }, values: { is_fraud: true }, eventTime: T0 + 10_000 });
    inline[1] = { ...inline[1]!, label: true };
    // A label event without the label feature (only a note) is not a label row.
    await features.push('outcome', { eventId: 'n1', entity: { account_id: 'a-2' }, values: { note: 'x' }, eventTime: T0 + 99_000 });

    const fromView = await features.buildDataset({ name: 'acct-set', views: ['acct'], labels: { view: 'outcome', label: 'is_fraud' } });
    const fromRows = await features.buildDataset({ name: 'acct-set', views: ['acct'], labels: inline });
    expect(fromView.dataset.rows).toBe(6);
    expect(fromView.dataset.positives).toBe(4);
    expect(fromView.dataset.digest).toBe(fromRows.dataset.digest);
    expect(fromView.lineage.labelsFrom).toMatchObject({ view: 'outcome', version: 1, label: 'is_fraud', through: expect.any(Number) });
    // Each row's amount is the transaction's own (event time ≤ label time), not a later one.
    expect(fromView.found.acct).toBe(6);

    const window = await features.buildDataset({ name: 'acct-win', views: ['acct'], labels: { view: 'outcome', label: 'is_fraud', since: T0 + 10_000, until: new Date(T0 + 30_000).toISOString() } });
    expect(window.dataset.rows).toBe(3);
  });

  it('refuses a label view without a feature view key column, or a label feature that is not there, naming it', async () => {
    await features.push('by_txn', { eventId: 't1', entity: { txn_id: 't-1' }, values: { is_fraud: true }, eventTime: T0 });
    const cases: [unknown, RegExp][] = [
      [{ view: 'by_txn', label: 'is_fraud' }, /label view by_txn is keyed by txn_id; feature view acct needs account_id/],
      [{ view: 'outcome', label: 'fraud' }, /labels\.label: feature view outcome has no feature "fraud"/],
      [{ view: 'outcome', label: 'note' }, /outcome\.note is categorical/],
      [{ view: 'outcome', label: 'is_fraud', until: T0 - 1 }, /no "is_fraud" events in the range/],
    ];
    for (const [labels, want] of cases) {
      const p = request(cli, s.featuresBuild, { name: 'x', views: ['acct'], labels });
      await expect(p, JSON.stringify(labels)).rejects.toMatchObject({ status: 400 });
      await expect(request(cli, s.featuresBuild, { name: 'x', views: ['acct'], labels }), JSON.stringify(labels)).rejects.toThrow(want);
    }
  });

  it('the training spec and the CLI take the label-view form', async () => {
    const spec = parseTrainingSpec('j1', { model: { name: 'fraud', type: 'logreg' }, dataset: { features: ['acct'], labels: { view: 'outcome', label: 'is_fraud', since: '2026-04-01T00:00:00Z' } } });
    expect(spec.dataset).toMatchObject({ labels: { view: 'outcome', label: 'is_fraud' } });
    let out = '';
    const run = (...argv: string[]) => {
      out = '';
      return runFeatures(argv, cli, 'shoal', (t) => void (out += t));
    };
    expect(await run('build-dataset', '--views', 'acct', '--label-view', 'outcome', '--label', 'is_fraud', '--name', 'cli-labels')).toBe(0);
    expect(out).toMatch(/dataset cli-labels@[0-9a-f]{12}: 6 rows × 1 columns, 4 positive/);
    await expect(run('build-dataset', '--views', 'acct', '--label-view', 'outcome')).rejects.toThrow(/--label FEATURE/);
  });

  it('a backfill with knownAt is joined as known then; without it, only from its ingestion', async () => {
    const past = T0 - 30 * 86_400_000;
    // Pushed now (clock at T0 + 2 days), about a month ago: one with knownAt, one without.
    await features.push('acct', { eventId: 'bf1', entity: { account_id: 'old-1' }, values: { amount: 5 }, eventTime: past, knownAt: past + 1000 });
    await features.push('acct', { eventId: 'bf2', entity: { account_id: 'old-2' }, values: { amount: 7 }, eventTime: past });
    const r = await features.buildDataset({ name: 'bf', views: ['acct'], labels: [{ entity: { account_id: 'old-1' }, time: past + 5000, label: 1 }, { entity: { account_id: 'old-2' }, time: past + 5000, label: 0 }, { entity: { account_id: 'old-1' }, time: past + 500, label: 0 }] });
    // old-1 at past+5 s: known (knownAt past+1 s); old-2: arrived only now, so not known then; old-1 at past+0.5 s: not yet known.
    expect(r.found.acct).toBe(1);
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ eventId: 'bf3', entity: { account_id: 'x' }, values: { amount: 1 }, eventTime: past, knownAt: clock.now() + 60_000 }, /knownAt: .* is after the ingestion time/],
      [{ eventId: 'bf4', entity: { account_id: 'x' }, values: { amount: 1 }, eventTime: past, knownAt: past - 86_400_000 }, /knownAt: .* is before eventTime/],
      [{ eventId: 'bf5', entity: { account_id: 'x' }, values: { amount: 1 }, eventTime: past, knownAt: 'yesterday' }, /knownAt: "yesterday" is not an ISO 8601 time/],
    ];
    for (const [ev, want] of bad) await expect(request(cli, s.featurePush('acct'), ev), JSON.stringify(ev)).rejects.toThrow(want);
  });
});
