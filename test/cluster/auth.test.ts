import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { Errors, Role, connectAs, request, subjects, type NatsConnection } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('NATS authorization (real nats-server, generated per-role credentials)', () => {
  let nats: TestNats;
  const s = subjects();

  beforeAll(async () => {
    nats = await startTestNats();
  });
  afterAll(async () => nats?.stop());

  it('refuses a client with no credentials', async () => {
    const err = await connect({ servers: nats.url, reconnect: false, timeout: 3000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/authoriz/i);
  });

  it('refuses wrong credentials with SHOAL_ERR_AUTH_FAILED', async () => {
    const err = await connectAs({ servers: nats.url, role: Role.NODE, credential: { user: 'node', pass: 'wrong' }, reconnect: false }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err)).toBe(true);
    const err2 = await connectAs({ servers: nats.url, role: Role.CLIENT, credential: { user: 'client', pass: nats.credentials.node.pass }, reconnect: false }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err2)).toBe(true);
  });

  it('lets each role connect with its own credentials', async () => {
    for (const role of [Role.NODE, Role.SCHEDULER, Role.GATEWAY, Role.CLIENT]) {
      const nc = await nats.connect(role);
      expect(nc.isClosed()).toBe(false);
    }
  });

  it('a node cannot publish on a subject it has no permission for', async () => {
    const node = await nats.connect(Role.NODE);
    const scheduler = await nats.connect(Role.SCHEDULER);
    const received: string[] = [];
    const sub = scheduler.subscribe(s.scheduler('place'), { callback: (_e, m) => void received.push(m.subject) });
    await scheduler.flush();

    const denied = new Promise<Error>((resolve) => {
      void (async () => {
        for await (const st of node.status()) {
          if (st.type === 'error' && /permission/i.test(String((st as { error?: Error }).error?.message ?? ''))) resolve((st as { error: Error }).error);
        }
      })();
    });
    node.publish(s.scheduler('place'), new Uint8Array([1]));
    node.publish(s.jobsSubmit, new Uint8Array([1]));
    const err = await denied;
    expect(err.message).toMatch(/Permissions Violation for Publish to "shoal\.sched\.place"/i);
    await node.flush();
    await scheduler.flush();
    expect(received).toEqual([]);
    sub.unsubscribe();

    // ...while a subject it is allowed reaches the subscriber.
    const events: string[] = [];
    scheduler.subscribe(s.eventsAll, { callback: (_e, m) => void events.push(m.subject) });
    await scheduler.flush();
    node.publish(s.event('node-joined'), new Uint8Array([1]));
    await node.flush();
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual(['shoal.events.node-joined']);
  });

  it('a client cannot read another role\'s replies or call the scheduler\'s private API', async () => {
    const client = await nats.connect(Role.CLIENT);
    const subErr = new Promise<string>((resolve) => {
      void (async () => {
        for await (const st of client.status()) if (st.type === 'error') resolve(String((st as { error?: Error }).error?.message));
      })();
    });
    client.subscribe('_INBOX_scheduler.>');
    expect(await subErr).toMatch(/Permissions Violation for Subscription to "_INBOX_scheduler\.>"/i);
    const err = await request(client, s.scheduler('place'), { type: 'x' }, { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });
});

export type { NatsConnection };
