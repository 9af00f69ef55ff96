/**
 * The pipeline runner: on the scheduler leader only (a control module, ml/control.ts), it fires
 * interval, cron and new-label triggers and drives every run in flight, one stage at a time,
 * through the stages in {@link PipelineStages}. Each stage's result is written into the run record by compare-and-swap
 * before the next stage starts, so a new leader reads where the last one stopped and continues the
 * same run: a stage cut short is done again, which is why every stage is idempotent (the training
 * job's id is derived from the run, a shadow or canary already at the version is not started twice).
 */
import { every, systemClock, type Clock, type Logger } from '../../cluster/index.ts';
import type { GateReport } from './gates.ts';
import { nextCron } from './schedule.ts';
import { intervalMs, type PipelineSpec } from './spec.ts';
import type { CanaryStep, Outcome, PipelineStore, RunRecord, ShadowStageReport, Trigger } from './store.ts';

/** What a run does at each stage; the real ones are in stages.ts, tests inject their own. */
export interface PipelineStages {
  /** Pins the data the run trains on (dataset digest, or a training set built point-in-time up to the trigger). */
  snapshot(r: RunRecord): Promise<NonNullable<RunRecord['snapshot']>>;
  /** Queues the training job with this id (submitting the same id twice runs it once). */
  train(r: RunRecord, jobId: string): Promise<void>;
  /** Waits for the job; the version it registered. */
  trained(r: RunRecord): Promise<{ version: number }>;
  /** Candidate and production on one holdout. */
  evaluate(r: RunRecord): Promise<{ report: GateReport; production?: number }>;
  /**
   * The candidate as a shadow of production (mirrored requests, compared, never returned), judged
   * at the end and always cleared; a report with `skipped` when the spec, the deployment or
   * `rollout.direct` leaves nothing to shadow. Resumable: a shadow already at the candidate is reused.
   */
  shadow(r: RunRecord): Promise<ShadowStageReport>;
  /** Marks the candidate rejected in the registry, with the report. */
  reject(r: RunRecord, reason: string): Promise<void>;
  /** The canary, step by step from `r.steps.length`; `onStep` records each step before the next. */
  rollout(r: RunRecord, onStep: (s: CanaryStep) => Promise<void>): Promise<{ outcome: Extract<Outcome, 'promoted' | 'rolled-back'>; reason: string }>;
}

export interface PipelineRunnerOptions {
  store: PipelineStore;
  stages: PipelineStages;
  log: Logger;
  /** Who is driving (recorded in the run). */
  instance: string;
  /** How often specs are read, intervals checked and runs in flight picked up. @default 1000 */
  tickMs?: number;
  clock?: Clock;
  /** Wall-clock time for the records and the cron schedules (epoch ms). @default Date.now */
  now?: () => number;
  /**
   * How many labeled rows of `model` were joined at or after `sinceMs` (epoch ms): what a
   * `triggers.newLabels` pipeline is checked against (leader.ts counts them in the labeled stream).
   * Without it newLabels never fires.
   */
  labelsSince?: (model: string, sinceMs: number) => Promise<number>;
}

type AppliedSpec = { spec: PipelineSpec; revision: number; created: number };

/** The latest time a run was asked for: its trigger or a trigger coalesced into it. */
const lastAsked = (r: RunRecord): number => Math.max(r.trigger.at, ...r.coalesced.map((c) => c.at));

/** A training job id for a run: letters, digits, `_`, `-`, at most 64. */
export const jobIdOf = (r: Pick<RunRecord, 'pipeline' | 'run'>): string => `pl-${r.pipeline.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48)}-${r.run}`;

export class PipelineRunner {
  readonly #o: PipelineRunnerOptions;
  readonly #clock: Clock;
  readonly #now: () => number;
  readonly #driving = new Map<string, Promise<void>>();
  readonly #nextInterval = new Map<string, number>();
  /** The next cron time per pipeline, for the spec revision it was computed from. */
  readonly #nextCron = new Map<string, { revision: number; next: number | undefined }>();
  #stopped = false;
  #stopTimer: (() => void) | undefined;
  #ticking = false;

  constructor(o: PipelineRunnerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.tick();
    this.#stopTimer = every(this.#clock, this.#o.tickMs ?? 1000, () => void this.tick());
  }

  /** Stops firing and driving: a stage in progress finishes but its result is not written by this runner. */
  stop(): void {
    this.#stopped = true;
    this.#stopTimer?.();
  }

