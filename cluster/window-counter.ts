/**
 * Counters per fixed time window, shared by every process over one NATS KV bucket: what makes a
 * rate limit or a daily budget hold across N gateways instead of N times over.
 *
 * Two kinds of window. Aligned (`aligned: true`, a UTC day for a budget): window `w` is
 * `floor(now / windowMs)` and a key's count lives under `w<w>.<base64url(key)>`, so a new window
 * starts at zero without anyone resetting anything and a past window's key is never read again.
 * Started by the first hit (`aligned: false`, a rate limit, as `@fastify/rate-limit`'s own store
 * does): one KV key per counted key, `f.<base64url(key)>`, whose value is `<start ms>:<count>`; a
 * hit after `start + windowMs` begins a new window at 1, so the old one is ignored.
 * nats-server 2.9 has no per-key TTL: the bucket's own `ttl` (the stream's max age, twice the
 * window, set when it is created) purges keys nobody has written since.
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
}

export interface WindowCounterOptions {
  windowMs: number;
  /** Injected clock (tests). @default Date.now */
  now?: () => number;
  /** Windows aligned to multiples of `windowMs` since the epoch; else each starts at its key's first hit. @default true */
  aligned?: boolean;
  /** CAS attempts before giving up. @default 64 */
  maxAttempts?: number;
}

export class WindowCounter {
  readonly #kv: KV;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxAttempts: number;
  readonly #aligned: boolean;
  readonly #keys = new Map<string, KeyState>();

  constructor(kv: KV, o: WindowCounterOptions) {
    this.#kv = kv;
    this.#windowMs = o.windowMs;
    this.#now = o.now ?? Date.now;
    this.#maxAttempts = o.maxAttempts ?? 64;
    this.#aligned = o.aligned ?? true;
  }

  /** The KV key of `key`'s count in aligned window `w`. */
  static kvKey(w: number, key: string): string {
    return `w${w}.${Buffer.from(key, 'utf8').toString('base64url')}`;
  }

  /** The KV key of `key`'s count when windows start at the first hit. */
  static firstHitKey(key: string): string {
    return `f.${Buffer.from(key, 'utf8').toString('base64url')}`;
  }

  #window(now: number): number {
    return this.#aligned ? Math.floor(now / this.#windowMs) : 0;
  }

  /** Adds `amount` (a positive integer) to `key`'s count in the current window. */
  add(key: string, amount = 1): Promise<WindowCount> {
    const w = this.#window(this.#now());
    let s = this.#keys.get(key);
    if (!s || s.window !== w) {
      // A new aligned window: fresh state (a batch of the old one still in flight keeps its own).
      s = { window: w, queue: [], busy: false };
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
    const now = this.#now();
    const e = await this.#kv.get(this.#aligned ? WindowCounter.kvKey(this.#window(now), key) : WindowCounter.firstHitKey(key));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return 0;
    const v = this.#parse(untext.decode(e.value));
    return this.#aligned || now < v.start + this.#windowMs ? v.count : 0;
  }

  #parse(text: string): { start: number; count: number } {
    const at = text.indexOf(':');
    return at < 0 ? { start: 0, count: Number(text) } : { start: Number(text.slice(0, at)), count: Number(text.slice(at + 1)) };
  }

  async #flush(key: string, s: KeyState): Promise<void> {
    s.busy = true;
    while (s.queue.length > 0) {
      const batch = s.queue.splice(0);
      const total = batch.reduce((a, p) => a + p.amount, 0);
      try {
        const { before: base, end } = await this.#cas(this.#aligned ? WindowCounter.kvKey(s.window, key) : WindowCounter.firstHitKey(key), total);
        const ttlMs = Math.max(0, end - this.#now());
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

  /** One CAS increment by `amount`; returns the count before it and when its window ends. */
  async #cas(kvKey: string, amount: number): Promise<{ before: number; end: number }> {
    for (let attempt = 0; attempt < this.#maxAttempts; attempt++) {
      const e = await this.#kv.get(kvKey);
      const now = this.#now();
      const live = e !== null && e.operation === 'PUT' && e.value.length > 0;
      let { start, count } = live ? this.#parse(untext.decode(e.value)) : { start: now, count: 0 };
      if (this.#aligned) start = this.#window(now) * this.#windowMs;
      else if (now >= start + this.#windowMs) {
        // The stored window is over: this hit starts the next one.
        start = now;
        count = 0;
      }
      const next = text.encode(this.#aligned ? String(count + amount) : `${start}:${count + amount}`);
      try {
        if (e !== null) await this.#kv.update(kvKey, next, e.revision);
        else await this.#kv.create(kvKey, next);
        return { before: count, end: start + this.#windowMs };
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
