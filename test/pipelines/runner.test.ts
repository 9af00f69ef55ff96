/**
 * The pipeline runner against a real nats-server, with stages injected: every stage recorded in
 * the run (CAS), a failing gate rejects, two triggers make one run (the second coalesced), interval
 * runs never overlap, and a second runner (the new leader) continues the same run.
 */
import { describe, expect, it } from 'vitest';
import { PipelineRunner, type GateReport, type PipelineStages, type RunRecord, type ShadowStageReport } from '../../ml/pipelines/index.ts';
import { until } from '../harness/wait.ts';
import { log, usePipelineStore } from './fixture.ts';
const passing: GateReport = { pass: true, holdoutRows: 10, checks: [{ gate: 'auc', pass: true, message: 'ok' }] };
const failing: GateReport = { pass: false, holdoutRows: 10, checks: [{ gate: 'auc', pass: false, message: 'AUC 0.50 vs production 0.90' }] };

interface Fake extends PipelineStages {
  calls: string[];
  rejected: string[];
  inFlight: Set<number>;
  maxInFlight: number;
}

function fakeStages(o: { report?: GateReport; trained?: (r: RunRecord) => Promise<{ version: number }>; shadow?: (r: RunRecord) => Promise<ShadowStageReport> } = {}): Fake {
  const f: Fake = {
    calls: [],
    rejected: [],
    inFlight: new Set(),
    maxInFlight: 0,
    async snapshot(r) {
      f.inFlight.add(r.run);
      f.maxInFlight = Math.max(f.maxInFlight, f.inFlight.size);
      f.calls.push(`snapshot ${r.run}`);
      return { digest: 'ab'.repeat(32), rows: 100 };
    },
    async train(r, jobId) {
      f.calls.push(`train ${r.run} ${jobId}`);
    },
    async trained(r) {
      f.calls.push(`trained ${r.run}`);
      return o.trained ? o.trained(r) : { version: r.run + 1 };
    },
    async evaluate(r) {
      f.calls.push(`evaluate ${r.run}`);
      return { report: o.report ?? passing, production: 1 };
    },
    async shadow(r) {
      f.calls.push(`shadow ${r.run}`);
      if (o.shadow) return o.shadow(r);
      return r.spec.shadow ? { compared: 300, agreement: 0.97, distance: 0.02, pass: true, reason: 'shadow: agreement 97.0%' } : { compared: 0, agreement: 0, distance: 0, pass: true, skipped: true, reason: 'no shadow in the pipeline spec' };
    },
    async reject(r, reason) {
      f.rejected.push(reason);
      f.inFlight.delete(r.run);
    },
    async rollout(r, onStep) {
      for (const percent of r.spec.rollout.steps.slice(r.steps.length)) await onStep({ percent, pass: true, at: 0 });
      f.inFlight.delete(r.run);
      return { outcome: 'promoted', reason: 'every canary step passed' };
    },
  };
  return f;
}

