/**
 * The runner's cron and new-label triggers (issue #16 item 1) against a real nats-server, stages
 * injected and time virtual: the runner's wall time is a VirtualClock the test moves, and each
 * tick is called by hand, so "03:00 tomorrow" or "three days without a leader" take no time.
 * Checked: a cron fires at its times and not between them; a new leader after a gap fires the
 * missed time once, not once per missed day; the deadline a scheduled run's job gets is the next
 * fire; a newLabels pipeline fires at N labeled rows since the last run (not at N-1), is not
 * checked while a run is in flight, and counts again from the last run's start.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import { PipelineRunner, nextScheduled, type PipelineStages, type RunRecord } from '../../ml/pipelines/index.ts';
import { log, usePipelineStore } from './fixture.ts';
const at = (iso: string) => Date.parse(iso);

/** Stages that pass at once; a run's `trained` waits on `hold` while it is set. */
function stages(o: { hold?: () => Promise<void> } = {}): PipelineStages {
  return {
    snapshot: async () => ({ digest: 'cd'.repeat(32), rows: 10 }),
    train: async () => undefined,
    trained: async (r) => {
      await o.hold?.();
      return { version: r.run + 1 };
    },
    evaluate: async () => ({ report: { pass: true, holdoutRows: 10, checks: [] } }),
    shadow: async () => ({ compared: 0, agreement: 0, distance: 0, pass: true, skipped: true, reason: 'no shadow in the pipeline spec' }),
    reject: async () => undefined,
    rollout: async () => ({ outcome: 'promoted', reason: 'direct' }),
  };
}

