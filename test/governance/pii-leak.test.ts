/**
 * PII never leaks (issue #20 item 4), end to end on a real cluster: a scheduler and node agents
 * as real processes (logging at debug level, each serving /metrics), the gateway in this process
 * with its log captured. Unique markers are planted in the PII features of a feature view
 * (`income`, `email`) and driven through pushes (good and bad), a training job (its point-in-time
 * training set, its progress records), the model it trained, serving by entity (good requests, a request-time PII value, bad requests,
 * a malformed body), the prediction log with its monitor, feedback and the label join, and a
 * failure (the replica's node SIGKILLed, the replica re-placed). Then every captured log line of
 * every process, every HTTP answer, every message of every stream (prediction log, events, jobs,
 * labels, KV buckets, object stores: subjects and payloads) and every /metrics page is searched
 * for each marker, as text and as MessagePack bytes.
 *
 * Where PII is *meant* to be: the stores of record of the feature store — the offline feature
 * log stream, the online features bucket — and the artifacts store (training sets, Parquet
 * files); erasure (privacy-forget.test.ts) is how it leaves them. They are searched too, and the
 * PII marker must be found THERE: that, and the control markers planted in ordinary features
 * (`spend`, `nickname`) being found in the prediction log and in the 400s, prove the search
 * would see a leak.
 */
import { createServer, type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { FeatureClient, importCsv } from '../../ml/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { allStreamMessages, bytesHave, personSnapshot, personView, textHas, type Marker } from '../fixtures/privacy.ts';

const s = subjects();
const r = resources();
const KEY = 'test-key-pii-leak';
/** PII markers: exact in float32 (the model input's type), and unique strings. */
const PII = {
  income: 98765.4375,
  email: 'pii-mark-email-e9f1@example.com',
  badPush: 'pii-mark-badpush-4a7c',
  requestEmail: 'pii-mark-reqemail-77b2@example.com',
  badRequest: 'pii-mark-badreq-5d1e',
  malformed: 'pii-mark-malformed-3c0a',
  killed: 'pii-mark-afterkill-9b3d@example.com',
};
/** Controls: the same paths, in features not declared PII. */
const CTRL = { spend: 87654.3125, nickname: 'x', badPush: 'ctrl-mark-badpush-4a7c', badRequest: 'ctrl-mark-badreq-5d1e' };
/** Stores of record: PII belongs there (until erased). */
const STORES_OF_RECORD = [r.streams.featureEvents, `KV_${r.buckets.online}`, `OBJ_${r.stores.artifacts}`];

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });

