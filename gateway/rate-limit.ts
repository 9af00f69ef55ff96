/**
 * A per-process fixed-window counter (tenant with API keys, client IP without): the fallback of
 * the cluster-wide request quota (gateway/quota-store.ts) when the NATS KV bucket that holds the
 * shared windows cannot be opened — then each gateway counts alone and N gateways allow N× the
 * limit, which the gateway logs once. A Map lookup and two additions per request.
 */

export interface WindowState {
  /** Requests counted in the current window (this one included). */
  count: number;
  /** When the current window ends (ms since epoch). */
  resetAt: number;
}

export interface RateDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets (rounded up). */
  resetSeconds: number;
}

export class FixedWindowLimiter {
  readonly #windows = new Map<string, WindowState>();
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #now: () => number;

  constructor(opts: { windowMs: number; maxKeys?: number; now?: () => number }) {
    this.#windowMs = opts.windowMs;
    this.#maxKeys = opts.maxKeys ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Counts one request for `key` against `limit` per window. */
  hit(key: string, limit: number): RateDecision {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (w === undefined || w.resetAt <= now) {
      if (w === undefined && this.#windows.size >= this.#maxKeys) this.#evict(now);
      w = { count: 0, resetAt: now + this.#windowMs };
      this.#windows.set(key, w);
    }
    w.count++;
    return { allowed: w.count <= limit, limit, remaining: w.count >= limit ? 0 : limit - w.count, resetSeconds: Math.ceil((w.resetAt - now) / 1000) };
  }

  /** Drops expired windows; if none expired, the oldest key (bounded memory, as an LRU would). */
  #evict(now: number): void {
    for (const [k, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(k);
    if (this.#windows.size >= this.#maxKeys) {
      const first = this.#windows.keys().next();
      if (!first.done) this.#windows.delete(first.value);
    }
  }
}

/** "1 minute", "45 seconds": the wait in the 429 message. */
export function humanSeconds(s: number): string {
  if (s >= 60 && s % 60 === 0) return s === 60 ? '1 minute' : `${s / 60} minutes`;
  return s === 1 ? '1 second' : `${s} seconds`;
}
