import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { Errors, Role, connectAs, ensureResources, request, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
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

  it('only the scheduler administers JetStream: others keep their buckets but cannot delete, wipe, take the job queue or forge the lease', async () => {
    const scheduler = await nats.connect(Role.SCHEDULER);
    await ensureResources(scheduler);
    const r = resources();
    for (const role of [Role.NODE, Role.GATEWAY, Role.CLIENT]) {
      const nc = await nats.connect(role);
      const jsm = await jetstreamManager(nc, { timeout: 1500 });
      // Allowed: KV and object-store work on their buckets.
      const actors = await new Kvm(nc).open(r.buckets.actors);
      await actors.put(`probe-${role}`, new TextEncoder().encode('x'));
      expect(new TextDecoder().decode((await actors.get(`probe-${role}`))!.value)).toBe('x');
      const store = await new Objm(nc).open(r.artifacts);
      await store.putBlob({ name: `probe-${role}` }, new Uint8Array([1, 2, 3]));
      await store.putBlob({ name: `probe-${role}` }, new Uint8Array([4])); // replacing purges its old chunks
      expect(Array.from((await store.getBlob(`probe-${role}`))!)).toEqual([4]);
      // Refused: stream administration, wiping a bucket, the job queue's consumer, the lease.
      await expect(jsm.streams.delete(r.jobsStream)).rejects.toThrow();
      await expect(jsm.streams.purge(`KV_${r.buckets.actors}`)).rejects.toThrow();
      await expect(jsm.streams.add({ name: `ROGUE_${role}`, subjects: [`rogue.${role}`] })).rejects.toThrow();
      await expect(jsm.consumers.add(r.jobsStream, { durable_name: `thief-${role}`, ack_policy: AckPolicy.Explicit })).rejects.toThrow();
      const leases = await new Kvm(nc).open(r.buckets.leases);
      await expect(leases.put('scheduler', new TextEncoder().encode(role), { timeout: 1500 } as never)).rejects.toThrow();
      await nc.close();
    }
    // Nothing was deleted, wiped or taken.
    const sj = await jetstreamManager(scheduler);
    expect((await sj.streams.info(r.jobsStream)).config.name).toBe(r.jobsStream);
    expect((await sj.streams.info(`KV_${r.buckets.actors}`)).state.messages).toBeGreaterThanOrEqual(3);
    expect((await sj.consumers.list(r.jobsStream).next()).length).toBe(0);
    expect(await (await new Kvm(scheduler).open(r.buckets.leases)).get('scheduler')).toBeNull();
    await scheduler.close();
  });
});

export type { NatsConnection };