describe('pipeline runner: cron and new-label triggers (virtual wall time)', () => {
  const fx = usePipelineStore();
  const runner = (clock: VirtualClock, s: PipelineStages, labelsSince?: (model: string, since: number) => Promise<number>) =>
    fx.track(new PipelineRunner({ store: fx.store, stages: s, log, instance: 'sched-t', clock, now: clock.now, ...(labelsSince ? { labelsSince } : {}) }));
  const apply = fx.apply;
  const runs = (name: string): Promise<RunRecord[]> => fx.store.runs(name);
  /** One tick at virtual time `iso`, then every run it started driven to the end. */
  const tickAt = async (r: PipelineRunner, clock: VirtualClock, iso: string) => {
    clock.advanceTo(at(iso));
    await r.tick();
    await r.idle();
  };


  it('a cron fires at its times only; a new leader after days without one fires the missed time once', async () => {
    await apply({ name: 'nightly', triggers: { cron: '0 3 * * *' } });
    const clock = new VirtualClock(at('2026-01-01T01:00:00Z'));
    const a = runner(clock, stages());
    // A run by hand first: the schedule counts from the last run asked for.
    await a.fire('nightly', { kind: 'manual' });
    await a.idle();
    await tickAt(a, clock, '2026-01-01T02:59:59Z');
    expect((await runs('nightly')).length).toBe(1);
    await tickAt(a, clock, '2026-01-01T03:00:00Z');
    expect((await runs('nightly')).map((x) => [x.trigger.kind, x.trigger.at])).toEqual([
      ['manual', at('2026-01-01T01:00:00Z')],
      ['cron', at('2026-01-01T03:00:00Z')],
    ]);
    await tickAt(a, clock, '2026-01-01T03:00:01Z');
    await tickAt(a, clock, '2026-01-02T02:59:00Z');
    expect((await runs('nightly')).length).toBe(2);
    await tickAt(a, clock, '2026-01-02T03:00:30Z');
    expect((await runs('nightly')).length).toBe(3);
    // The scheduled run's job deadline: the next fire, 03:00 the day after.
    const third = (await runs('nightly'))[2]!;
    expect(third.trigger.detail).toBe('cron "0 3 * * *"');
    expect(nextScheduled(third.spec, third.trigger.at)).toBe(at('2026-01-03T03:00:00Z'));
    a.stop();

    // No leader from the 2nd until the 5th at 05:00: three 03:00s missed, one run for them.
    const b = runner(clock, stages());
    await tickAt(b, clock, '2026-01-05T05:00:00Z');
    await tickAt(b, clock, '2026-01-05T05:00:01Z');
    await tickAt(b, clock, '2026-01-05T23:00:00Z');
    const after = await runs('nightly');
    expect(after.length).toBe(4);
    expect(after[3]!.trigger).toMatchObject({ kind: 'cron', at: at('2026-01-05T05:00:00Z'), detail: expect.stringMatching(/fired late: due 2026-01-03T03:00:00\.000Z/) });
    await tickAt(b, clock, '2026-01-06T03:00:00Z');
    expect((await runs('nightly')).map((x) => x.trigger.kind)).toEqual(['manual', 'cron', 'cron', 'cron', 'cron']);
    expect((await runs('nightly')).every((x) => x.state === 'done')).toBe(true);
    b.stop();
  });

  it('a cron in a time zone, and an interval beside it, each fire at their own times', async () => {
    await apply({ name: 'both', triggers: { cron: '0 3 * * *', timezone: 'America/New_York', interval: '1h' } });
    const clock = new VirtualClock(at('2026-01-01T05:00:00Z'));
    const r = runner(clock, stages());
    await r.fire('both', { kind: 'manual' });
    await r.idle();
    await tickAt(r, clock, '2026-01-01T05:30:00Z'); // the interval starts counting
    await tickAt(r, clock, '2026-01-01T07:59:00Z'); // interval due (06:30 passed): one run
    // 03:00 in New York is 08:00 UTC in January.
    await tickAt(r, clock, '2026-01-01T08:00:00Z');
    const kinds = (await runs('both')).map((x) => x.trigger.kind);
    expect(kinds).toEqual(['manual', 'interval', 'cron']);
    r.stop();
  });

  it('newLabels fires at N labeled rows since the pipeline was applied (not at N-1), skips while a run is in flight, then counts from the last run', async () => {
    const { revision } = await apply({ name: 'labels', triggers: { newLabels: 3 } });
    const created = (await fx.store.getSpec('labels'))!.created;
    expect((await fx.store.getSpec('labels'))!.revision).toBe(revision);
    const clock = new VirtualClock(created + 1000);
    /** Labeled rows of the model, by the time they were joined. */
    const joined: { model: string; at: number }[] = [];
    const asked: number[] = [];
    const labelsSince = async (model: string, since: number) => {
      asked.push(since);
      return joined.filter((x) => x.model === model && x.at >= since).length;
    };
    let release: () => void = () => undefined;
    let held = false;
    const s = stages({ hold: () => (held ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve()) });
    const r = runner(clock, s, labelsSince);
    const label = (model = 'fraud') => joined.push({ model, at: clock.now() });

    label();
    label();
    label('other-model');
    await tickAt(r, clock, new Date(created + 2000).toISOString());
    expect(asked).toEqual([created]);
    expect(await runs('labels')).toEqual([]);
    label();
    held = true;
    clock.advance(1000);
    await r.tick();
    const first = await runs('labels');
    expect(first.map((x) => [x.run, x.trigger.kind, x.trigger.detail])).toEqual([[1, 'labels', '3 labeled rows since the pipeline was applied']]);

    // Run 1 in flight: more labels come, nothing is counted nor coalesced.
    for (let i = 0; i < 5; i++) label();
    const askedBefore = asked.length;
    clock.advance(1000);
    await r.tick();
    expect(asked.length).toBe(askedBefore);
    expect((await fx.store.getRun('labels', 1))!.record.coalesced).toEqual([]);
    release();
    await r.idle();
    expect((await fx.store.getRun('labels', 1))!.record.state).toBe('done');

    // The 5 that came during run 1 count towards run 2.
    clock.advance(1000);
    held = false;
    await r.tick();
    await r.idle();
    const all = await runs('labels');
    expect(all.map((x) => [x.run, x.trigger.detail])).toEqual([
      [1, '3 labeled rows since the pipeline was applied'],
      [2, '5 labeled rows since run 1'],
    ]);
    expect(asked.at(-1)).toBe(all[0]!.trigger.at);
    // Nothing new since run 2 started: no run 3.
    clock.advance(1000);
    await r.tick();
    await r.idle();
    expect((await runs('labels')).length).toBe(2);
    r.stop();
  });
});
