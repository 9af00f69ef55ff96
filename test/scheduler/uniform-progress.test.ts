/**
 * Uniform Progress (Can't Be Late, NSDI '24): decisions at chosen points of the line, then a
 * simulated market: over many seeds the policy meets every deadline, costs less than
 * on-demand only, and a spot-only greedy policy misses some.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { DecisionReason, Market, SchedulerErrors, UniformProgress } from '../../scheduler/index.ts';

const H = 3_600_000;

describe('UniformProgress decisions', () => {
  // 10 h of work in 20 h; restart 0.1 h, margin 0.25 h: the line reaches 10 h at 19.65 h.
  const job = { workHours: 10, startAt: 0, deadlineAt: 20 * H, restartOverheadHours: 0.1 };

  it('uses spot when available, on-demand when behind, waits when ahead', () => {
    const up = new UniformProgress(job, { hysteresis: 0.05 });
    expect(up.decide({ now: 2 * H, progressHours: 0, current: Market.IDLE, spotAvailable: true })).toMatchObject({ market: Market.SPOT, reason: DecisionReason.SPOT_AVAILABLE });
    expect(up.decide({ now: 4 * H, progressHours: 1, current: Market.IDLE, spotAvailable: false })).toMatchObject({ market: Market.ON_DEMAND, reason: DecisionReason.BEHIND });
    expect(up.decide({ now: 4 * H, progressHours: 3, current: Market.SPOT, spotAvailable: false })).toMatchObject({ market: Market.IDLE, reason: DecisionReason.AHEAD_WAIT });
  });

  it('stays on on-demand until ahead of the line by the hysteresis margin', () => {
    const up = new UniformProgress(job, { hysteresis: 0.05 });
    const line = up.expectedHours(6 * H);
    expect(up.decide({ now: 6 * H, progressHours: line + 0.2, current: Market.ON_DEMAND, spotAvailable: true })).toMatchObject({ market: Market.ON_DEMAND, reason: DecisionReason.HYSTERESIS });
    expect(up.decide({ now: 6 * H, progressHours: line + 0.6, current: Market.ON_DEMAND, spotAvailable: true })).toMatchObject({ market: Market.SPOT });
  });

  it('the safety net switches to on-demand near the deadline and never lets go', () => {
    const up = new UniformProgress(job);
    // 2 h of work left, 2.3 h left: slack 0.2 h ≤ margin 0.25 h.
    expect(up.decide({ now: 17.7 * H, progressHours: 8, current: Market.SPOT, spotAvailable: true })).toMatchObject({ market: Market.ON_DEMAND, reason: DecisionReason.SAFETY_NET });
    expect(up.decide({ now: 17.8 * H, progressHours: 8.1, current: Market.ON_DEMAND, spotAvailable: true })).toMatchObject({ market: Market.ON_DEMAND, reason: DecisionReason.SAFETY_NET });
    expect(up.decide({ now: 19 * H, progressHours: 10, current: Market.ON_DEMAND, spotAvailable: true })).toMatchObject({ market: Market.IDLE, reason: DecisionReason.DONE });
  });

  it('validates its job', () => {
    expect(() => new UniformProgress({ workHours: 0, startAt: 0, deadlineAt: H })).toThrow(/job.workHours/);
    const err = (() => {
      try {
        new UniformProgress({ workHours: 1, startAt: H, deadlineAt: H });
      } catch (e) {
        return e;
      }
    })();
    expect(SchedulerErrors.BAD_OPTION.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/deadlineAt/);
  });
});

/** One job on a two-state spot market, minute steps; returns cost and whether it finished in time. */
function run(seed: number, policy: 'up' | 'greedy-spot' | 'on-demand'): { cost: number; met: boolean } {
  const rnd = seededRandom(seed);
  const dt = 1 / 60;
  const d = 0.1;
  const work = 8 + rnd() * 16;
  const deadline = work * (1.3 + rnd() * 0.7);
  const up = new UniformProgress({ workHours: work, startAt: 0, deadlineAt: deadline * H, restartOverheadHours: d });
  // Spot: mean up 5 h, mean outage 1.5 h; price 0.3 vs 1 on-demand.
  let avail = true;
  let current: Market = Market.IDLE;
  let warm = 0;
  let progress = 0;
  let cost = 0;
  for (let t = 0; t < deadline && progress < work; t += dt) {
    avail = avail ? rnd() >= dt / 5 : rnd() < dt / 1.5;
    if (current === Market.SPOT && !avail) current = Market.IDLE;
    const want: Market = policy === 'on-demand' ? Market.ON_DEMAND : policy === 'greedy-spot' ? (avail ? Market.SPOT : Market.IDLE) : up.decide({ now: t * H, progressHours: progress, current, spotAvailable: avail }).market;
    if (want !== current) {
      current = want;
      warm = want === Market.IDLE ? 0 : d;
    }
    if (current === Market.IDLE) continue;
    cost += (current === Market.SPOT ? 0.3 : 1) * dt;
    if (warm > 0) warm -= dt;
    else progress += dt;
  }
  return { cost, met: progress >= work - 1e-9 };
}

describe('UniformProgress on a simulated spot market', () => {
  it('meets every deadline over 200 seeds, at a fraction of on-demand cost; greedy spot misses some', () => {
    let upCost = 0;
    let odCost = 0;
    let upMissed = 0;
    let greedyMissed = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const u = run(seed, 'up');
      const o = run(seed, 'on-demand');
      const g = run(seed, 'greedy-spot');
      upCost += u.cost;
      odCost += o.cost;
      if (!u.met) upMissed++;
      if (!g.met) greedyMissed++;
      expect(o.met).toBe(true);
    }
    expect(upMissed).toBe(0);
    expect(greedyMissed).toBeGreaterThan(0);
    expect(upCost).toBeLessThan(0.6 * odCost);
  });
});
