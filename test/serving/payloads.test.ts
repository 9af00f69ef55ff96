/**
 * Bodies larger than one NATS message, against a real nats-server with the roles' generated
 * permissions: the transport (cluster/payloads.ts) between a gateway and a node connection in
 * both directions, what a pull gets once the holder let go, and the dispatcher with a stand-in
 * replica that runs the replica's own hook (ml/serving/large-payloads.ts): small requests of one
 * turn share a message while a large one travels alone, by reference, and a large answer comes
 * back whole.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { PayloadHost, Role, decode, encode, errorCode, fetchPayload, inlineLimitOf, subjects, type NatsConnection } from '../../cluster/index.ts';
import type { InferJsonReply, JsonItem } from '../../ml/index.ts';
import { withLargePayloads } from '../../ml/serving/large-payloads.ts';
import { InferenceDispatcher } from '../../gateway/dispatcher.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const s = subjects();
const MiB = 1024 * 1024;
const NODE = 'payload-node';

/** Bytes that differ from chunk to chunk (a misplaced chunk would show). */
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed + (i >> 20)) & 0xff);

describe('large bodies over NATS (real nats-server, role permissions)', () => {
  let nats: TestNats;
  let gw: NatsConnection;
  let node: NatsConnection;

  beforeAll(async () => {
    nats = await startTestNats({ nodeIds: [NODE] });
    gw = await nats.connect(Role.GATEWAY);
    node = await nats.connect(Role.NODE, { nodeId: NODE });
  });
  afterAll(async () => nats?.stop());

  it('a gateway holds, a node pulls; a node holds, a gateway pulls — byte for byte', async () => {
    const gwHost = new PayloadHost(gw, s.payloadGateway('gw-test'));
    const nodeHost = new PayloadHost(node, s.payloadNode(NODE));
    await Promise.all([gw.flush(), node.flush()]);
    const up = pattern(20 * MiB + 123, 1);
    const held = gwHost.hold(up, { ttlMs: 10_000 });
    expect(held.ref.size).toBeGreaterThan(inlineLimitOf(gw)); // more than one message
    expect(Buffer.compare(await fetchPayload(node, held.ref, { timeoutMs: 10_000 }), up)).toBe(0);
    // Held until released: a second puller (a hedged copy) gets it too.
    expect((await fetchPayload(node, held.ref, { timeoutMs: 10_000 })).length).toBe(up.length);
    held.release();
    expect(gwHost.heldBytes).toBe(0);
    const gone = await fetchPayload(node, held.ref, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(errorCode(gone)).toBe('SHOAL_ERR_PAYLOAD_GONE');

    const down = pattern(9 * MiB, 2);
    const reply = nodeHost.hold(down, { ttlMs: 10_000, once: true });
    expect(Buffer.compare(await fetchPayload(gw, reply.ref, { timeoutMs: 10_000 }), down)).toBe(0);
    // `once`: let go as soon as every chunk was served.
    expect(nodeHost.heldBytes).toBe(0);
    expect(errorCode(await fetchPayload(gw, reply.ref, { timeoutMs: 5000 }).catch((e: unknown) => e))).toBe('SHOAL_ERR_PAYLOAD_GONE');
    gwHost.close();
    nodeHost.close();
  });

  it('a body nobody pulls is let go after its holding time; a holder that is gone answers PAYLOAD_GONE at once', async () => {
    const host = new PayloadHost(gw, s.payloadGateway('gw-ttl'));
    await gw.flush();
    const held = host.hold(pattern(3 * MiB, 3), { ttlMs: 200 });
    expect(host.heldBytes).toBe(3 * MiB);
    await until(() => (host.heldBytes === 0 ? true : undefined), 5000, 'the holding time to pass', 20);
    expect(errorCode(await fetchPayload(node, held.ref, { timeoutMs: 5000 }).catch((e: unknown) => e))).toBe('SHOAL_ERR_PAYLOAD_GONE');
    host.close();
    // The server must have the unsubscribe before the request, or the request goes to the
    // subscription being closed and times out (this raced under load: a 5 s timeout, not GONE).
    await gw.flush();
    // No subscriber at all now: the server's no-responders, not a timeout.
    expect(errorCode(await fetchPayload(node, held.ref, { timeoutMs: 5000 }).catch((e: unknown) => e))).toBe('SHOAL_ERR_PAYLOAD_GONE');
  });

  /** A replica stand-in on `service`: the replica's hook around an echo (answering `delayMs` after the bodies are in); records each message's items. */
  async function echoReplica(service: string, delayMs: (items: JsonItem[]) => number = () => 0): Promise<{ messages: JsonItem[][]; stop: () => void }> {
    const messages: JsonItem[][] = [];
    const ctx = { nc: node, subjects: s, nodeId: NODE };
    const sub = node.subscribe(s.service(service), {
      queue: service,
      callback: (_e, m: Msg) => {
        const msg = decode(m.data) as { items: JsonItem[] };
        messages.push(msg.items);
        const delay = delayMs(msg.items);
        const echo = async (items: JsonItem[]): Promise<InferJsonReply> => {
          if (delay > 0) await new Promise((r) => setTimeout(r, delay));
          return { results: items.map((it) => ({ body: it.body, batch: items.length })), queueRows: 0, actorId: 'echo', version: 1 };
        };
        void withLargePayloads(ctx, msg.items, echo).then((reply) => m.respond(encode(reply)));
      },
    });
    await node.flush();
    return { messages, stop: () => sub.unsubscribe() };
  }

  it('dispatcher: small requests of one turn share a message, a large one travels alone by reference, and its large answer comes back', async () => {
    const r = await echoReplica('svc-large');
    const d = new InferenceDispatcher(gw, s, { hedgeAfterMs: 10_000 });
    const deadline = Date.now() + 20_000;
    const small = (i: number): JsonItem => ({ format: 'oip', body: new TextEncoder().encode(`{"n":${i}}`) });
    const big = pattern(20 * MiB, 4);
    const sent = [d.infer('svc-large', 64, small(0), deadline), d.infer('svc-large', 64, small(1), deadline), d.infer('svc-large', 64, { format: 'oip', body: big, headerLength: 17 }, deadline), d.infer('svc-large', 64, small(2), deadline)];
    const got = await Promise.all(sent);
    expect(got.map((g) => g.body.length)).toEqual([7, 7, big.length, 7]);
    expect(Buffer.compare(got[2]!.body, big)).toBe(0);
    // In queue order: the two small ones, the large one by itself (body left behind, a reference instead), the last small one.
    expect(r.messages.map((items) => items.map((it) => (it.ref ? `ref:${it.ref.size}` : it.body.length)))).toEqual([[7, 7], [`ref:${big.length}`], [7]]);
    expect(r.messages[1]![0]).toMatchObject({ headerLength: 17 });
    expect(r.messages[1]![0]!.body.length).toBe(0);
    // Let go once answered (the replica's copy was pulled whole).
    expect(errorCode(await fetchPayload(node, r.messages[1]![0]!.ref!, { timeoutMs: 5000 }).catch((e: unknown) => e))).toBe('SHOAL_ERR_PAYLOAD_GONE');
    d.stop();
    r.stop();
  });

  // When a large message's first hedge goes out (after its pull's allowance) is the hedging policy's
  // business, tested on fake timers in test/gateway/hedged-send.test.ts: here it would hinge on how
  // fast this machine pulls 20 MiB.

  it('request bodies unanswered in the gateway are bounded in bytes: past maxPendingBytes, 503 at once', async () => {
    const r = await echoReplica('svc-bytes', () => 300);
    const d = new InferenceDispatcher(gw, s, { hedgeAfterMs: 10_000, maxPendingBytes: 30 * MiB });
    const deadline = Date.now() + 20_000;
    const body = pattern(20 * MiB, 6);
    const first = d.infer('svc-bytes', 64, { format: 'oip', body }, deadline);
    const second = await d.infer('svc-bytes', 64, { format: 'oip', body }, deadline).catch((e: unknown) => e);
    expect(errorCode(second)).toBe('SHOAL_ERR_OVERLOADED');
    expect((second as Error).message).toMatch(/MiB of request bodies/);
    expect((await first).body.length).toBe(body.length);
    // Answered: its bytes no longer count.
    expect((await d.infer('svc-bytes', 64, { format: 'oip', body }, deadline)).body.length).toBe(body.length);
    d.stop();
    r.stop();
  });
});
