/**
 * The per-tenant request quota, cluster-wide: a store for `@fastify/rate-limit` (and the gRPC
 * service, which calls the same counter) that counts each tenant's requests per minute in NATS
 * KV (cluster/window-counter.ts), so two gateways allow a tenant its limit in total, not twice.
 *
 * When the bucket cannot be opened (a gateway embedded without a scheduler that made it, e.g. in
 * a unit test), requests are counted in this process instead, and a warning says so once.
 */
import { Kvm } from '@nats-io/kv';
import { WindowCounter, resources, type Logger, type NatsConnection, type WindowCount } from '../cluster/index.ts';
import { FixedWindowLimiter } from './rate-limit.ts';

export const RATE_WINDOW_MS = 60_000;
/** How long a request waits for the shared count before this gateway counts it alone. */
export const SHARED_WAIT_MS = 200;
/** After the shared count failed or was slow, requests are counted locally this long before it is asked again. */
export const SHARED_RETRY_MS = 2000;
/** Far under the limit, a key's increments are gathered this long and sent to the bucket as one. */
export const AHEAD_FLUSH_MS = 50;
/** Keys whose last shared count is remembered (beyond it the memory starts over: requests wait again). */
const MAX_KNOWN_KEYS = 10_000;

/** A key's count as the bucket last answered it, and the increments of this gateway since. */
interface Known {
  current: number;
  /** When its window ends (this.now() ms). */
  endsAt: number;
  /** Increments sent to the bucket and not answered yet. */
  inFlight: number;
  /** Increments admitted ahead and not sent yet (they go at the next flush). */
  pending: number;
  flush: NodeJS.Timeout | undefined;
  /** When the bucket last answered this key, or an increment was sent with none outstanding. */
  heardAt: number;
}

export interface RateHit {
  /** This request's position in its window's count. */
  current: number;
  ttlMs: number;
}

/** Counts one request for a key; shared by HTTP and gRPC. */
export class RateCounter {
  #shared: WindowCounter | undefined;
  #opening: Promise<void> | undefined;
  readonly #local = new FixedWindowLimiter({ windowMs: RATE_WINDOW_MS });
  #warned = false;
  /** Until when (this.now()) requests skip the shared count: it failed or was slow just now. */
  #localUntil = -Infinity;
  readonly #waitMs: number;
  readonly #retryMs: number;
  readonly #flushMs: number;
  readonly #known = new Map<string, Known>();
  /**
   * Requests counted in the shared bucket — `ahead` of them admitted on the last known count,
   * without waiting — and by this gateway alone while the bucket was away.
   */
  readonly counted = { shared: 0, ahead: 0, local: 0 };

  constructor(
    private readonly nc: NatsConnection | undefined,
    private readonly prefix: string,
    private readonly log: Logger | undefined,
    private readonly now: () => number = Date.now,
    o: { sharedWaitMs?: number; sharedRetryMs?: number; aheadFlushMs?: number } = {},
  ) {
    this.#waitMs = o.sharedWaitMs ?? SHARED_WAIT_MS;
    this.#retryMs = o.sharedRetryMs ?? SHARED_RETRY_MS;
    this.#flushMs = o.aheadFlushMs ?? AHEAD_FLUSH_MS;
  }

  /** Where counts are kept: `kv` (cluster-wide) or `local` (this process only). */
  get where(): 'kv' | 'local' {
    return this.#shared ? 'kv' : 'local';
  }