describe('PII never leaks (real cluster; logs, streams, metrics, errors searched)', () => {
  let c: TestCluster;
  let sched: NatsConnection;
  let gw: FastifyInstance;
  let base = '';
  const gatewayLines: string[] = [];
  /** Every HTTP answer's status and body. */
  const answers: { what: string; status: number; body: string }[] = [];
  /** Every /metrics page, fetched before and after the failure. */
  const metricsPages: { what: string; text: string }[] = [];
  const metricsUrls = new Map<string, string>();

  const call = async (what: string, path: string, body: string | unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const a = { what, status: res.status, body: await res.text(), id: res.headers.get('x-request-id') ?? '' };
    answers.push(a);
    return a;
  };
  const scrape = async () => {
    for (const [what, url] of metricsUrls) {
      const res = await fetch(url).catch(() => undefined);
      if (res?.ok) metricsPages.push({ what, text: await res.text() });
    }
    metricsPages.push({ what: 'gateway', text: await (await fetch(`${base}/metrics`)).text() });
  };

  beforeAll(async () => {
    const [ps, pa, pb] = [await freePort(), await freePort(), await freePort()];
    metricsUrls.set('scheduler', `http://127.0.0.1:${ps}/metrics`).set('node-a', `http://127.0.0.1:${pa}/metrics`).set('node-b', `http://127.0.0.1:${pb}/metrics`);
    const args = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts","shoal:ml/training/actors.ts"]', '--log.level', 'debug'];
    c = await startCluster({ args, schedulerArgs: ['--metrics.port', String(ps)], nodes: [{ id: 'node-a', profile: 'cpu-ondemand', args: ['--metrics.port', String(pa)] }] });
    sched = await c.nats.connect(Role.SCHEDULER);
    const logger = pino({ level: 'debug' }, { write: (line: string) => void gatewayLines.push(line) });
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger, apiKeys: [{ key: KEY, tenant: 'acme' }] });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  it('markers planted in PII fields are found only in the stores of record; the controls are found where a leak would be', async () => {
    const fc = await FeatureClient.open(c.client, s);
    await fc.apply(personView(), personSnapshot());
    const t = Date.now() - 60_000;
    // Pushes: good ones (over HTTP and NATS), and bad ones whose error would echo the value.
    expect((await call('push', '/v1/features/person', { eventId: 'p1', entity: { customer_id: 'cust-7' }, values: { income: PII.income, spend: CTRL.spend, email: PII.email, nickname: CTRL.nickname }, eventTime: t })).status).toBe(200);
    await fc.push('person', { eventId: 'p2', entity: { customer_id: 'cust-8' }, values: { income: 1200, spend: 30, email: 'a@example.com', nickname: 'y' }, eventTime: t });
    const badPush = await call('bad push (PII)', '/v1/features/person', { eventId: 'p3', entity: { customer_id: 'cust-7' }, values: { income: PII.badPush }, eventTime: t });
    expect(badPush.status).toBe(400);
    expect(badPush.body).toContain('values.income: (value withheld: PII) is not a numeric value');
    const ctrlPush = await call('bad push (control)', '/v1/features/person', { eventId: 'p4', entity: { customer_id: 'cust-7' }, values: { spend: CTRL.badPush }, eventTime: t });
    expect(ctrlPush.status).toBe(400);

    // Training: a job trains on the view (its point-in-time training set built first) and registers the version served below.
    for (let i = 0; i < 40; i++) await fc.push('person', { eventId: `q${i}`, entity: { customer_id: `cust-${100 + i}` }, values: { income: 900 + 50 * i, spend: 5 + (i % 9) * 7, email: i % 2 ? 'a@example.com' : 'b@example.com', nickname: i % 3 ? 'x' : 'y' }, eventTime: t });
    const labels = [7, 8, ...Array.from({ length: 40 }, (_, i) => 100 + i)].map((n, i) => ({ entity: { customer_id: `cust-${n}` }, time: Date.now() + 1, label: i % 2 }));
    const jobs = await c.jobs();
    const progress: unknown[] = [];
    await jobs.submit({ model: { name: 'risk', type: 'logreg' }, dataset: { features: ['person@1'], labels }, hyper: { optimizer: 'adam', lr: 0.1, steps: 20, batchSize: 16, seed: 1 }, workers: 1 }, { id: 'job-pii' });
    const job = await jobs.follow('job-pii', (rec) => void progress.push(rec), 180_000);
    expect(job.state, job.reason).toBe('succeeded');
    answers.push({ what: 'job progress and result', status: 200, body: JSON.stringify([progress, job]) });
    await until(async () => (await c.control.deploy('risk', { replicas: 1, maxBatchSize: 8, readyTimeoutMs: 60_000, monitoring: { sampleRate: 1, flushMs: 50 } })).stable.state === 'ready' || undefined, 90_000, 'risk deployed');
    await until(async () => ((await fetch(`${base}/v2/models/risk/ready`, { headers: { 'x-api-key': KEY } })).status === 200 ? true : undefined), 20_000, 'the gateway sees risk');

    // Serving: by entity, with a request-time PII value; bad requests; a malformed body.
    const ok = [await call('predict', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }, { customer_id: 'cust-8' }] }), await call('predict, request-time email', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }], features: { email: PII.requestEmail } })];
    for (const a of ok) expect(a.status, a.body).toBe(200);
    const badReq = await call('bad request (PII)', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }], features: { income: PII.badRequest } });
    expect(badReq.status).toBe(400);
    expect(badReq.body).toContain('(value withheld: PII)');
    expect((await call('bad request (control)', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }], features: { spend: CTRL.badRequest } })).status).toBe(400);
    expect((await call('extra field', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }], features: { income: PII.income }, extra: true })).status).toBe(400);
    expect((await call('malformed JSON', '/v1/models/risk/predict', `{"entities":[{"customer_id":"cust-7"}],"features":{"email":${PII.malformed}}}`)).status).toBe(400);
    expect((await call('malformed OIP', '/v2/models/risk/infer', `{"parameters":{"entities":[{"customer_id":"cust-7"}],"features":{"email":${PII.malformed}}}}`)).status).toBe(400);

    // Feedback on what was logged, and the label join.
    const logged = ok.flatMap((a, i) => (i === 0 ? [`${a.id}:0`, `${a.id}:1`] : [a.id]));
    expect((await call('feedback', '/v1/models/risk/feedback', logged.map((id) => ({ id, label: 1 })))).status).toBe(200);
    await scrape();

    // A failure: the replica's node is killed; the replica comes back on another node and serves.
    await c.startNode({ id: 'node-b', profile: 'cpu-ondemand', args: ['--metrics.port', new URL(metricsUrls.get('node-b')!).port] });
    c.nodes['node-a']!.kill('SIGKILL');
    await c.nodes['node-a']!.exited;
    const after = await until(async () => {
      const a = await call('predict after the kill', '/v1/models/risk/predict', { entities: [{ customer_id: 'cust-7' }], features: { email: PII.killed } });
      return a.status === 200 ? a : undefined;
    }, 60_000, 'risk serving again after its node died', 250);
    expect((await call('feedback after the kill', '/v1/models/risk/feedback', [{ id: after.id, label: 0 }])).status).toBe(200);

    // Everything that reached the streams is there: the control value in the prediction log, and the join.
    let streams = new Map<string, Uint8Array[]>();
    await until(async () => {
      streams = await allStreamMessages(sched);
      const preds = streams.get(r.streams.predictions) ?? [];
      const joined = streams.get(r.streams.labeled) ?? [];
      return preds.some((m) => bytesHave(m, after.id)) && joined.length >= logged.length + 1 ? true : undefined;
    }, 60_000, 'the predictions logged and the labels joined');
    await scrape();

    // ---- the search --------------------------------------------------------------------------
    const logLines = [...gatewayLines, ...Object.values(c.schedulers).flatMap((p) => p.lines), ...Object.values(c.nodes).flatMap((p) => p.lines)];
    // Every process was heard from, at debug level (where refused requests are logged with their error).
    for (const lines of [gatewayLines, ...Object.values(c.schedulers).map((p) => p.lines), ...Object.values(c.nodes).map((p) => p.lines)]) expect(lines.length).toBeGreaterThan(0);
    const foundIn = (m: Marker): string[] => {
      const where: string[] = [];
      if (logLines.some((l) => textHas(l, m))) where.push('logs');
      for (const a of answers) if (textHas(a.body, m)) where.push(`answer: ${a.what}`);
      for (const p of metricsPages) if (textHas(p.text, m)) where.push(`metrics: ${p.what}`);
      for (const [name, msgs] of streams) if (msgs.some((x) => bytesHave(x, m))) where.push(`stream ${name}`);
      return [...new Set(where)];
    };
    for (const [field, m] of Object.entries(PII)) {
      const where = foundIn(m).filter((w) => !STORES_OF_RECORD.some((st) => w === `stream ${st}`));
      expect(where, `PII marker of ${field} leaked`).toEqual([]);
    }
    // The search sees PII where it is stored on purpose…
    expect(foundIn(PII.income)).toContain(`stream ${r.streams.featureEvents}`);
    expect(foundIn(PII.email)).toContain(`stream ${r.streams.featureEvents}`);
    // …and the controls, where a PII value would have leaked had it not been declared: the
    // prediction log (and its copies: the join's index, the joined rows), and the 400s.
    expect(foundIn(CTRL.spend)).toEqual(expect.arrayContaining([`stream ${r.streams.predictions}`, `stream ${r.streams.labeled}`]));
    expect(foundIn(CTRL.badPush)).toEqual(expect.arrayContaining(['answer: bad push (control)', 'logs']));
    expect(foundIn(CTRL.badRequest)).toContain('answer: bad request (control)');
  }, 300_000);

  it('a dataset\'s PII column: the model a job trains on it never logs that input column (by tensor), while it logs the others', async () => {
    // Numeric `age` and `zip` (PII) and a label that follows age; imported with `pii: ['zip']`.
    const lines = ['y,age,zip', ...Array.from({ length: 60 }, (_, i) => `${i % 2},${20 + i + (i % 2) * 30},${10000 + i * 7}`)];
    const d = importCsv(lines.join('\n'), { label: 'y', numeric: ['age', 'zip'], pii: ['zip'] });
    expect(d.pii).toEqual(['zip']);
    await c.control.registerDataset('people-csv', d);
    const jobs = await c.jobs();
    await jobs.submit({ model: { name: 'people', type: 'logreg' }, dataset: 'people-csv', hyper: { optimizer: 'adam', lr: 0.1, steps: 20, batchSize: 16, seed: 1 }, workers: 1 }, { id: 'job-pii-csv' });
    const job = await jobs.follow('job-pii-csv', () => undefined, 180_000);
    expect(job.state, job.reason).toBe('succeeded');
    const mv = await (await c.control.reader()).resolve('people');
    expect(mv.lineage).toMatchObject({ pii: ['X_1'] });
    await until(async () => (await c.control.deploy('people', { replicas: 1, maxBatchSize: 8, readyTimeoutMs: 60_000, monitoring: { sampleRate: 1, flushMs: 50 } })).stable.state === 'ready' || undefined, 90_000, 'people deployed');
    const PII_ZIP = 76543.5625;
    const CTRL_AGE = 65432.8125;
    const res = await until(async () => {
      const a = await call('predict by tensor', '/v1/models/people/predict', { instances: [[CTRL_AGE, PII_ZIP]] });
      return a.status === 200 ? a : undefined;
    }, 20_000, 'the gateway sees people', 250);
    let preds: Uint8Array[] = [];
    await until(async () => {
      preds = (await allStreamMessages(sched)).get(r.streams.predictions) ?? [];
      return preds.some((m) => bytesHave(m, res.id)) ? true : undefined;
    }, 30_000, 'the prediction logged');
    const mine = preds.filter((m) => bytesHave(m, res.id));
    expect(mine.some((m) => bytesHave(m, CTRL_AGE))).toBe(true);
    expect(mine.some((m) => bytesHave(m, PII_ZIP))).toBe(false);
  }, 300_000);
});
