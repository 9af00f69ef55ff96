/**
 * Deadline-aware market choice for a training job's workers (Uniform Progress, "Can't Be Late",
 * NSDI '24, `scheduler/spot/uniform-progress.ts`): run on spot while progress keeps up with the
 * uniform line to the deadline; switch to on-demand, for good, when it falls behind. The work
 * estimate comes from the job's measured step time, so the policy is built at the first
 * checkpoint, when there is one.
 */
import { Market, UniformProgress } from '../../scheduler/index.ts';

export type WorkerMarket = 'spot' | 'on-demand';

export interface MarketSwitch {
  step: number;
  market: WorkerMarket;
  reason: string;
}

export class DeadlineMarket {
  #market: WorkerMarket;
  readonly #switches: MarketSwitch[] = [];
  #policy: UniformProgress | undefined;

  constructor(private readonly o: { spotOk: boolean; deadline?: number | undefined; steps: number; submittedAt: number }) {
    this.#market = o.spotOk ? 'spot' : 'on-demand';
  }

  get market(): WorkerMarket {
    return this.#market;
  }

  get switches(): readonly MarketSwitch[] {
    return this.#switches;
  }

  /**
   * At a checkpoint after `step` steps taking `secPerStep` each: the reason to move the workers
   * to on-demand now, or undefined to stay where they are.
   */
  check(step: number, secPerStep: number, now = Date.now()): string | undefined {
    const { deadline, steps, submittedAt } = this.o;
    if (deadline === undefined || this.#market !== 'spot' || step >= steps) return undefined;
    this.#policy ??= new UniformProgress(
      { workHours: (steps * secPerStep) / 3600, startAt: submittedAt, deadlineAt: deadline, restartOverheadHours: 5 / 3600 },
      { safetyMarginHours: (steps * secPerStep * 0.1) / 3600 },
    );
    const d = this.#policy.decide({ now, progressHours: (step * secPerStep) / 3600, current: Market.SPOT, spotAvailable: true });
    if (d.market !== Market.ON_DEMAND) return undefined;
    this.#market = 'on-demand';
    this.#switches.push({ step, market: this.#market, reason: d.reason });
    return d.reason;
  }
}
