/**
 * Budgets per tenant and per model: spend in the current period (periods start at multiples of
 * `periodHours` since the epoch, UTC) is added up from the ledger's charges, and crossing
 * `warnAt` of the budget raises a `warning`, crossing the budget a `critical` alert — each once
 * per budget and period (the id says which, and is the `Nats-Msg-Id`, so a leader that restarts
 * does not publish it twice).
 *
 * The alert has the monitoring alert's shape (ml/monitoring/monitor-core.ts `Alert`: id, at,
 * severity, rule, window, statistic, value, threshold, message) with the budget's owner in
 * `tenant` or `model`; it is defined here because the scheduler does not import ml/.
 */
import type { CostBudget } from '../../cluster/index.ts';
import type { CostRow } from './ledger.ts';

export const BudgetRule = { WARNING: 'cost-budget-warning', EXCEEDED: 'cost-budget-exceeded' } as const;
export type BudgetRule = (typeof BudgetRule)[keyof typeof BudgetRule];

export interface BudgetAlert {
  id: string;
  at: number;
  severity: 'warning' | 'critical';
  rule: BudgetRule;
  tenant?: string;
  model?: string;
  /** The period's name (`24h`, `720h`), start and end (epoch ms). */
  window: string;
  windowStart: number;
  windowEnd: number;
  statistic: 'dollars';
  value: number;
  threshold: number;
  message: string;
}

export interface BudgetState {
  /** Spend per budget (its index in the config) in the period that starts at `periodStart`. */
  spend: [number, number, number][];
  raised: string[];
}

/** Whether a charge to `row` counts against budget `b` (a model budget without `@v` covers every version). */
export function budgetCovers(b: CostBudget, row: Pick<CostRow, 'tenant' | 'model'>): boolean {
  if (b.tenant !== undefined && row.tenant !== b.tenant) return false;
  if (b.model !== undefined) {
    if (!row.model) return false;
    if (b.model.includes('@') ? row.model !== b.model : row.model.slice(0, row.model.lastIndexOf('@')) !== b.model) return false;
  }
  return b.tenant !== undefined || b.model !== undefined;
}

export class Budgets {
  /** Per budget: [period start, spend]. */
  readonly #spend: Map<number, { start: number; dollars: number }>;
  readonly #raised: Set<string>;
  readonly #outbox: BudgetAlert[] = [];

  constructor(readonly budgets: readonly CostBudget[], state?: BudgetState) {
    this.#spend = new Map((state?.spend ?? []).map(([i, start, dollars]) => [i, { start, dollars }]));
    this.#raised = new Set(state?.raised ?? []);
  }

  /** Adds one charge (at time `at`) to the budgets it counts against. */
  charge(row: CostRow, at: number): void {
    this.budgets.forEach((b, i) => {
      if (!budgetCovers(b, row)) return;
      const periodMs = (b.periodHours ?? 24) * 3_600_000;
      const start = Math.floor(at / periodMs) * periodMs;
      let s = this.#spend.get(i);
      if (!s || s.start !== start) this.#spend.set(i, (s = { start, dollars: 0 }));
      s.dollars += row.dollars;
      this.#check(b, s, periodMs, at);
    });
  }

  #check(b: CostBudget, s: { start: number; dollars: number }, periodMs: number, at: number): void {
    const warnAt = b.warnAt ?? 0.8;
    const who = b.tenant !== undefined ? `tenant ${b.tenant}` : `model ${b.model}`;
    const window = `${b.periodHours ?? 24}h`;
    const raise = (severity: 'warning' | 'critical', rule: BudgetRule, threshold: number, what: string) => {
      const id = `budget:${b.tenant ?? ''}:${b.model ?? ''}:${window}:${s.start}:${rule}`;
      if (this.#raised.has(id)) return;
      this.#raised.add(id);
      this.#outbox.push({
        id,
        at,
        severity,
        rule,
        ...(b.tenant !== undefined ? { tenant: b.tenant } : {}),
        ...(b.model !== undefined ? { model: b.model } : {}),
        window,
        windowStart: s.start,
        windowEnd: s.start + periodMs,
        statistic: 'dollars',
        value: s.dollars,
        threshold,
        message: `${who} spent $${s.dollars.toFixed(4)} in the current ${window} period: ${what} (budget $${b.dollars})`,
      });
    };
    if (s.dollars >= b.dollars) raise('critical', BudgetRule.EXCEEDED, b.dollars, 'over budget');
    else if (s.dollars >= b.dollars * warnAt) raise('warning', BudgetRule.WARNING, b.dollars * warnAt, `${Math.round(warnAt * 100)}% of the budget reached`);
  }

  /** Alerts raised since the last call. */
  take(): BudgetAlert[] {
    return this.#outbox.splice(0);
  }

  /** Spend so far per budget in its current period (for reports). */
  spend(): { budget: CostBudget; periodStart: number; dollars: number }[] {
    return [...this.#spend].map(([i, s]) => ({ budget: this.budgets[i]!, periodStart: s.start, dollars: s.dollars }));
  }

  state(): BudgetState {
    // Only ids of current periods are worth keeping.
    const starts = new Set([...this.#spend.values()].map((s) => s.start));
    return { spend: [...this.#spend].map(([i, s]) => [i, s.start, s.dollars]), raised: [...this.#raised].filter((id) => starts.has(Number(id.split(':')[4]))) };
  }
}
