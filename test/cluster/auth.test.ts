/**
 * NATS authorization on a real nats-server with the generated config: credentials per role and
 * per node, and the rights of issue #11 — a client cannot wipe or edit cluster state (it goes
 * through the scheduler's and registry's request subjects), a node cannot command or eavesdrop on
 * another node. The whole role table is walked by permissions.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { Errors, Role, connectAs, ensureResources, request, resources, subjects, type NatsConnection, type NodeRecord } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { ProcessSet } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

/** Resolves with the first permission violation the connection reports. */
function nextViolation(nc: NatsConnection): Promise<string> {
  return new Promise((resolve) => {
    void (async () => {
      for await (const st of nc.status()) {
        const msg = String((st as { error?: Error }).error?.message ?? '');
        if (st.type === 'error' && /Permissions Violation/i.test(msg)) return resolve(msg);
      }
    })();
  });
}

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
    const err = await connectAs({ servers: nats.url, role: Role.NODE, credential: { user: 'node-x', pass: 'wrong' }, reconnect: false }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err)).toBe(true);
    const err2 = await connectAs({ servers: nats.url, role: Role.CLIENT, credential: { user: 'client', pass: nats.credentials.gateway.pass }, reconnect: false }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err2)).toBe(true);
    // Node passwords are per node: one node's does not open another node's user, and there is
    // no shared `node` user any more.
    await nats.addNodes(['cred-a', 'cred-b']);
    const err3 = await connectAs({ servers: nats.url, role: Role.NODE, credential: { user: 'node-cred-b', pass: nats.nodeCredential('cred-a').pass }, reconnect: false }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err3)).toBe(true);
    const err4 = await connectAs({ servers: nats.url, role: Role.NODE, credential: { user: 'node', pass: nats.nodeCredential('cred-a').pass }, reconnect: false, nodeId: 'cred-a' }).catch((e: unknown) => e);
    expect(Errors.AUTH_FAILED.is(err4)).toBe(true);
  });

  it('lets each role connect with its own credentials, and each node with its own', async () => {
    for (const role of [Role.SCHEDULER, Role.GATEWAY, Role.CLIENT]) {
      const nc = await nats.connect(role);
      expect(nc.isClosed()).toBe(false);
    }
    const node = await nats.connect(Role.NODE, { nodeId: 'cred-a' });
    expect(node.isClosed()).toBe(false);
  });

  it('a node cannot publish on a subject it has no permission for', async () => {
    const node = await nats.connect(Role.NODE, { nodeId: 'pub-a' });
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
    await until(() => (events.length > 0 ? true : undefined), 5000, 'the allowed event');
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

  it('only the scheduler administers JetStream: others cannot delete, wipe, create streams, take the job queue or forge the lease', async () => {
    const scheduler = await nats.connect(Role.SCHEDULER);
    await ensureResources(scheduler);
    const r = resources();
    const enc = new TextEncoder();
    for (const [role, nodeId] of [[Role.NODE, 'admin-a'], [Role.GATEWAY], [Role.CLIENT]] as const) {
      const nc = await nats.connect(role, nodeId ? { nodeId } : {});
      const jsm = await jetstreamManager(nc, { timeout: 1500 });
      // What each may write, by the role table: a node its actors and its checkpoint objects
      // (replacing one purges its old chunks); a client its uploads; the gateway nothing.
      if (role === Role.NODE) {
        const actors = await new Kvm(nc).open(r.buckets.actors);
        await actors.put(`probe-${role}`, enc.encode('x'));
        expect(new TextDecoder().decode((await actors.get(`probe-${role}`))!.value)).toBe('x');
        const ckpt = await new Objm(nc).open(r.stores.checkpoints);
        await ckpt.putBlob({ name: `probe-${role}` }, new Uint8Array([1, 2, 3]));
        await ckpt.putBlob({ name: `probe-${role}` }, new Uint8Array([4]));
        expect(Array.from((await ckpt.getBlob(`probe-${role}`))!)).toEqual([4]);
      } else {
        await expect((await new Kvm(nc).open(r.buckets.actors)).put(`probe-${role}`, enc.encode('x'))).rejects.toThrow(/Permissions Violation/);
      }
      if (role === Role.CLIENT) {
        const uploads = await new Objm(nc).open(r.stores.uploads);
        await uploads.putBlob({ name: `probe-${role}` }, new Uint8Array([1, 2, 3]));
        await uploads.putBlob({ name: `probe-${role}` }, new Uint8Array([4]));
      }
      // Nobody but the scheduler writes the artifacts store (the registry service does).
      await expect(new Objm(nc).open(r.stores.artifacts).then((st) => st.putBlob({ name: `probe-${role}` }, new Uint8Array([1])))).rejects.toThrow();
      // Refused: stream administration, wiping a bucket, the job queue's consumer, the lease.
      await expect(jsm.streams.delete(r.streams.jobs)).rejects.toThrow();
      await expect(jsm.streams.purge(`KV_${r.buckets.actors}`)).rejects.toThrow();
      await expect(jsm.streams.add({ name: `ROGUE_${role}`, subjects: [`rogue.${role}`] })).rejects.toThrow();
      await expect(jsm.consumers.add(r.streams.jobs, { durable_name: `thief-${role}`, ack_policy: AckPolicy.Explicit })).rejects.toThrow();
      const leases = await new Kvm(nc).open(r.buckets.leases);
      await expect(leases.put('scheduler', enc.encode(role), { timeout: 1500 } as never)).rejects.toThrow();
      await nc.close();
    }
    // Nothing was deleted, wiped or taken.
    const sj = await jetstreamManager(scheduler);
    expect((await sj.streams.info(r.streams.jobs)).config.name).toBe(r.streams.jobs);
    expect((await sj.streams.info(`KV_${r.buckets.actors}`)).state.messages).toBeGreaterThanOrEqual(1);
    expect((await sj.consumers.list(r.streams.jobs).next()).length).toBe(0);
    expect(await (await new Kvm(scheduler).open(r.buckets.leases)).get('scheduler')).toBeNull();
    await scheduler.close();
  });
});

