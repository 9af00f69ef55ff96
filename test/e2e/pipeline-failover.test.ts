/**
 * A pipeline's canary survives the scheduler leader (issue #16: "SIGKILL the scheduler leader
 * mid-canary: the standby resumes the same run"). A real cluster: nats-server, TWO scheduler
 * processes (the first leads; the runner and the rollout controller run on the leader only), a
 * node hosting the training job, the replicas (real onnxruntime) and the monitors; the gateway
 * in-process. v1 is trained, deployed with monitoring (2 s windows) and served; a pipeline run
 * trains v2 and canaries it in four steps while traffic flows. Once the run record shows the
 * rollout with a step recorded, the leader is SIGKILLed.
 *
 * What is correct, and asserted: the standby drives the SAME run (run 1, job `pl-pf-1`, no run 2,
 * no second training job, the canary started once) to a decision; the steps recorded before the
 * kill stay as they were and the rest follow in order — every step percentage exactly once, none
 * skipped (a step cut short by the kill is redone from its start, never recorded twice); every
 * step carries its quality verdict judged from the monitors' windows (estimated performance
 * before labels, and the score divergence); v2 ends promoted and no request failed.
 *
 * Then a candidate trained on shuffled labels, let through lenient gates, is rolled back at its
 * first canary step on its estimated AUC, with the reason in the run and the deployment history.
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, discover, seededRandom, subjects, type ProcessInfo } from '../../cluster/index.ts';
import { buildGateway } from '../../gateway/app.ts';
import { JobClient, PipelineClient, generateFraud, type RunRecord } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';

const MODULES = ['shoal:ml/serving/actors.ts', 'shoal:ml/training/actors.ts', 'shoal:ml/monitoring/monitor-actor.ts'];
const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--scheduler.leaseTtlMs', '1500', '--actors.modules', JSON.stringify(MODULES)];
const s = subjects();
const STEPS = [10, 40, 70, 100];

describe('pipeline canary across a scheduler failover (real processes)', () => {
  let c: TestCluster;
  let gw: FastifyInstance;
  let base = '';
  let pipelines: PipelineClient;
  const data = generateFraud({ rows: 6000, seed: 41, fraudRate: 0.15 });
  const D = data.columns.length;
  let serving = true;
  const statuses = new Map<number, number>();
  let traffic: Promise<void> = Promise.resolve();

  const leader = async () => (await discover(c.client, s, 300)).filter((p: ProcessInfo) => p.role === 'scheduler' && p.details.leader === true).map((p) => p.id);
  const run1 = async () => (await pipelines.runs('pf'))?.find((x) => x.run === 1);

  /** Requests of 25 rows from the dataset, one after the other, until stopped. */
  const serve = async () => {
    const r = seededRandom(7);
    while (serving) {
      const rows = Array.from({ length: 25 }, () => {
        const i = Math.floor(r() * data.rows);
        return Array.from(data.features.subarray(i * D, (i + 1) * D));
      });
      const res = await fetch(`${base}/v1/models/fraud-pf/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ instances: rows }) }).catch(() => undefined);
      statuses.set(res?.status ?? 0, (statuses.get(res?.status ?? 0) ?? 0) + 1);
      await res?.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, schedulers: ['sched-one', 'sched-two'], nodes: [{ id: 'node-pf', profile: 'cpu-ondemand' }] });
    await c.control.registerDataset('fraud-pf', data, { splitSeed: 5 });
    const jobs = await JobClient.open(c.client);
    await jobs.submit({ model: { name: 'fraud-pf', type: 'logreg' }, dataset: 'fraud-pf', hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 1 }, workers: 1 } as never, { id: 'job-fraud-pf-1' });
    expect((await jobs.follow('job-fraud-pf-1', () => undefined, 180_000)).reason).toBeUndefined();
    await c.control.setAlias('fraud-pf', 'production', 1);
    const monitoring = { sampleRate: 1, flushMs: 50, batchRecords: 100, windows: [2000], latenessMs: 300, minRows: 20 };
    // The rollout controller still guards errors; its p99 rule is loosened: on a loaded CI machine a
    // fresh canary replica's p99 alone can be over twice the stable's (seen: 149 ms vs 59 ms), and
    // this test is about the run surviving the leader, not about latency.
    const policy = { maxP99Ratio: 100, minP99DeltaMs: 10_000 };
    await until(async () => (await c.control.deploy('fraud-pf', { replicas: 1, readyTimeoutMs: 30_000, monitoring, policy })).stable.state === 'ready' || undefined, 90_000, 'fraud-pf v1 deployed');
    gw = await buildGateway({ nc: await c.nats.connect(Role.GATEWAY), subjects: s, logger: createLogger({ level: 'error', pretty: false }) });
    await gw.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(gw.server.address() as AddressInfo).port}`;
    await until(() => fetch(`${base}/v2/models/fraud-pf/ready`).then((r) => (r.status === 200 ? true : undefined)), 20_000, 'the gateway routes fraud-pf');
    pipelines = new PipelineClient(c.client, s);
  }, 300_000);

  afterAll(async () => {
    serving = false;
    await traffic;
    await gw?.close();
    await c?.stop();
  });

  it('SIGKILL the leader mid-canary: the standby resumes the same run, step by step, judged on quality, to a decision', async () => {
    traffic = serve();
    expect(await leader()).toEqual(['sched-one']);
    await pipelines.apply({
      name: 'pf',
      model: 'fraud-pf',
      data: { dataset: 'fraud-pf' },
      training: { steps: 80, seed: 2 },
      gates: { maxDrop: 0.05, holdout: 'fraud-pf' },
      rollout: { steps: STEPS, stepMs: 5000, quality: { minRows: 30, minLabeled: 50, maxWaitMs: 30_000 } },
    });
    expect(await pipelines.run('pf', 'failover test')).toEqual({ run: 1, coalesced: false });

    const mid: RunRecord = await until(async () => {
      const r = await run1();
      return r?.state === 'done' || (r?.state === 'rollout' && r.steps.length >= 1) ? r : undefined;
    }, 300_000, 'run 1 in rollout with a step recorded', 100);
    expect(mid.state, JSON.stringify(mid.decision)).toBe('rollout');
    expect(mid.by).toBe('sched-one');
    expect(mid.steps.length).toBeLessThan(STEPS.length);

    c.schedulers['sched-one']!.kill('SIGKILL');
    await until(async () => ((await leader()).join() === 'sched-two' ? true : undefined), 20_000, 'sched-two leading');

    const rec: RunRecord = await until(async () => {
      const r = await run1();
      return r?.state === 'done' ? r : undefined;
    }, 240_000, 'run 1 done', 500);
    serving = false;
    await traffic;

    // The same run, to a decision, by the standby.
    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'promoted' });
    expect(rec).toMatchObject({ run: 1, jobId: 'pl-pf-1', candidate: { version: 2 }, production: { version: 1 }, by: 'sched-two' });
    expect((await pipelines.runs('pf'))!.map((x) => x.run)).toEqual([1]);
    // One training job: the run's own (a second run would have queued pl-pf-2).
    expect((await (await JobClient.open(c.client)).get('pl-pf-1')).state).toBe('succeeded');
    await expect((await JobClient.open(c.client)).get('pl-pf-2')).rejects.toMatchObject({ code: 'SHOAL_ERR_JOB_NOT_FOUND' });

    // Steps: those recorded before the kill unchanged, then the rest in order, each exactly once.
    expect(rec.steps.slice(0, mid.steps.length)).toEqual(mid.steps);
    expect(rec.steps.map((x) => x.percent)).toEqual(STEPS);
    expect(rec.steps.every((x) => x.pass)).toBe(true);
    // Every step judged on quality from the monitors: estimated performance (no labels were sent) and the score divergence.
    for (const step of rec.steps) {
      expect(step.quality, JSON.stringify(step)).toMatchObject({ basis: 'estimated', metric: { name: 'auc' }, divergence: { pass: true } });
      expect(step.quality!.n).toBeGreaterThanOrEqual(30);
    }

    const dep = (await c.control.deployment('fraud-pf'))!;
    expect(dep.stable.version).toBe(2);
    expect(dep.canary).toBeUndefined();
    // The canary was started once (the standby found it serving and went on), never rolled back.
    expect(dep.history.filter((h) => h.event === 'canary-starting' && h.version === 2)).toHaveLength(1);
    expect(dep.history.some((h) => h.event === 'rolled-back')).toBe(false);
    // Every request answered, through the failover.
    expect([...statuses.keys()], JSON.stringify(Object.fromEntries(statuses))).toEqual([200]);
  }, 600_000);

  it('a candidate that passes lenient gates but whose scores carry no information is rolled back at its first step, on quality, with the reason', async () => {
    // The same rows with the labels shuffled: a model trained on them has learnt nothing.
    const labels = Uint8Array.from(data.labels);
    const r = seededRandom(99);
    for (let i = labels.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [labels[i], labels[j]] = [labels[j]!, labels[i]!];
    }
    await c.control.registerDataset('fraud-pf-shuffled', { ...data, labels }, { splitSeed: 5 });
    const stableBefore = (await c.control.deployment('fraud-pf'))!.stable.version;
    serving = true;
    traffic = serve();
    await pipelines.apply({
      name: 'pf-bad',
      model: 'fraud-pf',
      data: { dataset: 'fraud-pf-shuffled' },
      training: { steps: 80, seed: 3 },
      gates: { maxDrop: 1, holdout: 'fraud-pf' },
      rollout: { steps: [10, 50, 100], stepMs: 4000, quality: { minRows: 30, maxWaitMs: 30_000 } },
    });
    await pipelines.run('pf-bad');
    const rec: RunRecord = await until(async () => {
      const x = (await pipelines.runs('pf-bad'))?.find((y) => y.run === 1);
      return x?.state === 'done' ? x : undefined;
    }, 300_000, 'pf-bad run 1 done', 500);
    serving = false;
    await traffic;

    expect(rec.decision, JSON.stringify(rec)).toMatchObject({ outcome: 'rolled-back', reason: expect.stringMatching(/^rolled back at 10%: 2s window: estimated auc .* worse than the stable's/) });
    expect(rec.steps).toHaveLength(1);
    expect(rec.steps[0]).toMatchObject({ percent: 10, pass: false, quality: { pass: false, basis: 'estimated', metric: { name: 'auc' } } });
    expect(rec.steps[0]!.quality!.metric!.canary.value).toBeLessThan(0.65);
    const dep = (await c.control.deployment('fraud-pf'))!;
    expect(dep.canary).toBeUndefined();
    expect(dep.stable.version).toBe(stableBefore);
    expect(dep.history.at(-1)).toMatchObject({ event: 'rolled-back', version: rec.candidate!.version, detail: expect.stringMatching(/^pipeline pf-bad run 1 canary quality: /) });
  }, 600_000);
});
