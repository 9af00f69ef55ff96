/**
 * Drift → retrain → promote, end to end (issue #16): "serve the fraud model, inject drift with the
 * generator's knob → the monitor alerts → the pipeline retrains on recent data → the candidate
 * passes the gates → shadow → canary → promoted, and the drift alert clears on the new version."
 *
 * The scenario (cluster, data, v1, monitoring, pipeline, traffic) is test/harness/ct-scenario.ts,
 * shared with `npm run bench:pipeline`. Asserted, in order of the chain: a drift alert for v1
 * after the shift → a run triggered by kind `alert` → candidate v2 trained on the recent data plus
 * the feedback labels, through the gates → every canary step passed → promoted → drifted traffic
 * answered by v2 — and v2's monitor closes a window of that drifted traffic in which the dataset
 * is not flagged drifted and no drift alert is raised (v2's reference profile is the holdout of
 * its own, recent, training data). The candidate shadows v1 on half the drifted traffic first.
 * No wall-clock pass/fail: every wait is on the run record or the monitor's windows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetStore } from '../../ml/index.ts';
import { CtScenario, type CtResult } from '../harness/ct-scenario.ts';
import { until } from '../harness/wait.ts';

describe('drift → retrain → promote (real cluster)', () => {
  let sc: CtScenario;
  let res: CtResult;

  beforeAll(async () => {
    sc = await CtScenario.start({ model: 'fraud-dr' });
  }, 400_000);

  afterAll(async () => {
    await sc?.stop();
  });

  it('the drift alert on v1 starts a run whose candidate passes the gates and the canary and is promoted', async () => {
    sc.serveReference();
    res = await sc.driftToDecision();
    const rec = res.record;

    // The alert: a drift rule on v1, raised on a window that holds drifted traffic.
    const drift = res.alerts.filter((a) => CtScenario.isDriftAlert(a) && a.model === 'fraud-dr');
    expect(drift.length, JSON.stringify(res.alerts)).toBeGreaterThan(0);
    expect(drift[0]).toMatchObject({ version: 1 });
    expect(drift[0]!.windowEnd).toBeGreaterThan(res.t0);
    // No run before the shift: the first run is the alert's.
    const all = await sc.runs();
    expect(rec.run, JSON.stringify(all.map((r) => ({ run: r.run, trigger: r.trigger, decision: r.decision, entered: r.entered })))).toBe(1);
    expect(rec.trigger.kind).toBe('alert');
    expect(rec.trigger.at).toBeGreaterThanOrEqual(res.t0);
    expect(rec.trigger.detail).toMatch(/^(feature-drift|dataset-drift|prediction-drift): /);

    // The data: the recent dataset plus the drifted traffic's feedback labels, a new version pinned by digest.
    expect(rec.snapshot).toMatchObject({ dataset: 'fraud-dr-recent-labeled', skippedRows: 0 });
    expect(rec.snapshot!.labeledRows).toBeGreaterThan(0);
    expect(await (await DatasetStore.open(sc.cluster.client)).resolve(`sha256:${rec.snapshot!.digest}`)).toMatchObject({ name: 'fraud-dr-recent-labeled' });

    // Gates passed, candidate v2 against production v1.
    expect(rec).toMatchObject({ jobId: 'pl-fraud-dr-drift-1', candidate: { version: 2 }, production: { version: 1 } });
    expect(rec.report?.pass, JSON.stringify(rec.report)).toBe(true);

    // Canary: every step, each passed and judged on quality; promoted.
    const history = (await sc.cluster.control.deployment('fraud-dr'))?.history.slice(-6);
    expect(rec.decision, JSON.stringify({ decision: rec.decision, steps: rec.steps, history })).toMatchObject({ outcome: 'promoted' });
    expect(rec.steps.map((x) => x.percent), JSON.stringify(rec.steps)).toEqual([25, 100]);
    for (const step of rec.steps) expect(step, JSON.stringify(step)).toMatchObject({ pass: true, quality: { pass: true } });
    // Shadow: the candidate answered mirrored drifted traffic before its canary, compared with v1's answers.
    expect(rec.shadowReport, JSON.stringify(rec.shadowReport)).toMatchObject({ pass: true });
    expect(rec.shadowReport!.skipped).toBeUndefined();
    expect(rec.shadowReport!.compared).toBeGreaterThanOrEqual(100);
    // Every stage entered, in order.
    const e = rec.entered!;
    const order = [e.snapshotted, e.training, e.trained, e.evaluated, e.shadow, e.rollout, e.done];
    expect(order.every((x) => typeof x === 'number')).toBe(true);
    expect([...order].sort((a, b) => a! - b!)).toEqual(order);
    expect(res.timings.shadow).toBe(e.rollout! - e.shadow!);
    // The stages cover the run but for the runner's hops between states (evaluated → shadow).
    expect(res.timings.total).toBe(e.done! - res.t0);
    expect(res.timings.detect + res.timings.data + res.timings.train + res.timings.gates + res.timings.shadow! + res.timings.canary).toBeLessThanOrEqual(res.timings.total);

    const dep = (await sc.cluster.control.deployment('fraud-dr'))!;
    expect(dep.stable.version).toBe(2);
    expect(dep.canary).toBeUndefined();

    // v2 answers the drifted traffic.
    const before = sc.versions.get('2') ?? 0;
    await until(() => ((sc.versions.get('2') ?? 0) >= before + 20 ? true : undefined), 60_000, 'drifted requests answered by v2');
    expect(sc.statuses.get(200)).toBeGreaterThan(0);
  }, 700_000);

  it('the drift alert clears on the new version: v2 sees the drifted traffic as its own population', async () => {
    expect(res?.record.decision?.outcome).toBe('promoted');
    const promotedAt = res.record.entered!.done!;
    // A window of v2, as the stable, wholly after promotion, of drifted traffic.
    const w = await sc.windowAfter(2, promotedAt, 120_000);
    await sc.stopTraffic();
    expect(w.rows).toBeGreaterThanOrEqual(40);
    expect(w.drift, JSON.stringify(w)).toBeDefined();
    expect(w.drift!.datasetDrift, JSON.stringify(w.drift!.features.filter((f) => f.drifted))).toBe(false);
    expect(w.alerts.filter(CtScenario.isDriftAlert), JSON.stringify(w.alerts)).toEqual([]);
    // The same traffic on v1 was flagged: the window that raised the first alert.
    const first = res.alerts.find((a) => CtScenario.isDriftAlert(a) && a.model === 'fraud-dr')!;
    expect(first.version).toBe(1);
    // Nothing retrains v2: its windows raise no drift alert, and v1's alerts (its last windows close after the promotion) trigger nothing.
    expect((await sc.runs()).map((r) => r.run)).toEqual([1]);
  }, 300_000);
});
