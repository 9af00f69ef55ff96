/**
 * Feature views and the online store on a real nats-server, with the features service in this
 * process (scheduler rights, as the scheduler runs it) and the gateway in-process (gateway
 * rights): versions by digest, pushes over NATS and HTTP that land in the offline log first and
 * then online, idempotency by event id, newer values kept against late events, TTL on read with
 * the view's fill, batched reads, the serving vector bit-identical to the training matrix, and
 * bad input refused naming the field. Time is a VirtualClock (epoch ms).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { jetstreamManager } from '@nats-io/jetstream';
import { ContentType, Errors, Role, VirtualClock, createLogger, decode, ensureResources, request, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { FeatureClient, MlErrors, encodeRows, startFeatureService, type FeatureService, type FeatureViewDef, type LoggedEvent } from '../../ml/index.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildGateway } from '../../gateway/app.ts';
import { runFeatures } from '../../cli/features.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const T0 = Date.parse('2026-03-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

const view: FeatureViewDef = {
  name: 'customer',
  entity: ['customer_id'],
  source: { type: 'push' },
  ttlSeconds: 60,
  features: [
    { name: 'spend', type: 'numeric', transforms: [{ op: 'log1p' }, { op: 'standardize' }] },
    { name: 'country', type: 'categorical', transforms: [{ op: 'onehot' }] },
    { name: 'vip', type: 'boolean' },
    { name: 'last_login', type: 'timestamp', fill: { strategy: 'zero' } },
  ],
};
const snapshot = [
  { spend: 10, country: 'FR', vip: true, last_login: T0 - 1000 },
  { spend: 250, country: 'DE', vip: false, last_login: null },
  { spend: 40, country: 'FR', vip: null, last_login: T0 - 5000 },
];

describe('feature store: views, push ingestion, online store (real nats-server, gateway in-process)', () => {
  let nats: TestNats;
  let sched: NatsConnection;
  let cli: NatsConnection;
  let gw: NatsConnection;
  let service: FeatureService;
  let features: FeatureClient;
  let app: FastifyInstance;
  const clock = new VirtualClock(T0);
  const s = subjects();
  const headers = { authorization: 'Bearer k-feat-tenant-1', 'content-type': 'application/json' };

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    service = await startFeatureService({ nc: sched, subjects: s, log: createLogger({ level: 'silent', pretty: false }), clock });
    cli = await nats.connect(Role.CLIENT);
    features = await FeatureClient.open(cli, s, clock);
    gw = await nats.connect(Role.GATEWAY);
    app = await buildGateway({ nc: gw, subjects: s, logger: createLogger({ level: 'silent', pretty: false }), inference: false, apiKeys: [{ key: 'k-feat-tenant-1', tenant: 't1' }] });
  }, 30_000);
  afterAll(async () => {
    await app?.close();
    await service?.stop();
    await nats?.stop();
  });

  it('versions a view by content: identical → same version, changed → next one (fitted parameters stored)', async () => {
    const a = await features.apply(view, snapshot);
    expect(a).toMatchObject({ created: true, version: { name: 'customer', version: 1 } });
    expect(a.version.fitted?.columns).toEqual(['spend', 'country=FR', 'country=DE', 'country=<unknown>', 'vip', 'last_login']);
    // Same definition (keys in another order) and snapshot: the same version.
    const reordered = JSON.parse(JSON.stringify({ ttlSeconds: view.ttlSeconds, features: view.features, source: view.source, entity: view.entity, name: view.name }));
    expect(await features.apply(reordered, snapshot)).toMatchObject({ created: false, version: { version: 1, digest: a.version.digest } });
    // Same definition, no snapshot: keeps the fitted version.
    expect(await features.apply(view)).toMatchObject({ created: false, version: { version: 1 } });
    // A changed definition: version 2; the head record lists both.
    const b = await features.apply({ ...view, description: 'per customer' }, snapshot);
    expect(b).toMatchObject({ created: true, version: { version: 2 } });
    expect(await features.list()).toEqual([expect.objectContaining({ name: 'customer', latest: 2, versions: [1, 2] })]);
    expect((await features.show('customer', 1)).definition.description).toBeUndefined();
    await expect(features.show('nope')).rejects.toMatchObject({ code: MlErrors.FEATURE_VIEW_NOT_FOUND.code });
    // Nothing to fit a mean on: an unfitted version, which refuses to encode.
    const unfitted = await features.apply({ ...view, name: 'bare' });
    expect(unfitted.version.fitted).toBeNull();
    await expect(features.vectors('bare', [{ customer_id: 'c-1' }])).rejects.toThrow(/has no fitted parameters/);
  });

  it('a push over NATS (JSON) is in the offline log with event and ingestion time, then online', async () => {
    const ev = { eventId: 'e-1', entity: { customer_id: 'c-17' }, values: { spend: 120, country: 'DE', vip: true }, eventTime: iso(T0 - 2000) };
    const r = await features.push('customer', ev, ContentType.JSON);
    expect(r).toMatchObject({ view: 'customer', eventId: 'e-1', duplicate: false, applied: ['spend', 'country', 'vip'] });
    const jsm = await jetstreamManager(sched);
    const logged = decode((await jsm.streams.getMessage(resources().streams.featureEvents, { seq: r.seq }))!.data, ContentType.MSGPACK) as LoggedEvent;
    expect(logged).toEqual({ view: 'customer', eventId: 'e-1', entity: ['c-17'], values: ev.values, eventTime: T0 - 2000, ingestTime: T0 });
    const [row] = await features.rows('customer', [{ customer_id: 'c-17' }]);
    expect(row).toMatchObject({ found: true, values: { spend: 120, country: 'DE', vip: true }, eventTimes: { spend: T0 - 2000 } });
  });

  it('HTTP push: same event id twice is applied once; a late (older) event does not overwrite newer values', async () => {
    const post = (body: unknown) => app.inject({ method: 'POST', url: '/v1/features/customer', headers, payload: JSON.stringify(body) });
    const first = await post({ eventId: 'e-2', entity: { customer_id: 'c-18' }, values: { spend: 5 }, eventTime: T0 - 1000 });
    expect(first.statusCode).toBe(200);
    // The retry carries other values: the logged original wins, nothing changes.
    const again = await post({ eventId: 'e-2', entity: { customer_id: 'c-18' }, values: { spend: 999 }, eventTime: T0 - 500 });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ duplicate: true, seq: first.json().seq, applied: [] });
    // Older than the stored spend, but the first value of country: only country is applied.
    const late = await post({ eventId: 'e-3', entity: { customer_id: 'c-18' }, values: { spend: 7, country: 'FR' }, eventTime: T0 - 30_000 });
    expect(late.json()).toMatchObject({ duplicate: false, applied: ['country'] });
    const [row] = await features.rows('customer', [{ customer_id: 'c-18' }]);
    expect(row!.values).toEqual({ spend: 5, country: 'FR' });
    // Unauthenticated: the tenant guard answers before the route.
    expect((await app.inject({ method: 'POST', url: '/v1/features/customer', headers: { 'content-type': 'application/json' }, payload: '{}' })).statusCode).toBe(401);
  });

  it('TTL on read: a value older than the TTL reads as missing and gets the fill', async () => {
    await features.push('customer', { eventId: 'e-4', entity: { customer_id: 'c-19' }, values: { spend: 250, country: 'FR', vip: true, last_login: T0 - 1000 }, eventTime: T0 });
    const before = await features.vectors('customer', [{ customer_id: 'c-19' }]);
    clock.advance(61_000);
    const [after] = await features.vectors('customer', [{ customer_id: 'c-19' }]);
    expect(after!.expired.sort()).toEqual(['country', 'last_login', 'spend', 'vip']);
    const v = await features.show('customer');
    const enc = features.views.encoder(v);
    // Expired = missing: the same vector as an entity with no values at all.
    expect(Array.from(after!.vector)).toEqual(Array.from(encodeRows(enc, [{}])));
    expect(Array.from(after!.vector)).not.toEqual(Array.from(before[0]!.vector));
  });

  it('batched read of many entities: each serving vector is bit-identical to the training matrix row of the same raw values', async () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ spend: i * 13.5, country: ['FR', 'DE', 'JP'][i % 3]!, vip: i % 2 === 0, last_login: clock.now() - i * 1000 }));
    await Promise.all(rows.map((values, i) => features.push('customer', { eventId: `b-${i}`, entity: { customer_id: `b-${i}` }, values, eventTime: clock.now() - 10 })));
    const entities = [...rows.map((_, i) => ({ customer_id: `b-${i}` })), { customer_id: 'never-seen' }];
    const vectors = await features.vectors('customer', entities);
    expect(vectors.map((v) => v.found)).toEqual([...rows.map(() => true), false]);
    const matrix = await features.matrix('customer', [...rows, {}]);
    const w = vectors[0]!.vector.length;
    vectors.forEach((v, i) => expect(Buffer.from(v.vector.buffer).equals(Buffer.from(matrix.buffer, i * w * 4, w * 4)), `entity ${i}`).toBe(true));
  });

  it('bad input: 400 naming the field over HTTP, a typed error reply over NATS; nothing logged', async () => {
    const jsm = await jetstreamManager(sched);
    const before = (await jsm.streams.info(resources().streams.featureEvents)).state.messages;
    const ok = { eventId: 'x-1', entity: { customer_id: 'c-1' }, values: { spend: 1 }, eventTime: clock.now() };
    const cases: [string, unknown, RegExp][] = [
      ['/v1/features/nope', ok, /view: unknown feature view "nope"/],
      ['/v1/features/customer', { ...ok, entity: { customer_id: 'c-1', region: 'eu' } }, /entity\.region: not an entity column/],
      ['/v1/features/customer', { ...ok, entity: {} }, /entity\.customer_id: missing/],
      ['/v1/features/customer', { ...ok, values: { spend: 'lots' } }, /values\.spend: "lots" is not a numeric value/],
      ['/v1/features/customer', { ...ok, values: { vip: 1 } }, /values\.vip: 1 is not a boolean value/],
      // No coercion: a number in a string is not a number.
      ['/v1/features/customer', { ...ok, values: { spend: '12' } }, /values\.spend: "12" is not a numeric value/],
      ['/v1/features/customer', { eventId: 'x-3', entity: { customer_id: 'c-1' }, values: { spend: 1 } }, /eventTime/],
      ['/v1/features/customer', { ...ok, values: { colour: 'red' } }, /values\.colour: not a feature/],
      ['/v1/features/customer', { ...ok, eventTime: clock.now() + 3_600_000 }, /eventTime: .* 3600 s in the future/],
      ['/v1/features/customer', { ...ok, eventTime: 'yesterday' }, /eventTime: "yesterday" is not an ISO 8601 time/],
      ['/v1/features/customer', { ...ok, extra: 1 }, /extra/],
      ['/v1/features/customer', { ...ok, eventId: 'a\r\nb' }, /eventId/],
    ];
    for (const [url, body, msg] of cases) {
      const r = await app.inject({ method: 'POST', url, headers, payload: JSON.stringify(body) });
      expect(r.statusCode, url + JSON.stringify(body)).toBe(400);
      expect(r.json().error, JSON.stringify(body)).toMatch(msg);
    }
    // The same refusal on NATS, as a typed error reply.
    await expect(request(cli, s.featurePush('customer'), { ...ok, values: { spend: 'lots' } })).rejects.toMatchObject({ code: MlErrors.BAD_INPUT.code, message: expect.stringMatching(/values\.spend/) });
    await expect(request(cli, s.featurePush('customer'), { eventId: 'x-2' })).rejects.toMatchObject({ code: Errors.BAD_MESSAGE.code });
    expect((await jsm.streams.info(resources().streams.featureEvents)).state.messages).toBe(before);
    // The service keeps serving.
    expect(await features.push('customer', ok)).toMatchObject({ duplicate: false, applied: ['spend'] });
  });

  it('the CLI: apply with a snapshot, list, show, push, get (client role)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-features-cli-'));
    const file = (name: string, v: unknown) => {
      writeFileSync(join(dir, name), typeof v === 'string' ? v : JSON.stringify(v));
      return join(dir, name);
    };
    const def = { name: 'merchant', entity: ['merchant_id', 'region'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'risk', type: 'numeric', transforms: [{ op: 'minmax' }] }] };
    let out = '';
    const run = async (...argv: string[]) => {
      out = '';
      return runFeatures(argv, cli, 'shoal', (t) => void (out += t));
    };
    expect(await run('apply', file('view.json', def), '--snapshot', file('rows.jsonl', '{"risk": 2}\n{"risk": 6}\n'))).toBe(0);
    expect(out).toMatch(/merchant version 1 applied \(new\); fitted on 2 rows, 1 columns/);
    await run('list');
    expect(out).toMatch(/merchant {2}latest v1/);
    await run('show', 'merchant', '--json');
    expect(JSON.parse(out)).toMatchObject({ version: 1, fitted: { features: { risk: { steps: [{ min: 2, max: 6 }] } } } });
    await run('push', 'merchant', file('ev.json', [{ eventId: 'm-1', entity: { merchant_id: 'm 1/é', region: 'eu' }, values: { risk: 5 }, eventTime: T0 }]));
    expect(out).toMatch(/m-1: seq \d+, applied risk/);
    await run('get', 'merchant', 'merchant_id=m 1/é', 'region=eu', '--json');
    expect(JSON.parse(out)).toMatchObject({ found: true, values: { risk: 5 }, vector: [0.75] });
    await expect(run('get', 'merchant', 'merchant_id=m-2')).rejects.toThrow(/entities\[0\]\.region: missing/);
  });
});
