/**
 * The rollout controller runs on the scheduler leader. SIGKILL the leader mid-canary: the
 * standby takes the lease, its controller starts, rebuilds its window from the gateways' next
 * reports, and rolls the failing canary back — once.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, discover, subjects, type ProcessInfo } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { flakyModel, mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--scheduler.leaseTtlMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();

describe('rollout controller failover (real processes)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, schedulers: ['sched-one', 'sched-two'], nodes: [{ id: 'serve-a', profile: 'cpu-ondemand' }] });
    await c.control.register('m', mlpModel({ seed: 3 }), { aliases: ['production'] });
    await c.control.register('m', flakyModel(), { description: 'warms up, then fails on real traffic' });
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'error', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  const infer = () =>
    fetch(`${base}/v2/models/m/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] }) }).then((r) => r.status);

  it('SIGKILL the leader mid-canary: the standby\'s controller carries on and rolls it back once', async () => {
    const { control, schedulers } = c;
    await control.deploy('m', { replicas: 1 });
    await control.canary('m', { version: 2, weight: 1 });
    await until(() => fetch(`${base}/v2/models/m/versions/2/ready`).then((r) => (r.status === 200 ? true : undefined)), 20_000, 'the gateway routes to the canary');
    // Fewer canary requests than the policy's 20: no verdict yet.
    const before = await Promise.all(Array.from({ length: 10 }, infer));
    expect(before.every((x) => x === 200)).toBe(true); // failed canary requests are answered by stable
    expect((await control.deployment('m'))?.canary?.version).toBe(2);

    schedulers['sched-one']!.kill('SIGKILL');
    await until(async () => {
      const l = (await discover(c.client, s, 300)).filter((p: ProcessInfo) => p.role === 'scheduler' && p.details.leader === true);
      return l.length === 1 && l[0]!.id === 'sched-two' ? true : undefined;
    }, 20_000, 'sched-two leading');

    const dep = await until(async () => {
      await Promise.all(Array.from({ length: 10 }, infer));
      const d = await control.deployment('m');
      return d && !d.canary ? d : undefined;
    }, 30_000, 'the standby\'s controller rolling the canary back');
    expect(dep.history.at(-1)).toMatchObject({ event: 'rolled-back', version: 2, detail: expect.stringMatching(/automatic: canary error rate/) });
    expect(dep.history.filter((h) => h.event === 'rolled-back')).toHaveLength(1);
    // The deciding controller was the standby's (it logs once its rollback is written: wait for the line).
    await until(() => (schedulers['sched-two']!.lines.some((l) => l.includes('canary breached its policy: rolled back')) ? true : undefined), 5_000, 'sched-two logging the rollback');
    expect(schedulers['sched-one']!.lines.some((l) => l.includes('canary breached its policy: rolled back'))).toBe(false);
  });
});
