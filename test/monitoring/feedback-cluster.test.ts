/**
 * Prediction log and feedback on a real cluster (issue #15 items 1–2): a real nats-server, a
 * scheduler and a node process hosting replicas (real onnxruntime), the gateway in-process. The
 * replicas log their predictions to the predictions stream; the feedback service and the label
 * join run here, in the test process (the scheduler is started with `--monitoring.feedback
 * false`, as when they run elsewhere), on injected clocks, so labels arrive "days later" without
 * anyone waiting days: the service stamps labels `labelDelay` after the replicas' time (each test
 * sets its own), and the join's pending set expires on a VirtualClock the test advances. So the
 * tests pass in any order. Checked: joined records equal the logged predictions and what the
 * caller was answered; an excluded field's value is nowhere in the streams; unknown ids are
 * counted as orphaned after the horizon, labels after it as late; 400s name the label; feedback is
 * rate-limited like inference; a full log buffer never fails a request. A second suite checks the
 * default wiring: the scheduler's control modules serve feedback and join labels for a NATS client.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContentType, Role, VirtualClock, createLogger, decode, request, resources, subjects, systemClock, type Clock, type NatsConnection } from '../../cluster/index.ts';
import { FeedbackJoin, RecentPredictions, batchRecords, idTime, locateByTime, startFeedbackService, startMonitoringStreams, type LabeledRecord, type PredictionRecord, type ReplicaStats } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { containsBytes, numberEncodings, scoreModel } from '../fixtures/monitoring.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const r = resources();
const KEY = 'test-key-mon-0001';
const TINY = 'test-key-mon-tiny';
const DAY = 24 * 3600 * 1000;
const HORIZON = 7 * DAY;
/** A value only the excluded column ever holds. */
const SECRET = 7777.125;