  /** Resolves when every run this runner is driving has stopped (tests). */
  async idle(): Promise<void> {
    await Promise.all(this.#driving.values());
  }

  /** Fires this trigger (alerts, label counts, the service's manual runs go through the store the same way). */
  async fire(name: string, trigger: Omit<Trigger, 'at'>): Promise<{ run: number; coalesced: boolean }> {
    const r = await this.#o.store.trigger(name, { ...trigger, at: this.#now() });
    if (r.coalesced) this.#o.log.info({ pipeline: name, run: r.run, trigger: trigger.kind }, 'pipeline trigger coalesced into the run in flight');
    else this.#o.log.info({ pipeline: name, run: r.run, trigger: trigger.kind }, 'pipeline run started');
    this.#drive(name, r.run);
    return r;
  }

  async tick(): Promise<void> {
    if (this.#stopped || this.#ticking) return;
    this.#ticking = true;
    try {
      const { store } = this.#o;
      const t = this.#clock.now();
      // In name order: pipelines are checked in a known order within one tick.
      for (const name of (await store.specNames()).sort()) {
        const applied = await store.getSpec(name);
        try {
          await this.#intervalDue(name, applied, t);
          await this.#cronDue(name, applied);
          await this.#labelsDue(name, applied);
        } catch (err) {
          this.#o.log.warn({ pipeline: name, err }, 'pipeline triggers could not be checked');
        }
      }
      // Runs started elsewhere (a manual run through the service) or by the last leader.
      for (const { name, run } of await store.activeRuns()) this.#drive(name, run);
    } catch (err) {
      this.#o.log.warn({ err }, 'pipeline runner tick failed');
    } finally {
      this.#ticking = false;
    }
  }

  /** Every `triggers.interval` on the runner's clock, the first one an interval after the runner first saw the pipeline. */
  async #intervalDue(name: string, applied: AppliedSpec | undefined, t: number): Promise<void> {
    const ms = applied ? intervalMs(applied.spec) : undefined;
    if (ms === undefined) {
      this.#nextInterval.delete(name);
      return;
    }
    const due = this.#nextInterval.get(name);
    if (due === undefined) this.#nextInterval.set(name, t + ms);
    else if (t >= due) {
      this.#nextInterval.set(name, t + ms);
      await this.fire(name, { kind: 'interval', detail: `every ${applied!.spec.triggers.interval}` });
    }
  }

  /**
   * At each `triggers.cron` time, on wall time. The first time due is computed from the last run
   * asked for (else from when the spec was applied), so a new leader fires a time missed while
   * no leader ran — once, however many were missed: the next is computed from now.
   */
  async #cronDue(name: string, applied: AppliedSpec | undefined): Promise<void> {
    if (applied?.spec.triggers.cron === undefined) {
      this.#nextCron.delete(name);
      return;
    }
    const { spec, revision } = applied;
    let st = this.#nextCron.get(name);
    if (!st || st.revision !== revision) {
      const last = await this.#lastRun(name);
      st = { revision, next: nextCron(spec.triggers, last ? lastAsked(last) : applied.created) };
      this.#nextCron.set(name, st);
    }
    const now = this.#now();
    if (st.next === undefined || now < st.next) return;
    const due = st.next;
    st.next = nextCron(spec.triggers, now);
    const late = now - due > 60_000 ? ` (fired late: due ${new Date(due).toISOString()})` : '';
    await this.fire(name, { kind: 'cron', detail: `cron "${spec.triggers.cron}"${spec.triggers.timezone ? ` ${spec.triggers.timezone}` : ''}${late}` });
  }

  /** When `triggers.newLabels` rows were joined since the last run started; not while a run is in flight (it would only be coalesced). */
  async #labelsDue(name: string, applied: AppliedSpec | undefined): Promise<void> {
    const want = applied?.spec.triggers.newLabels;
    if (want === undefined || !this.#o.labelsSince) return;
    const last = await this.#lastRun(name);
    if (last && last.state !== 'done') return;
    const count = await this.#o.labelsSince(applied!.spec.model, last ? last.trigger.at : applied!.created);
    if (count < want) return;
    await this.fire(name, { kind: 'labels', detail: `${count} labeled rows since ${last ? `run ${last.run}` : 'the pipeline was applied'}` });
  }

