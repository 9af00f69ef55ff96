import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { errors, headers } from '@nats-io/transport-node';
import { ContentType, Errors, Headers, Role, decode, encode, request, serve, subjects, type NatsConnection } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const Echo = Type.Union([
  Type.Object({ type: Type.Literal('echo'), text: Type.String({ maxLength: 100 }) }),
  Type.Object({ type: Type.Literal('add'), a: Type.Number(), b: Type.Number() }),
  Type.Object({ type: Type.Literal('boom') }),
  Type.Object({ type: Type.Literal('settling') }),
]);

describe('request/reply with schemas at the edge (real nats-server)', () => {
  let nats: TestNats;
  let server: NatsConnection;
  let client: NatsConnection;
  const s = subjects();
  const subject = s.service('echo');

  beforeAll(async () => {
    nats = await startTestNats();
    server = await nats.connect(Role.NODE, { nodeId: 'rpc-server' });
    client = await nats.connect(Role.CLIENT);
    serve(server, subject, Echo, (m) => {
      if (m.type === 'echo') return { text: m.text };
      if (m.type === 'add') return { sum: m.a + m.b };
      // What a KV or stream call throws while its stream elects a leader.
      if (m.type === 'settling') throw new errors.TimeoutError();
      throw new Error('handler exploded');
    });
    await server.flush();
  });
  afterAll(async () => nats?.stop());

  it('answers valid messages in MessagePack and in JSON', async () => {
    expect(await request(client, subject, { type: 'add', a: 2, b: 40 })).toEqual({ sum: 42 });
    expect(await request(client, subject, { type: 'echo', text: 'hi' }, { contentType: ContentType.JSON })).toEqual({ text: 'hi' });
  });

  it('replies to a message that fails its schema with a typed error naming the field', async () => {
    const err = await request(client, subject, { type: 'add', a: 'two', b: 1 }).catch((e: unknown) => e);
    expect(Errors.BAD_MESSAGE.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/shoal\.svc\.echo.*a:/);
  });

  it('replies to an unknown message type with its own code', async () => {
    const err = await request(client, subject, { type: 'divide' }).catch((e: unknown) => e);
    expect(Errors.UNKNOWN_MESSAGE_TYPE.is(err)).toBe(true);
  });

  it('replies to undecodable bytes and to a bad content-type, and keeps serving', async () => {
    const h = headers();
    h.set(Headers.CONTENT_TYPE, ContentType.JSON);
    const m = await client.request(subject, new TextEncoder().encode('{oops'), { headers: h, timeout: 2000 });
    expect(m.headers?.get(Headers.ERROR_CODE)).toBe(Errors.DECODE_FAILED.code);
    const h2 = headers();
    h2.set(Headers.CONTENT_TYPE, 'text/csv');
    const m2 = await client.request(subject, encode({ type: 'echo', text: 'x' }), { headers: h2, timeout: 2000 });
    expect(m2.headers?.get(Headers.ERROR_CODE)).toBe(Errors.BAD_CONTENT_TYPE.code);
    // No content-type header at all means MessagePack.
    const m3 = await client.request(subject, encode({ type: 'echo', text: 'still here' }), { timeout: 2000 });
    expect(decode(m3.data)).toEqual({ text: 'still here' });
  });

  it('turns a throwing handler into SHOAL_ERR_INTERNAL and keeps serving', async () => {
    const err = await request(client, subject, { type: 'boom' }).catch((e: unknown) => e);
    expect(Errors.INTERNAL.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/handler exploded/);
    expect(await request(client, subject, { type: 'add', a: 1, b: 1 })).toEqual({ sum: 2 });
  });

  it('turns a handler that met JetStream settling into the retryable JETSTREAM_UNAVAILABLE (503), not INTERNAL', async () => {
    const err = await request(client, subject, { type: 'settling' }).catch((e: unknown) => e);
    expect(Errors.JETSTREAM_UNAVAILABLE.is(err)).toBe(true);
    expect(Errors.INTERNAL.is(err)).toBe(false);
    expect((err as Error).message).toMatch(/not available now.*timeout/);
  });

  it('fails fast with NO_RESPONDERS when nobody listens, not after the timeout', async () => {
    // NO_RESPONDERS, not TIMEOUT: the server said nobody listens (the error type is the proof).
    const err = await request(client, s.service('nobody'), { type: 'echo', text: 'x' }, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(Errors.NO_RESPONDERS.is(err)).toBe(true);
  });
});