describe('prediction log and feedback (real cluster, virtual clock for the labels)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let sched: NatsConnection;
  /** The join's clock (its pending labels expire on it). */
  let clock: VirtualClock;
  /** How far after the replicas' time the feedback service stamps labels. */
  let labelDelay = 0;
  const labelClock: Clock = { now: () => Date.now() + labelDelay, after: systemClock.after };
  let join: FeedbackJoin;
  let service: { stop(): Promise<void> };

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers }, body: JSON.stringify(body) });
  const predict = (model: string, rows: number[][], headers: Record<string, string> = {}) => post(`/v1/models/${model}/predict`, { instances: rows }, headers);
  /** Every message of a stream, in order (with the scheduler's rights). */
  const streamMessages = async (stream: string): Promise<Uint8Array[]> => {
    const jsm = await jetstreamManager(sched);
    const info = await jsm.streams.info(stream);
    const out: Uint8Array[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined);
      if (m) out.push(m.data);
    }
    return out;
  };
  const logged = async (): Promise<PredictionRecord[]> => (await streamMessages(r.streams.predictions)).flatMap((m) => batchRecords(decode(m, ContentType.MSGPACK)) ?? []);
  const labeled = async (): Promise<LabeledRecord[]> => (await streamMessages(r.streams.labeled)).map((m) => decode(m, ContentType.MSGPACK) as LabeledRecord);
  const deploy = async (name: string, monitoring: Record<string, unknown>) => {
    await c.control.register(name, scoreModel());
    await until(async () => (await c.control.deploy(name, { replicas: 1, maxBatchSize: 16, readyTimeoutMs: 30_000, monitoring })).stable.state === 'ready' || undefined, 60_000, `${name} deployed`);
    await until(async () => ((await fetch(`${base}/v2/models/${name}/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 20_000, `the gateway sees ${name}`);
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, schedulerArgs: ['--monitoring.feedback', 'false'], nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    sched = await c.nats.connect(Role.SCHEDULER);
    const log = createLogger({ level: 'warn', pretty: false });
    clock = new VirtualClock(Date.now());
    await startMonitoringStreams(sched, s.prefix, { horizonMs: HORIZON });
    service = await startFeedbackService({ nc: sched, subjects: s, log, clock: labelClock });
    join = await FeedbackJoin.start({ nc: sched, subjects: s, log, clock, horizonMs: HORIZON, sweepMs: 3600_000 });
    gw = await buildGateway({
      nc: await c.nats.connect(Role.GATEWAY),
      subjects: s,
      logger: log,
      apiKeys: [
        { key: KEY, tenant: 'acme' },
        { key: TINY, tenant: 'tiny', rateLimitPerMinute: 3 },
      ],
    });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    // X_3 is sensitive: never logged.
    await deploy('fraud', { sampleRate: 1, logExclude: ['X_3'], flushMs: 50, batchRecords: 64, labelType: 'number' });
  }, 180_000);

  afterAll(async () => {
    await join?.stop();
    await service?.stop();
    await gw?.close();
    await c?.stop();
  });

  it('logs every prediction with its request id, joins labels sent days later, and the joined rows equal the predictions', async () => {
    const rows = [
      [0.1, 0.2, 0.3, SECRET],
      [1.5, -0.5, 2.25, SECRET],
      [3, 1, -1, SECRET],
    ];
    const before = join.stats();
    const ids: string[] = [];
    const answers = new Map<string, number>();
    for (const row of rows) {
      const res = await predict('fraud', [row]);
      expect(res.status).toBe(200);
      const id = res.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      ids.push(id);
      answers.set(id, ((await res.json()) as { predictions: number[][] }).predictions[0]![0]!);
    }
    // The caller's own request id, and an OIP body's id, are the ones logged and answered.
    const own = await predict('fraud', [[0, 0, 1, SECRET]], { 'x-request-id': 'client-7' });
    expect(own.headers.get('x-request-id')).toBe('client-7');
    const oip = await post('/v2/models/fraud/infer', { id: 'txn-42', inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [0.5, 0.5, 0.5, SECRET] }] });
    expect(oip.status).toBe(200);
    expect(oip.headers.get('x-request-id')).toBe('txn-42');
    // A request of two rows logs two records, `<id>:0` and `<id>:1`.
    const two = await predict('fraud', [[1, 1, 1, SECRET], [2, 2, 2, SECRET]]);
    const twoId = two.headers.get('x-request-id')!;
    const all = [...ids, 'client-7', 'txn-42', `${twoId}:0`, `${twoId}:1`];

    await until(() => (join.stats().indexed >= before.indexed + all.length ? true : undefined), 30_000, 'the join indexing the logged predictions');
    const mine = new Set(all);
    const records = (await logged()).filter((x) => mine.has(x.id));
    expect(records.map((x) => x.id).sort()).toEqual([...all].sort());
    const first = records.find((x) => x.id === ids[1])!;
    expect(first).toMatchObject({ model: 'fraud', version: 1, tenant: 'acme', features: { X_0: 1.5, X_1: -0.5, X_2: 2.25 } });
    expect(first.features).not.toHaveProperty('X_3');
    expect(first.outputs.score).toBeCloseTo(answers.get(ids[1]!)!, 6);

    // Three days later the labels come back, as one list.
    labelDelay = 3 * DAY;
    const labels = all.map((id, i) => ({ id, label: i % 2 }));
    const fb = await post('/v1/models/fraud/feedback', labels);
    expect(fb.status).toBe(200);
    expect(await fb.json()).toEqual({ model: 'fraud', accepted: all.length, duplicates: 0 });
    // Sent again (a client's retry): stored once.
    expect(await (await post('/v1/models/fraud/feedback', labels[0])).json()).toEqual({ model: 'fraud', accepted: 0, duplicates: 1 });

    await until(() => (join.stats().joined >= before.joined + all.length ? true : undefined), 30_000, 'the labels joined');
    const joined = (await labeled()).filter((x) => mine.has(x.id));
    expect(joined).toHaveLength(all.length);
    const byId = new Map(records.map((x) => [x.id, x]));
    for (const row of joined) {
      const { label, labelTs, ...prediction } = row;
      expect(prediction).toEqual(byId.get(row.id));
      expect(label).toBe(labels.find((l) => l.id === row.id)!.label);
      expect(labelTs - prediction.ts).toBeGreaterThanOrEqual(3 * DAY);
    }
    expect(join.stats()).toMatchObject({ joined: before.joined + all.length, pending: before.pending, orphaned: before.orphaned, late: before.late });

    // The excluded column's value is in no byte of the prediction log or the joined rows.
    const needles = [...numberEncodings(SECRET), ...numberEncodings(Math.fround(SECRET))].filter((n) => n.length >= 4);
    for (const m of [...(await streamMessages(r.streams.predictions)), ...(await streamMessages(r.streams.labeled))]) {
      for (const n of needles) expect(containsBytes(m, n)).toBe(false);
    }
  }, 120_000);

  it('ids the gateway makes carry their time: their predictions are found without an index entry; a caller\'s own id is indexed', async () => {
    labelDelay = DAY;
    const before = join.stats();
    const made: string[] = [];
    for (const row of [[0.25, 0.5, 0.75, 1], [2, 1, 0, 1]]) {
      const res = await predict('fraud', [row]);
      made.push(res.headers.get('x-request-id')!);
    }
    // UUIDv7: the first 48 bits are the time the gateway made it (this test's clock is the real one for the gateway).
    for (const id of made) expect(Math.abs(idTime(id)! - Date.now())).toBeLessThan(60_000);
    // The join reads the log's headers: with no label waiting, batches of ids that carry their time are not read.
    expect(before.pending).toBe(0);
    await until(() => (join.stats().indexed >= before.indexed + 2 ? true : undefined), 30_000, 'the join seeing the two predictions');
    expect(join.stats().batchesRead).toBe(before.batchesRead);
    expect(join.stats().batchesSkipped).toBeGreaterThan(before.batchesSkipped);
    // A caller's own id: its batch is read whole, and the id indexed.
    await predict('fraud', [[1, 1, 1, 1]], { 'x-request-id': 'client-own-9' });
    await until(() => (join.stats().indexed >= before.indexed + 3 ? true : undefined), 30_000, 'the join seeing the third prediction');
    expect(join.stats().indexWrites - before.indexWrites).toBe(1);
    expect(join.stats().batchesRead - before.batchesRead).toBe(1);

    // Read back from the log by the id's time alone (what the join does when its recent batches no longer hold it).
    const fresh = new RecentPredictions(10);
    const found = await locateByTime(sched, r.streams.predictions, s.predictions('fraud'), made[1]!, fresh);
    expect(found).toMatchObject({ id: made[1], model: 'fraud', features: { X_0: 2, X_1: 1, X_2: 0 } });
    expect(fresh.get('fraud', made[1]!)).toBeDefined();
    expect(await locateByTime(sched, r.streams.predictions, s.predictions('fraud'), 'client-own-9', fresh)).toBeUndefined();

    // All three are labeled and joined: two found by their ids' time, one from the index.
    const fb = await post('/v1/models/fraud/feedback', [...made, 'client-own-9'].map((id) => ({ id, label: 1 })));
    expect(await fb.json()).toMatchObject({ accepted: 3 });
    await until(() => (join.stats().joined >= before.joined + 3 ? true : undefined), 30_000, 'the three labels joined');
    const rows = (await labeled()).filter((x) => [...made, 'client-own-9'].includes(x.id));
    expect(rows.map((x) => x.id).sort()).toEqual([...made, 'client-own-9'].sort());
  }, 120_000);

  it('a label that overtakes its prediction (still in the replica\'s buffer) waits and joins once the prediction is logged', async () => {
    labelDelay = DAY;
    // Records are published two at a time (the flush timer is an hour away).
    await deploy('slowlog', { batchRecords: 2, flushMs: 3_600_000 });
    const first = await predict('slowlog', [[1, 0, 0, 0]]);
    const id = first.headers.get('x-request-id')!;
    const before = join.stats();
    expect(await (await post('/v1/models/slowlog/feedback', { id, label: 1 })).json()).toMatchObject({ accepted: 1 });
    await until(() => (join.stats().pending === before.pending + 1 ? true : undefined), 20_000, 'the label waiting for its prediction');
    expect(join.stats().joined).toBe(before.joined);
    // A second request fills the batch: both records are published, and the waiting label joins.
    await predict('slowlog', [[2, 0, 0, 0]]);
    await until(() => (join.stats().joined === before.joined + 1 ? true : undefined), 30_000, 'the waiting label joined');
    expect(join.stats().pending).toBe(before.pending);
    const row = (await labeled()).find((x) => x.model === 'slowlog')!;
    expect(row).toMatchObject({ id, label: 1, features: { X_0: 1, X_1: 0, X_2: 0, X_3: 0 } });
  }, 120_000);

  it('a label for an unknown id waits, then is counted as orphaned after the horizon; a label after the horizon is counted as late', async () => {
    labelDelay = 0;
    const before = join.stats();
    const fb = await post('/v1/models/fraud/feedback', { id: 'never-seen-1', label: 1 });
    expect(fb.status).toBe(200);
    await until(() => (join.stats().pending === before.pending + 1 ? true : undefined), 20_000, 'the unknown label pending');
    clock.advance(HORIZON - DAY);
    expect(join.stats().orphaned).toBe(before.orphaned);
    clock.advance(2 * DAY);
    // Only this test moves the join's clock: every label waiting (this one, and unknown ids other tests sent) is past the horizon now.
    expect(join.stats()).toMatchObject({ orphaned: before.orphaned + before.pending + 1, pending: 0 });

    // A label more than the horizon after its prediction is late.
    labelDelay = HORIZON + DAY;
    const res = await predict('fraud', [[1, 2, 3, SECRET]]);
    const id = res.headers.get('x-request-id')!;
    const indexed = join.stats().indexed;
    await until(() => (join.stats().indexed > indexed ? true : undefined), 30_000, 'the fresh prediction indexed');
    await post('/v1/models/fraud/feedback', { id, label: 0 });
    await until(() => (join.stats().late === before.late + 1 ? true : undefined), 20_000, 'the late label counted');
    expect(join.stats().joined).toBe(before.joined);
    // The counters answer on NATS too.
    expect(await request(c.client, s.feedbackJoinStats, {})).toEqual(join.stats());
  }, 120_000);

  it('bad feedback is a 400 naming the label, over HTTP and NATS; an unknown model 404; feedback is rate-limited like inference', async () => {
    const wrong = await post('/v1/models/fraud/feedback', { id: 'x', label: 'fraud' });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', error: expect.stringMatching(/^label: the string "fraud" is not a number label/) });
    const list = await post('/v1/models/fraud/feedback', [{ id: 'a', label: 1 }, { id: 'b', label: { v: 1 } }]);
    expect(list.status).toBe(400);
    expect(((await list.json()) as { error: string }).error).toMatch(/^\[1\]\.label: an object/);
    const noId = await post('/v1/models/fraud/feedback', { label: 1 });
    expect(((await noId.json()) as { error: string }).error).toMatch(/^id: /);
    // Nothing of a refused list was stored.
    const stored = (await streamMessages(r.streams.feedback)).map((m) => decode(m, ContentType.MSGPACK) as { id: string });
    expect(stored.some((x) => x.id === 'a' || x.id === 'x')).toBe(false);
    const unknown = await post('/v1/models/nope/feedback', { id: 'x', label: 1 });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ code: 'SHOAL_ERR_MODEL_NOT_FOUND' });
    // The NATS subject answers the same typed error.
    await expect(request(c.client, s.feedback('fraud'), { id: 'x', label: [1] })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/^label: an array/) });
    // A malformed request id is refused, naming the header; bad monitoring options, naming the field.
    const badId = await predict('fraud', [[1, 2, 3, 4]], { 'x-request-id': 'has spaces in it' });
    expect(badId.status).toBe(400);
    expect(((await badId.json()) as { error: string }).error).toMatch(/^x-request-id: /);
    await expect(c.control.deploy('fraud', { monitoring: { sampleRate: 2 } })).rejects.toThrow(/monitoring\/sampleRate|sampleRate/);
    // The tiny tenant's 3 requests a minute: the 4th is refused.
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await post('/v1/models/fraud/feedback', { id: `t${i}`, label: 1 }, { 'x-api-key': TINY })).status);
    expect(codes).toEqual([200, 200, 200, 429]);
  }, 60_000);

  it('a full log buffer never fails a request: every request 200, the drops counted in the replica stats', async () => {
    // One record fits; the flush timer is an hour away: every later record is dropped.
    await deploy('burst', { sampleRate: 1, bufferRecords: 1, batchRecords: 1000, flushMs: 3_600_000 });
    const statuses = await Promise.all(Array.from({ length: 24 }, (_, i) => predict('burst', [[i, 1, 2, 3]]).then((x) => x.status)));
    expect(statuses).toEqual(Array.from({ length: 24 }, () => 200));
    const stats = await c.actors.ref('model-burst-v1-1').ask<ReplicaStats>({ type: 'stats' });
    const pl = stats.predictionLog!;
    expect(pl.sampled).toBe(24);
    expect(pl.dropped).toBeGreaterThanOrEqual(1);
    expect(pl.buffered + pl.dropped).toBe(24);
    expect(stats.errors).toBe(0);
  }, 120_000);

  it('a hedged copy of a message is answered but not logged: each request is counted once by monitoring', async () => {
    await deploy('hedged', { sampleRate: 1 });
    const ref = c.actors.ref('model-hedged-v1-1');
    const body = new TextEncoder().encode(JSON.stringify({ instances: [[1, 2, 3, 4]] }));
    const first = await ref.ask<{ results: unknown[] }>({ type: 'infer-json', items: [{ format: 'v1', body }] }, { timeoutMs: 10_000 });
    const hedge = await ref.ask<{ results: unknown[] }>({ type: 'infer-json', items: [{ format: 'v1', body }], hedge: true }, { timeoutMs: 10_000 });
    // Both copies answered the same way…
    expect(hedge.results).toEqual(first.results);
    // …but only the first was drawn into the log.
    const pl = (await ref.ask<ReplicaStats>({ type: 'stats' })).predictionLog!;
    expect(pl).toMatchObject({ sampled: 1, hedged: 1 });
  }, 120_000);
});

describe('the scheduler runs the feedback service and the label join by default (control modules)', () => {
  let c: TestCluster;
  afterAll(async () => c?.stop());

  it('a NATS client logs a prediction with its own id, labels it on shoal.feedback.<model>, and the leader joins it', async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-a', profile: 'cpu-ondemand' }] });
    await c.control.register('fraud', scoreModel());
    await until(async () => (await c.control.deploy('fraud', { replicas: 1, readyTimeoutMs: 30_000, monitoring: { flushMs: 20 } })).stable.state === 'ready' || undefined, 60_000, 'fraud deployed');
    const x = new Float32Array([0.5, 0.25, 0.125, 1]);
    const msg = { type: 'infer', items: [{ id: 'nats-1', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(x.buffer) }] }] };
    const reply = await c.actors.service('model-fraud-v1').ask<{ results: { outputs?: unknown }[] }>(msg, { timeoutMs: 10_000 });
    expect(reply.results[0]).toHaveProperty('outputs');
    await until(async () => ((await request<{ indexed: number }>(c.client, s.feedbackJoinStats, {})).indexed >= 1 ? true : undefined), 30_000, 'the leader indexing the prediction');
    expect(await request(c.client, s.feedback('fraud'), [{ id: 'nats-1', label: true }])).toEqual({ model: 'fraud', accepted: 1, duplicates: 0 });
    const stats = await until(async () => {
      const st = await request<{ joined: number }>(c.client, s.feedbackJoinStats, {});
      return st.joined >= 1 ? st : undefined;
    }, 30_000, 'the leader joining the label');
    expect(stats).toMatchObject({ joined: 1, orphaned: 0, late: 0 });
  }, 120_000);
});