  async #lastRun(name: string): Promise<RunRecord | undefined> {
    const n = (await this.#o.store.runNumbers(name)).at(-1);
    return n === undefined ? undefined : (await this.#o.store.getRun(name, n))?.record;
  }

  #drive(name: string, run: number): void {
    const key = `${name}#${run}`;
    if (this.#stopped || this.#driving.has(key)) return;
    const p = this.#advance(name, run)
      .catch((err: unknown) => this.#o.log.error({ pipeline: name, run, err }, 'pipeline run stalled; retried on the next tick'))
      .finally(() => this.#driving.delete(key));
    this.#driving.set(key, p);
  }

  /** Moves the run forward until it is done, this runner stops, or a stage throws. */
  async #advance(name: string, run: number): Promise<void> {
    const { store, stages, log } = this.#o;
    while (!this.#stopped) {
      const cur = await store.getRun(name, run);
      if (!cur || cur.record.state === 'done') return;
      const r = cur.record;
      let next: RunRecord;
      try {
        next = await this.#step(r, stages, cur.revision);
      } catch (err) {
        if (this.#stopped) return;
        const reason = err instanceof Error ? err.message : String(err);
        log.warn({ pipeline: name, run, state: r.state, reason }, 'pipeline run failed');
        next = { ...r, state: 'done', decision: { outcome: 'failed', reason: `${r.state}: ${reason}`, at: this.#now() } };
      }
      if (this.#stopped) return;
      // Coalesced triggers may have been added meanwhile: the CAS fails, the stage is read again (and redone, idempotently).
      const latest = await store.getRun(name, run);
      if (!latest || latest.record.state !== r.state) continue;
      const at = this.#now();
      // When each state was entered (the run's stage timings: `shoal pipelines runs`, bench:pipeline).
      const entered = { ...(latest.record.entered ?? {}), ...(next.state !== r.state ? { [next.state]: at } : {}) };
      const merged = { ...next, coalesced: latest.record.coalesced, steps: next.steps.length >= latest.record.steps.length ? next.steps : latest.record.steps, entered, by: this.#o.instance, updatedAt: at };
      if ((await store.casRun(merged, latest.revision)) === undefined) continue;
      if (merged.state === 'done') log.info({ pipeline: name, run, outcome: merged.decision?.outcome, reason: merged.decision?.reason }, 'pipeline run done');
    }
  }

  async #step(r: RunRecord, stages: PipelineStages, _revision: number): Promise<RunRecord> {
    const at = () => this.#now();
    switch (r.state) {
      case 'triggered':
        return { ...r, state: 'snapshotted', snapshot: await stages.snapshot(r) };
      case 'snapshotted': {
        const jobId = jobIdOf(r);
        await stages.train(r, jobId);
        return { ...r, state: 'training', jobId };
      }
      case 'training':
        return { ...r, state: 'trained', candidate: await stages.trained(r) };
      case 'trained': {
        const { report, production } = await stages.evaluate(r);
        const withReport: RunRecord = { ...r, report, ...(production !== undefined ? { production: { version: production } } : {}) };
        if (report.pass) return { ...withReport, state: 'evaluated' };
        const reason = report.checks.filter((c) => !c.pass).map((c) => c.message).join('; ');
        await stages.reject(withReport, `pipeline ${r.pipeline} run ${r.run} gates: ${reason}`);
        return { ...withReport, state: 'done', decision: { outcome: 'rejected', reason, at: at() } };
      }
      case 'evaluated':
        return { ...r, state: 'shadow' };
      case 'shadow': {
        const shadowReport = await stages.shadow(r);
        const withReport: RunRecord = { ...r, shadowReport };
        if (shadowReport.pass) return { ...withReport, state: 'rollout' };
        await stages.reject(withReport, `pipeline ${r.pipeline} run ${r.run} ${shadowReport.reason}`);
        return { ...withReport, state: 'done', decision: { outcome: 'rejected', reason: shadowReport.reason, at: at() } };
      }
      case 'rollout': {
        let steps = r.steps;
        const result = await stages.rollout(r, async (s) => {
          // Each step is recorded before the next one starts.
          const cur = await this.#o.store.getRun(r.pipeline, r.run);
          if (!cur || this.#stopped) throw new Error('no longer driving this run');
          steps = [...cur.record.steps, s];
          if ((await this.#o.store.casRun({ ...cur.record, steps, updatedAt: at() }, cur.revision)) === undefined) throw new Error('run record changed while recording a canary step');
        });
        return { ...r, steps, state: 'done', decision: { outcome: result.outcome, reason: result.reason, at: at() } };
      }
      case 'done':
        return r;
    }
  }
}
