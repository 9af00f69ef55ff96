/**
 * The autoscaler with the local provider and real node-agent processes against a real
 * nats-server and a real scheduler process: pending demand launches a node that appears in
 * membership and takes the actor; an idle node is terminated after the timeout and leaves
 * membership; a preemption sends the notice, drains the node (which exits cleanly) and re-places
 * its actor before it dies; a node that does not drain is SIGKILLed when the notice runs out.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, request, subjects, type NatsConnection, type SchedulerStatus } from '../../cluster/index.ts';
import {
  Autoscaler,
  InterruptionHandler,
  LocalProvider,
  PendingCode,
  Placer,
  PoolRisk,
  ScalingController,
  type Catalogue,
  type ProviderEvent,
} from '../../scheduler/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { ProcessSet } from '../harness/processes.ts';
import { GiB, req } from './fixtures.ts';
import { until } from '../harness/wait.ts';

const FAST = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500'];
const s = subjects();

const CAT: Catalogue = {
  types: [{ name: 'local1', resources: { cpu: 1, memoryBytes: 1 * GiB }, onDemandPricePerHour: 0.04, spotPricePerHour: 0.012, interruptionRatePerHour: 0.1, startupLatencyMs: 3000 }],
  pools: [
    { name: 'loc-spot', type: 'local1', zone: 'local-a', spot: true, max: 2 },
    { name: 'loc-od', type: 'local1', zone: 'local-b', spot: false, max: 1 },
  ],
};


describe('local provider: real node agents', () => {
  let nats: TestNats;
  let procs: ProcessSet;
  let client: NatsConnection;
  let provider: LocalProvider;
  let placer: Placer;
  let autoscaler: Autoscaler;
  let controller: ScalingController;
  const events: ProviderEvent[] = [];
  const steps: string[] = [];
  const status = () => request<SchedulerStatus>(client, s.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 });
  // Capacity as the catalogue says (the machine's real core count would make one node hold all).
  const sync = async () => placer.syncViews((await status()).nodes, (v) => ({ nodeId: v.nodeId, pool: v.labels.pool, zone: v.labels.zone, spot: v.labels.spot, pricePerHour: v.labels.pricePerHour, labels: v.labels, capacity: { cpu: 1, memoryBytes: GiB, gpu: 0, gpuMemoryBytes: 0 } }));
  const member = (id: string) => async () => ((await status()).nodes.some((n) => n.nodeId === id && n.alive) ? true : undefined);
  const gone = (id: string) => async () => ((await status()).nodes.some((n) => n.nodeId === id) ? undefined : true);

  beforeAll(async () => {
    nats = await startTestNats();
    procs = new ProcessSet(nats);
    await procs.startScheduler(FAST).ready;
    client = await nats.connect(Role.CLIENT);
    const ctl = await nats.connect(Role.SCHEDULER);
    // Launched nodes take slot ids (<pool>-auto-<k>, k ≤ the pool's max), each with its own user.
    await nats.addNodes(['loc-spot-auto-1', 'loc-spot-auto-2', 'loc-od-auto-1']);
    provider = new LocalProvider({ catalogue: CAT, nc: ctl, env: nats.env(Role.CLIENT), credential: (id) => nats.nodeCredential(id), args: FAST, noticeMs: 5000, stopTimeoutMs: 3000 });
    provider.onEvent((e) => events.push(e));
    const risk = new PoolRisk();
    placer = new Placer({ catalogue: CAT, risk: risk.multiplier });
    autoscaler = new Autoscaler({ catalogue: CAT, risk, idleTimeoutMs: 1500 });
    const interruption = new InterruptionHandler(placer, risk, {
      drain: (nodeId) => void steps.push(`drain ${nodeId}`),
      checkpoint: (actors) => void steps.push(`checkpoint ${actors.map((a) => a.id).join(',')}`),
      replace: (moves) => void steps.push(`replace ${moves.map((m) => `${m.request.id}->${m.to.nodeId}`).join(',')}`),
    });
    controller = new ScalingController({ autoscaler, provider, placer, interruption });
    controller.start();
  }, 60_000);

  afterAll(async () => {
    await provider?.close();
    await procs?.stopAll();
    await nats?.stop();
  });

  it('scales up on pending demand: a real node agent joins membership and takes the actor', async () => {
    const r = req('train-1', { cpu: 1 });
    const first = placer.place(r);
    expect(first.ok ? undefined : first.reason.code).toBe(PendingCode.WAITING_FOR_CAPACITY);
    const res = await controller.reconcile([r]);
    expect(res.launched).toHaveLength(1);
    const nodeId = res.launched[0]!.nodeId;
    expect(res.launched[0]!.pool).toBe('loc-spot');
    expect(nodeId).toBe('loc-spot-auto-1');
    await until(member(nodeId), 30_000, `${nodeId} in membership`);
    const view = (await status()).nodes.find((n) => n.nodeId === nodeId)!;
    expect(view.labels).toMatchObject({ pool: 'loc-spot', spot: true, zone: 'local-a', type: 'local1' });
    await sync();
    const placed = placer.place(r);
    expect(placed.ok && placed.placement.nodeId).toBe(nodeId);
    // Demand met: nothing more to launch while the actor runs.
    expect((await controller.reconcile([])).launched).toHaveLength(0);
  });

  it('scales down a node once it has been idle for the timeout', async () => {
    const [node] = await provider.list();
    placer.release('train-1');
    expect((await controller.reconcile([])).terminated).toEqual([]);
    const res = await until(async () => {
      const r = await controller.reconcile([]);
      return r.terminated.length ? r : undefined;
    }, 15_000, 'idle node terminated');
    expect(res.terminated).toEqual([node!.nodeId]);
    await until(gone(node!.nodeId), 10_000, 'node left membership');
    expect(events.filter((e) => e.type === 'node-terminated').map((e) => e.type === 'node-terminated' && e.reason)).toEqual(['requested']);
  });

  it('a preemption drains the node, re-places its actor elsewhere, and the node exits before the deadline', async () => {
    const spot = await controller.launch('loc-spot');
    const od = await controller.launch('loc-od');
    // A slot never used before is taken first.
    expect([spot.nodeId, od.nodeId]).toEqual(['loc-spot-auto-2', 'loc-od-auto-1']);
    await until(member(spot.nodeId), 30_000, 'spot node');
    await until(member(od.nodeId), 30_000, 'on-demand node');
    await sync();
    const placed = placer.place(req('train-2', { cpu: 1, constraints: { nodeId: spot.nodeId } }));
    expect(placed.ok).toBe(true);
    events.length = 0;
    const exit = await provider.preempt(spot.nodeId, 8000);
    await controller.settled();
    // The node left on its own after the drain request (exit 0), not by SIGKILL.
    expect(exit).toEqual({ code: 0, signal: null });
    expect(steps).toEqual([`drain ${spot.nodeId}`, 'checkpoint train-2', `replace train-2->${od.nodeId}`]);
    expect(placer.placementOf('train-2')!.nodeId).toBe(od.nodeId);
    expect(events.map((e) => e.type)).toEqual(['preemption-notice', 'node-terminated']);
    expect(autoscaler.risk.isRisky('loc-spot')).toBe(true);
    await until(gone(spot.nodeId), 10_000, 'preempted node left membership');
  });

  it('a node that does not drain is SIGKILLed when the notice runs out', async () => {
    const spot = await controller.launch('loc-spot');
    // Both slots have been used: the one free the longest comes back.
    expect(spot.nodeId).toBe('loc-spot-auto-1');
    await until(member(spot.nodeId), 30_000, 'spot node');
    const child = (await provider.list()).find((n) => n.nodeId === spot.nodeId)!;
    expect(child.phase).toBe('running');
    // Freeze it: it cannot answer the drain request.
    const pid = provider.pidOf(spot.nodeId);
    process.kill(pid, 'SIGSTOP');
    const exit = await provider.preempt(spot.nodeId, 1500);
    expect(exit.signal).toBe('SIGKILL');
  });

});
