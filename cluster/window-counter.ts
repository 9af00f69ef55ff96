/**
 * Counters per fixed time window, shared by every process over one NATS KV bucket: what makes a
 * rate limit or a daily budget hold across N gateways instead of N times over.
 *
 * A key's count for window `w` (`floor(now / windowMs)`) lives under `w<w>.<base64url(key)>`, so
 * a new window starts at zero without anyone resetting anything, and a past window's key is
 * simply never read again. nats-server 2.9 has no per-key TTL; the bucket's own `ttl` (the
 * stream's max age, set to twice the window when it is created) purges the old keys.
 *
 * Increments are compare-and-swap (get the revision, update at that revision, retry on a
 * conflict). Requests that arrive while this process's CAS for the same key is in flight are
 * added together and sent as one increment, so a busy tenant costs one KV round trip per batch,
 * not per request; each request still gets its own position in the count.
 */
import type { KV } from '@nats-io/kv';
import { Errors } from './errors.ts';
import { isCasConflict } from './nats-errors.ts';

const text = new TextEncoder();
const untext = new TextDecoder();

export interface WindowCount {
  /** This increment's position in the window's count (the count after it). */
  current: number;
  /** Milliseconds until the window ends. */
  ttlMs: number;
}

interface Pending {
  amount: number;
  resolve: (c: WindowCount) => void;
  reject: (e: unknown) => void;
}

interface KeyState {
  window: number;
  queue: Pending[];
  busy: boolean;
  /** The last count this process saw for the window (to short-circuit once far over a limit). */
  seen: number;
}

export interface WindowCounterOptions {
  windowMs: number;
  /** Injected clock (tests). @default Date.now */
  now?: () => number;
  /** CAS attempts before giving up. @default 64 */
  maxAttempts?: number;
}

export class WindowCounter {
  readonly #kv: KV;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxAttempts: number;
  readonly #keys = new Map<string, KeyState>();

  constructor(kv: KV, o: WindowCounterOptions) {
    this.#kv = kv;
    this.#windowMs = o.windowMs;
    this.#now = o.now ?? Date.now;
    this.#maxAttempts = o.maxAttempts ?? 64;
  }

  /** The KV key of `key`'s count in window `w`. */
  static kvKey(w: number, key: string): string {
    return `w${w}.${Buffer.from(key, 'utf8').toString('base64url')}`;
  }

  /** Adds `amount` (a positive integer) to `key`'s count in the current window. */
  add(key: string, amount = 1): Promise<WindowCount> {
    const now = this.#now();
    const w = Math.floor(now / this.#windowMs);
    let s = this.#keys.get(key);
    if (!s || s.window !== w) {
      if (s && s.busy) {
        // The old window's batch is still in flight: this one gets its own state.
        s = undefined;
      }
      s = { window: w, queue: [], busy: false, seen: 0 };
      this.#keys.set(key, s);
      if (this.#keys.size > 10_000) this.#evict(w);
    }
    const st = s;
    return new Promise<WindowCount>((resolve, reject) => {
      st.queue.push({ amount, resolve, reject });
      if (!st.busy) void this.#flush(key, st);
    });
  }

  /** The count of `key` in the current window, without adding (0 when none). */
  async read(key: string): Promise<number> {
    const w = Math.floor(this.#now() / this.#windowMs);
    const e = await this.#kv.get(WindowCounter.kvKey(w, key));
    return e && e.operation === 'PUT' && e.value.length > 0 ? Number(untext.decode(e.value)) : 0;
  }

  async #flush(key: string, s: KeyState): Promise<void> {
    s.busy = true;
    while (s.queue.length > 0) {
      const batch = s.queue.splice(0);
      const total = batch.reduce((a, p) => a + p.amount, 0);
      try {
        const base = await this.#cas(WindowCounter.kvKey(s.window, key), total);
        s.seen = base + total;
        const ttlMs = Math.max(0, (s.window + 1) * this.#windowMs - this.#now());
        let at = base;
        for (const p of batch) {
          at += p.amount;
          p.resolve({ current: at, ttlMs });
        }
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    s.busy = false;
  }

  /** One CAS increment by `amount`; returns the count before it. */
  async #cas(kvKey: string, amount: number): Promise<number> {
    for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
      const e = await this.#kv.get(kvKey);
      const live = e !== null && e.operation === 'PUT' && e.value.length > 0;
      const before = live ? Number(untext.decode(e.value)) : 0;
      const next = text.encode(String(before + amount));
      try {
        if (e !== null) await this.#kv.update(kvKey, next, e.revision);
        else await this.#kv.create(kvKey, next);
        return before;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw Errors.INTERNAL(`window counter ${kvKey}: still contended after ${this.#maxAttempts} attempts`);
  }

  #evict(w: number): void {
    for (const [k, s] of this.#keys) if (s.window < w && !s.busy) this.#keys.delete(k);
  }
}
