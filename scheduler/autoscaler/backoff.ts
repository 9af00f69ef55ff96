/**
 * Exponential back-off per pool after a failed launch: the autoscaler tries another type or
 * zone at once and comes back to this one later. A success resets it.
 */
export interface BackoffOptions {
  /** First back-off. @default 30_000 */
  baseMs?: number;
  /** Longest back-off. @default 600_000 */
  maxMs?: number;
  now?: () => number;
}

export class PoolBackoff {
  readonly #state = new Map<string, { failures: number; until: number; lastError: string }>();
  readonly #base: number;
  readonly #max: number;
  readonly #now: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.#base = opts.baseMs ?? 30_000;
    this.#max = opts.maxMs ?? 600_000;
    this.#now = opts.now ?? Date.now;
  }

  fail(pool: string, error: string): number {
    const s = this.#state.get(pool) ?? { failures: 0, until: 0, lastError: '' };
    s.failures++;
    s.until = this.#now() + Math.min(this.#max, this.#base * 2 ** (s.failures - 1));
    s.lastError = error;
    this.#state.set(pool, s);
    return s.until;
  }

  succeed(pool: string): void {
    this.#state.delete(pool);
  }

  blocked(pool: string): boolean {
    const s = this.#state.get(pool);
    return s !== undefined && s.until > this.#now();
  }

  /** Pools backing off now, with until-when and why. */
  snapshot(): { pool: string; until: number; failures: number; lastError: string }[] {
    const now = this.#now();
    return [...this.#state.entries()].filter(([, s]) => s.until > now).map(([pool, s]) => ({ pool, ...s }));
  }
}
