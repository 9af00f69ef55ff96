/**
 * Shoal's JetStream state on a real three-server NATS cluster: resources created with three
 * replicas (and an existing R1 set scaled up), jobs, KV records and feature events written, the
 * server leading the job queue SIGKILLed, everything still readable and writable through the two
 * survivors, and the killed server restarted on its own store catching up. Plus `nats.servers`
 * probing (an unreachable server named; none reachable: one error) and the odd-size rule.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Type } from '@sinclair/typebox';
import {
  Errors,
  publishIdempotent,
  JobState,
  JobStore,
  Role,
  checkClusterSize,
  ensureResources,
  freePort,
  loadConfig,
  reachableServers,
  replicasFor,
  request,
  resources,
  serve,
  subjects,
  type NatsConnection,
} from '../../cluster/index.ts';
import { startTestNatsCluster, type TestNatsCluster } from '../harness/nats-cluster.ts';
import { until } from '../harness/wait.ts';

const r = resources();
const s = subjects();
const STREAMS = [r.streams.jobs, r.streams.events, r.streams.featureEvents, ...Object.values(r.buckets).map((b) => `KV_${b}`), ...Object.values(r.stores).map((o) => `OBJ_${o}`)];

describe('Shoal on a three-server NATS cluster', () => {
  let nats: TestNatsCluster;
  let sched: NatsConnection;
  let jsm: JetStreamManager;
  const jobIds = Array.from({ length: 20 }, (_, i) => `job-${i}`);

  beforeAll(async () => {
    nats = await startTestNatsCluster({ size: 3 });
    sched = await nats.connect(Role.SCHEDULER);
  }, 60_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it('creates every stream, bucket and store with one replica first, then scales them all to three', async () => {
    // The first call meets a cluster that may still be electing its meta leader: ensureResources waits for it.
    await ensureResources(sched, { replicas: 1 });
    jsm = await jetstreamManager(sched);
    expect((await jsm.streams.info(r.streams.jobs)).config.num_replicas).toBe(1);
    await ensureResources(sched, { replicas: 3 });
    for (const name of STREAMS) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
    }
    // Three peers really hold each of them: a leader and two current replicas, all different servers.
    for (const name of STREAMS) {
      const info = await until(async () => {
        const i = await jsm.streams.info(name);
        return i.cluster?.leader && i.cluster.replicas?.length === 2 && i.cluster.replicas.every((p) => p.current) ? i : undefined;
      }, 60_000, `${name} to have a leader and two current replicas`);
      expect(new Set([info.cluster!.leader, ...info.cluster!.replicas!.map((p) => p.name)]), name).toEqual(new Set(nats.cluster.names));
    }
  }, 90_000);

  it('survives SIGKILL of the server leading the job queue: jobs, KV records and feature events stay readable and writable; the server catches up after a restart', async () => {
    const js = jetstream(sched);
    // Jobs: idempotent submissions (Nats-Msg-Id), their records in KV, feature events with event ids.
    // (As Shoal publishes them: with a Nats-Msg-Id, retried while the cluster settles.)
    for (const id of jobIds) await publishIdempotent(js, s.jobsSubmit, new TextEncoder().encode(JSON.stringify({ id })), { msgID: id });
    const store = await JobStore.open(sched);
    for (const id of jobIds) await store.create({ id, state: JobState.QUEUED, actorType: 'training-job', spec: { n: id }, submittedAt: 1, updatedAt: 1 });
    for (let i = 0; i < 50; i++) await publishIdempotent(js, s.featureLog('clicks'), new TextEncoder().encode(JSON.stringify({ entity: `u${i}`, value: i })), { msgID: `clicks:e${i}` });

    const leader = (await jsm.streams.info(r.streams.jobs)).cluster!.leader!;
    const victim = nats.cluster.names.indexOf(leader);
    expect(victim).toBeGreaterThanOrEqual(0);
    await nats.kill(victim);

    // Reads through the survivors, once the stream has elected a new leader (retried, not slept on).
    const jobsInfo = await until(async () => {
      const i = await jsm.streams.info(r.streams.jobs);
      return i.cluster?.leader && i.cluster.leader !== leader ? i : undefined;
    }, 60_000, 'a new leader for the job stream');
    expect(jobsInfo.state.messages).toBe(jobIds.length);
    expect((await until(() => jsm.streams.info(r.streams.featureEvents), 30_000, 'feature events info')).state.messages).toBe(50);
    for (const id of jobIds) expect((await until(() => store.get(id), 30_000, `job ${id}`))?.spec).toEqual({ n: id });

    // Writes through the survivors: a resubmitted job is still de-duplicated, a new one lands, KV updates apply.
    const ack = await until(() => js.publish(s.jobsSubmit, new TextEncoder().encode('{}'), { msgID: jobIds[0]! }), 30_000, 'a publish after the kill');
    expect(ack.duplicate).toBe(true);
    const fresh = await until(() => js.publish(s.jobsSubmit, new TextEncoder().encode('{"id":"after"}'), { msgID: 'after-kill' }), 30_000, 'a new job after the kill');
    expect(fresh.duplicate).toBe(false);
    await until(() => store.update(jobIds[1]!, { state: JobState.RUNNING }).then(() => true), 30_000, 'a KV update after the kill');
    expect((await store.get(jobIds[1]!))?.state).toBe(JobState.RUNNING);
    const kv = await new Kvm(sched).open(r.buckets.features);
    await until(() => kv.put('after-kill', 'x'), 30_000, 'a KV put on the features bucket');
    expect((await jsm.streams.info(r.streams.jobs)).state.messages).toBe(jobIds.length + 1);

    // Back on the same store and ports: it rejoins as the same peer and catches up on what it missed.
    await nats.restart(victim);
    for (const name of [r.streams.jobs, r.streams.featureEvents, `KV_${r.buckets.jobs}`, `KV_${r.buckets.features}`]) {
      await until(async () => {
        const i = await jsm.streams.info(name);
        const peer = i.cluster?.leader === leader ? { current: true, lag: 0 } : i.cluster?.replicas?.find((p) => p.name === leader);
        return peer?.current && !peer.lag ? true : undefined;
      }, 60_000, `${leader} to catch up on ${name}`);
    }
    // Now it holds everything: a connection to it alone sees the jobs and the last writes.
    const direct = await nats.connect(Role.SCHEDULER, { servers: nats.urls[victim]! });
    const viaRestarted = await jetstreamManager(direct);
    expect((await viaRestarted.streams.info(r.streams.jobs)).state.messages).toBe(jobIds.length + 1);
    expect((await (await JobStore.open(direct)).get(jobIds[1]!))?.state).toBe(JobState.RUNNING);
  }, 240_000);

  it('an idempotent request is sent again when its connection reconnects to another server; "no responders" is waited out; other requests are not', async () => {
    const subject = `${s.prefix}.sched.test-idempotent`;
    // The requester sits on one server; the responder on another, which stays up.
    const requester = await nats.connect(Role.SCHEDULER);
    const victim = nats.cluster.names.indexOf(requester.info!.server_name);
    const other = (victim + 1) % nats.urls.length;
    const responder = await nats.connect(Role.SCHEDULER, { servers: nats.urls[other]! });
    let copies = 0;
    let firstSeen!: () => void;
    const first = new Promise<void>((res) => (firstSeen = res));
    serve(responder, subject, Type.Object({ q: Type.String() }), (m) => {
      copies++;
      if (copies === 1) {
        firstSeen();
        return new Promise(() => undefined); // the first copy is never answered: as if lost with the server
      }
      return { a: m.q };
    });
    await responder.flush();
    // Reachable from every server, not only the requester's: the route mesh is whole again after
    // the previous test's restart, so the copy sent after the reconnect can reach the responder.
    for (const url of nats.urls) {
      const probe = await nats.connect(Role.SCHEDULER, { servers: url });
      await until(() => request(probe, subject, { q: 'warm' }, { timeoutMs: 500 }).then(() => true).catch((e: { code?: string }) => (e.code === Errors.TIMEOUT.code ? true : undefined)), 20_000, `the responder to be reachable from ${url}`);
    }
    copies = 0;
    const answer = request<{ a: string }>(requester, subject, { q: 'x' }, { timeoutMs: 60_000, idempotent: true });
    await first;
    await nats.kill(victim);
    expect(await answer).toEqual({ a: 'x' });
    expect(copies).toBeGreaterThanOrEqual(2); // the lost first copy, then one (or, if that one was lost too, more) after the reconnect
    await nats.restart(victim);

    // No responders yet: an idempotent request waits for one (within its timeout); a plain one fails at once.
    const late = `${s.prefix}.sched.test-late`;
    await expect(request(requester, late, {}, { timeoutMs: 2000 })).rejects.toMatchObject({ code: Errors.NO_RESPONDERS.code });
    const waiting = request<{ a: string }>(requester, late, { q: 'y' }, { timeoutMs: 60_000, idempotent: true });
    await new Promise((r) => setTimeout(r, 300)); // a head start for the request, not an assertion
    serve(responder, late, Type.Object({ q: Type.String() }), (m) => ({ a: m.q }));
    expect(await waiting).toEqual({ a: 'y' });
  }, 120_000);

  it('nats.servers: a server that does not answer is named and the others are used; none answering is one clear error', async () => {
    const dead = `nats://127.0.0.1:${await freePort('127.0.0.1')}`;
    const { reachable, unreachable } = await reachableServers([...nats.urls, dead].join(','));
    expect(reachable).toEqual(nats.urls);
    expect(unreachable.map((u) => u.url)).toEqual([dead]);
    expect(unreachable[0]!.why).toMatch(/ECONNREFUSED/);
    await expect(reachableServers(dead)).rejects.toMatchObject({ code: Errors.CONNECT_FAILED.code, message: expect.stringContaining(dead) });
  });

  it('replicas default to min(3, servers); an even cluster size is refused, naming nats.cluster and the reason', () => {
    expect(replicasFor(nats.url)).toBe(3);
    expect(replicasFor('nats://a:1')).toBe(1);
    expect(replicasFor('nats://a:1,nats://b:1,nats://c:1,nats://d:1,nats://e:1')).toBe(3);
    expect(replicasFor(nats.url, 1)).toBe(1);
    expect(() => checkClusterSize(3)).not.toThrow();
    for (const n of ['2', '4']) {
      let err: unknown;
      try {
        loadConfig({ argv: ['--nats.cluster', n], env: {} });
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: Errors.BAD_CONFIG.code, message: expect.stringMatching(/nats\.cluster.*RAFT.*majority.*flag --nats\.cluster/) });
    }
  });
});