describe('pipeline runner', () => {
  const fx = usePipelineStore();
  // A logical clock for the records: every stamp is later than the one before, no wall clock read.
  let stamp = 0;
  const runner = (stages: PipelineStages, instance = 'sched-a') => fx.track(new PipelineRunner({ store: fx.store, stages, log, instance, tickMs: 100, now: () => ++stamp }));
  const apply = fx.apply;
  const done = (name: string, run: number) => until(async () => ((await fx.store.getRun(name, run))?.record.state === 'done' ? (await fx.store.getRun(name, run))!.record : undefined), 20_000, `${name} run ${run} done`);


  it('a manual run goes trigger → snapshot → job → report → canary steps → promoted, each recorded', async () => {
    await apply({ name: 'manual', rollout: { steps: [10, 50, 100] } });
    const stages = fakeStages();
    const r = runner(stages);
    await r.start();
    expect(await r.fire('manual', { kind: 'manual', detail: 'by hand' })).toEqual({ run: 1, coalesced: false });
    const rec = await done('manual', 1);
    expect(rec).toMatchObject({ trigger: { kind: 'manual', detail: 'by hand' }, snapshot: { digest: 'ab'.repeat(32) }, jobId: 'pl-manual-1', candidate: { version: 2 }, production: { version: 1 }, report: passing, decision: { outcome: 'promoted' }, by: 'sched-a' });
    expect(rec.steps.map((s) => s.percent)).toEqual([10, 50, 100]);
    expect(stages.calls).toEqual(['snapshot 1', 'train 1 pl-manual-1', 'trained 1', 'evaluate 1', 'shadow 1']);
    // No shadow in the spec: the stage is recorded as skipped.
    expect(rec.shadowReport).toMatchObject({ skipped: true, pass: true });
    // Each state's entry is stamped, in the order the run went through them.
    const order = ['snapshotted', 'training', 'trained', 'evaluated', 'shadow', 'rollout', 'done'] as const;
    const stamps = order.map((k) => rec.entered?.[k]);
    expect(stamps.every((t) => typeof t === 'number')).toBe(true);
    expect([...stamps].sort((a, b) => a! - b!)).toEqual(stamps);
    r.stop();
  });

  it('a candidate failing its gates is rejected with the report and never rolled out', async () => {
    await apply({ name: 'gated' });
    const stages = fakeStages({ report: failing });
    const r = runner(stages);
    await r.start();
    await r.fire('gated', { kind: 'manual' });
    const rec = await done('gated', 1);
    expect(rec.decision).toMatchObject({ outcome: 'rejected', reason: 'AUC 0.50 vs production 0.90' });
    expect(rec.report).toEqual(failing);
    expect(rec.steps).toEqual([]);
    expect(stages.rejected[0]).toMatch(/AUC 0\.50 vs production 0\.90/);
    r.stop();
  });

  it('two triggers at once make one run; the second is recorded as coalesced', async () => {
    await apply({ name: 'twice' });
    const [a, b] = await Promise.all([fx.store.trigger('twice', { kind: 'manual', at: 1 }), fx.store.trigger('twice', { kind: 'alert', at: 2, detail: 'feature-drift' })]);
    expect([a.coalesced, b.coalesced].sort()).toEqual([false, true]);
    expect(a.run).toBe(1);
    expect(b.run).toBe(1);
    const runs = await fx.store.runs('twice');
    expect(runs).toHaveLength(1);
    expect(runs[0]!.coalesced).toHaveLength(1);
  });

  it('an interval pipeline every second: runs never overlap, triggers during a run are coalesced into it', async () => {
    await apply({ name: 'every', triggers: { interval: '1s' } });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // Run 1 trains until released; later runs train at once.
    const stages = fakeStages({ trained: async (r) => (r.run === 1 ? gate.then(() => ({ version: 2 })) : { version: r.run + 1 }) });
    const r = runner(stages);
    await r.start();
    await until(async () => ((await fx.store.getRun('every', 1))?.record.coalesced.length ?? 0) >= 2 || undefined, 20_000, 'two interval triggers coalesced into run 1');
    expect(await fx.store.runNumbers('every')).toEqual([1]);
    release();
    await done('every', 1);
    await done('every', 3);
    r.stop();
    await r.idle();
    expect(stages.maxInFlight).toBe(1);
    const runs = await fx.store.runs('every');
    expect(runs.every((x) => x.trigger.kind === 'interval')).toBe(true);
    expect(runs[0]!.coalesced.every((c) => c.kind === 'interval')).toBe(true);
    // Each run was started only after the one before it was done (logical stamps).
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.trigger.at).toBeGreaterThan(runs[i - 1]!.decision?.at ?? Infinity);
  });

  it('a new leader continues the same run from its record (the job is not submitted again)', async () => {
    await apply({ name: 'failover' });
    const hung = fakeStages({ trained: () => new Promise(() => undefined) });
    const a = runner(hung, 'sched-a');
    await a.start();
    await a.fire('failover', { kind: 'manual' });
    await until(async () => ((await fx.store.getRun('failover', 1))?.record.state === 'training' ? true : undefined), 20_000, 'run 1 training');
    a.stop(); // leadership lost
    const fresh = fakeStages();
    const b = runner(fresh, 'sched-b');
    await b.start();
    const rec = await done('failover', 1);
    expect(rec).toMatchObject({ jobId: 'pl-failover-1', decision: { outcome: 'promoted' }, by: 'sched-b' });
    expect(fresh.calls).toEqual(['trained 1', 'evaluate 1', 'shadow 1']);
    expect(hung.calls.filter((c) => c.startsWith('train '))).toEqual(['train 1 pl-failover-1']);
    expect(await fx.store.runNumbers('failover')).toEqual([1]);
    b.stop();
  });

  it('a run with a shadow goes evaluated → shadow → rollout, the shadow report recorded', async () => {
    await apply({ name: 'shadowed', shadow: { minCompared: 250 }, rollout: { steps: [50, 100] } });
    const stages = fakeStages();
    const r = runner(stages);
    await r.start();
    await r.fire('shadowed', { kind: 'manual' });
    const rec = await done('shadowed', 1);
    expect(rec.decision?.outcome).toBe('promoted');
    expect(rec.spec.shadow).toEqual({ fraction: 0.1, durationMs: 30_000, minCompared: 250, minAgreement: 0.9, maxDistance: 0.1, maxWaitMs: 300_000 });
    expect(rec.shadowReport).toEqual({ compared: 300, agreement: 0.97, distance: 0.02, pass: true, reason: 'shadow: agreement 97.0%' });
    expect(rec.shadowReport?.skipped).toBeUndefined();
    expect(stages.calls.at(-1)).toBe('shadow 1');
    expect(rec.steps.map((x) => x.percent)).toEqual([50, 100]);
    r.stop();
  });

  it('a candidate failing its shadow is rejected with the reason and never rolled out', async () => {
    await apply({ name: 'shadow-fails', shadow: {} });
    const reason = 'shadow: agreement 41.0% below 90.0% over 400 rows';
    const stages = fakeStages({ shadow: async () => ({ compared: 400, agreement: 0.41, distance: 0.8, pass: false, reason }) });
    const r = runner(stages);
    await r.start();
    await r.fire('shadow-fails', { kind: 'manual' });
    const rec = await done('shadow-fails', 1);
    expect(rec.decision).toMatchObject({ outcome: 'rejected', reason });
    expect(rec.shadowReport).toMatchObject({ pass: false, compared: 400, agreement: 0.41 });
    expect(rec.steps).toEqual([]);
    expect(stages.rejected).toEqual([`pipeline shadow-fails run 1 ${reason}`]);
    r.stop();
  });

  it('a shadow stage that throws ends the run failed, the candidate not rejected', async () => {
    await apply({ name: 'shadow-errs', shadow: {} });
    const stages = fakeStages({ shadow: async () => Promise.reject(new Error('too few rows compared')) });
    const r = runner(stages);
    await r.start();
    await r.fire('shadow-errs', { kind: 'manual' });
    const rec = await done('shadow-errs', 1);
    expect(rec.decision).toMatchObject({ outcome: 'failed', reason: 'shadow: too few rows compared' });
    expect(stages.rejected).toEqual([]);
    r.stop();
  });

  it('a new leader resuming a run in state shadow runs the shadow stage once more (it reuses the shadow), not the earlier stages', async () => {
    await apply({ name: 'shadow-failover', shadow: {} });
    const hung = fakeStages({ shadow: () => new Promise(() => undefined) });
    const a = runner(hung, 'sched-a');
    await a.start();
    await a.fire('shadow-failover', { kind: 'manual' });
    await until(async () => ((await fx.store.getRun('shadow-failover', 1))?.record.state === 'shadow' ? true : undefined), 20_000, 'run 1 in shadow');
    a.stop();
    const fresh = fakeStages();
    const b = runner(fresh, 'sched-b');
    await b.start();
    const rec = await done('shadow-failover', 1);
    expect(rec).toMatchObject({ decision: { outcome: 'promoted' }, by: 'sched-b', shadowReport: { pass: true, compared: 300 } });
    expect(fresh.calls).toEqual(['shadow 1']);
    b.stop();
  });
});
