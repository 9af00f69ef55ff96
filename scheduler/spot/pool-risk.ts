/**
 * Pools that just lost a node to a spot interruption are likely to lose more (capacity is being
 * reclaimed there). For a while after a notice the pool counts as risky: the placer multiplies
 * its interruption rate, and the autoscaler buys elsewhere when it can.
 */
export interface PoolRiskOptions {
  /** How long a pool stays risky after an interruption. @default 1_800_000 (30 min) */
  riskyForMs?: number;
  /** Interruption-rate multiplier while risky. @default 10 */
  factor?: number;
  /** Clock (injected in tests and the simulator). @default Date.now */
  now?: () => number;
}

export class PoolRisk {
  readonly #until = new Map<string, number>();
  readonly riskyForMs: number;
  readonly factor: number;
  readonly #now: () => number;

  constructor(opts: PoolRiskOptions = {}) {
    this.riskyForMs = opts.riskyForMs ?? 1_800_000;
    this.factor = opts.factor ?? 10;
    this.#now = opts.now ?? Date.now;
  }

  /** Marks `pool` risky from now for `riskyForMs` (extends an earlier mark). */
  mark(pool: string): void {
    this.#until.set(pool, Math.max(this.#until.get(pool) ?? 0, this.#now() + this.riskyForMs));
  }

  isRisky(pool: string): boolean {
    const u = this.#until.get(pool);
    if (u === undefined) return false;
    if (u <= this.#now()) {
      this.#until.delete(pool);
      return false;
    }
    return true;
  }

  /** The multiplier for the placer's `risk` option. */
  multiplier = (pool: string): number => (this.isRisky(pool) ? this.factor : 1);

  risky(): string[] {
    return [...this.#until.keys()].filter((p) => this.isRisky(p));
  }
}
