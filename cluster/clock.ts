/**
 * Time as a dependency. Code that waits or measures takes a `Clock`, so a test drives time by
 * hand instead of sleeping and hoping the sleep was long enough: `systemClock` in production,
 * `VirtualClock` in tests and simulations (time moves only when `advance()` is called, and
 * callbacks due on the way run in time order — a simulated week takes as long as its events take
 * to process).
 */

export interface Clock {
  /** Milliseconds; only differences are meaningful. */
  now(): number;
  /** Runs `fn` once, `ms` from now; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
}

/** Wall-clock time and real timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

/** Monotonic time (`performance.now()`) and real timers: for measuring short intervals. */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  after: systemClock.after,
};

/** Runs `fn` every `ms` on `clock` until the returned function is called. */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let cancel: () => void = () => undefined;
  let stopped = false;
  const arm = () => {
    cancel = clock.after(ms, () => {
      if (stopped) return;
      arm();
      fn();
    });
  };
  arm();
  return () => {
    stopped = true;
    cancel();
  };
}

export class VirtualClock implements Clock {
  #now: number;
  #seq = 0;
  // Binary min-heap on (at, seq).
  readonly #heap: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now = (): number => this.#now;

  /** Runs `fn` at time `at` (or at once on the next advance if `at` is past). Returns a cancel function. */
  at(at: number, fn: () => void): () => void {
    const item = { at: Math.max(at, this.#now), seq: this.#seq++, fn, cancelled: false };
    const h = this.#heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    return () => {
      item.cancelled = true;
    };
  }

  after(ms: number, fn: () => void): () => void {
    return this.at(this.#now + ms, fn);
  }

  /** Moves time forward to `t`, running every callback due on the way. */
  advanceTo(t: number): void {
    for (;;) {
      const top = this.#heap[0];
      if (!top || top.at > t) break;
      this.#pop();
      this.#now = top.at;
      if (!top.cancelled) top.fn();
    }
    this.#now = Math.max(this.#now, t);
  }

  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  get pending(): number {
    return this.#heap.filter((x) => !x.cancelled).length;
  }

  #less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
