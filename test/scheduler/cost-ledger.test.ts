/**
 * The cost ledger and budgets with an injected clock (VirtualClock): a known price for a known
 * time is charged within 1 %, shared replicas split by request share, history answers `since`,
 * a snapshot survives a restore (leader failover), and budgets alert once per period.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock, every, promClient } from '../../cluster/index.ts';
import { createSchedulerMetrics } from '../../scheduler/scheduler-metrics.ts';
import { CostLedger, IDLE_TENANT, dominantShare } from '../../scheduler/cost/ledger.ts';
import { Budgets, BudgetRule, budgetCovers } from '../../scheduler/cost/budgets.ts';
import { groupRows, reportRows } from '../../scheduler/cost/cost-report.ts';
import { modelOfService, jobOf, ownerOf } from '../../scheduler/cost/owner.ts';

const HOUR = 3_600_000;
const spot = { pricePerHour: 0.012, cpus: 2, memoryBytes: 8 * 1024 ** 3, gpus: 0, spot: true, pool: 'cpu-spot' };
const sum = (xs: { dollars: number }[]) => xs.reduce((s, r) => s + r.dollars, 0);

describe('cost ledger', () => {
  it('charges a job on a spot node its share of the price for the time it ran, within 1 %', () => {
    const clock = new VirtualClock(1_000_000);
    const ledger = new CostLedger({ bucketMs: 60_000 });
    ledger.startAt(clock.now());
    ledger.setNode('n1', spot);
    // Ticks every 10 s, as the accountant does; the job holds 1 of 2 cores for 90 minutes.
    const stop = every(clock, 10_000, () => ledger.accrue(clock.now()));
    ledger.setActor('job-j1', { nodeId: 'n1', owner: { job: 'j1', tenant: 'acme' }, cpu: 1 });
    clock.advance(1.5 * HOUR);
    ledger.accrue(clock.now());
    ledger.removeActor('job-j1');
    clock.advance(0.5 * HOUR);
    ledger.accrue(clock.now());
    stop();
    const rows = ledger.rows();
    const job = rows.find((r) => r.job === 'j1')!;
    const expected = 0.012 * 1.5 * 0.5;
    expect(job.tenant).toBe('acme');
    expect(Math.abs(job.dollars - expected) / expected).toBeLessThan(0.01);
    // The rest of the node's bill is idle: everything adds up to price × 2 h.
    expect(sum(rows.filter((r) => r.tenant === IDLE_TENANT))).toBeCloseTo(0.012 * 2 - expected, 9);
    expect(sum(rows)).toBeCloseTo(0.012 * 2, 9);
  });

  it('splits a model version\'s replicas by the tenants\' request share, interval by interval', () => {
    const clock = new VirtualClock(0);
    const ledger = new CostLedger();
    ledger.startAt(0);
    ledger.setNode('n1', { ...spot, pricePerHour: 1 });
    ledger.setActor('model-fraud-v1-1', { nodeId: 'n1', owner: { model: 'fraud@v1' }, cpu: 2 });
    // First hour: acme 3 requests for each of globex's 1; second hour: only globex.
    ledger.recordPredictions('fraud@v1', 300, clock.now(), 'acme');
    ledger.recordPredictions('fraud@v1', 100, clock.now(), 'globex');
    clock.advance(HOUR);
    ledger.accrue(clock.now());
    ledger.recordPredictions('fraud@v1', 50, clock.now(), 'globex');
    clock.advance(HOUR);
    ledger.accrue(clock.now());
    const by = new Map(groupRows(ledger.rows(), ledger.predictions(), 'tenant').map((r) => [r.tenant, r.dollars]));
    expect(by.get('acme')).toBeCloseTo(0.75, 9);
    expect(by.get('globex')).toBeCloseTo(0.25 + 1, 9);
    const model = groupRows(ledger.rows(), ledger.predictions(), 'model')[0]!;
    expect(model).toMatchObject({ model: 'fraud@v1', predictions: 450 });
    expect(model.dollarsPer1kPredictions).toBeCloseTo((2 / 450) * 1000, 9);
  });

  it('shares a node by dominant resource share, scaled down when oversubscribed', () => {
    expect(dominantShare({ cpu: 0.5, memoryBytes: 6 * 1024 ** 3 }, spot)).toBeCloseTo(0.75, 9);
    const ledger = new CostLedger();
    ledger.setNode('n1', spot);
    ledger.setActor('a', { nodeId: 'n1', owner: {}, cpu: 2 });
    ledger.setActor('b', { nodeId: 'n1', owner: {}, cpu: 2 });
    expect([...ledger.shares().values()]).toEqual([0.5, 0.5]);
  });

  it('answers `since` from its history and resumes from a snapshot', () => {
    const clock = new VirtualClock(0);
    const ledger = new CostLedger({ bucketMs: 60_000, retentionMs: 24 * HOUR });
    ledger.startAt(0);
    ledger.setNode('n1', { ...spot, pricePerHour: 3.6 }); // $0.001 per second
    ledger.setActor('job-x', { nodeId: 'n1', owner: { job: 'x' }, cpu: 2 });
    clock.advance(3 * HOUR);
    ledger.accrue(clock.now());
    expect(sum(reportRows(ledger, 'job', clock.now() - HOUR).rows)).toBeCloseTo(3.6, 6);
    expect(reportRows(ledger, 'job').totalDollars).toBeCloseTo(3 * 3.6, 6);
    const copy = new CostLedger({ bucketMs: 60_000 });
    copy.restore(structuredClone(ledger.snapshot()));
    copy.setNode('n1', { ...spot, pricePerHour: 3.6 });
    copy.setActor('job-x', { nodeId: 'n1', owner: { job: 'x' }, cpu: 2 });
    copy.accrue(clock.now() + HOUR);
    expect(copy.rows().find((r) => r.job === 'x')!.dollars).toBeCloseTo(4 * 3.6, 6);
  });

  it('names owners from the directory: model services and job groups', () => {
    expect(modelOfService('model-fraud-detector-v12')).toBe('fraud-detector@v12');
    expect(modelOfService('my-service')).toBeUndefined();
    expect(jobOf({ actorId: 'job-abc-w-1', spec: { type: 't', group: 'job-abc' } })).toBe('abc');
    expect(jobOf({ actorId: 'job-abc', spec: { type: 't' } })).toBe('abc');
    expect(jobOf({ actorId: 'other', spec: { type: 't' } })).toBeUndefined();
    expect(ownerOf({ actorId: 'monitor-fraud-v2', spec: { type: 'model-monitor' } }, () => undefined)).toEqual({ model: 'fraud@v2' });
    expect(ownerOf({ actorId: 'job-abc-w-1', spec: { type: 't', group: 'job-abc' } }, (j) => (j === 'abc' ? 'acme' : undefined))).toEqual({ job: 'abc', tenant: 'acme' });
    expect(ownerOf({ actorId: 'router', spec: { type: 't' } }, () => 'x')).toEqual({});
  });
});

describe('budgets', () => {
  it('warns at warnAt and alerts when exceeded, once per period, and starts afresh next period', () => {
    const b = new Budgets([{ tenant: 'acme', dollars: 1, periodHours: 1, warnAt: 0.5 }]);
    b.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.4 }, 10);
    expect(b.take()).toEqual([]);
    b.charge({ tenant: 'globex', model: '', job: 'j', dollars: 5 }, 20);
    b.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.2 }, 30);
    const warn = b.take();
    expect(warn.map((a) => [a.rule, a.severity, a.tenant])).toEqual([[BudgetRule.WARNING, 'warning', 'acme']]);
    expect(warn[0]!.value).toBeCloseTo(0.6, 9);
    b.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.5 }, 40);
    b.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.5 }, 50);
    expect(b.take().map((a) => a.rule)).toEqual([BudgetRule.EXCEEDED]);
    // A restarted leader keeps what it raised: no second alert in the same period.
    const again = new Budgets(b.budgets, structuredClone(b.state()));
    again.charge({ tenant: 'acme', model: '', job: 'j', dollars: 1 }, 60);
    expect(again.take()).toEqual([]);
    again.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.9 }, HOUR + 1);
    again.charge({ tenant: 'acme', model: '', job: 'j', dollars: 0.2 }, HOUR + 2);
    expect(again.take().map((a) => [a.rule, a.windowStart])).toEqual([[BudgetRule.WARNING, HOUR], [BudgetRule.EXCEEDED, HOUR]]);
  });

  it('a model budget without a version covers all its versions', () => {
    expect(budgetCovers({ model: 'fraud', dollars: 1 }, { tenant: 't', model: 'fraud@v3' })).toBe(true);
    expect(budgetCovers({ model: 'fraud@v2', dollars: 1 }, { tenant: 't', model: 'fraud@v3' })).toBe(false);
    expect(budgetCovers({ model: 'fraud', dollars: 1 }, { tenant: 't', model: 'fraud-x@v1' })).toBe(false);
    expect(budgetCovers({ model: 'fraud', dollars: 1 }, { tenant: 't', model: '' })).toBe(false);
  });
});

describe('cost series on the scheduler /metrics', () => {
  it('exports shoal_cost_dollars_total by tenant, model and job, and dollars per 1k predictions', async () => {
    const registry = new promClient.Registry();
    const metrics = createSchedulerMetrics(registry);
    metrics.setSources({
      isLeader: () => true,
      pendingByReason: () => new Map(),
      nodesByState: () => new Map(),
      costRows: () => [{ tenant: 'acme', model: '', job: 'j1', dollars: 0.5 }, { tenant: 'acme', model: 'fraud@v1', job: '', dollars: 2 }],
      costPerPrediction: () => new Map([['fraud@v1', 4000]]),
    });
    const text = await registry.metrics();
    expect(text).toContain('shoal_cost_dollars_total{tenant="acme",model="",job="j1"} 0.5');
    expect(text).toContain('shoal_cost_dollars_total{tenant="acme",model="fraud@v1",job=""} 2');
    expect(text).toContain('shoal_cost_dollars_per_1k_predictions{model="fraud@v1"} 0.5');
  });
});
