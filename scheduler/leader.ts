/**
 * One active scheduler: a lease in the KV bucket `<prefix>-leases`, taken and renewed with
 * revision compare-and-swap.
 *
 * Server 2.9 has no per-key TTL, and clocks of two machines cannot be compared, so expiry is
 * judged by each contender on its own clock: a standby that sees the *same revision* of the
 * lease for `ttlMs` (measured from when the read that first showed it was answered) takes it over
 * with a CAS on that revision. The holder renews every `renewEveryMs` (ttl/3) and stops calling
 * itself leader `ttlMs` after the start of its last successful renewal — before any standby can
 * take over, since a standby's count starts only after that write. The revision of the holder's
 * write is its epoch (a fencing token to stamp on placements).
 *
 * A standby watches the lease key, so it learns of a renewal as it is written (a standby whose
 * server dies just after the holder's — both on one host — has already seen the last renewal), and
 * also reads it every `observeEveryMs` (ttl/10) in case the watch is broken: the takeover comes
 * at most about that long after the TTL. Once due, a CAS that JetStream cannot take yet (the lease
 * stream electing a new leader after its server died, which nats-server does after 4–9 s of
 * silence) is tried again every `DUE_RETRY_MS`, not at the next step.
 */
import { KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import { decode, encode, every, systemClock, type Clock, type Logger } from '../cluster/index.ts';
import { SchedulerErrors } from './errors.ts';

export interface LeaderLeaseOptions {
  kv: KV;
  /** This contender's id (the scheduler id). */
  holderId: string;
  /** @default 'scheduler' */
  key?: string;
  /** @default 10_000 */
  ttlMs?: number;
  /** @default ttlMs / 3 */
  renewEveryMs?: number;
  /** How often a standby reads the lease. @default min(renewEveryMs, max(100, ttlMs / 10)) */
  observeEveryMs?: number;
  /** Watch the key as well as reading it (false: reads only). @default true */
  watch?: boolean;
  /** Time and the renewal timer (tests pass a `VirtualClock`). @default systemClock */
  clock?: Clock;
  log?: Logger;
}

/** What the lease key holds. Timestamps are for people reading it, not for expiry. */
export interface LeaseRecord {
  holder: string;
  ttlMs: number;
  acquiredAt: number;
  renewedAt: number;
}

/** How soon a standby whose takeover is due tries its CAS again after JetStream refused or timed out. */
export const DUE_RETRY_MS = 250;

export class LeaderLease {
  readonly holderId: string;
  readonly key: string;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly observeEveryMs: number;
  readonly #kv: KV;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  #leading = false;
  #validUntil = 0;
  #epoch = 0;
  #acquiredAt = 0;
  /** The holder's revision this standby reads, since when (the answer's arrival), and the holder's TTL. */
  #observed: { revision: number; since: number; holder: string; ttlMs: number } | undefined;
  #timer: (() => void) | undefined;
  #observeTimer: (() => void) | undefined;
  readonly #watch: boolean;
  #watcher: { stop(): void } | undefined;
  #watching = false;
  #ticking: Promise<void> | undefined;
  /** When the current run of failed steps began (undefined after a step that went through). */
  #failingSince: number | undefined;
  #warned = false;
  /** After stop(): no step runs again (a late nudge must not take the lease back). */
  #stopped = false;
  /** Cancels the step due when the observed revision will have been seen for a TTL. */
  #expiryCheck: (() => void) | undefined;
  readonly #listeners = new Set<(leading: boolean) => void>();

  constructor(opts: LeaderLeaseOptions) {
    this.#kv = opts.kv;
    this.holderId = opts.holderId;
    this.key = opts.key ?? 'scheduler';
    this.ttlMs = opts.ttlMs ?? 10_000;
    this.renewEveryMs = opts.renewEveryMs ?? Math.floor(this.ttlMs / 3);
    this.observeEveryMs = opts.observeEveryMs ?? Math.min(this.renewEveryMs, Math.max(100, Math.floor(this.ttlMs / 10)));
    this.#clock = opts.clock ?? systemClock;
    this.#watch = opts.watch ?? true;
    this.#log = opts.log;
    if (!(this.ttlMs > 0)) throw SchedulerErrors.BAD_OPTION('ttlMs', `must be > 0, got ${this.ttlMs}`);
    if (!(this.renewEveryMs > 0 && this.renewEveryMs < this.ttlMs)) throw SchedulerErrors.BAD_OPTION('renewEveryMs', `must be > 0 and < ttlMs (${this.ttlMs}), got ${this.renewEveryMs}`);
    if (!(this.observeEveryMs > 0 && this.observeEveryMs <= this.renewEveryMs)) throw SchedulerErrors.BAD_OPTION('observeEveryMs', `must be > 0 and <= renewEveryMs (${this.renewEveryMs}), got ${this.observeEveryMs}`);
  }

  /** Tries at once, then renews every `renewEveryMs` while leading and reads every `observeEveryMs` while not. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.tick();
    this.#timer ??= every(this.#clock, this.renewEveryMs, () => void this.tick());
    if (this.observeEveryMs < this.renewEveryMs) this.#observeTimer ??= every(this.#clock, this.observeEveryMs, () => void (this.#leading || this.tick()));
    if (this.#watch && !this.#watching) {
      // Resolves once the first watch is in place (or could not be made): writes from then on reach it.
      await new Promise<void>((ready) => void this.#watchLease(ready));
    }
  }

  /** The other holder's revision this contender watches, and since when (its own clock); undefined while leading. */
  observed(): { revision: number; since: number; holder: string } | undefined {
    const o = this.#observed;
    return o && { revision: o.revision, since: o.since, holder: o.holder };
  }

  /** Follows writes to the key as they come; broken (a server lost), it is made again after a renewal interval. */
  async #watchLease(ready: () => void): Promise<void> {
    this.#watching = true;
    while (!this.#stopped) {
      try {
        const w = await this.#kv.watch({ key: this.key, include: KvWatchInclude.UpdatesOnly });
        this.#watcher = w;
        ready();
        if (this.#stopped) w.stop();
        for await (const e of w) this.#saw(e);
      } catch {
        // The reads every observeEveryMs go on meanwhile.
        ready();
      }
      this.#watcher = undefined;
      if (this.#stopped) break;
      await new Promise<void>((resolve) => this.#clock.after(this.renewEveryMs, resolve));
    }
    this.#watching = false;
  }

  /** A write to the key, as the watch delivered it. */
  #saw(e: KvEntry): void {
    if (this.#stopped || this.#leading) return;
    if (e.operation !== 'PUT') {
      void this.tick(); // released: taken at once
      return;
    }
    let rec: LeaseRecord;
    try {
      rec = decode(e.value) as LeaseRecord;
    } catch {
      return;
    }
    // Only news: the reads judge everything else (an older revision, a write of this contender's).
    if (rec.holder === this.holderId || (this.#observed && e.revision <= this.#observed.revision)) return;
    this.#observed = { revision: e.revision, since: this.#clock.now(), holder: rec.holder, ttlMs: rec.ttlMs };
    this.#recheckIn(rec.ttlMs);
  }

  /** True while this contender holds a lease no standby can have taken yet. */
  isLeader(): boolean {
    if (this.#leading && this.#clock.now() >= this.#validUntil) this.#set(false, 'renewal overdue');
    return this.#leading;
  }

  /** Throws `SHOAL_ERR_NOT_LEADER` unless leading (guard for state-changing scheduler work). */
  assertLeader(): void {
    if (!this.isLeader()) throw SchedulerErrors.NOT_LEADER(this.holderId, this.leader());
  }

  /** Fencing token: the lease revision this contender wrote last (0 when it never led). */
  get epoch(): number {
    return this.#epoch;
  }

  /** The holder last seen (this contender when leading). */
  leader(): string | undefined {
    return this.#leading ? this.holderId : this.#observed?.holder;
  }

  onChange(fn: (leading: boolean) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** One acquire / renew / observe step (the timer calls it; tests may too). */
  async tick(): Promise<void> {
    if (this.#stopped) return;
    if (this.#ticking) return this.#ticking;
    this.#ticking = this.#tick().finally(() => {
      this.#ticking = undefined;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    const start = this.#clock.now();
    try {
      const e = await this.#kv.get(this.key);
      // The bucket answers: a streak of failures (if any) is over.
      this.#failingSince = undefined;
      this.#warned = false;
      if (!e || e.operation !== 'PUT') {
        const rev = e ? await this.#kv.update(this.key, this.#record(start, true), e.revision) : await this.#kv.create(this.key, this.#record(start, true));
        this.#won(rev, start, true);
        return;
      }
      const rec = decode(e.value) as LeaseRecord;
      if (rec.holder === this.holderId) {
        // Ours (renewal, or a previous incarnation of this id): CAS on the revision we read.
        const rev = await this.#kv.update(this.key, this.#record(start, !this.#leading), e.revision);
        this.#won(rev, start, !this.#leading);
        return;
      }
      if (this.#leading) this.#set(false, `lease taken by ${rec.holder}`);
      // A read sent before the watch delivered a newer revision: nothing new.
      if (this.#observed && e.revision < this.#observed.revision && this.#observed.since > start) return;
      if (!this.#observed || this.#observed.revision !== e.revision) {
        // Counted from the answer, not from when the read was sent: a slow read may show a renewal
        // written after it was sent, and the holder counts its TTL from just before that write.
        this.#observed = { revision: e.revision, since: this.#clock.now(), holder: rec.holder, ttlMs: rec.ttlMs };
        // Looked at again the moment this revision has been seen for a whole TTL, not at the next
        // step after it: a dead holder's lease is taken at once.
        this.#recheckIn(rec.ttlMs);
        return;
      }
      if (start - this.#observed.since < rec.ttlMs) {
        // Not due yet: the check at the due moment stands (set again, in case a timer ran early).
        this.#recheckIn(this.#observed.since + rec.ttlMs - start);
        return;
      }
      const silentMs = start - this.#observed.since;
      const rev = await this.#kv.update(this.key, this.#record(start, true), e.revision);
      this.#log?.info({ previous: rec.holder, silentMs }, 'lease expired; taking over');
      this.#won(rev, start, true);
    } catch (err) {
      // A lost CAS (someone else wrote first) or NATS trouble: not leader unless still valid.
      const msg = err instanceof Error ? err.message : String(err);
      this.#failingSince ??= start;
      // One warning per streak of failed steps that outlasts the TTL (while the bucket is out of reach no leader can be chosen).
      if (start - this.#failingSince >= this.ttlMs && !this.#warned) {
        this.#warned = true;
        this.#log?.warn({ err: msg, failingMs: start - this.#failingSince }, 'lease unreadable or unwritable for longer than its TTL');
      } else this.#log?.debug({ err: msg }, 'lease step failed');
      this.isLeader();
      // A takeover that is due goes on being tried until JetStream takes it (or shows a newer revision).
      const o = this.#observed;
      if (o && !this.#leading && this.#clock.now() - o.since >= o.ttlMs) this.#recheckIn(DUE_RETRY_MS);
    }
  }

  #recheckIn(ms: number): void {
    this.#expiryCheck?.();
    this.#expiryCheck = this.#clock.after(ms, () => void this.tick());
  }

  #record(now: number, fresh: boolean): Uint8Array {
    const rec: LeaseRecord = { holder: this.holderId, ttlMs: this.ttlMs, acquiredAt: fresh ? now : this.#acquiredAt || now, renewedAt: now };
    return encode(rec);
  }

  #won(revision: number, start: number, fresh: boolean): void {
    this.#expiryCheck?.();
    this.#expiryCheck = undefined;
    if (fresh) this.#acquiredAt = start;
    this.#epoch = revision;
    this.#validUntil = start + this.ttlMs;
    this.#observed = undefined;
    if (!this.#leading) this.#set(true, 'lease acquired');
  }

  #set(leading: boolean, why: string): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    this.#log?.info({ holderId: this.holderId, leading, epoch: this.#epoch, why }, leading ? 'became leader' : 'lost leadership');
    for (const l of this.#listeners) l(leading);
  }

  /**
   * Stops renewing. With `release` (a clean shutdown) the lease is deleted by CAS so a standby
   * takes over at its next step instead of waiting for the TTL.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    this.#expiryCheck?.();
    this.#expiryCheck = undefined;
    this.#timer?.();
    this.#timer = undefined;
    this.#observeTimer?.();
    this.#observeTimer = undefined;
    this.#watcher?.stop();
    this.#watcher = undefined;
    await this.#ticking;
    const wasLeading = this.#leading;
    this.#set(false, 'stopped');
    if (opts.release !== false && wasLeading && this.#epoch > 0) {
      await this.#kv.delete(this.key, { previousSeq: this.#epoch }).catch(() => undefined);
    }
  }
}

/**
 * Starts the leader's work for as long as this process holds the lease: a start that fails (just
 * after a failover JetStream may not answer yet) is tried again after a back-off of 0.5, 1, 2,
 * 4, then 5 s, and never left half-done — a lease holder that does not lead would keep the
 * standby out and serve nothing. Resolves to what `start` returned, or undefined once the lease
 * is no longer held (or the process stops).
 */
export async function startLeading<T>(o: { start: () => Promise<T>; holding: () => boolean; log: Logger; wait?: (ms: number) => Promise<void> }): Promise<T | undefined> {
  const wait = o.wait ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let attempt = 1; o.holding(); attempt++) {
    try {
      return await o.start();
    } catch (err) {
      o.log.error({ err, attempt }, 'holding the lease but could not start leading: trying again');
      await wait(Math.min(5000, 250 * 2 ** attempt));
    }
  }
  return undefined;
}
