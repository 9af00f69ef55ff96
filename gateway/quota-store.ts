/**
 * The per-tenant request quota, cluster-wide: a store for `@fastify/rate-limit` (and the gRPC
 * service, which calls the same counter) that counts each tenant's requests per minute in NATS
 * KV (cluster/window-counter.ts), so two gateways allow a tenant its limit in total, not twice.
 *
 * When the bucket cannot be opened (a gateway embedded without a scheduler that made it, e.g. in
 * a unit test), requests are counted in this process instead, and a warning says so once.
 */
import { Kvm } from '@nats-io/kv';
import { WindowCounter, resources, type Logger, type NatsConnection } from '../cluster/index.ts';
import { FixedWindowLimiter } from './rate-limit.ts';

export const RATE_WINDOW_MS = 60_000;

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

  constructor(
    private readonly nc: NatsConnection | undefined,
    private readonly prefix: string,
    private readonly log: Logger | undefined,
    private readonly now: () => number = Date.now,
  ) {}

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

  #unreachable(why: string): void {
    const now = this.now();
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
    if (this.#shared) {
      try {
        const c = await this.#shared.add(key);
        return { current: c.current, ttlMs: c.ttlMs };
      } catch (err) {
        // The bucket unreachable for now (a NATS server lost, a failover in progress): the quota
        // is counted by this gateway alone for this request rather than failing it — rate
        // accounting never takes serving down. Logged at most once a minute.
        this.#unreachable((err as Error).message);
      }
    }
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
