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
import { jetstreamManager } from '@nats-io/jetstream';
import { Role, resources, spawnChild, subjects, type Child, type NatsConnection } from '../../cluster/index.ts';
import { FeatureClient, JobClient, RegistryClient } from '../../ml/index.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';
import { startTestNatsCluster, type TestNatsCluster } from '../harness/nats-cluster.ts';
import { bySecond, loadWithKill } from '../harness/load-kill.ts';
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

    // The load, a job and a feature event every 250 ms meanwhile, and the kill a third of the way in.
    const jobs = await JobClient.open(client);
    const features = await FeatureClient.open(client, s);
    const run = await loadWithKill({ url: `${gatewayUrl}/v2/models/mlp/infer`, body: BODY, connections: CONNECTIONS, durationS: DURATION_S, jobs, features, view: 'clicks', idPrefix: 'load', kill: () => void nats.kill(victim) });
    const { ok, failed, total, result, killedAt, baseline, back, accepted, refused, unanswered } = run;
    process.stdout.write(
      [
        `nats-cluster failover: ${total} requests, ${failed} failed (${((100 * failed) / Math.max(1, total)).toFixed(3)} %: non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}), ${result.requests.average.toFixed(0)} req/s average`,
        `  killed ${nats.cluster.names[victim]} (the gateway's server) at ${killedAt.toFixed(1)} s; baseline ${baseline.toFixed(0)} req/s; back to ≥ 90 % in second ${back} (${back < 0 ? 'never' : `${(back - killedAt).toFixed(1)} s after the kill`})`,
        `  req/s by second: ${bySecond(run)}`,
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
