/**
 * Jobs are never "running" forever. The scheduler leader watches every active job's record and
 * its coordinator actor:
 *
 * - a coordinator that supervision gave up on (`failed` in the directory) fails the job with
 *   the actor's reason;
 * - a coordinator that is gone (stopped by hand, lost) is started again — it resumes from its
 *   last checkpoint;
 * - a job whose record has not moved for longer than its stall bound is restarted the same way,
 *   at most `maxRestarts` times, then failed with the reason.
 *
 * The stall bound comes from the job's own pace: its coordinator reports the median step time
 * (`progress.stepMs`) and how many steps lie between two record updates (`progress.every`), and a
 * job is stalled after `factor` × that interval, never sooner than `floorMs` (the coordinator's
 * own recovery — re-asking a worker whose node died, restarting lost workers — gets that long).
 * Silence is measured on this process's clock, from when a record change was seen here, so
 * clocks on other machines do not matter.
 */
import { ActorKind, LifecycleState, JobState, TERMINAL_JOB_STATES, jobActorId, whileActive, type DirectoryEntry, type JobRecord, type JobStore, type Logger, type SpawnSpec } from '../cluster/index.ts';

/** What the watchdog knows of one job. */
export interface WatchedJob {
  record: JobRecord;
  /** When a change of its record was last seen (local clock). */
  seenAt: number;
}

export interface StallPolicy {
  /** Shortest silence called a stall. @default 60000 */
  floorMs: number;
  /** Multiples of the job's expected update interval. @default 20 */
  factor: number;
  /** Restarts of the coordinator before the job fails. @default 3 */
  maxRestarts: number;
}

export const DEFAULT_STALL_POLICY: StallPolicy = { floorMs: 60_000, factor: 20, maxRestarts: 3 };

/** States in which a job's coordinator must keep its record moving. */
const ACTIVE: readonly JobState[] = [JobState.PLACING, JobState.RUNNING, JobState.CHECKPOINTED];

export type Verdict = { action: 'restart' | 'fail'; reason: string } | undefined;

/** The stall bound of a job (ms of silence), from its reported pace. */
export function stallBoundMs(rec: JobRecord, p: StallPolicy): number {
  const progress = (rec.progress ?? {}) as { stepMs?: unknown; every?: unknown };
  const stepMs = typeof progress.stepMs === 'number' && progress.stepMs > 0 ? progress.stepMs : 0;
  const every = typeof progress.every === 'number' && progress.every > 0 ? progress.every : 1;
  return Math.max(p.floorMs, p.factor * stepMs * every);
}

/**
 * What to do about one job now: nothing, restart its coordinator, or fail it. `coordinator` is
 * its directory entry (undefined: none).
 */
export function judge(job: WatchedJob, coordinator: DirectoryEntry | undefined, now: number, p: StallPolicy): Verdict {
  const rec = job.record;
  if (!ACTIVE.includes(rec.state)) return undefined;
  const restarts = rec.restarts ?? 0;
  const again = (why: string): Verdict =>
    restarts >= p.maxRestarts ? { action: 'fail', reason: `${why}; gave up after ${restarts} restart${restarts === 1 ? '' : 's'} of its coordinator` } : { action: 'restart', reason: `${why}: coordinator restarted (${restarts + 1} of ${p.maxRestarts})` };
  if (coordinator?.state === LifecycleState.FAILED) return { action: 'fail', reason: `its coordinator failed: ${coordinator.reason ?? 'no reason given'}` };
  const silentMs = now - job.seenAt;
  const bound = stallBoundMs(rec, p);
  if (!coordinator || coordinator.state === LifecycleState.STOPPED) {
    // Give a coordinator that is just being (re)started a moment before calling it lost.
    return silentMs > Math.min(bound, 5000) ? again('its coordinator is gone') : undefined;
  }
  if (coordinator.state === LifecycleState.PENDING) return undefined; // waiting for a node: its reason shows in `shoal status`
  if (silentMs > bound) return again(`no progress for ${Math.round(silentMs / 1000)} s (bound ${Math.round(bound / 1000)} s from its step time)`);
  return undefined;
}

