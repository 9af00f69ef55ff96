/**
 * Deadline-aware spot/on-demand choice for one job: the Uniform Progress policy of
 * *Can't Be Late: Optimizing Spot Instance Savings under Deadlines* (Wu et al., NSDI '24).
 *
 * The job needs `workHours` of compute before `deadlineAt`. The uniform line says how much
 * should be done by now if progress were spread evenly up to the deadline. The policy:
 *
 * 1. **Safety net**: if the time left is barely enough to finish on on-demand (remaining work
 *    plus one restart plus a margin), go on-demand and stay there. Nothing else can then make the
 *    job late.
 * 2. Spot available → use spot (it is cheap and progresses at full speed, faster than the line).
 * 3. No spot: behind the line → on-demand; ahead of it → wait (idle, free) for spot to return.
 * 4. **Hysteresis**: once on on-demand, stay until progress is ahead of the line by a margin, so
 *    a flapping spot market does not cost a restart per flap.
 *
 * Every switch to a new instance costs `restartOverheadHours` of no progress (the paper's
 * changeover delay d), which the safety net accounts for.
 */
import { SchedulerErrors } from '../errors.ts';

export const Market = {
  SPOT: 'spot',
  ON_DEMAND: 'on-demand',
  /** Run nothing (wait for spot). */
  IDLE: 'idle',
} as const;
export type Market = (typeof Market)[keyof typeof Market];

export const DecisionReason = {
  DONE: 'done',
  SAFETY_NET: 'safety-net',
  SPOT_AVAILABLE: 'spot-available',
  BEHIND: 'behind-uniform-line',
  AHEAD_WAIT: 'ahead-wait-for-spot',
  HYSTERESIS: 'hysteresis',
} as const;
export type DecisionReason = (typeof DecisionReason)[keyof typeof DecisionReason];

export interface DeadlineJob {
  /** Compute needed, in hours on one instance. */
  workHours: number;
  /** When the job was submitted (ms, same clock as `now`). */
  startAt: number;
  deadlineAt: number;
  /** Progress lost per (re)start on a new instance: provisioning, loading the checkpoint. @default 0.1 */
  restartOverheadHours?: number;
}

export interface UniformProgressOptions {
  /** Stay on on-demand until ahead of the uniform line by this fraction of the total work. @default 0.05 */
  hysteresis?: number;
  /** Extra slack, in hours, kept by the safety net on top of one restart. @default 0.25 */
  safetyMarginHours?: number;
}

export interface ProgressState {
  now: number;
  /** Work done so far, in hours. */
  progressHours: number;
  /** What the job runs on right now. */
  current: Market;
  spotAvailable: boolean;
}

export interface Decision {
  market: Market;
  reason: DecisionReason;
  /** Where the uniform line is now, in hours of work. */
  expectedHours: number;
}

const HOUR = 3_600_000;

export class UniformProgress {
  readonly hysteresis: number;
  readonly safetyMarginHours: number;
  readonly #job: Required<DeadlineJob>;
  /** Once the safety net fires it stays on: leaving on-demand then could only risk the deadline. */
  #committed = false;

  constructor(job: DeadlineJob, opts: UniformProgressOptions = {}) {
    const d = job.restartOverheadHours ?? 0.1;
    if (!(job.workHours > 0)) throw SchedulerErrors.BAD_OPTION('job.workHours', `must be > 0, got ${job.workHours}`);
    if (!(job.deadlineAt > job.startAt)) throw SchedulerErrors.BAD_OPTION('job.deadlineAt', 'must be after startAt');
    if (!(d >= 0)) throw SchedulerErrors.BAD_OPTION('job.restartOverheadHours', `must be ≥ 0, got ${d}`);
    this.#job = { ...job, restartOverheadHours: d };
    this.hysteresis = opts.hysteresis ?? 0.05;
    this.safetyMarginHours = opts.safetyMarginHours ?? 0.25;
    if (!(this.hysteresis >= 0)) throw SchedulerErrors.BAD_OPTION('hysteresis', `must be ≥ 0, got ${this.hysteresis}`);
    if (!(this.safetyMarginHours >= 0)) throw SchedulerErrors.BAD_OPTION('safetyMarginHours', `must be ≥ 0, got ${this.safetyMarginHours}`);
  }

  /** Progress the uniform line asks for at `now` (it reaches the full work one restart + margin before the deadline). */
  expectedHours(now: number): number {
    const j = this.#job;
    const end = j.deadlineAt - (j.restartOverheadHours + this.safetyMarginHours) * HOUR;
    if (end <= j.startAt) return j.workHours;
    return j.workHours * Math.min(1, Math.max(0, (now - j.startAt) / (end - j.startAt)));
  }

  decide(s: ProgressState): Decision {
    const j = this.#job;
    const expected = this.expectedHours(s.now);
    const remaining = j.workHours - s.progressHours;
    if (remaining <= 1e-9) return { market: Market.IDLE, reason: DecisionReason.DONE, expectedHours: expected };
    const leftHours = (j.deadlineAt - s.now) / HOUR;
    // Slack if we had to (re)start on on-demand now; a restart is counted even when on on-demand
    // already, because a spot run can be preempted at any moment before the next decision.
    const slack = leftHours - remaining - j.restartOverheadHours;
    if (this.#committed || slack <= this.safetyMarginHours) {
      this.#committed = true;
      return { market: Market.ON_DEMAND, reason: DecisionReason.SAFETY_NET, expectedHours: expected };
    }
    if (s.current === Market.ON_DEMAND && s.progressHours < expected + this.hysteresis * j.workHours) {
      return { market: Market.ON_DEMAND, reason: DecisionReason.HYSTERESIS, expectedHours: expected };
    }
    if (s.spotAvailable) return { market: Market.SPOT, reason: DecisionReason.SPOT_AVAILABLE, expectedHours: expected };
    if (s.progressHours < expected) return { market: Market.ON_DEMAND, reason: DecisionReason.BEHIND, expectedHours: expected };
    return { market: Market.IDLE, reason: DecisionReason.AHEAD_WAIT, expectedHours: expected };
  }
}
