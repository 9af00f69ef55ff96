/**
 * A training job's pace: the median of its recent step times, and the bounds it gives to a
 * step. A gradient ask waits 10× a typical step (at least 2 s) before it is sent again — the
 * worker may have died with its node, and its re-placed twin answers the retry; a whole step gets
 * 50× (at least 15 s), never more than the spec's `stepTimeoutMs`. Until a few steps have been
 * timed (warm-up, data loading), only `stepTimeoutMs` applies.
 */
import { Errors } from '../../cluster/index.ts';

export class StepPace {
  readonly #ring = new Float64Array(32);
  #n = 0;
  constructor(private readonly maxMs: number) {}

  add(ms: number): void {
    this.#ring[this.#n++ % this.#ring.length] = ms;
  }

  median(): number | undefined {
    const n = Math.min(this.#n, this.#ring.length);
    if (n === 0) return undefined;
    const s = this.#ring.slice(0, n).sort();
    return s[Math.floor(n / 2)]!;
  }

  bounds(): { askMs: number; stepMs: number } {
    const m = this.#n >= 3 ? this.median()! : undefined;
    if (m === undefined) return { askMs: this.maxMs, stepMs: this.maxMs };
    return { askMs: Math.min(this.maxMs, Math.max(2000, 10 * m)), stepMs: Math.min(this.maxMs, Math.max(15_000, 50 * m)) };
  }
}

/** `p`, or a TIMEOUT error after `ms` (what `p` does later is ignored). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Errors.TIMEOUT(what, ms)), ms);
  });
  p.catch(() => undefined); // a failure after the timeout is not unhandled
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