/** What the watchdog needs of the scheduler's actor manager. */
export interface JobActors {
  entries(): Iterable<{ entry: DirectoryEntry }>;
  stopActor(actorId: string): Promise<void>;
  spawn(spec: SpawnSpec): Promise<unknown>;
}

export interface JobWatchdogOptions {
  /** The job records: watched, and changed by compare-and-swap. */
  jobs: JobStore;
  actors: JobActors;
  log: Logger;
  policy?: Partial<StallPolicy>;
  now?: () => number;
}

/** The coordinator's spawn spec: the same wherever a job is started. */
export function coordinatorSpec(rec: JobRecord): SpawnSpec {
  return { type: rec.actorType, id: jobActorId(rec.id), group: jobActorId(rec.id), args: { jobId: rec.id }, kind: ActorKind.BATCH, constraints: { spotOk: true } };
}

export class JobWatchdog {
  readonly #o: JobWatchdogOptions;
  readonly #p: StallPolicy;
  readonly #now: () => number;
  readonly #jobs = new Map<string, WatchedJob>();
  readonly #acting = new Set<string>();
  #stopWatch: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: JobWatchdogOptions) {
    this.#o = o;
    this.#p = { ...DEFAULT_STALL_POLICY, ...o.policy };
    this.#now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.#stopWatch = await this.#o.jobs.watchAll(
      (id, record) => this.#apply(id, record),
      (id, err) => this.#o.log.warn({ jobId: id, err: err.message }, 'unreadable job record'),
    );
    this.#timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, 'job watchdog sweep failed'));
    }, Math.max(200, Math.min(5000, Math.floor(this.#p.floorMs / 4))));
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#stopWatch?.();
  }

  #apply(id: string, record: JobRecord | undefined): void {
    if (!record || TERMINAL_JOB_STATES.includes(record.state)) this.#jobs.delete(id);
    else this.#jobs.set(id, { record, seenAt: this.#now() });
  }

  /** Judges every active job once (called on a timer; tests call it directly). */
  async sweep(): Promise<void> {
    const coordinators = new Map<string, DirectoryEntry>();
    for (const { entry } of this.#o.actors.entries()) coordinators.set(entry.actorId, entry);
    const now = this.#now();
    await Promise.all(
      [...this.#jobs.entries()].map(async ([id, job]) => {
        if (this.#acting.has(id)) return;
        const verdict = judge(job, coordinators.get(jobActorId(id)), now, this.#p);
        if (!verdict) return;
        this.#acting.add(id);
        try {
          await this.#act(job.record, verdict);
        } catch (err) {
          this.#o.log.warn({ jobId: id, err: (err as Error).message }, 'job watchdog could not act');
        } finally {
          this.#acting.delete(id);
        }
      }),
    );
  }

  async #act(rec: JobRecord, v: NonNullable<Verdict>): Promise<void> {
    const { actors, jobs, log } = this.#o;
    const coordinator = jobActorId(rec.id);
    if (v.action === 'fail') {
      // Only a job that is still active: one that ended meanwhile keeps its outcome.
      const { changed } = await jobs.update(rec.id, whileActive({ state: JobState.FAILED, reason: v.reason }));
      if (!changed) return;
      log.warn({ jobId: rec.id, reason: v.reason }, 'job failed by the watchdog');
      // Its actors go with it (the coordinator's and every `job-<id>-…` one).
      const ids = [...actors.entries()].map((x) => x.entry.actorId).filter((a) => a === coordinator || a.startsWith(`${coordinator}-`));
      await Promise.all(ids.map((a) => actors.stopActor(a).catch(() => undefined)));
      return;
    }
    // Recorded first: the restart count survives whatever happens next, and the record moving
    // resets the silence. Counted on the current record; a job that ended meanwhile is left alone.
    const { changed } = await jobs.update(rec.id, (cur) => (TERMINAL_JOB_STATES.includes(cur.state) ? undefined : { restarts: (cur.restarts ?? 0) + 1, reason: v.reason }));
    if (!changed) return;
    log.warn({ jobId: rec.id, reason: v.reason }, 'job stalled: restarting its coordinator');
    await actors.stopActor(coordinator).catch(() => undefined);
    await actors.spawn(coordinatorSpec(rec));
  }
}