describe('issue #11, point 4: a client cannot wipe or edit cluster state', () => {
  let nats: TestNats;
  let scheduler: NatsConnection;
  let client: NatsConnection;
  const r = resources();
  const s = subjects();
  const enc = new TextEncoder();
  const dataset = new Uint8Array(4096).map((_, i) => i % 251);

  beforeAll(async () => {
    nats = await startTestNats();
    scheduler = await nats.connect(Role.SCHEDULER);
    await ensureResources(scheduler);
    // What a running cluster holds: a dataset in the artifacts store, the scheduler's job-queue
    // consumer with a job waiting, the leader lease, records in every bucket.
    await (await new Objm(scheduler).open(r.stores.artifacts)).putBlob({ name: 'datasets/abc' }, dataset);
    const jsm = await jetstreamManager(scheduler);
    await jsm.consumers.add(r.streams.jobs, { durable_name: 'scheduler', ack_policy: AckPolicy.Explicit });
    await jetstream(scheduler).publish(s.jobsSubmit, enc.encode('{"id":"j1","spec":{}}'), { msgID: 'j1' });
    await (await new Kvm(scheduler).open(r.buckets.leases)).put('scheduler', enc.encode('lease'));
    for (const b of ['nodes', 'actors', 'jobs', 'models', 'checkpoints'] as const) await (await new Kvm(scheduler).open(r.buckets[b])).put('k', enc.encode('v'));
    client = await nats.connect(Role.CLIENT);
  }, 30_000);
  afterAll(async () => nats?.stop());

  it('cannot purge the artifacts store (the next training job would find its dataset gone)', async () => {
    const jsm = await jetstreamManager(client, { timeout: 1500 });
    await expect(jsm.streams.purge(`OBJ_${r.stores.artifacts}`)).rejects.toThrow(/Permissions Violation/);
    const still = await (await new Objm(scheduler).open(r.stores.artifacts)).getBlob('datasets/abc');
    expect(Buffer.from(still!).equals(Buffer.from(dataset))).toBe(true);
  });

  it('cannot delete messages from the job-queue or lease streams', async () => {
    const jsm = await jetstreamManager(client, { timeout: 1500 });
    await expect(jsm.streams.deleteMessage(r.streams.jobs, 1)).rejects.toThrow(/Permissions Violation/);
    await expect(jsm.streams.deleteMessage(`KV_${r.buckets.leases}`, 1)).rejects.toThrow(/Permissions Violation/);
    const sj = await jetstreamManager(scheduler);
    expect((await sj.streams.info(r.streams.jobs)).state.messages).toBe(1);
    expect(new TextDecoder().decode((await (await new Kvm(scheduler).open(r.buckets.leases)).get('scheduler'))!.value)).toBe('lease');
  });

  it("cannot pull from the scheduler's job-queue consumer", async () => {
    const violation = nextViolation(client);
    const next = client.request(`$JS.API.CONSUMER.MSG.NEXT.${r.streams.jobs}.scheduler`, enc.encode(JSON.stringify({ batch: 1, expires: 500_000_000 })), { timeout: 1500 }).catch((e: unknown) => e);
    expect(await violation).toMatch(new RegExp(`Permissions Violation for Publish to "\\$JS\\.API\\.CONSUMER\\.MSG\\.NEXT\\.${r.streams.jobs}\\.scheduler"`));
    expect(await next).toBeInstanceOf(Error);
    // Through the client library too.
    await expect(jetstream(client).consumers.get(r.streams.jobs, 'scheduler').then((c) => c.next({ expires: 1000 }))).rejects.toThrow();
    // The job is still there for the scheduler.
    const info = await (await jetstreamManager(scheduler)).consumers.info(r.streams.jobs, 'scheduler');
    expect(info.num_pending + info.num_ack_pending).toBe(1);
    expect(info.num_ack_pending).toBe(0);
  });

  it('cannot write any key in the nodes, actors, jobs, models and checkpoints buckets', async () => {
    for (const b of ['nodes', 'actors', 'jobs', 'models', 'checkpoints'] as const) {
      const kv = await new Kvm(client).open(r.buckets[b]);
      await expect(kv.put('k', enc.encode('forged')), b).rejects.toThrow(/Permissions Violation/);
      await expect(kv.create('new', enc.encode('forged')), b).rejects.toThrow(/Permissions Violation/);
      await expect(kv.delete('k'), b).rejects.toThrow(/Permissions Violation/);
      expect(new TextDecoder().decode((await (await new Kvm(scheduler).open(r.buckets[b])).get('k'))!.value), b).toBe('v');
    }
  });

  it('changes cluster state through request subjects instead: the scheduler\'s and the registry\'s', async () => {
    // Allowed to ask (nobody serves here, so: no responders — not a permission error).
    for (const subject of [s.scheduler('actors'), s.scheduler('jobs'), s.registry('deploy'), s.registry('register')]) {
      const err = await request(client, subject, {}, { timeoutMs: 1000 }).catch((e: unknown) => e);
      expect(Errors.NO_RESPONDERS.is(err), subject).toBe(true);
    }
  });
});

