/**
 * Streaming aggregates in a real cluster (nats-server, a scheduler running the features service,
 * three node processes): applying aggregate views spawns their actors; the fraud generator's
 * transactions are pushed in delivery order in batches; after each batch (once the actors have
 * applied everything pushed) every customer's and merchant's online values are read at that
 * moment, and again at later times when the windows have slid over the data. Every read equals a
 * brute-force recomputation, and the offline path (DuckDB over the Parquet log) gives the same
 * values — and the same vectors, to the bit — for label rows at those times. Midway, the node
 * running the customer aggregate's actor is SIGKILLed while events keep coming: after the
 * scheduler re-places it, the values are still exact (nothing counted twice, nothing missed);
 * the other actor crashes (a supervised restart from its checkpoint) and stays exact too.
 *
 * Query times come from the wall clock (ingestion is stamped by the scheduler's clock), but only
 * as data: each read is at a time the online store is told explicitly, nothing waits on time.
 */
import { DuckDBInstance } from '@duckdb/node-api';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory, Role, openBucket, resources, seededRandom, subjects, systemClock, type Clock, type NatsConnection } from '../../cluster/index.ts';
import { runFeatures } from '../../cli/features.ts';
import { DatasetStore } from '../../ml/datasets/store.ts';
import { FeatureClient, FeatureViews, OfflineStore, aggregateTrainingRows, aggregatorId, resolveAggregate, type AggregatorStatus, type FeatureViewDef, type PushResult, type RawValue } from '../../ml/index.ts';
import { bruteForce, declared, fraudTransactions, merchantStatsView, refSpecOf, transactionsView, txnStatsView, type RefEvent } from '../fixtures/feature-aggregates.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '2000'];
const MIN = 60_000;
const HOUR = 60 * MIN;
const s = subjects();

const bits = (a: Float32Array, from = 0, len = a.length) => Buffer.from(a.buffer, a.byteOffset + from * 4, len * 4).toString('hex');

/** One online read: a view, an entity, a time, and what came back. */
interface Read {
  view: FeatureViewDef;
  key: string;
  at: number;
  values: Record<string, RawValue>;
  vector: Float32Array;
}

