/**
 * Continuous training end to end on a real cluster (nats-server with auth, a scheduler running
 * the default control modules — the pipelines service and the leader's runner — and a node agent):
 * a manual run trains a candidate through the job queue, passes the gates against production on
 * the same holdout and is promoted (the model has no deployment, so the production alias moves);
 * a candidate trained on shuffled labels is rejected at the gate with the report, marked rejected in
 * the registry, and production is untouched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { JobClient, ModelRegistry, PipelineClient, generateFraud, type RunRecord } from '../../ml/index.ts';
import { subjects } from '../../cluster/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];

describe('continuous training pipeline (real cluster)', () => {
  let c: TestCluster;
  let pipelines: PipelineClient;
  let registry: ModelRegistry;
  const done = (name: string, run: number) =>
    until(async () => {
      const r = (await pipelines.runs(name))?.find((x) => x.run === run);
      return r?.state === 'done' ? r : undefined;
    }, 300_000, `${name} run ${run} done`, 500);

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-ct', profile: 'cpu-ondemand' }] });
    const data = generateFraud({ rows: 6000, seed: 31 });
    await c.control.registerDataset('fraud-ct', data, { splitSeed: 5 });
    // The same rows with the labels shuffled: a model trained on them has learnt nothing.
    const labels = Uint8Array.from(data.labels);
    const r = seededRandom(99);
    for (let i = labels.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [labels[i], labels[j]] = [labels[j]!, labels[i]!];
    }
    await c.control.registerDataset('fraud-ct-shuffled', { ...data, labels }, { splitSeed: 5 });
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: 'fraud-ct', type: 'logreg' }, dataset: 'fraud-ct', hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 1 }, workers: 1 } as never, { id: 'job-fraud-ct-1' });
    expect((await jobs.follow('job-fraud-ct-1', () => undefined, 180_000)).reason).toBeUndefined();
    await c.control.setAlias('fraud-ct', 'production', 1);
    registry = await ModelRegistry.open(c.client);
    pipelines = new PipelineClient(c.client, subjects());
  }, 300_000);

  afterAll(async () => {
    await c?.stop();
  });

  it('a manual run trains, passes the gates on the same holdout as production, and is promoted', async () => {
    const applied = await pipelines.apply({ name: 'ct', model: 'fraud-ct', data: { dataset: 'fraud-ct' }, training: { steps: 80, seed: 2 }, gates: { maxDrop: 0.05, holdout: 'fraud-ct', latency: { maxRatio: 1000, requests: 100 } } });
    expect(applied).toMatchObject({ name: 'ct', created: true });
    expect(await pipelines.run('ct', 'test')).toEqual({ run: 1, coalesced: false });
    const rec: RunRecord = await done('ct', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'promoted' });
    expect(rec).toMatchObject({ trigger: { kind: 'manual', detail: 'test' }, jobId: 'pl-ct-1', candidate: { version: 2 }, production: { version: 1 }, report: { pass: true } });
    expect(rec.snapshot?.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(rec.report?.auc?.candidate).toBeGreaterThan(0.6);
    // The latency gate replayed the holdout (the model is not served, so nothing is logged) to both versions.
    expect(rec.report?.latency).toMatchObject({ requests: 100, source: 'holdout', production: { p99: expect.any(Number) } });
    expect(rec.report?.checks.find((x) => x.gate === 'latency')?.message).toMatch(/over 100 replayed requests \(holdout rows: no logged traffic\), production .*× ≤ 1000×/);
    expect((await registry.get('fraud-ct')).aliases['production']).toBe(2);
    // Spot by default: the job was queued with spotOk.
    const job = await (await JobClient.open(c.client)).get('pl-ct-1');
    expect((job.spec as { spotOk?: boolean }).spotOk).toBe(true);
  }, 360_000);

  it('a candidate trained on shuffled labels is rejected at the gate with the report; production is untouched', async () => {
    await pipelines.apply({ name: 'ct-shuffled', model: 'fraud-ct', data: { dataset: 'fraud-ct-shuffled' }, training: { steps: 80, seed: 3 }, gates: { maxDrop: 0.02, holdout: 'fraud-ct' } });
    await pipelines.run('ct-shuffled');
    const rec = await done('ct-shuffled', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'rejected' });
    expect(rec.report?.pass).toBe(false);
    const aucCheck = rec.report?.checks.find((x) => x.gate === 'auc');
    expect(aucCheck?.pass).toBe(false);
    expect(rec.decision?.reason).toMatch(/AUC .* vs production/);
    const candidate = await registry.version('fraud-ct', rec.candidate!.version);
    expect(candidate.rejected?.reason).toMatch(/ct-shuffled run 1 gates: AUC/);
    expect((await registry.get('fraud-ct')).aliases['production']).toBe(2);
    expect(rec.steps).toEqual([]);
  }, 360_000);

  it('a candidate that fails the fairness policy is rejected at the gate with the violation; production is untouched', async () => {
    const before = (await registry.get('fraud-ct')).aliases['production'];
    // The generator gives under-30s younger accounts, which the model scores as riskier: the four-fifths rule fails.
    await pipelines.apply({ name: 'ct-fair', model: 'fraud-ct', data: { dataset: 'fraud-ct' }, training: { steps: 80, seed: 5 }, gates: { maxDrop: 0.5, holdout: 'fraud-ct', fairness: { attributes: ['age_under_30'], disparateImpact: { min: 0.8 } } } });
    await pipelines.run('ct-fair');
    const rec = await done('ct-fair', 1);
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'rejected' });
    const checks = new Map(rec.report!.checks.map((x) => [x.gate, x]));
    // Accuracy alone would have passed it; the fairness gate did not.
    expect(checks.get('auc')?.pass).toBe(true);
    expect(checks.get('fairness')?.pass).toBe(false);
    expect(checks.get('fairness')?.message).toMatch(/disparateImpact \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] for age_under_30 .*is not ≥ 0\.8/);
    const candidate = await registry.version('fraud-ct', rec.candidate!.version);
    expect(candidate.rejected?.reason).toMatch(/ct-fair run 1 gates: .*disparateImpact/);
    expect((await registry.get('fraud-ct')).aliases['production']).toBe(before);
  }, 360_000);

  it('an interval pipeline every second: runs never overlap, and a trigger during a run is recorded as coalesced', async () => {
    await pipelines.apply({ name: 'ct-every', model: 'fraud-ct', triggers: { interval: '1s' }, data: { dataset: 'fraud-ct' }, training: { steps: 80, seed: 4 }, gates: { maxDrop: 0.5, holdout: 'fraud-ct' }, rollout: { direct: true } });
    // Observed while runs go on: never two runs in flight at once.
    let maxInFlight = 0;
    let coalescedReply = false;
    await until(async () => {
      const runs = (await pipelines.runs('ct-every')) ?? [];
      maxInFlight = Math.max(maxInFlight, runs.filter((x) => x.state !== 'done').length);
      if (!coalescedReply && runs.some((x) => x.state !== 'done')) coalescedReply = (await pipelines.run('ct-every', 'while one runs')).coalesced;
      return runs.filter((x) => x.state === 'done').length >= 3 && coalescedReply ? true : undefined;
    }, 300_000, 'three interval runs done and one coalesced trigger', 200);
    const runs = (await pipelines.runs('ct-every'))!;
    expect(maxInFlight).toBeLessThanOrEqual(1);
    expect(runs.map((x) => x.run)).toEqual(runs.map((_, i) => i + 1));
    // One training job per run, none shared.
    expect(new Set(runs.filter((x) => x.jobId).map((x) => x.jobId)).size).toBe(runs.filter((x) => x.jobId).length);
    expect(runs.flatMap((x) => x.coalesced).some((t) => t.kind === 'manual' && t.detail === 'while one runs')).toBe(true);
    expect(runs[0]!.trigger.kind).toBe('interval');
  }, 360_000);
});
