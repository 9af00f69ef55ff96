/**
 * The offline store and point-in-time training sets on a real nats-server, with the features
 * service in this process (scheduler rights) and a client-role caller: compaction to Parquet is
 * idempotent; a training row sees a feature value only when it was known at the label time
 * (event time ≤ label time AND ingestion time ≤ label time) and within the TTL, else the fill;
 * and the training vector of an entity at time T is bit-identical to what the online store
 * served at T. Time is a VirtualClock (epoch ms).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, VirtualClock, createLogger, ensureResources, request, seededRandom, subjects, type NatsConnection } from '../../cluster/index.ts';
import { DatasetStore } from '../../ml/datasets/store.ts';
import { HOUR, generateFraudEvents, inDeliveryOrder, type TransactionEvent } from '../../ml/datasets/fraud-events.ts';
import { FeatureClient, MlErrors, encodeRows, startFeatureService, type FeatureService, type FeatureViewDef, type LabelRow, type MaterializeResult, type RawValue, startFeatureCompactor } from '../../ml/index.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runFeatures } from '../../cli/features.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const T0 = Date.parse('2026-03-01T12:00:00Z');

const acct: FeatureViewDef = {
  name: 'acct',
  entity: ['account_id'],
  source: { type: 'push' },
  ttlSeconds: 60,
  features: [
    { name: 'amount', type: 'numeric', transforms: [{ op: 'standardize' }] },
    { name: 'kind', type: 'categorical', transforms: [{ op: 'onehot', vocabulary: ['DE', 'FR'] }] },
    { name: 'flag', type: 'boolean' },
  ],
};
const snapshot = [
  { amount: 10, kind: 'FR', flag: true },
  { amount: 70, kind: 'DE', flag: false },
  { amount: 40, kind: 'FR', flag: null },
];
// A second view keyed by another column, to join two views in one set.
const merchant: FeatureViewDef = { name: 'merch', entity: ['merchant_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'risk', type: 'numeric', transforms: [{ op: 'minmax' }] }] };

const bits = (a: Float32Array, from = 0, len = a.length) => Buffer.from(a.buffer, a.byteOffset + from * 4, len * 4).toString('hex');

describe('feature store: offline store and point-in-time training sets (real nats-server, DuckDB)', () => {
  let nats: TestNats;
  let sched: NatsConnection;
  let cli: NatsConnection;
  let service: FeatureService;
  let features: FeatureClient;
  let datasets: DatasetStore;
  const clock = new VirtualClock(T0);
  const s = subjects();

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    service = await startFeatureService({ nc: sched, subjects: s, log: createLogger({ level: 'silent', pretty: false }), clock });
    cli = await nats.connect(Role.CLIENT);
    features = await FeatureClient.open(cli, s, clock);
    datasets = await DatasetStore.open(cli);
    await features.apply(acct, snapshot);
    await features.apply(merchant, [{ risk: 0 }, { risk: 10 }]);
  }, 30_000);
  afterAll(async () => {
    await service?.stop();
    await nats?.stop();
  });

  it('constructed cases: a value written after the label time, a late arrival, TTL expiry → the fill; compaction is idempotent', async () => {
    const push = (id: string, entity: string, values: Record<string, RawValue>, eventTime: number) => features.push('acct', { eventId: id, entity: { account_id: entity }, values, eventTime });
    // At T0: a-1 has amount 10 (event T0−5 s); a-2 has amount 50, kind FR at T0.
    await push('c1', 'a-1', { amount: 10, flag: true }, T0 - 5000);
    await push('c2', 'a-2', { amount: 50, kind: 'FR' }, T0);
    // At T0+10 s: a-1's amount becomes 20 (event T0+10 s, after the first label time), and its kind
    // DE arrives late: event time T0+1 s (before the label) but ingested at T0+10 s (after it).
    clock.advanceTo(T0 + 10_000);
    await push('c3', 'a-1', { amount: 20 }, T0 + 10_000);
    await push('c4', 'a-1', { kind: 'DE' }, T0 + 1000);

    const m1 = await features.materialize('acct');
    expect(m1.file).toMatchObject({ events: 4, rows: 6, afterSeq: 0 });
    // Nothing new: no second file, no duplicated rows.
    const m2 = await features.materialize('acct');
    expect(m2.file).toBeNull();
    expect(m2.manifest.files).toHaveLength(1);
    expect(m2.manifest.through).toBe(m1.manifest.through);

    const labels: LabelRow[] = [
      { entity: { account_id: 'a-1' }, time: T0 + 5000, label: 0 }, // amount 10 (20 is later); kind not yet known (late)
      { entity: { account_id: 'a-1' }, time: new Date(T0 + 20_000).toISOString(), label: 1 }, // amount 20, kind DE
      { entity: { account_id: 'a-2' }, time: T0 + 60_000, label: 0 }, // exactly the TTL: still valid
      { entity: { account_id: 'a-2' }, time: T0 + 60_001, label: 1 }, // older than the TTL: the fill
      { entity: { account_id: 'a-3' }, time: T0 + 20_000, label: 0 }, // never seen: every fill
      { entity: { account_id: 'a-1' }, time: T0 - 6000, label: 0 }, // before anything happened
    ];
    const r = await features.buildDataset({ name: 'acct-train', views: ['acct'], labels });
    expect(r.dataset).toMatchObject({ name: 'acct-train', rows: 6, positives: 2, columns: ['acct.amount', 'acct.kind=DE', 'acct.kind=FR', 'acct.kind=<unknown>', 'acct.flag'] });
    expect(r.lineage.views).toEqual([{ name: 'acct', version: 1, digest: expect.any(String), through: m1.manifest.through, files: [{ object: m1.file!.object, afterSeq: 0, throughSeq: m1.manifest.through }] }]);
    expect(r.dataset.source).toContain('acct@1');
    const d = await datasets.load(r.dataset);
    const enc = features.views.encoder(await features.show('acct'));
    const expected = encodeRows(enc, [{ amount: 10, flag: true }, { amount: 20, flag: true, kind: 'DE' }, { amount: 50, kind: 'FR' }, {}, {}, {}]);
    expect(bits(d.features)).toBe(bits(expected));
    expect(Array.from(d.labels)).toEqual([0, 1, 0, 1, 0, 0]);
    // The same request again: the same content, the same dataset version.
    expect((await features.buildDataset({ name: 'acct-train', views: ['acct'], labels })).dataset.digest).toBe(r.dataset.digest);

    // New events are compacted into a second file covering only the new range; two views joined.
    clock.advanceTo(T0 + 30_000);
    await push('c5', 'a-1', { amount: 30 }, T0 + 30_000);
    await features.push('merch', { eventId: 'm1', entity: { merchant_id: 'm-1' }, values: { risk: 8 }, eventTime: T0 });
    const two = await features.buildDataset({
      name: 'acct-merch',
      views: ['acct@1', 'merch'],
      labels: [
        { entity: { account_id: 'a-1', merchant_id: 'm-1' }, time: T0 + 30_000, label: true },
        // 1 ms earlier: a-1's amount is still 20, and m-1's risk (ingested at T0+30 s) is not yet known: its fill (the mean, 5).
        { entity: { account_id: 'a-1', merchant_id: 'm-1' }, time: T0 + 29_999, label: false },
      ],
    });
    const files = two.lineage.views[0]!.files;
    expect(files).toHaveLength(2);
    expect(files[1]!.afterSeq).toBe(m1.manifest.through);
    expect(two.found).toEqual({ acct: 6, merch: 1 });
    const d2 = await datasets.load(two.dataset);
    const a = encodeRows(enc, [{ amount: 30, flag: true, kind: 'DE' }, { amount: 20, flag: true, kind: 'DE' }]);
    // Two events with the same event time: the later arrival wins, as online.
    await push('c6', 'a-4', { amount: 1 }, T0 + 29_000);
    await push('c7', 'a-4', { amount: 2 }, T0 + 29_000);
    const tie = await features.buildDataset({ name: 'acct-tie', views: ['acct'], labels: [{ entity: { account_id: 'a-4' }, time: T0 + 30_000, label: 0 }] });
    expect(bits((await datasets.load(tie.dataset)).features)).toBe(bits(encodeRows(enc, [{ amount: 2 }])));
    expect(Array.from((await features.vectors('acct', [{ account_id: 'a-4' }]))[0]!.vector)).toEqual(Array.from(encodeRows(enc, [{ amount: 2 }])));
    expect(bits(d2.features)).toBe(bits(Float32Array.from([...a.subarray(0, 5), 0.8, ...a.subarray(5, 10), 0.5])));
  });

  it('online/offline consistency: the training vector at T is bit-identical to what the online store served at T', async () => {
    const rand = seededRandom(7);
    const entities = Array.from({ length: 12 }, (_, i) => `r-${i}`);
    const kinds = ['DE', 'FR', 'JP', null];
    const reads: { entity: string; time: number; vector: Float32Array }[] = [];
    let id = 0;
    for (let step = 0; step < 25; step++) {
      clock.advance(1000 + Math.floor(rand() * 20_000));
      // A few events, some late (event time up to 90 s back, beyond the TTL too), some with a subset of features.
      for (let k = 0; k < 4; k++) {
        const values: Record<string, RawValue> = {};
        if (rand() < 0.7) values.amount = Math.round(rand() * 10_000) / 100;
        if (rand() < 0.5) values.kind = kinds[Math.floor(rand() * kinds.length)]!;
        if (rand() < 0.4 || Object.keys(values).length === 0) values.flag = rand() < 0.5;
        const entity = entities[Math.floor(rand() * entities.length)]!;
        await features.push('acct', { eventId: `r${id++}`, entity: { account_id: entity }, values, eventTime: clock.now() - Math.floor(rand() * 90_000) });
      }
      // Read after the pushes, at a later instant (an event ingested at T is known at T).
      clock.advance(1 + Math.floor(rand() * 3000));
      const who = entities.filter(() => rand() < 0.3);
      const vs = await features.vectors('acct', who.map((e) => ({ account_id: e })));
      vs.forEach((v, i) => reads.push({ entity: who[i]!, time: clock.now(), vector: v.vector }));
      // Half-way, compact: the set then reads one file plus the rest compacted at build time.
      if (step === 12) await features.materialize('acct');
    }
    expect(reads.length).toBeGreaterThan(30);
    const r = await features.buildDataset({ name: 'acct-consistency', views: ['acct'], labels: reads.map((x) => ({ entity: { account_id: x.entity }, time: x.time, label: 0 })) });
    const d = await datasets.load(r.dataset);
    const w = reads[0]!.vector.length;
    // Some reads saw expired values, some fresh ones: both paths are exercised.
    expect(new Set(reads.map((x) => bits(x.vector))).size).toBeGreaterThan(5);
    reads.forEach((x, i) => expect(bits(d.features, i * w, w), `${x.entity} at ${x.time}`).toBe(bits(x.vector)));
  });

  it('bad input names the field; the CLI materializes and builds a dataset from a JSON-lines label file', async () => {
    const bad: [unknown, RegExp | string][] = [
      [{ name: 'x', views: ['nope'], labels: [{ entity: { account_id: 'a' }, time: T0, label: 1 }] }, MlErrors.FEATURE_VIEW_NOT_FOUND.code],
      [{ name: 'x', views: ['acct'], labels: [{ entity: { account_id: 'a' }, time: 'soon', label: 1 }] }, /labels\[0\]\.time: "soon" is not an ISO 8601 time/],
      [{ name: 'x', views: ['acct'], labels: [{ entity: { account_id: 'a' }, time: T0, label: 2 }] }, /labels\[0\]\.label: 2 is not 0\/1/],
      [{ name: 'x', views: ['acct', 'merch'], labels: [{ entity: { account_id: 'a' }, time: T0, label: 1 }] }, /labels\[0\]\.entity\.merchant_id: missing/],
      [{ name: 'x', views: ['acct@9'], labels: [{ entity: { account_id: 'a' }, time: T0, label: 1 }] }, MlErrors.FEATURE_VIEW_NOT_FOUND.code],
      [{ name: 'x', views: ['acct'], labels: [] }, /labels/],
    ];
    for (const [body, want] of bad) {
      const p = request(cli, s.featuresBuild, body);
      if (typeof want === 'string') await expect(p, JSON.stringify(body)).rejects.toMatchObject({ code: want });
      else await expect(p, JSON.stringify(body)).rejects.toThrow(want);
    }
    await expect(features.materialize('nope')).rejects.toMatchObject({ code: MlErrors.FEATURE_VIEW_NOT_FOUND.code });

    const dir = mkdtempSync(join(tmpdir(), 'shoal-offline-cli-'));
    const labels = join(dir, 'labels.jsonl');
    writeFileSync(labels, `${JSON.stringify({ entity: { account_id: 'a-1' }, time: T0 + 20_000, label: 1 })}\n${JSON.stringify({ entity: { account_id: 'a-2' }, time: T0, label: 0 })}\n`);
    let out = '';
    const run = (...argv: string[]) => {
      out = '';
      return runFeatures(argv, cli, 'shoal', (t) => void (out += t));
    };
    expect(await run('materialize', 'acct')).toBe(0);
    expect(out).toMatch(/acct: (nothing new to compact|compacted \d+ events)/);
    expect(await run('build-dataset', '--views', 'acct', '--labels', labels, '--name', 'cli-set')).toBe(0);
    expect(out).toMatch(/dataset cli-set@[0-9a-f]{12}: 2 rows × 5 columns, 1 positive/);
    expect(out).toMatch(/acct v1: events through seq \d+/);
    await expect(run('build-dataset', '--labels', labels)).rejects.toThrow(/--views/);
  });

  it('realistic: fraud transactions delivered late, scored at each transaction time — the set equals the online reads', async () => {
    const def: FeatureViewDef = {
      name: 'cust_last_txn',
      entity: ['customer_id'],
      source: { type: 'push' },
      ttlSeconds: 6 * 3600,
      features: [
        { name: 'last_amount', type: 'numeric', transforms: [{ op: 'log1p' }, { op: 'standardize' }] },
        { name: 'last_channel', type: 'categorical', transforms: [{ op: 'onehot', vocabulary: ['in-store', 'online', 'phone'] }] },
        { name: 'last_country', type: 'categorical', transforms: [{ op: 'ordinal' }] },
      ],
    };
    const start = Math.ceil((clock.now() + 1) / HOUR) * HOUR;
    const events = generateFraudEvents({ seed: 3, customers: 12, merchants: 8, days: 2, start, lateRate: 0.25, fraudRate: 0.1 });
    const txs = events.filter((e): e is TransactionEvent => e.type === 'transaction');
    const labelled = new Set(events.flatMap((e) => (e.type === 'label' ? [e.transaction_id] : [])));
    await features.apply(def, txs.slice(0, 40).map((t) => ({ last_amount: t.amount, last_channel: t.channel, last_country: t.country })));
    // One timeline: pushes at delivery time, and a read of the customer just before each transaction (scoring it).
    const actions = [
      ...[...inDeliveryOrder(txs)].map((t) => ({ at: t.deliveredAt, order: 0, t: t as TransactionEvent })),
      ...txs.map((t) => ({ at: t.eventTime - 1, order: 1, t })),
    ].sort((a, b) => a.at - b.at || a.order - b.order);
    const reads: { t: TransactionEvent; at: number; vector: Float32Array }[] = [];
    for (const a of actions) {
      if (a.at > clock.now()) clock.advanceTo(a.at);
      if (a.order === 0) {
        await features.push('cust_last_txn', { eventId: a.t.eventId, entity: { customer_id: a.t.customer_id }, values: { last_amount: a.t.amount, last_channel: a.t.channel, last_country: a.t.country }, eventTime: a.t.eventTime });
      } else {
        const [v] = await features.vectors('cust_last_txn', [{ customer_id: a.t.customer_id }]);
        reads.push({ t: a.t, at: a.at, vector: v!.vector });
      }
    }
    // The data exercises the hard cases: late deliveries and expired values.
    expect(txs.filter((t) => t.deliveredAt - t.eventTime > 60_000).length).toBeGreaterThan(3);
    const r = await features.buildDataset({ name: 'fraud-pit', views: ['cust_last_txn'], labels: reads.map((x) => ({ entity: { customer_id: x.t.customer_id }, time: x.at, label: labelled.has(x.t.eventId) })) });
    const d = await datasets.load(r.dataset);
    expect(d.rows).toBe(txs.length);
    expect(r.dataset.positives).toBe(reads.filter((x) => labelled.has(x.t.eventId)).length);
    const w = reads[0]!.vector.length;
    reads.forEach((x, i) => expect(bits(d.features, i * w, w), `${x.t.eventId} at ${x.at}`).toBe(bits(x.vector)));
  });

  it('periodic compaction: a round on the compactor clock writes the new events of every view', async () => {
    const own = new VirtualClock(0);
    let round: (r: MaterializeResult[]) => void = () => undefined;
    const done = new Promise<MaterializeResult[]>((res) => (round = res));
    const compactor = await startFeatureCompactor({ nc: sched, prefix: 'shoal', log: createLogger({ level: 'silent', pretty: false }), clock: own, everyMs: 60_000, onRound: (r) => round(r) });
    try {
      const p = await features.push('merch', { eventId: 'm-late', entity: { merchant_id: 'm-2' }, values: { risk: 1 }, eventTime: clock.now() });
      own.advance(60_000);
      const results = await done;
      const m = results.find((x) => x.view === 'merch')!;
      expect(m.file).toMatchObject({ events: 1 });
      expect(m.manifest.through).toBeGreaterThanOrEqual(p.seq);
      expect(results.map((x) => x.view).sort()).toEqual(['acct', 'cust_last_txn', 'merch']);
      // Nothing new: the next round writes no file.
      expect((await compactor.compactAll()).every((x) => x.file === null)).toBe(true);
    } finally {
      compactor.stop();
    }
  });
});
