/**
 * When a pending actor that could not be placed is tried next: 250 ms after the first failure,
 * doubling to 5 s, per actor; any node joining resets everyone (capacity may have appeared). So
 * an actor that can never start — a model failing its warm-up — is tried a handful of times a
 * minute, not in a loop, and holds up no other.
 */
import type { Clock } from '../cluster/index.ts';

export interface PendingBackoffOptions {
  /** @default 250 */
  firstMs?: number;
  /** @default 5000 */
  maxMs?: number;
}

export class PendingBackoff {
  readonly #next = new Map<string, { at: number; delayMs: number }>();
  readonly #first: number;
  readonly #max: number;

  constructor(
    private readonly clock: Clock,
    opts: PendingBackoffOptions = {},
  ) {
    this.#first = opts.firstMs ?? 250;
    this.#max = opts.maxMs ?? 5000;
  }

  /** Whether `id` may be tried now. */
  due(id: string): boolean {
    return (this.#next.get(id)?.at ?? 0) <= this.clock.now();
  }

  /** A try failed: the next one waits twice as long as the last wait (the first waits `firstMs`). */
  failed(id: string): number {
    const prev = this.#next.get(id)?.delayMs;
    const delayMs = prev === undefined ? this.#first : Math.min(this.#max, prev * 2);
    this.#next.set(id, { at: this.clock.now() + delayMs, delayMs });
    return delayMs;
  }

  /** Placed (or gone): forget it. */
  forget(id: string): void {
    this.#next.delete(id);
  }

  /** Capacity may have appeared: everyone may be tried at once. */
  reset(): void {
    this.#next.clear();
  }
}