  /** Opens the KV bucket (once); on failure, counts locally from then on. */
  open(): Promise<void> {
    this.#opening ??= (async () => {
      if (!this.nc) return this.#warn('no NATS connection');
      try {
        const kv = await new Kvm(this.nc).open(resources(this.prefix).buckets.rateWindows);
        await kv.status();
        this.#shared = new WindowCounter(kv, { windowMs: RATE_WINDOW_MS, now: this.now, aligned: false });
      } catch (err) {
        this.#warn((err as Error).message);
      }
    })();
    return this.#opening;
  }

  #lastUnreachable = -Infinity;

  /** Keeps the bucket's latest answer for `key`; `sentAhead` increments of it were admitted ahead. */
  #remember(key: string, c: WindowCount, sentAhead: number): void {
    const now = this.now();
    const endsAt = now + c.ttlMs;
    let k = this.#known.get(key);
    if (!k) {
      if (this.#known.size >= MAX_KNOWN_KEYS) this.#known.clear();
      this.#known.set(key, (k = { current: c.current, endsAt, inFlight: 0, pending: 0, flush: undefined, heardAt: now }));
    } else if (c.current >= k.current || endsAt > k.endsAt + 1000) {
      // Answers can come back out of order: keep the highest count of a window (a new window's resets it).
      k.current = c.current;
      k.endsAt = endsAt;
    }
    k.inFlight = Math.max(0, k.inFlight - sentAhead);
    k.heardAt = now;
  }

  /** Sends the increments admitted ahead for `key` as one. */
  #flushAhead(key: string, k: Known): void {
    k.flush = undefined;
    const n = k.pending;
    if (n === 0 || !this.#shared) return;
    k.pending = 0;
    k.inFlight += n;
    this.#shared.add(key, n).then(
      (c) => this.#remember(key, c, n),
      (err: Error) => {
        k.inFlight -= n;
        this.#unreachable(err.message);
      },
    );
  }

  #unreachable(why: string): void {
    const now = this.now();
    this.#localUntil = now + this.#retryMs;
    if (now - this.#lastUnreachable < 60_000) return;
    this.#lastUnreachable = now;
    this.log?.warn({ why }, 'the rate-window bucket did not answer: counting this gateway\'s requests locally until it does');
  }

  #warn(why: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.log?.warn({ why }, 'rate limits are counted per gateway: the cluster-wide rate-window bucket is not available (a scheduler creates it)');
  }

  async hit(key: string, limit: number): Promise<RateHit> {
    if (!this.#opening) await this.open();
    else if (!this.#shared) await this.#opening;
    if (this.#shared && this.now() >= this.#localUntil) {
      // The bucket unreachable or slow (a NATS server lost, JetStream electing new leaders): the
      // request is counted by this gateway alone rather than waiting or failing — rate accounting
      // never holds serving up. A request waits at most `sharedWaitMs` for the shared count; then
      // every request counts locally for `sharedRetryMs` before the bucket is asked again (so a
      // failover costs one short wait, not one per request). Logged at most once a minute.
      const now = this.now();
      const k = this.#known.get(key);
      const ahead = k !== undefined && now < k.endsAt && 2 * (k.current + k.inFlight + k.pending + 1) <= limit;
      if (ahead && k.inFlight + k.pending > 0 && now - k.heardAt > this.#flushMs + this.#waitMs) {
        // Increments admitted ahead and none answered for longer than a request may wait: the bucket is away.
        this.#unreachable(`no answer within ${this.#waitMs} ms`);
        return this.#countLocally(key, limit);
      }
      if (ahead) {
        // Far under the limit on the last known count (plus what this gateway added since): admitted
        // without waiting, and counted in the bucket at the key's next flush, with the others
        // admitted meanwhile (one compare-and-swap per key per `aheadFlushMs`, not per request).
        // A request near the limit waits for its exact position, so the limit holds in sum over
        // the gateways unless together they send half of it within one flush and round trip.
        this.counted.ahead++;
        if (k.inFlight + k.pending === 0) k.heardAt = now;
        k.pending++;
        k.flush ??= setTimeout(() => this.#flushAhead(key, k), this.#flushMs);
        return { current: k.current + k.inFlight + k.pending, ttlMs: k.endsAt - now };
      }
      // This request waits for its position; increments admitted ahead and not sent yet go with it.
      const before = k ? k.pending : 0;
      if (k) {
        clearTimeout(k.flush);
        k.flush = undefined;
        k.pending = 0;
        k.inFlight += before;
      }
      const add = this.#shared.add(key, before + 1);
      let timer: NodeJS.Timeout | undefined;
      const slow = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), this.#waitMs)));
      try {
        const c = await Promise.race([add, slow]);
        if (c) {
          this.counted.shared++;
          this.#remember(key, c, before);
          return { current: c.current, ttlMs: c.ttlMs };
        }
        add.then(
          (late) => this.#remember(key, late, before),
          () => k && (k.inFlight = Math.max(0, k.inFlight - before)),
        ); // it may still land: its count is then in the bucket as well
        this.#unreachable(`no answer within ${this.#waitMs} ms`);
      } catch (err) {
        if (k) k.inFlight = Math.max(0, k.inFlight - before);
        this.#unreachable((err as Error).message);
      } finally {
        clearTimeout(timer);
      }
    }
    return this.#countLocally(key, limit);
  }

  #countLocally(key: string, limit: number): RateHit {
    this.counted.local++;
    const d = this.#local.hit(key, limit);
    return { current: d.allowed ? limit - d.remaining : limit + 1, ttlMs: d.resetSeconds * 1000 };
  }
}

/**
 * A `@fastify/rate-limit` store class over a {@link RateCounter} (the plugin constructs the
 * store itself, so the counter is closed over).
 */
export function rateStoreClass(counter: RateCounter) {
  return class NatsKvRateStore {
    incr(key: string, cb: (err: Error | null, res?: { current: number; ttl: number }) => void, _timeWindow: number, max: number): void {
      counter.hit(key, max).then(
        (h) => cb(null, { current: h.current, ttl: h.ttlMs }),
        (err: unknown) => cb(err as Error),
      );
    }
    child(): NatsKvRateStore {
      return this;
    }
  };
}