describe('issue #11, point 5: a node cannot command or watch another node', () => {
  let c: TestCluster;
  let nats: TestNats;
  let procs: ProcessSet;
  let scheduler: NatsConnection;
  const s = subjects();
  const r = resources();
  const FAST = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["test/fixtures/actors.ts"]'];

  beforeAll(async () => {
    c = await startCluster({ args: FAST, nodes: ['victim'] });
    ({ nats, procs } = c);
    scheduler = await nats.connect(Role.SCHEDULER);
  }, 90_000);
  afterAll(async () => c?.stop());

  it("another node's credentials cannot send it drain (it keeps running)", async () => {
    const rogue = await nats.connect(Role.NODE, { nodeId: 'rogue' });
    const err = await request(rogue, s.nodeCtl('victim'), { type: 'drain' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(Errors.PERMISSION_DENIED.is(err)).toBe(true);
    // A fire-and-forget publish is refused too.
    const violation = nextViolation(rogue);
    rogue.publish(s.nodeCtl('victim'), new TextEncoder().encode('{"type":"drain"}'), { reply: '_INBOX_node-rogue.x' });
    // The server refused it (the violation says so): it never reached the victim, which keeps running.
    expect(await violation).toMatch(/Permissions Violation for Publish to "shoal\.node\.victim\.ctl"/);
    const rec = await request<NodeRecord>(scheduler, s.nodeCtl('victim'), { type: 'describe' });
    expect(rec.state).toBe('running');
  });

  it("a node cannot subscribe to another node's control subject or inbox, only to its own", async () => {
    const rogue = await nats.connect(Role.NODE, { nodeId: 'rogue2' });
    const violation = nextViolation(rogue);
    rogue.subscribe(s.nodeCtl('victim'));
    expect(await violation).toMatch(/Permissions Violation for Subscription to "shoal\.node\.victim\.ctl"/);
    const v2 = nextViolation(rogue);
    rogue.subscribe(s.nodeAll);
    expect(await v2).toMatch(/Permissions Violation for Subscription to "shoal\.node\.>"/);
    const v3 = nextViolation(rogue);
    rogue.subscribe('_INBOX_node-victim.>');
    expect(await v3).toMatch(/Permissions Violation for Subscription/);
    // Its own control subject works: the scheduler's request reaches it.
    rogue.subscribe(s.nodeCtl('rogue2'), { callback: (_e, m) => void m.respond(new TextEncoder().encode('"mine"')) });
    await rogue.flush();
    const m = await scheduler.request(s.nodeCtl('rogue2'), new Uint8Array(0), { timeout: 2000 });
    expect(new TextDecoder().decode(m.data)).toBe('"mine"');
  });

  it("a node started with another node's credentials refuses to start, saying why", async () => {
    await nats.addNodes(['lender']);
    const p = await procs.startNode('borrower', 'cpu-spot', FAST, { SHOAL_NATS_USER: 'node-lender', SHOAL_NATS_PASS: nats.nodeCredential('lender').pass });
    const err = await p.ready.catch((e: unknown) => e);
    expect(Errors.CHILD_EXITED.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/node borrower must connect as its own user node-borrower, not "node-lender"/);
  });

  it("a node writes its own record in the nodes bucket, not another node's", async () => {
    const rogue = await nats.connect(Role.NODE, { nodeId: 'rogue3' });
    const kv = await new Kvm(rogue).open(r.buckets.nodes);
    await kv.put('rogue3', new TextEncoder().encode('{}'));
    await expect(kv.put('victim', new TextEncoder().encode('{"state":"dead"}'))).rejects.toThrow(/Permissions Violation/);
    await expect(kv.delete('victim')).rejects.toThrow(/Permissions Violation/);
    await (await new Kvm(scheduler).open(r.buckets.nodes)).delete('rogue3');
  });

  it('only the scheduler may publish node commands: gateway and client are refused, the scheduler drains', async () => {
    for (const role of [Role.GATEWAY, Role.CLIENT]) {
      const nc = await nats.connect(role);
      const err = await request(nc, s.nodeCtl('victim'), { type: 'drain' }, { timeoutMs: 2000 }).catch((e: unknown) => e);
      expect(Errors.PERMISSION_DENIED.is(err), role).toBe(true);
    }
    expect((await request<NodeRecord>(scheduler, s.nodeCtl('victim'), { type: 'describe' })).state).toBe('running');
    const reply = await request<{ state: string }>(scheduler, s.nodeCtl('victim'), { type: 'drain' });
    expect(reply.state).toBe('draining');
    await until(async () => ((await request<{ nodes: { nodeId: string }[] }>(scheduler, s.scheduler('status'), { type: 'status' })).nodes.some((n) => n.nodeId === 'victim') ? undefined : true), 20_000, 'victim drained and gone');
  });
});
