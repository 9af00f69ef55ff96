/**
 * Losing a NATS server under serving load: three clustered nats-servers (JetStream R3), a
 * scheduler, a node agent hosting the MLP's replica and the gateway as real processes, every
 * process given all three URLs. autocannon keeps 32 connections busy for 15 s; a third of the
 * way in, the nats-server the gateway is connected to is SIGKILLed. Meanwhile jobs are submitted
 * and feature events pushed, one every 250 ms.
 *
 * Asserted on counts: at most 0.1 % of the inference requests failed; every job accepted is in the
 * job store, every feature event accepted is in the feature log, and the deployment is still in
 * the registry. Printed, not asserted (the clock is not a test's business): requests per second
 * around the kill and how long until throughput was back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import autocannon from 'autocannon';
import { jetstreamManager } from '@nats-io/jetstream';
import { Role, resources, spawnChild, subjects, type Child, type NatsConnection } from '../../cluster/index.ts';
import { FeatureClient, JobClient, RegistryClient } from '../../ml/index.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';
import { startTestNatsCluster, type TestNatsCluster } from '../harness/nats-cluster.ts';
import { until } from '../harness/wait.ts';

const NODE = 'load-node';
const CONNECTIONS = 32;
const DURATION_S = 15;
const BODY = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1)[0] }] });
const s = subjects();

describe('SIGKILL of one of three nats-servers under serving load', () => {
  let nats: TestNatsCluster;
  let client: NatsConnection;
  let gatewayUrl = '';
  /** host:port of the server the gateway connected to (its "connected to NATS" line). */
  let gatewayServer = '';
  const children: Child[] = [];

  beforeAll(async () => {
    nats = await startTestNatsCluster({ size: 3, nodeIds: [NODE] });
    const start = (name: string, entry: string, role: Role, args: string[]) => {
      const c = spawnChild({
        name,
        entry,
        args,
        env: { ...nats.env(role, role === Role.NODE ? NODE : undefined), SHOAL_LOG_LEVEL: 'info', SHOAL_GATEWAY_REQUEST_LOG: 'off' },
        onLine: (line) => {
          const m = /"server":"([^"]+)","msg":"connected to NATS"/.exec(line);
          if (m && name === 'gateway') gatewayServer = m[1]!;
          if (/"level":(50|60)/.test(line)) process.stderr.write(`[${name}] ${line}\n`);
        },
      });
      children.push(c);
      return c;
    };
    await start('scheduler', 'scheduler/main.ts', Role.SCHEDULER, []).ready;
    await start('node', 'nodes/main.ts', Role.NODE, ['--profile', 'cpu-ondemand', '--node-id', NODE]).ready;
    const gw = await start('gateway', 'gateway/main.ts', Role.GATEWAY, ['--gateway.port', '0', '--gateway.grpcPort', '0', '--gateway.open', 'true']).ready;
    gatewayUrl = String(gw.url);
    client = await nats.connect(Role.CLIENT);
    const registry = new RegistryClient(client, s);
    await registry.register('mlp', mlpModel({ seed: 1 }), { aliases: ['production'] });
    await until(() => registry.deploy('mlp', { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000 }), 60_000, 'mlp deployed (the node in the scheduler view)', 500);
    await until(() => fetch(`${gatewayUrl}/v2/models/mlp/ready`).then((r) => (r.status === 200 ? true : undefined)), 60_000, 'the gateway to serve mlp');
    const features = await FeatureClient.open(client, s);
    await features.apply({ name: 'clicks', entity: ['user_id'], source: { type: 'push' }, ttlSeconds: 3600, features: [{ name: 'n', type: 'numeric' }] });
  }, 240_000);

  afterAll(async () => {
    await Promise.all(children.map((c) => c.stop(10_000)));
    await nats?.stop();
  });

  it('≤ 0.1 % failed requests; every accepted job and feature event and the deployment still there', async () => {
    const victimUrl = nats.urls.find((u) => u.endsWith(gatewayServer));
    expect(victimUrl, `the gateway's server ${gatewayServer} among ${nats.url}`).toBeDefined();
    const victim = nats.urls.indexOf(victimUrl!);

    // Background writers: a job and a feature event every 250 ms, for as long as the load runs.
    const jobs = await JobClient.open(client);
    const features = await FeatureClient.open(client, s);
    const accepted = { jobs: [] as string[], events: [] as string[] };
    const refused = { jobs: [] as string[], events: [] as string[] };
    // A push whose answer was lost (a timeout across the failover) may or may not be in the log:
    // the client's part is to send it again with the same event id, which is applied once.
    const unanswered: { eventId: string; entity: Record<string, string>; values: Record<string, number>; eventTime: number }[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        const id = `load-job-${i}`;
        // A spec the training-job actor refuses at once: the job ends FAILED quickly and costs no CPU under the load.
        await jobs.submit({}, { id, unchecked: true }).then(
          () => accepted.jobs.push(id),
          (err: Error) => refused.jobs.push(`${id}: ${err.message}`),
        );
        const eventId = `ev-${i}`;
        const event = { eventId, entity: { user_id: `u${i % 7}` }, values: { n: i }, eventTime: Date.now() };
        await features.push('clicks', event).then(
          () => accepted.events.push(eventId),
          (err: Error) => {
            refused.events.push(`${eventId}: ${err.message}`);
            unanswered.push(event);
          },
        );
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    // The load, with every response counted per second since the start.
    const perSecond: { ok: number; failed: number }[] = [];
    const t0 = Date.now();
    let killedAt = -1;
    let done!: (r: autocannon.Result) => void;
    const finished = new Promise<autocannon.Result>((res) => (done = res));
    const inst = autocannon({ url: `${gatewayUrl}/v2/models/mlp/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, connections: CONNECTIONS, duration: DURATION_S, pipelining: 1 }, (err, r) => {
      if (err) throw err;
      done(r);
    });
    inst.on('response', (_c: unknown, status: number) => {
      const sec = Math.floor((Date.now() - t0) / 1000);
      while (perSecond.length <= sec) perSecond.push({ ok: 0, failed: 0 });
      if (status >= 200 && status < 300) perSecond[sec]!.ok++;
      else perSecond[sec]!.failed++;
    });
    const kill = setTimeout(() => {
      killedAt = (Date.now() - t0) / 1000;
      void nats.kill(victim);
    }, (DURATION_S * 1000) / 3);
    const result = await finished;
    clearTimeout(kill);
    writing = false;
    await writer;

    const ok = result['2xx'];
    const failed = result.non2xx + result.errors + result.timeouts;
    const total = ok + failed;
    // Recovery: the first second after the kill that serves ≥ 90 % of the mean before it.
    const before = perSecond.slice(1, Math.max(2, Math.floor(killedAt)));
    const baseline = before.reduce((a, b) => a + b.ok, 0) / Math.max(1, before.length);
    const back = perSecond.findIndex((b, sec) => sec > killedAt && b.ok >= 0.9 * baseline);
    process.stdout.write(
      [
        `nats-cluster failover: ${total} requests, ${failed} failed (${((100 * failed) / Math.max(1, total)).toFixed(3)} %: non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}), ${result.requests.average.toFixed(0)} req/s average`,
        `  killed ${nats.cluster.names[victim]} (the gateway's server) at ${killedAt.toFixed(1)} s; baseline ${baseline.toFixed(0)} req/s; back to ≥ 90 % in second ${back} (${back < 0 ? 'never' : `${(back - killedAt).toFixed(1)} s after the kill`})`,
        `  req/s by second: ${perSecond.map((b) => (b.failed ? `${b.ok}(-${b.failed})` : `${b.ok}`)).join(' ')}`,
        `  jobs accepted ${accepted.jobs.length}, refused ${refused.jobs.length}; feature events accepted ${accepted.events.length}, refused ${refused.events.length}`,
        ...refused.jobs.slice(0, 3).map((r) => `    job refused: ${r}`),
        ...refused.events.slice(0, 3).map((r) => `    event refused: ${r}`),
        '',
      ].join('\n'),
    );

    expect(killedAt).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(500); // the load really ran
    expect(failed / total).toBeLessThanOrEqual(0.001);

    // Nothing lost: read through the two survivors.
    expect(accepted.jobs.length).toBeGreaterThan(10);
    for (const id of accepted.jobs) expect((await until(() => jobs.get(id), 30_000, `job ${id}`)).id).toBe(id);
    const sched = await nats.connect(Role.SCHEDULER);
    const jsm = await jetstreamManager(sched);
    for (const ev of unanswered) {
      await until(() => features.push('clicks', ev).catch(() => undefined), 30_000, `event ${ev.eventId} sent again`);
      accepted.events.push(ev.eventId);
    }
    const logged = await until(() => jsm.streams.info(resources().streams.featureEvents, { subjects_filter: s.featureLog('clicks') }), 30_000, 'feature log info');
    // Each event once: the ones sent again after a lost answer were not logged twice.
    expect(logged.state.messages).toBe(accepted.events.length);
    expect(accepted.events.length).toBeGreaterThan(10);
    const registry = new RegistryClient(client, s);
    expect((await until(() => registry.deployment('mlp'), 30_000, 'the deployment'))?.stable.state).toBe('ready');
    expect((await fetch(`${gatewayUrl}/v2/models/mlp/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY })).status).toBe(200);
  }, 180_000);
});
