/**
 * The one store of job records: the `jobs` KV bucket, key = job id, value = a `JobRecord`
 * (MessagePack). It knows nothing of what a job does. Writers — the scheduler's job queue and
 * watchdog, a job's coordinator actor — change a record only through `update`, a
 * compare-and-swap with a patch function that sees the current record, so a cancel and a
 * progress report never overwrite each other; readers (CLI, gateway, product code) `get` and
 * `follow`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import { decode, encode } from './codec.ts';
import { Errors } from './errors.ts';
import { isCasConflict } from './nats-errors.ts';
import { resources } from './subjects.ts';
import { retrySettling } from './resources.ts';
import { TERMINAL_JOB_STATES, type JobRecord } from './job-wire.ts';

/**
 * What to change in a record, given the current one; undefined leaves it as it is (e.g. a job
 * that has ended). Called again with the new current record after a lost compare-and-swap.
 */
export type JobPatch = (cur: Readonly<JobRecord>) => Partial<JobRecord> | undefined;

export interface JobUpdate {
  /** The record as stored after the call. */
  record: JobRecord;
  /** False when the patch left the record as it was. */
  changed: boolean;
}

export interface JobUpdateOptions {
  /** Compare-and-swap attempts before giving up with `SHOAL_ERR_JOB_CONFLICT`. @default 10 */
  attempts?: number;
}

const isEnded = (r: Pick<JobRecord, 'state'>) => TERMINAL_JOB_STATES.includes(r.state);

/** A patch that applies `patch` while the job has not ended, and leaves an ended one alone. */
export const whileActive =
  (patch: Partial<JobRecord>): JobPatch =>
  (cur) =>
    isEnded(cur) ? undefined : patch;

/** Thrown by a `fencedBy` patch when a coordinator placed later (a newer claim) has written the record. */
export class StaleCoordinator extends Error {
  constructor(
    readonly jobId: string,
    readonly claim: number,
    readonly current: number,
  ) {
    super(`job ${jobId}: a coordinator placed later (claim ${current}) has taken over from this one (claim ${claim})`);
  }
}

/**
 * `whileActive(patch)`, fenced: the record is stamped with the writer's directory claim
 * (`ActorContext.claim`), and a writer whose claim is older than the one on the record (a stale
 * copy on a host that was cut off and came back) changes nothing and gets `StaleCoordinator`. The
 * record's revision CAS makes check and stamp one step.
 */
export const fencedBy =
  (claim: number, patch: Partial<JobRecord>): JobPatch =>
  (cur) => {
    if ((cur.coordinatorClaim ?? 0) > claim) throw new StaleCoordinator(cur.id, claim, cur.coordinatorClaim!);
    return isEnded(cur) ? undefined : { ...patch, coordinatorClaim: claim };
  };

export class JobStore {
  constructor(private readonly kv: KV) {}

  /** Opens the `jobs` bucket (the scheduler creates it; opening fails until it has). */
  static async open(nc: NatsConnection, prefix = 'shoal'): Promise<JobStore> {
    return new JobStore(await new Kvm(nc).open(resources(prefix).buckets.jobs));
  }

  /** The record and its revision, or undefined when there is none. */
  async entry(id: string): Promise<{ record: JobRecord; revision: number } | undefined> {
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return { record: decode(e.value) as JobRecord, revision: e.revision };
  }

  /** The record, or undefined when there is none. */
  async get(id: string): Promise<JobRecord | undefined> {
    return (await this.entry(id))?.record;
  }

  /** The record, or `SHOAL_ERR_JOB_NOT_FOUND`. */
  async require(id: string): Promise<JobRecord> {
    const r = await this.get(id);
    if (!r) throw Errors.JOB_NOT_FOUND(id);
    return r;
  }

  /** Creates the record (by CAS: a duplicate submission creates nothing); false when it exists. */
  async create(rec: JobRecord): Promise<boolean> {
    try {
      await this.kv.create(rec.id, encode(rec));
      return true;
    } catch (err) {
      if (isCasConflict(err)) return false;
      throw err;
    }
  }

  /**
   * Changes the record by compare-and-swap: reads it, applies `patch` (a function of the current
   * record, or fixed fields), writes it at the revision read (with `updatedAt` now), and on a
   * lost swap starts again. `SHOAL_ERR_JOB_NOT_FOUND` when there is no record,
   * `SHOAL_ERR_JOB_CONFLICT` when every attempt lost; other NATS errors as they come.
   */
  async update(id: string, patch: JobPatch | Partial<JobRecord>, opts: JobUpdateOptions = {}): Promise<JobUpdate> {
    const attempts = opts.attempts ?? 10;
    for (let i = 0; i < attempts; i++) {
      const cur = await this.entry(id);
      if (!cur) throw Errors.JOB_NOT_FOUND(id);
      const p = typeof patch === 'function' ? patch(cur.record) : patch;
      if (!p) return { record: cur.record, changed: false };
      const next: JobRecord = { ...cur.record, ...p, id, updatedAt: Date.now() };
      try {
        await this.kv.update(id, encode(next), cur.revision);
        return { record: next, changed: true };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        // Another writer got there first (a cancel, the watchdog, a progress report): re-read.
      }
    }
    throw Errors.JOB_CONFLICT(id, attempts);
  }

  /**
   * Calls `onUpdate` with the record (the current one first) and every change until the job
   * ends or `timeoutMs` passes; resolves with the last record seen (undefined: none), which is
   * not final when the time ran out.
   */
  async follow(id: string, onUpdate: (r: JobRecord) => void, timeoutMs: number): Promise<JobRecord | undefined> {
    // Opening the watch is asked again while JetStream settles (its stream electing a leader).
    const w = await retrySettling(() => this.kv.watch({ key: id }), Math.min(timeoutMs, 30_000));
    const timer = setTimeout(() => w.stop(), timeoutMs);
    let last: JobRecord | undefined;
    try {
      for await (const e of w) {
        if (e.operation !== 'PUT') continue;
        last = decode(e.value) as JobRecord;
        onUpdate(last);
        if (isEnded(last)) break;
      }
    } finally {
      clearTimeout(timer);
      w.stop();
    }
    return last;
  }

  /**
   * Calls `onChange` with every job's record — the current ones first, then each change
   * (undefined: deleted) — until the returned function is called. A record that does not decode
   * goes to `onUnreadable`.
   */
  async watchAll(onChange: (id: string, rec: JobRecord | undefined) => void, onUnreadable: (id: string, err: Error) => void = () => undefined): Promise<() => void> {
    const w = await this.kv.watch();
    void (async () => {
      for await (const e of w as AsyncIterable<KvEntry>) {
        if (e.operation !== 'PUT' || e.value.length === 0) {
          onChange(e.key, undefined);
          continue;
        }
        let rec: JobRecord;
        try {
          rec = decode(e.value) as JobRecord;
        } catch (err) {
          onUnreadable(e.key, err as Error);
          continue;
        }
        onChange(e.key, rec);
      }
    })();
    return () => w.stop();
  }
}
