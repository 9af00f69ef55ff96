/**
 * Scale-to-zero end to end (issue #17 item 1), on a real cluster: nats-server, a scheduler and a
 * node agent as processes, the gateway in this process, onnxruntime in the replica. The idle
 * timeout is short by configuration; every wait is for an event (the record's `zero` mark, the
 * directory's replica count), never a fixed sleep.
 */
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory, Role, createLogger, openBucket, resources, subjects } from '../../cluster/index.ts';
import { buildGateway, type GatewayParts } from '../../gateway/app.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { SHOAL } from '../harness/shoal-cli.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["ml/serving/actors.ts"]'];
const s = subjects();
const SERVICE = 'model-m-v1';

describe('scale to zero (real processes)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let directory: Directory;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'serve-a', profile: 'cpu-ondemand' }] });
    await c.control.register('m', mlpModel({ seed: 5 }), { aliases: ['production'] });
    await c.control.register('big', mlpModel({ seed: 6 }), { aliases: ['production'] });
    await c.control.register('short', mlpModel({ seed: 7 }), { aliases: ['production'] });
    directory = new Directory(await openBucket(c.client, resources().buckets.actors));
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'error', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
  }, 120_000);

  afterAll(async () => {
    await gw?.close();
    await c?.stop();
  });

  const infer = async (model = 'm') => {
    const r = await fetch(`${base}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] }) });
    return { status: r.status, body: (await r.json()) as { code?: string; error?: string; outputs?: unknown[] } };
  };
  const shoal = (args: string[]) => spawnSync(process.execPath, [SHOAL, ...args], { env: c.nats.env(Role.CLIENT), encoding: 'utf8', timeout: 120_000 });
  const running = async () => (await directory.list()).filter((v) => v.entry.spec.service === SERVICE && v.entry.state === 'running').length;
  /** Waits for the controller to scale `m` to zero: the record's mark, then no replica in the directory. */
  const untilZero = async () => {
    await until(async () => ((await c.control.deployment('m'))?.stable.zero ? true : undefined), 30_000, 'the record marked scaled to zero');
    await until(async () => ((await running()) === 0 ? true : undefined), 30_000, 'no replica of m running');
  };

  it('refuses minReplicas 0 for a model no alive node can host, naming why', async () => {
    const err = (await c.control.deploy('big', { minReplicas: 0, constraints: { labels: { accelerator: 'h100' } } }).catch((e: unknown) => e)) as Error & { code?: string; status?: number };
    expect(err.code).toBe('SHOAL_ERR_SCALE_TO_ZERO_REFUSED');
    expect(err.status).toBe(422);
    expect(err.message).toMatch(/big cannot scale to zero: no alive node could start its replica again \(no alive node has labels \{"accelerator":"h100"\}\)/);
    expect(await c.control.deployment('big')).toBeUndefined();
  });

  it('idle: zero replicas; concurrent requests wait, are all answered, and the cold start is recorded', async () => {
    await c.control.deploy('m', { replicas: 1, minReplicas: 0, scaleToZero: { idleTimeoutMs: 1500, holdTimeoutMs: 30_000, maxHeld: 8 } });
    expect((await infer()).status).toBe(200);
    await untilZero();
    expect((await c.control.deployment('m'))?.stable.zero?.spec.service).toBe(SERVICE);
    const atZero = shoal(['models', 'status', 'm']);
    expect(atZero.status).toBe(0);
    expect(atZero.stdout).toMatch(/^m: scaled to zero — stable v1/);
    expect(atZero.stdout).toMatch(/scaled to zero since .*the next request starts a replica/);
    expect(atZero.stdout).toContain('no cold start yet');

    // N concurrent requests during the cold start: the node is paused until all N are held, so
    // none can arrive after the replica serves (that would not test the hold).
    const N = 6;
    const activator = (gw as unknown as { shoal: GatewayParts }).shoal.inference!.activator;
    c.nodes['serve-a']!.kill('SIGSTOP');
    let pending: Promise<Awaited<ReturnType<typeof infer>>[]>;
    try {
      pending = Promise.all(Array.from({ length: N }, () => infer()));
      await until(() => (activator.held('m') === N ? true : undefined), 20_000, `${N} requests held`);
    } finally {
      c.nodes['serve-a']!.kill('SIGCONT');
    }
    const answers = await pending;
    expect(answers.map((a) => a.status)).toEqual(Array(N).fill(200));
    for (const a of answers) expect(a.body.outputs?.length).toBeGreaterThan(0);
    const d = await c.control.deployment('m');
    expect(d?.stable.zero).toBeUndefined();
    expect(d?.stable.coldStart?.seconds).toBeGreaterThan(0);
    expect(d?.history.map((h) => h.event)).toEqual(expect.arrayContaining(['scaled-to-zero', 'woke']));
    expect(await running()).toBe(1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/shoal_model_cold_start_seconds_count\{model="m",version="1"\} 1\b/);
    expect(shoal(['models', 'status', 'm']).stdout).toMatch(new RegExp(`last cold start ${d!.stable.coldStart!.seconds.toFixed(3)} s at `));
    expect(metrics).toMatch(new RegExp(`shoal_model_cold_requests_total\\{model="m",outcome="released"\\} ${N}\\b`));
  }, 90_000);

  it('beyond the hold queue: 503 at once, before any held request is answered; the held ones are all answered', async () => {
    await untilZero();
    // The node is paused while the requests arrive, so the replica cannot start before all twelve
    // are in (a start from zero takes ~0.2 s here, less than sending them may).
    const node = c.nodes['serve-a']!;
    node.kill('SIGSTOP');
    const order: string[] = [];
    let calls: Promise<{ i: number; status: number; body: { code?: string; error?: string } }>[] = [];
    try {
      calls = Array.from({ length: 12 }, (_, i) =>
        infer().then((a) => {
          order.push(a.status === 200 ? 'ok' : a.body.code ?? String(a.status));
          return { i, ...a };
        }),
      );
      const activator = (gw as unknown as { shoal: GatewayParts }).shoal.inference!.activator;
      await until(() => (activator.held('m') === 8 && order.length === 4 ? true : undefined), 20_000, 'eight requests held, four refused');
    } finally {
      node.kill('SIGCONT');
    }
    const all = await Promise.all(calls);
    const refused = all.filter((a) => a.status === 503);
    expect(refused).toHaveLength(4);
    for (const r of refused) expect(r.body.code).toBe('SHOAL_ERR_COLD_QUEUE_FULL');
    expect(refused[0]!.body.error).toMatch(/scaled to zero and 8 requests already wait/);
    expect(all.filter((a) => a.status === 200)).toHaveLength(8);
    // The refusals did not wait for the replica: every one came back before the first answer.
    expect(order.slice(0, 4)).toEqual(Array(4).fill('SHOAL_ERR_COLD_QUEUE_FULL'));
  }, 90_000);

  it('past the hold deadline (no node left to start it): 503 with the reason', async () => {
    const deployed = shoal(['models', 'deploy', 'short', '--min-replicas', '0', '--idle-timeout-ms', '1000', '--hold-timeout-ms', '1000', '--max-held', '8']);
    expect(deployed.status, deployed.stderr).toBe(0);
    expect((await c.control.deployment('short'))?.stable.scaleToZero).toEqual({ idleTimeoutMs: 1000, holdTimeoutMs: 1000, maxHeld: 8, prewarm: true });
    await until(async () => ((await c.control.deployment('short'))?.stable.zero ? true : undefined), 30_000, 'short scaled to zero');
    await until(async () => ((await directory.list()).some((v) => v.entry.spec.service === 'model-short-v1' && v.entry.state === 'running') ? undefined : true), 30_000, 'no replica of short running');
    c.nodes['serve-a']!.kill('SIGKILL');
    await c.untilNodes([], 20_000);
    const a = await infer('short');
    expect(a.status).toBe(503);
    expect(a.body.code).toBe('SHOAL_ERR_COLD_START_TIMEOUT');
    expect(a.body.error).toMatch(/^short is scaled to zero and no replica served within the 1000 ms hold: /);
  }, 90_000);
});
