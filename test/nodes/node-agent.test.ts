/**
 * Real node-agent processes and a real scheduler process against a real nats-server: they
 * register, heartbeat, answer their control subject, and a SIGKILLed node is declared dead.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, Role, decode, request, subjects, type NatsConnection, type NodeRecord } from '../../cluster/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const FAST = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500'];
const s = subjects();


describe('node agents and membership (real processes)', () => {
  let c: TestCluster;
  let client: NatsConnection;
  /** Node control is the scheduler's (and operators') business: clients may not send it. */
  let ctl: NatsConnection;
  const status = () => c.status();

  beforeAll(async () => {
    c = await startCluster({ args: FAST, nodes: ['spot-a', { id: 'od-a', profile: 'cpu-ondemand' }, 'spot-b'] });
    client = c.client;
    ctl = await c.nats.connect(Role.SCHEDULER);
  }, 90_000);

  afterAll(async () => c?.stop());

  it('every node registers with its profile labels and probed capabilities', async () => {
    const st = await until(async () => {
      const r = await status();
      return r.nodes.length === 3 ? r : undefined;
    }, 20_000, 'three nodes');
    const byId = Object.fromEntries(st.nodes.map((n) => [n.nodeId, n]));
    expect(byId['spot-a']!.labels).toMatchObject({ pool: 'cpu-spot', spot: true });
    expect(byId['od-a']!.labels).toMatchObject({ pool: 'cpu-ondemand', spot: false });
    expect(st.nodes.every((n) => n.alive)).toBe(true);
    // The spot profile disables the GPU probe; the reason is reported rather than a silent null.
    expect(byId['spot-a']!.capabilities.gpu).toBeNull();
    expect(byId['spot-a']!.capabilities.gpuUnavailableReason).toMatch(/disabled by the node profile/);
  });

  it('answers describe on its control subject, and refuses a bad command with a typed error', async () => {
    const denied = await request(client, s.nodeCtl('od-a'), { type: 'describe' }).catch((e: unknown) => e);
    expect(Errors.PERMISSION_DENIED.is(denied)).toBe(true);
    const rec = await request<NodeRecord>(ctl, s.nodeCtl('od-a'), { type: 'describe' });
    expect(rec.nodeId).toBe('od-a');
    expect(rec.state).toBe('running');
    expect(rec.load.rssBytes).toBeGreaterThan(0);
    const err = await request(ctl, s.nodeCtl('od-a'), { type: 'reboot' }).catch((e: unknown) => e);
    expect(Errors.UNKNOWN_MESSAGE_TYPE.is(err)).toBe(true);
    const err2 = await request(ctl, s.nodeCtl('od-a'), { type: 'drain', deadlineMs: -1 }).catch((e: unknown) => e);
    expect(Errors.BAD_MESSAGE.is(err2)).toBe(true);
    // Still serving after the bad ones.
    expect((await request<NodeRecord>(ctl, s.nodeCtl('od-a'), { type: 'describe' })).nodeId).toBe('od-a');
  });

  it('a SIGKILLed node stops heartbeating and is declared dead within deadAfterMs', async () => {
    const victim = await c.procs.startNode('victim', 'cpu-spot', FAST);
    await victim.ready;
    await until(async () => ((await status()).nodes.find((n) => n.nodeId === 'victim')?.alive ? true : undefined), 10_000, 'victim alive');
    const deaths: { nodeId: string; why: string }[] = [];
    client.subscribe(s.event('node-dead'), { callback: (_e, m) => void deaths.push(decode(m.data) as { nodeId: string; why: string }) });
    await client.flush();
    victim.kill('SIGKILL');
    await until(async () => ((await status()).nodes.find((n) => n.nodeId === 'victim')?.alive === false ? true : undefined), 10_000, 'victim dead');
    // Declared dead by the heartbeat timeout (nothing else could tell: it never came back).
    await until(() => (deaths.some((d) => d.nodeId === 'victim') ? true : undefined), 5_000, 'the node-dead event');
    expect(deaths.filter((d) => d.nodeId === 'victim')).toEqual([expect.objectContaining({ why: 'silent' })]);
    const others = (await status()).nodes.filter((n) => n.nodeId !== 'victim');
    expect(others.every((n) => n.alive)).toBe(true);
  });

  it('a SIGTERMed node deregisters cleanly and exits 0; a drain command does the same', async () => {
    const leaver = await c.procs.startNode('leaver', 'cpu-spot', FAST);
    const drainer = await c.procs.startNode('drainer', 'cpu-spot', FAST);
    await Promise.all([leaver.ready, drainer.ready]);
    await until(async () => ((await status()).nodes.some((n) => n.nodeId === 'drainer') ? true : undefined), 10_000, 'drainer listed');
    leaver.kill('SIGTERM');
    expect((await leaver.exited).code).toBe(0);
    const reply = await request<{ state: string }>(ctl, s.nodeCtl('drainer'), { type: 'drain' });
    expect(reply.state).toBe('draining');
    expect((await drainer.exited).code).toBe(0);
    await until(async () => {
      const ids = (await status()).nodes.map((n) => n.nodeId);
      return !ids.includes('leaver') && !ids.includes('drainer') ? true : undefined;
    }, 10_000, 'both gone from membership');
  });
});