describe('streaming aggregates in a real cluster', () => {
  let cluster: TestCluster;
  let sched: NatsConnection;
  let fc: FeatureClient;
  let directory: Directory;
  let readAt = 0;
  const clock: Clock = { now: () => readAt, after: systemClock.after };

  beforeAll(async () => {
    cluster = await startCluster({ args: ARGS, nodes: ['n1', 'n2', 'n3'] });
    sched = await cluster.nats.connect(Role.SCHEDULER);
    fc = await FeatureClient.open(cluster.client, s, clock);
    directory = new Directory(await openBucket(cluster.client, resources().buckets.actors));
  }, 120_000);
  afterAll(async () => {
    await sched?.close();
    await cluster?.stop();
  });

  const statusOf = (def: FeatureViewDef) => cluster.actors.ref(aggregatorId(resolveAggregate(def))).ask<AggregatorStatus>({ type: 'status' }, { timeoutMs: 5000 });
  const caughtUp = (def: FeatureViewDef, seq: number) =>
    until(async () => {
      const st = await statusOf(def);
      return st.through >= seq ? st : undefined;
    }, 90_000, `${def.name}'s aggregate actor applying through seq ${seq}`);

  it('online == brute force == offline training set at many times, across a SIGKILL of the aggregate actor’s node', async () => {
    // Views: the source first; an aggregate of a view that does not exist is refused.
    await expect(fc.apply({ ...txnStatsView, name: 'orphan', source: { type: 'aggregate', spec: { ...(txnStatsView.source as { spec: object }).spec, view: 'nope' } } })).rejects.toThrow(/"nope", which is not a feature view/);
    await fc.apply(transactionsView);
    const applied = await fc.apply(txnStatsView);
    expect(applied.version.fitted).not.toBeNull();
    expect(applied.aggregator).toMatchObject({ actorId: aggregatorId(resolveAggregate(txnStatsView)) });
    expect((await fc.apply(merchantStatsView)).aggregator?.state).not.toBe('error');
    // Applying again changes nothing and finds the actor.
    expect((await fc.apply(txnStatsView)).aggregator?.actorId).toBe(applied.aggregator!.actorId);
    // Pushing to an aggregate view is refused, naming its source.
    await expect(fc.push('txn_stats', { eventId: 'x', entity: { customer_id: 'c-1' }, values: { txn_count_1h: 1 }, eventTime: Date.now() })).rejects.toThrow(/streaming aggregate of "transactions"; push events to transactions/);

    // The fraud generator's transactions, ending a few seconds ago, in delivery order; a few dated ahead at the end.
    const start = Date.now();
    const txns = fraudTransactions(start - 5000, { seed: 3, customers: 16, merchants: 8, days: 1, txPerCustomerPerDay: 40, lateRate: 0.15 });
    // Dated up to 2 minutes ahead of their push (the service allows 5): made when pushed.
    const aheadOf = (now: number) =>
      [0, 1, 2, 3].map((i) => {
        const t = txns[i * 7]!;
        return { ...t, event: { ...t.event, eventId: `ahead-${i}`, eventTime: now + 60_000 + i * 20_000 }, eventTime: now + 60_000 + i * 20_000 };
      });
    const all = [...txns, ...aheadOf(start)];
    expect(txns.length).toBeGreaterThan(400);
    const customers = [...new Set(all.map((t) => t.customer))].sort();
    const merchants = [...new Set([...all.map((t) => t.merchant), 'm-odd'])].sort();

    const pushed: RefEvent[] = [];
    let maxSeq = 0;
    const pushAll = async (batch: typeof all) => {
      for (let i = 0; i < batch.length; i += 8) {
        const rs = await Promise.all(batch.slice(i, i + 8).map((t) => fc.push('transactions', t.event)));
        rs.forEach((r: PushResult) => (maxSeq = Math.max(maxSeq, r.seq)));
      }
    };
    const reads: Read[] = [];
    const readAll = async (at: number) => {
      readAt = at;
      for (const [view, keys, col] of [
        [txnStatsView, customers, 'customer_id'],
        [merchantStatsView, merchants, 'merchant_id'],
      ] as const) {
        const ents = keys.map((k) => ({ [col]: k }));
        const rows = await fc.rows(view.name, ents);
        const vecs = await fc.vectors(view.name, ents);
        rows.forEach((r, i) => reads.push({ view, key: keys[i]!, at, values: r.values, vector: vecs[i]!.vector }));
      }
    };
    /** A checkpoint: both actors have applied everything pushed; read at a time after every ingestion so far, before any later one. */
    const checkpoint = async (batch: typeof all) => {
      await caughtUp(txnStatsView, maxSeq);
      await caughtUp(merchantStatsView, maxSeq);
      const at = Date.now();
      // The reference knows only that these events were ingested at or before `at`.
      for (const t of batch) pushed.push({ seq: 0, key: [t.customer], eventTime: t.eventTime, ingestTime: at, values: t.event.values });
      await readAll(at);
      // Later pushes are stamped after `at`.
      await until(() => (Date.now() > at ? true : undefined), 5000, 'the clock to pass the checkpoint');
    };

    const batches = [all.slice(0, 150), all.slice(150, 300), all.slice(300, txns.length)];
    await pushAll(batches[0]!);
    await checkpoint(batches[0]!);
    await pushAll(batches[1]!);
    await checkpoint(batches[1]!);

    // Mid-stream: the node running the customer aggregate is killed while events keep coming.
    const id = aggregatorId(resolveAggregate(txnStatsView));
    const third = batches[2]!;
    await pushAll(third.slice(0, 100));
    const victim = (await directory.get(id))!.entry.nodeId;
    expect(victim).not.toBe('');
    cluster.nodes[victim]!.kill('SIGKILL');
    await pushAll(third.slice(100));
    const moved = await until(async () => {
      const e = (await directory.get(id))?.entry;
      return e && e.state === 'running' && e.nodeId !== '' && e.nodeId !== victim ? e : undefined;
    }, 60_000, `${id} re-placed away from ${victim}`);
    expect(moved.nodeId).not.toBe(victim);
    await checkpoint(third);
    const after = await statusOf(txnStatsView);
    expect(after.nodeId).toBe(moved.nodeId);
    // The new incarnation resumed from its checkpoint: it read only part of the log again.
    expect(after.applied + after.skipped).toBeLessThan(pushed.length);
    // A crash of the other actor (its consuming loop failing) is a supervised restart from its checkpoint.
    cluster.actors.ref(aggregatorId(resolveAggregate(merchantStatsView))).tell({ type: 'crash', message: 'injected by the test' });
    await until(async () => ((await statusOf(merchantStatsView)).restarts >= 1 ? true : undefined), 30_000, 'merchant_stats actor restarted by its supervisor');

    // Last: events dated ahead, and events with null or missing fields (no merchant: not in merchant_stats).
    const now = Date.now();
    const odd = ([
      { amount: null, merchant_id: 'm-odd', channel: null },
      { amount: 5.5 },
      { merchant_id: txns[0]!.merchant, channel: 'phone' },
      { amount: -2.25, merchant_id: txns[0]!.merchant, channel: null },
    ] as Record<string, RawValue>[]).map((values, i) => ({ ...txns[i]!, merchant: (values.merchant_id as string | undefined) ?? '', event: { eventId: `odd-${i}`, entity: { customer_id: txns[i]!.customer }, values, eventTime: now - (i + 1) * 30_000 }, eventTime: now - (i + 1) * 30_000 }));
    const last = [...aheadOf(now), ...odd];
    await pushAll(last);
    await checkpoint(last);
    // Later times: the windows slide over (and past) the data; the events dated ahead come into them.
    const end = readAt;
    const r = seededRandom(5);
    for (const dt of [30_000, 70_000 + Math.floor(r() * 60_000), 9 * MIN, 47 * MIN, 3 * HOUR + Math.floor(r() * HOUR), 12 * HOUR, 23 * HOUR + 55 * MIN, 25 * HOUR]) await readAll(end + dt);

    // 1. Online == brute force, at every read.
    const refs = new Map<FeatureViewDef, RefEvent[]>([
      [txnStatsView, pushed],
      [merchantStatsView, pushed.filter((e) => typeof e.values.merchant_id === 'string').map((e) => ({ ...e, key: [e.values.merchant_id as string] }))],
    ]);
    let nonZero = 0;
    for (const x of reads) {
      const want = declared(x.view, bruteForce(refSpecOf(x.view), refs.get(x.view)!, [x.key], x.at));
      expect(x.values, `${x.view.name} ${x.key} at ${new Date(x.at).toISOString()}`).toEqual(want);
      if (x.view === txnStatsView && (x.values.txn_count_10m as number) > 0) nonZero++;
    }
    expect(nonZero).toBeGreaterThan(5);

    // 2. Offline == online: raw values from DuckDB over the Parquet log, for label rows at the read times.
    const dir = mkdtempSync(join(tmpdir(), 'agg-cluster-'));
    const db = await DuckDBInstance.create(':memory:');
    try {
      const con = await db.connect();
      const views = await FeatureViews.open(sched);
      const offline = await OfflineStore.open(sched);
      for (const view of [txnStatsView, merchantStatsView]) {
        const mine = reads.filter((x) => x.view === view);
        const v = await views.require(view.name);
        const off = await aggregateTrainingRows(con, views, offline, v, mine.map((x) => [x.key]), mine.map((x) => x.at), dir);
        expect(off.source).toBe('transactions');
        mine.forEach((x, i) => expect(off.rows[i], `offline ${view.name} ${x.key} at ${new Date(x.at).toISOString()}`).toEqual(x.values));
      }
      con.closeSync();
    } finally {
      db.closeSync();
      rmSync(dir, { recursive: true, force: true });
    }

    // 3. The training set built by the features service holds, to the bit, the vectors the online store served.
    const mine = reads.filter((x) => x.view === txnStatsView);
    const built = await fc.buildDataset({ name: 'txn-stats-train', views: ['txn_stats'], labels: mine.map((x) => ({ entity: { customer_id: x.key }, time: x.at, label: 0 })) });
    expect(built.lineage.views[0]).toMatchObject({ name: 'txn_stats', source: 'transactions' });
    const d = await (await DatasetStore.open(cluster.client)).load(built.dataset);
    const w = d.columns.length;
    expect(w).toBe(txnStatsView.features.length);
    mine.forEach((x, i) => expect(bits(d.features, i * w, w), `${x.key} at ${new Date(x.at).toISOString()}`).toBe(bits(x.vector)));
    expect(new Set(mine.map((x) => bits(x.vector))).size).toBeGreaterThan(20);

    // 4. The CLI: `show` names the source, windows and the actor's progress; `get` reads the windows as of now.
    let out = '';
    await runFeatures(['show', 'txn_stats', '--json'], cluster.client, s.prefix, (t) => (out += t));
    expect(JSON.parse(out).aggregate).toMatchObject({ source: 'transactions', windows: ['10m', '1h', '24h'], tileSeconds: 60, actorId: id, status: { nodeId: moved.nodeId, through: maxSeq } });
    out = '';
    await runFeatures(['get', 'txn_stats', `customer_id=${customers[0]}`, '--json'], cluster.client, s.prefix, (t) => (out += t));
    const got = JSON.parse(out) as { found: boolean; values: Record<string, number>; vector: number[] };
    expect(got.found).toBe(true);
    expect(Object.keys(got.values).filter((k) => k.startsWith('txn_count_')).sort()).toEqual(['txn_count_10m', 'txn_count_1h', 'txn_count_24h']);
    expect(got.vector).toHaveLength(txnStatsView.features.length);
  }, 420_000);
});
