/**
 * The gateway's dispatcher against a real nats-server, with a stand-in replica on the service
 * subject whose reply time the test controls: coalescing per event-loop turn, holding requests
 * while messages are in flight (Nagle-style) and sending them as one message when a reply comes
 * back, the hold's upper bound, per-request results and the bounded queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { Role, decode, encode, subjects, type NatsConnection } from '../../cluster/index.ts';
import type { InferJsonReply, JsonItem } from '../../ml/index.ts';
import { InferenceDispatcher } from '../../gateway/dispatcher.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const s = subjects();

describe('inference dispatcher (real nats-server, stand-in replica)', () => {
  let nats: TestNats;
  let gw: NatsConnection;
  let replica: NatsConnection;

  beforeAll(async () => {
    nats = await startTestNats();
    gw = await nats.connect(Role.GATEWAY);
    replica = await nats.connect(Role.NODE, { nodeId: 'stand-in-node' });
  });
  afterAll(async () => {
    await gw?.close();
    await replica?.close();
    await nats?.stop();
  });

  /**
   * A replica on `service` (queue group) that answers each message after `delayMs`, echoing
   * bodies; records message sizes, and how many replies it had sent when each message arrived.
   */
  async function standIn(service: string, delayMs: number, actorId = 'stand-in'): Promise<{ sizes: number[]; repliedBefore: number[]; stop: () => void }> {
    const sizes: number[] = [];
    const repliedBefore: number[] = [];
    let replied = 0;
    const onMsg = (_err: unknown, m: Msg) => {
      const msg = decode(m.data) as { type: string; items: JsonItem[] };
      sizes.push(msg.items.length);
      repliedBefore.push(replied);
      const reply: InferJsonReply = { results: msg.items.map((it) => ({ body: it.body, batch: msg.items.length })), queueRows: 0, actorId, version: 1 };
      setTimeout(() => {
        replied++;
        m.respond(encode(reply));
      }, delayMs);
    };
    // As a replica does: its queue group on the service, and its own actor subject (hedges).
    const subs = [replica.subscribe(s.service(service), { queue: service, callback: onMsg }), replica.subscribe(s.actor(actorId), { callback: onMsg })];
    await replica.flush(); // the server has the subscriptions before anyone publishes
    return { sizes, repliedBefore, stop: () => subs.forEach((x) => x.unsubscribe()) };
  }

  const item = (i: number): JsonItem => ({ format: 'oip', body: new TextEncoder().encode(`{"n":${i}}`) });
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const turn = () => new Promise((r) => setImmediate(r));

  it('coalesces a turn into one message; while maxInflight are out, holds requests and sends them together when a reply returns', async () => {
    const r = await standIn('svc-hold', 1500);
    const d = new InferenceDispatcher(gw, s, { maxInflight: 2, maxHoldMs: 10_000, hedgeAfterMs: 10_000 });
    const deadline = Date.now() + 10_000;
    const first = [0, 1, 2].map((i) => d.infer('svc-hold', 64, item(i), deadline)); // one turn → one message
    await turn();
    await turn();
    const second = d.infer('svc-hold', 64, item(3), deadline); // a second message: now 2 in flight
    await turn();
    await turn();
    const held = Array.from({ length: 10 }, (_, i) => d.infer('svc-hold', 64, item(10 + i), deadline));
    await until(() => (r.sizes.length >= 2 ? true : undefined), 5000, 'two messages', 10);
    await turn();
    await turn();
    // The 10 wait in the gateway (two messages are out; replies come after 1.5 s): still queued here, so not sent.
    expect(d.pending().get('svc-hold')).toBe(10);
    expect(r.sizes).toEqual([3, 1]);
    const all = await Promise.all([...first, second, ...held]);
    expect(r.sizes).toEqual([3, 1, 10]); // released by the first reply, as one message
    expect(all.map((x) => text(x.body))).toEqual([0, 1, 2, 3, ...Array.from({ length: 10 }, (_, i) => 10 + i)].map((n) => `{"n":${n}}`));
    expect(all.at(-1)!.batch).toBe(10);
    d.stop();
    r.stop();
  });

  it('holds no longer than maxHoldMs, and never more than maxItems in one message', async () => {
    const r = await standIn('svc-bound', 3500);
    const d = new InferenceDispatcher(gw, s, { maxInflight: 1, maxHoldMs: 1000, hedgeAfterMs: 10_000 });
    const deadline = Date.now() + 10_000;
    const a = d.infer('svc-bound', 4, item(0), deadline);
    await turn();
    await turn();
    const b = Array.from({ length: 6 }, (_, i) => d.infer('svc-bound', 4, item(1 + i), deadline));
    // A full message (maxItems = 4) goes at once; the other 2 wait for a reply or the hold's end.
    await until(() => (r.sizes.length >= 2 ? true : undefined), 5000, 'the full message', 10);
    await turn();
    await turn();
    expect(d.pending().get('svc-bound')).toBe(2); // the partial tail is held
    expect(r.sizes).toEqual([1, 4]);
    // The hold (1 s) ends long before any reply (3.5 s): the tail goes then, before the first reply.
    await until(() => (r.sizes.length >= 3 ? true : undefined), 5000, 'the tail after the hold', 10);
    expect(r.sizes).toEqual([1, 4, 2]);
    expect(r.repliedBefore).toEqual([0, 0, 0]);
    expect((await Promise.all([a, ...b])).map((x) => x.batch)).toEqual([1, 4, 4, 4, 4, 2, 2]);
    d.stop();
    r.stop();
  });

  it('allows maxInflight messages per replica that answered lately', async () => {
    const a = await standIn('svc-two', 100, 'replica-a');
    const b = await standIn('svc-two', 100, 'replica-b');
    const d = new InferenceDispatcher(gw, s, { maxInflight: 1, maxHoldMs: 10_000, hedgeAfterMs: 10_000 });
    const deadline = Date.now() + 10_000;
    // Until both replicas have answered (the queue group picks one per message).
    for (let i = 0; i < 60 && (a.sizes.length === 0 || b.sizes.length === 0); i++) await d.infer('svc-two', 64, item(i), deadline);
    expect(a.sizes.length * b.sizes.length).toBeGreaterThan(0);
    const before = a.sizes.length + b.sizes.length;
    const slow = await Promise.all([standIn('svc-two', 1500, 'replica-a'), standIn('svc-two', 1500, 'replica-b')]);
    a.stop();
    b.stop();
    await replica.flush();
    const sent = () => slow[0].sizes.length + slow[1].sizes.length;
    const first = d.infer('svc-two', 64, item(100), deadline);
    await turn();
    await turn();
    const second = d.infer('svc-two', 64, item(101), deadline); // 2 replicas × 1: goes at once
    await turn();
    await turn();
    const third = d.infer('svc-two', 64, item(102), deadline); // held: 2 in flight
    await until(() => (sent() >= 2 ? true : undefined), 5000, 'two messages', 10);
    await turn();
    await turn();
    expect(d.pending().get('svc-two')).toBe(1); // held in the gateway: not sent
    expect(sent()).toBe(2);
    await Promise.all([first, second, third]);
    expect(sent()).toBe(3);
    expect(before).toBeGreaterThanOrEqual(2);
    d.stop();
    for (const x of slow) x.stop();
  });

  it('keeps retrying within the deadline while no replica answers (re-placement after a node died)', async () => {
    const d = new InferenceDispatcher(gw, s, {});
    let settled = false;
    const pending = d.infer('svc-later', 64, item(7), Date.now() + 10_000).finally(() => (settled = true));
    // No replica for 3.5 s — longer than a handful of backed-off attempts — then one appears.
    await new Promise((res) => setTimeout(res, 3500));
    expect(settled).toBe(false); // still trying, not given up
    const r = await standIn('svc-later', 0, 'late-replica');
    const answer = await pending;
    expect(text(answer.body)).toBe('{"n":7}');
    expect(answer.attempts).toBeGreaterThan(1);
    d.stop();
    r.stop();
  });

  it('a replica that never answers (its node was SIGKILLed) costs a hedge delay, not the deadline', async () => {
    // One member of the queue group swallows messages, as a replica on a hung or killed node does
    // (NATS cannot tell the gateway it will never answer); the other answers. Deadlines of 2 s: a
    // request stuck on the silent one until a 3 s per-try timeout would miss its deadline. The
    // live one has answered before the silent one appears, so hedges know where to go.
    const live = await standIn('svc-hole', 0, 'live');
    const d = new InferenceDispatcher(gw, s, { hedgeBudget: 32 });
    await d.infer('svc-hole', 64, item(-1), Date.now() + 2000);
    const silent = replica.subscribe(s.service('svc-hole'), { queue: 'svc-hole', callback: () => undefined });
    await replica.flush();
    const results = [];
    for (let i = 0; i < 16; i++) results.push(await d.infer('svc-hole', 64, item(i), Date.now() + 2000));
    expect(results.map((x) => text(x.body))).toEqual(Array.from({ length: 16 }, (_, i) => `{"n":${i}}`));
    // Some of them met the silent member first and were answered by a second copy.
    expect(results.some((x) => x.attempts > 1)).toBe(true);
    d.stop();
    live.stop();
    silent.unsubscribe();
  });

  it('a slow but live replica is not flooded with hedged copies (the budget bounds them)', async () => {
    const r = await standIn('svc-slowpoke', 400, 'slowpoke');
    const d = new InferenceDispatcher(gw, s, { hedgeAfterMs: 50, hedgeBudget: 3 });
    for (let i = 0; i < 12; i++) await d.infer('svc-slowpoke', 64, item(i), Date.now() + 10_000);
    // 12 requests, at most 3 hedges from the initial budget plus what 12 replies earn back (1.2).
    expect(r.sizes.length).toBeGreaterThan(12);
    expect(r.sizes.length).toBeLessThanOrEqual(12 + 4);
    d.stop();
    r.stop();
  });

  it('refuses at once past maxPending waiting requests (503), and the rest still get answers', async () => {
    const r = await standIn('svc-full', 100);
    const d = new InferenceDispatcher(gw, s, { maxInflight: 1, maxHoldMs: 5000, maxPending: 3 });
    const deadline = Date.now() + 10_000;
    const first = d.infer('svc-full', 64, item(0), deadline);
    await turn();
    await turn();
    const waiting = [1, 2, 3].map((i) => d.infer('svc-full', 64, item(i), deadline));
    await expect(d.infer('svc-full', 64, item(4), deadline)).rejects.toMatchObject({ code: 'SHOAL_ERR_OVERLOADED', status: 503 });
    expect((await Promise.all([first, ...waiting])).map((x) => text(x.body))).toEqual([0, 1, 2, 3].map((n) => `{"n":${n}}`));
    d.stop();
    r.stop();
  });
});
