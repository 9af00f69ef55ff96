/**
 * Autoscaling policy on the sim provider with a virtual clock: scale up onto the cheapest
 * adequate types spread over spot pools, budget cap, back-off after provider errors, scale down
 * after the idle timeout, spot interruption handling (drain → checkpoint → re-place before the
 * deadline, pool marked risky), and determinism by seed.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import {
  Autoscaler,
  InterruptionHandler,
  Placer,
  PoolRisk,
  ReplicaScaler,
  ScalingController,
  SchedulerErrors,
  SimProvider,
  nodeSpecForPool,
  resolveCatalogue,
  syntheticTraces,
  trainingWorkers,
  type ProviderEvent,
  type SpotTrace,
} from '../../scheduler/index.ts';
import { CATALOGUE, req } from './fixtures.ts';

const cat = resolveCatalogue(CATALOGUE);
const HOUR = 3_600_000;

function setup(opts: { budget?: number; failing?: string[]; traces?: Map<string, SpotTrace>; idleTimeoutMs?: number } = {}) {
  const clock = new VirtualClock(0);
  const provider = new SimProvider({ catalogue: cat, clock, noticeMs: 120_000, ...(opts.failing ? { failingPools: opts.failing } : {}), ...(opts.traces ? { traces: opts.traces } : {}) });
  const risk = new PoolRisk({ now: clock.now, riskyForMs: HOUR });
  const placer = new Placer({ catalogue: cat, risk: risk.multiplier });
  const autoscaler = new Autoscaler({ catalogue: cat, now: clock.now, market: provider, risk, idleTimeoutMs: opts.idleTimeoutMs ?? 600_000, ...(opts.budget ? { budgetPerHour: opts.budget } : {}) });
  // Ready nodes join the placer, as membership would add them.
  provider.onEvent((e) => {
    if (e.type === 'node-ready') placer.addNode(nodeSpecForPool(cat.pools.get(e.node.pool)!, e.node.nodeId, e.node.pricePerHour));
    if (e.type === 'node-terminated') placer.removeNode(e.node.nodeId);
  });
  return { clock, provider, risk, placer, autoscaler };
}

describe('scale up', () => {
  it('buys the cheapest adequate type for pending training, spread over several spot pools', async () => {
    const { autoscaler, provider, placer, clock } = setup();
    const controller = new ScalingController({ autoscaler, provider, placer });
    const pending = Array.from({ length: 12 }, (_, i) => req(`t${i}`, { cpu: 4 }));
    const res = await controller.reconcile(pending);
    expect(res.failed).toEqual([]);
    const pools = res.launched.map((n) => n.pool);
    expect(pools).toHaveLength(12);
    expect(pools.every((p) => p.startsWith('c4-spot-'))).toBe(true);
    const perPool = new Map<string, number>();
    for (const p of pools) perPool.set(p, (perPool.get(p) ?? 0) + 1);
    expect([...perPool.values()]).toEqual([4, 4, 4]);
    // A second round while they boot buys nothing more: launching capacity absorbs the demand.
    expect((await controller.reconcile(pending)).launched).toHaveLength(0);
    clock.advance(120_000);
    for (const r of pending) expect(placer.place(r).ok).toBe(true);
  });

  it('serves inference and GPU demand on on-demand and GPU types, and packs small requests', () => {
    const { autoscaler } = setup();
    const plan = autoscaler.plan({
      pending: [req('i1', { kind: 'inference', cpu: 1 }), req('i2', { kind: 'inference', cpu: 1 }), req('g', { gpu: 2, cpu: 4 })],
      fleet: [],
    });
    const pools = plan.launch.map((l) => l.pool).sort();
    expect(pools).toEqual(['c4-od-a', 'g4-spot-b']);
  });

  it('never exceeds the budget cap, and says which requests it left unmet', async () => {
    const { autoscaler, provider, placer } = setup({ budget: 0.15 });
    const plan = autoscaler.plan({ pending: Array.from({ length: 5 }, (_, i) => req(`t${i}`, { cpu: 4 })), fleet: [] });
    expect(plan.launch).toHaveLength(2);
    expect(plan.plannedCostPerHour).toBeLessThanOrEqual(0.15);
    expect(plan.unmet).toHaveLength(3);
    expect(plan.unmet[0]!.reason).toMatch(/budget cap/);
    const controller = new ScalingController({ autoscaler, provider, placer });
    await controller.launch('c4-spot-a');
    await controller.launch('c4-spot-b');
    const err = await controller.launch('c4-spot-c').catch((e: unknown) => e);
    expect(SchedulerErrors.BUDGET_EXCEEDED.is(err)).toBe(true);
  });

  it('backs off a pool whose launches fail and buys from another in the same round', async () => {
    const { autoscaler, provider, placer, clock } = setup({ failing: ['c4-spot-a', 'c4-spot-b', 'c4-spot-c'] });
    const controller = new ScalingController({ autoscaler, provider, placer });
    const res = await controller.reconcile([req('t', { cpu: 4 })]);
    expect(res.failed.map((f) => f.pool).sort()).toEqual(['c4-spot-a', 'c4-spot-b', 'c4-spot-c']);
    expect(res.failed.every((f) => f.code === SchedulerErrors.PROVIDER_FAILED.code)).toBe(true);
    expect(res.launched.map((n) => n.pool)).toEqual(['c4-od-a']);
    expect(autoscaler.backoff.blocked('c4-spot-a')).toBe(true);
    clock.advance(31_000);
    expect(autoscaler.backoff.blocked('c4-spot-a')).toBe(false);
  });

  it('skips a spot pool without capacity (its trace is down) and uses the next', () => {
    const down = (pool: string): SpotTrace => ({ pool, startAt: 0, stepMs: HOUR, price: [0.01, 0.01], available: [0, 0] });
    const { autoscaler } = setup({ traces: new Map([['c4-spot-a', down('c4-spot-a')], ['c4-spot-b', down('c4-spot-b')]]) });
    const plan = autoscaler.plan({ pending: [req('t', { cpu: 4 })], fleet: [] });
    expect(plan.launch.map((l) => l.pool)).toEqual(['c4-spot-c']);
  });
});

describe('scale down', () => {
  it('terminates a node only after it has been idle for the timeout', async () => {
    const { autoscaler, provider, placer, clock } = setup({ idleTimeoutMs: 600_000 });
    const controller = new ScalingController({ autoscaler, provider, placer });
    await controller.reconcile([req('t', { cpu: 4 })]);
    clock.advance(120_000);
    expect(placer.place(req('t', { cpu: 4 })).ok).toBe(true);
    expect((await controller.reconcile([])).terminated).toEqual([]);
    placer.release('t');
    expect((await controller.reconcile([])).terminated).toEqual([]);
    clock.advance(599_000);
    expect((await controller.reconcile([])).terminated).toEqual([]);
    clock.advance(2_000);
    expect((await controller.reconcile([])).terminated).toHaveLength(1);
    expect(await provider.list()).toEqual([]);
  });

  it('keeps a pool at its min', () => {
    const c = resolveCatalogue({ types: CATALOGUE.types, pools: [{ name: 'base', type: 'c4', zone: 'a', spot: false, min: 2, max: 5 }] });
    const clock = new VirtualClock(0);
    const a = new Autoscaler({ catalogue: c, now: clock.now, idleTimeoutMs: 0 });
    expect(a.plan({ pending: [], fleet: [] }).launch.map((l) => l.pool)).toEqual(['base', 'base']);
    const fleet = ['x', 'y', 'z'].map((nodeId) => ({ nodeId, pool: 'base', phase: 'running' as const, actors: 0, pricePerHour: 0.2 }));
    expect(a.plan({ pending: [], fleet }).terminate).toHaveLength(1);
  });
});

describe('spot interruption', () => {
  it('drains, checkpoints and re-places before the node dies; the pool becomes risky', async () => {
    const { autoscaler, provider, placer, clock, risk } = setup();
    const steps: string[] = [];
    const handler = new InterruptionHandler(placer, risk, {
      drain: (nodeId, terminateAt) => void steps.push(`drain ${nodeId} ${terminateAt - clock.now()}`),
      checkpoint: (actors) => void steps.push(`checkpoint ${actors.map((a) => a.id).join(',')}`),
      replace: (moves, waiting) => void steps.push(`replace ${moves.length} waiting ${waiting.length}`),
    });
    const controller = new ScalingController({ autoscaler, provider, placer, interruption: handler });
    controller.start();
    await controller.launch('c4-spot-a');
    await controller.launch('c4-spot-b');
    clock.advance(120_000);
    const victim = placer.nodes().find((n) => n.pool === 'c4-spot-a')!.nodeId;
    expect(placer.place(req('t1', { cpu: 2, constraints: { nodeId: victim } })).ok).toBe(true);
    const events: ProviderEvent['type'][] = [];
    provider.onEvent((e) => events.push(e.type));
    provider.preempt(victim);
    await controller.settled();
    // Everything ran at the notice, two minutes before the kill.
    expect(steps).toEqual([`drain ${victim} 120000`, 'checkpoint t1', 'replace 1 waiting 0']);
    expect(placer.placementOf('t1')!.pool).toBe('c4-spot-b');
    expect(placer.node(victim)!.draining).toBe(true);
    expect(risk.isRisky('c4-spot-a')).toBe(true);
    // The next purchase avoids the risky pool.
    const plan = autoscaler.plan({ pending: [req('n', { cpu: 4 })], fleet: await controller.fleet() });
    expect(plan.launch[0]!.pool).not.toBe('c4-spot-a');
    clock.advance(120_000);
    expect(events).toEqual(['preemption-notice', 'node-terminated']);
    expect(placer.node(victim)).toBeUndefined();
    clock.advance(HOUR);
    expect(risk.isRisky('c4-spot-a')).toBe(false);
  });

  it('a whole pool is preempted when its trace loses capacity', () => {
    const trace: SpotTrace = { pool: 'c4-spot-a', startAt: 0, stepMs: HOUR, price: [0.06, 0.06, 0.06], available: [1, 0, 1] };
    const { provider, clock } = setup({ traces: new Map([['c4-spot-a', trace]]) });
    provider.launchSync({ pool: 'c4-spot-a' });
    provider.launchSync({ pool: 'c4-spot-a' });
    provider.launchSync({ pool: 'c4-od-a' });
    const notices: string[] = [];
    provider.onEvent((e) => e.type === 'preemption-notice' && notices.push(e.node.pool));
    clock.advanceTo(HOUR + 1);
    expect(notices).toEqual(['c4-spot-a', 'c4-spot-a']);
    clock.advanceTo(HOUR + 200_000);
    expect(provider.listSync().map((n) => n.pool)).toEqual(['c4-od-a']);
    expect(() => provider.launchSync({ pool: 'c4-spot-a' })).toThrow(/no spot capacity/);
    // Billing: two spot nodes for ~1h2m at $0.06, one on-demand node for the whole time at $0.2.
    expect(provider.cost()).toBeCloseTo(2 * 0.06 * (HOUR + 120_000) / HOUR + 0.2 * (HOUR + 200_000) / HOUR, 6);
  });
});

describe('sim determinism and load signals', () => {
  it('the same seed gives the same traces; another seed does not', () => {
    const a = syntheticTraces(cat, { seed: 7, durationMs: 24 * HOUR });
    const b = syntheticTraces(cat, { seed: 7, durationMs: 24 * HOUR });
    const c = syntheticTraces(cat, { seed: 8, durationMs: 24 * HOUR });
    expect([...a.get('c4-spot-a')!.price]).toEqual([...b.get('c4-spot-a')!.price]);
    expect([...a.get('c4-spot-a')!.price]).not.toEqual([...c.get('c4-spot-a')!.price]);
    // Spot never costs more than on-demand; on-demand pools are always up.
    expect(Math.max(...a.get('g4-spot-b')!.price)).toBeLessThanOrEqual(4);
    expect([...a.get('c4-od-a')!.available].every((x) => x === 1)).toBe(true);
  });

  it('inference replicas follow load with up/down-scale delays; training follows the queue', () => {
    const s = new ReplicaScaler({ targetOngoingPerReplica: 4, minReplicas: 1, maxReplicas: 8, upscaleDelayMs: 30_000, downscaleDelayMs: 300_000 });
    expect(s.desired({ replicas: 2, ongoingRequests: 20, queueDepth: 4 }, 0)).toBe(2);
    expect(s.desired({ replicas: 2, ongoingRequests: 20, queueDepth: 4 }, 30_000)).toBe(6);
    expect(s.desired({ replicas: 6, ongoingRequests: 100, queueDepth: 0 }, 60_000)).toBe(6);
    expect(s.desired({ replicas: 6, ongoingRequests: 100, queueDepth: 0 }, 90_000)).toBe(8);
    expect(s.desired({ replicas: 8, ongoingRequests: 0, queueDepth: 0 }, 100_000)).toBe(8);
    expect(s.desired({ replicas: 8, ongoingRequests: 0, queueDepth: 0 }, 400_000)).toBe(1);
    expect(trainingWorkers(5, 2, { workersPerJob: 4, maxConcurrentJobs: 3 })).toBe(12);
  });
});
