/**
 * Training jobs end to end on real processes: a real nats-server, scheduler and two node
 * agents (loading the training and inference actors), the generated fraud dataset in the
 * object store, jobs submitted over JetStream, models landing in the registry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { ActorClient, JobStore, Role, decode, openBucket, resources, subjects, type DirectoryEntry, type JobRecord, type NatsConnection } from '../../cluster/index.ts';
import { DatasetStore, JobClient, ModelRegistry, RegistryClient, generateFraud, take, type BinaryMetrics, type DatasetVersion } from '../../ml/index.ts';
import { openCheckpointStore } from '../../ml/training/checkpoints.ts';
import { shardName } from '../../ml/training/shards.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import type { TestNats } from '../harness/nats.ts';
import type { TestProcess } from '../harness/processes.ts';
import { until } from '../harness/wait.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/training/actors.ts"]'];

interface Result {
  model: string;
  version: number;
  metrics: BinaryMetrics;
  datasetDigest: string;
  check: { rows: number[]; predictions: number[] };
}

describe('training jobs (real processes)', () => {
  let c: TestCluster;
  let nats: TestNats;
  let nc: NatsConnection;
  let jobs: JobClient;
  let ds: DatasetVersion;
  /** Reads of datasets (resolve, load); registering goes through the registry service. */
  let store: DatasetStore;
  let control: RegistryClient;
  const nodes: Record<string, TestProcess> = {};
  /** How many of a job's training shards are in the checkpoint store (read with the scheduler's rights). */
  let shardsOf: (jobId: string, world: number) => Promise<number>;
  const spec = (over: Record<string, unknown> = {}) => ({
    model: { name: 'fraud', type: 'logreg' },
    dataset: 'fraud-ref',
    hyper: { optimizer: 'adam', lr: 0.05, steps: 60, batchSize: 512, seed: 7 },
    workers: 2,
    checkpointEvery: 10,
    ...over,
  });

  /** Waits until a 2-worker job's coordinator and workers have left the actor directory. */
  const actorsGone = async (jobId: string) => {
    const dir = await openBucket(nc, resources().buckets.actors);
    await until(async () => {
      for (const id of [`job-${jobId}`, `job-${jobId}-w-1`, `job-${jobId}-w-2`]) {
        const e = await dir.get(id);
        if (e && e.operation === 'PUT') return undefined;
      }
      return true;
    }, 20_000, `${jobId} actors gone`);
  };

  beforeAll(async () => {
    c = await startCluster({
      args: ARGS,
      nodes: [
        'train-a',
        { id: 'train-b', profile: 'cpu-ondemand' },
        // A cheap node that loads only the serving actors: training actors must never be placed there.
        { id: 'serve-only', args: ['--actors.modules', '["shoal:ml/serving/actors.ts"]'] },
      ],
    });
    nats = c.nats;
    nodes.a = c.nodes['train-a']!;
    nodes.b = c.nodes['train-b']!;
    nodes.serve = c.nodes['serve-only']!;
    nc = c.client;
    store = await DatasetStore.open(nc);
    control = c.control;
    ds = await control.registerDataset('fraud-ref', generateFraud({ rows: 20_000, seed: 11 }), { splitSeed: 5, source: 'generator seed 11' });
    jobs = await JobClient.open(nc);
    const ckpts = await openCheckpointStore(await nats.connect(Role.SCHEDULER), 'shoal');
    shardsOf = async (jobId, world) => {
      let n = 0;
      for (let rank = 0; rank < world; rank++) {
        const info = await ckpts.info(shardName({ jobId, world, rank }));
        if (info && !info.deleted) n++;
      }
      return n;
    };
  }, 90_000);

  afterAll(async () => c?.stop());

  it('stores datasets content-addressed: the same data is the same version', async () => {
    const again = await control.registerDataset('fraud-ref', generateFraud({ rows: 20_000, seed: 11 }), { splitSeed: 5 });
    expect(again.digest).toBe(ds.digest);
    expect((await store.resolve(`fraud-ref@${ds.digest.slice(0, 8)}`)).digest).toBe(ds.digest);
    expect((await store.resolve(`sha256:${ds.digest}`)).rows).toBe(20_000);
    const drifted = await control.registerDataset('fraud-drift', generateFraud({ rows: 2000, seed: 11, drift: 1 }));
    expect(drifted.digest).not.toBe(ds.digest);
    expect(ds.positives / ds.rows).toBeGreaterThan(0.01);
    expect(ds.positives / ds.rows).toBeLessThan(0.08);
  });

  it('trains data-parallel to a good holdout AUC, exports ONNX that matches, registers with lineage', async () => {
    const { id } = await jobs.submit(spec(), { id: 'job-auc' });
    const states = new Set<string>();
    const done = await jobs.follow(id, (r) => states.add(r.state), 120_000);
    expect(done.reason).toBeUndefined();
    expect(done.state).toBe('succeeded');
    expect(states.has('running')).toBe(true);
    const result = done.result as unknown as Result;
    expect(result.metrics.auc).toBeGreaterThan(0.8);
    expect(result.metrics.rows).toBe(ds.splits.holdout);
    // The threshold is picked on validation, so the rare class is actually flagged.
    expect(result.metrics.recall).toBeGreaterThan(0);
    expect(result.metrics.threshold).toBeLessThan(0.5);

    const registry = await ModelRegistry.open(nc);
    const mv = await registry.version('fraud', result.version);
    expect(mv.lineage).toMatchObject({ datasetDigest: ds.digest, trainingJobId: 'job-auc' });
    expect(mv.metrics?.auc).toBeCloseTo(result.metrics.auc, 10);

    // The exported model, run by onnxruntime, gives the trainer's own predictions.
    const { bytes } = await registry.loadArtifact('fraud', result.version);
    const session = await ort.InferenceSession.create(bytes);
    const data = await store.load(ds);
    const rows = take(data, result.check.rows);
    const out = await session.run({ X: new ort.Tensor('float32', rows.x, [rows.y.length, rows.d]) });
    const y = out.Y!.data as Float32Array;
    result.check.predictions.forEach((p, i) => expect(Math.abs(y[i]! - p)).toBeLessThan(1e-5));
    // Each worker trained on its own shard; the shards went with the job.
    await until(async () => ((await shardsOf('job-auc', 2)) === 0) || undefined, 10_000, 'job-auc shards removed');
  });

  it('trains an MLP with two hidden layers the same way', async () => {
    await jobs.submit(spec({ model: { name: 'fraud-mlp', type: 'mlp', hidden: [16, 8] }, hyper: { optimizer: 'adam', lr: 0.01, steps: 80, batchSize: 512, seed: 2 } }), { id: 'job-mlp' });
    const done = await jobs.follow('job-mlp', () => undefined, 120_000);
    expect(done.reason).toBeUndefined();
    expect(done.state).toBe('succeeded');
    const result = done.result as unknown as Result;
    expect(result.metrics.auc).toBeGreaterThan(0.8);
    const { bytes } = await (await ModelRegistry.open(nc)).loadArtifact('fraud-mlp', result.version);
    const session = await ort.InferenceSession.create(bytes);
    const rows = take(await store.load(ds), result.check.rows);
    const y = (await session.run({ X: new ort.Tensor('float32', rows.x, [rows.y.length, rows.d]) })).Y!.data as Float32Array;
    result.check.predictions.forEach((p, i) => expect(Math.abs(y[i]! - p)).toBeLessThan(1e-5));
  });

  it('asks the registry service for a canary with the node\'s own rights (here refused: the model is not deployed)', async () => {
    await jobs.submit(spec({ model: { name: 'fraud-undeployed', type: 'logreg' }, hyper: { optimizer: 'adam', lr: 0.05, steps: 10, batchSize: 256, seed: 3 }, deploy: 'canary' }), { id: 'job-canary' });
    const done = await jobs.follow('job-canary', () => undefined, 120_000);
    expect(done.state).toBe('succeeded');
    // The request reached the service (a node may ask for a canary) and got its typed answer.
    expect((done.result as { deployed?: string }).deployed).toMatch(/^not deployed: model "fraud-undeployed" is not deployed/);
  });

  it('is deterministic for a fixed seed and worker count', async () => {
    const s1 = spec({ hyper: { optimizer: 'adam', lr: 0.05, steps: 30, batchSize: 256, seed: 21 } });
    await jobs.submit(s1, { id: 'job-det-a' });
    await jobs.submit(s1, { id: 'job-det-b' });
    const [a, b] = await Promise.all([jobs.follow('job-det-a', () => undefined, 60_000), jobs.follow('job-det-b', () => undefined, 60_000)]);
    const pa = (a.result as unknown as Result).check.predictions;
    const pb = (b.result as unknown as Result).check.predictions;
    pa.forEach((p, i) => expect(Math.abs(p - pb[i]!)).toBeLessThan(1e-6));
    // …and the seed matters.
    await jobs.submit(spec({ hyper: { optimizer: 'adam', lr: 0.05, steps: 30, batchSize: 256, seed: 22 } }), { id: 'job-det-c' });
    const c = await jobs.follow('job-det-c', () => undefined, 60_000);
    expect((c.result as unknown as Result).check.predictions.some((p, i) => Math.abs(p - pa[i]!) > 1e-6)).toBe(true);
  });

  it('a job behind its deadline moves its workers from spot to on-demand (Uniform Progress)', async () => {
    // A deadline it cannot meet on the uniform line: the policy switches to on-demand at the first checkpoint.
    await jobs.submit(spec({ hyper: { steps: 40, seed: 4 }, deadline: Date.now() + 500 }), { id: 'job-late' });
    const late = await jobs.follow('job-late', () => undefined, 60_000);
    expect(late.state).toBe('succeeded');
    const r = late.result as unknown as { market: string; marketSwitches?: { step: number }[] };
    expect(r.market).toBe('on-demand');
    expect(r.marketSwitches?.[0]?.step).toBe(10);
    // A generous deadline stays on spot.
    await jobs.submit(spec({ hyper: { steps: 20, seed: 4 }, deadline: Date.now() + 24 * 3600_000 }), { id: 'job-relaxed' });
    const relaxed = await jobs.follow('job-relaxed', () => undefined, 60_000);
    expect((relaxed.result as unknown as { market: string; deadlineMet: boolean }).market).toBe('spot');
    expect((relaxed.result as unknown as { deadlineMet: boolean }).deadlineMet).toBe(true);
  });

  it('a worker placed again after its job ended starts and removes itself (no node refusing it for ever)', async () => {
    // job-auc succeeded above and its shards are gone: a worker of it spawned now (as a re-placement
    // after a node loss would) finds no shard, sees the job ended, and leaves the directory.
    expect((await jobs.get('job-auc')).state).toBe('succeeded');
    const args = { jobId: 'job-auc', world: 2, datasetDigest: ds.digest, model: { type: 'logreg', features: 8, layers: [] }, batchSize: 512, seed: 7, splitSeed: 5 };
    const res = await c.actors.spawn({ type: 'trainer-worker', id: 'job-job-auc-w-1', kind: 'training', args });
    // Running, or already stopped by itself by the time the spawn was answered (never refused, never pending).
    expect(['running', 'stopped']).toContain(res.actors[0]!.state);
    const dir = await openBucket(nc, resources().buckets.actors);
    await until(async () => {
      const e = await dir.get('job-job-auc-w-1');
      return !e || e.operation !== 'PUT' ? true : undefined;
    }, 20_000, 'the ended job\'s worker gone from the directory');
  });

  it('a duplicate submission with the same id runs once', async () => {
    const a = await jobs.submit(spec({ hyper: { steps: 5, seed: 3 }, workers: 1 }), { id: 'job-dup' });
    const b = await jobs.submit(spec({ hyper: { steps: 5, seed: 3 }, workers: 1 }), { id: 'job-dup' });
    expect(a.duplicate).toBe(false);
    expect(b.duplicate).toBe(true);
    const done = await jobs.follow('job-dup', () => undefined, 60_000);
    expect(done.state).toBe('succeeded');
    const registry = await ModelRegistry.open(nc);
    const versions = (await registry.versions('fraud')).filter((v) => v.lineage?.trainingJobId === 'job-dup');
    expect(versions).toHaveLength(1);
  });

  it('a bad spec or an unknown dataset fails at once with the reason', async () => {
    // Checked at submission (the gateway answers 400 with it)…
    await expect(jobs.submit(spec({ workers: 0 }), { id: 'job-bad' })).rejects.toMatchObject({ code: 'SHOAL_ERR_BAD_JOB' });
    await expect(jobs.submit(spec({ workers: 0 }), { id: 'job-bad' })).rejects.toThrow(/workers/);
    // …and again by the job's actor, for submitters that publish on NATS directly.
    await jobs.submit(spec({ workers: 0 }), { id: 'job-bad', unchecked: true });
    const bad = await jobs.follow('job-bad', () => undefined, 30_000);
    expect(bad.state).toBe('failed');
    expect(bad.reason).toMatch(/workers/);
    await jobs.submit(spec({ dataset: 'no-such-data' }), { id: 'job-nodata' });
    const nodata = await jobs.follow('job-nodata', () => undefined, 30_000);
    expect(nodata.state).toBe('failed');
    expect(nodata.reason).toMatch(/dataset "no-such-data" not found/);
  });

  it('cancel stops a running job and its workers', async () => {
    await jobs.submit(spec({ hyper: { steps: 100_000, batchSize: 128, seed: 5 } }), { id: 'job-cancel' });
    await until(async () => (((await jobs.get('job-cancel')).progress?.step as number | undefined) ?? 0) >= 10 || undefined, 60_000, 'job-cancel past step 10');
    expect(await shardsOf('job-cancel', 2)).toBe(2);
    expect((await jobs.cancel('job-cancel')).state).toBe('cancelled');
    // The coordinator and both workers leave the directory (a leaked worker would hold its node's capacity).
    await actorsGone('job-cancel');
    expect((await jobs.get('job-cancel')).state).toBe('cancelled');
    await until(async () => ((await shardsOf('job-cancel', 2)) === 0) || undefined, 10_000, 'job-cancel shards removed');
  });

  it('a job whose workers fail more than maxWorkerFailures times fails, with the reason, and leaves no actor behind', async () => {
    await jobs.submit(spec({ hyper: { steps: 100_000, batchSize: 128, seed: 6 }, maxWorkerFailures: 0, stepTimeoutMs: 3000 }), { id: 'job-fragile' });
    await until(async () => (((await jobs.get('job-fragile')).progress?.step as number | undefined) ?? 0) >= 3 || undefined, 60_000, 'job-fragile past step 3');
    // Placed only on nodes that load the training actors.
    const where = await openBucket(nc, resources().buckets.actors);
    for (const id of ['job-job-fragile', 'job-job-fragile-w-1', 'job-job-fragile-w-2']) {
      const e = await where.get(id);
      expect((decode(e!.value) as DirectoryEntry).nodeId).toMatch(/^train-/);
    }
    // A worker goes away for good (stopped, not failed over): the coordinator's step fails.
    await new ActorClient(nc, subjects()).stop('job-job-fragile-w-2');
    const rec = await until(async () => {
      const r = await jobs.get('job-fragile');
      return r.state === 'failed' ? r : undefined;
    }, 40_000, 'job-fragile failed');
    expect(rec.reason).toMatch(/worker failures exceeded 0: .*step \d+: no gradients from every worker within 3000 ms/);
    await actorsGone('job-fragile');
  });

  it('a coordinator that finds a newer claim on its job writes nothing more: no checkpoint, no failure, and it leaves the workers and shards', async () => {
    await jobs.submit(spec({ hyper: { steps: 100_000, batchSize: 128, seed: 7 } }), { id: 'job-fenced' });
    await until(async () => (((await jobs.get('job-fenced')).progress?.step as number | undefined) ?? 0) >= 10 || undefined, 60_000, 'job-fenced past step 10');
    // As after a partition: a copy placed again has claimed the job (stamped here by hand, as the scheduler's role may).
    const records = await JobStore.open(await nats.connect(Role.SCHEDULER));
    await records.update('job-fenced', (cur) => ({ coordinatorClaim: (cur.coordinatorClaim ?? 0) + 1_000_000 }));
    const stamped = (await records.entry('job-fenced'))!.revision;
    // The running copy's next checkpoint is refused: it stops stepping (two answers in a row with the same step).
    const actors = new ActorClient(nc, subjects());
    let last = -1;
    await until(async () => {
      const { step } = await actors.ref('job-job-fenced').ask<{ step: number }>({ type: 'status' });
      const still = step === last;
      last = step;
      return still || undefined;
    }, 60_000, 'the stale coordinator to stop stepping', 500);
    // Nothing written since the stamp: no progress, no checkpoint claim, no "failed" — the job is the newer copy's.
    const e = (await records.entry('job-fenced'))!;
    expect(e.revision).toBe(stamped);
    expect(['running', 'checkpointed']).toContain(e.record.state);
    // The workers and shards are left to the copy that took over.
    expect(await shardsOf('job-fenced', 2)).toBe(2);
    // Clean up by hand: there is no newer copy here to finish the job.
    await jobs.cancel('job-fenced');
    for (const id of ['job-job-fenced', 'job-job-fenced-w-1', 'job-job-fenced-w-2']) await actors.stop(id).catch(() => undefined);
    await actorsGone('job-fenced');
  }, 120_000);

  it('SIGKILL the node of the job (and its workers there) mid-training: it resumes from its checkpoint elsewhere and succeeds', async () => {
    nodes.c = await c.startNode('train-c');
    await jobs.submit(spec({ hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 9 }, workers: 3 }), { id: 'job-kill' });
    // Wait until the job is past its first checkpoint, then kill a node that hosts a worker.
    const st = await until(async () => {
      const r = await jobs.get('job-kill');
      return ((r.progress?.step as number | undefined) ?? 0) >= 20 ? r : undefined;
    }, 60_000, 'job-kill past step 20');
    expect(st.state === 'running' || st.state === 'checkpointed').toBe(true);
    // The coordinator stamps the record with its directory claim (its fencing token).
    expect(st.coordinatorClaim).toBeGreaterThan(0);
    const dir = await openBucket(nc, resources().buckets.actors);
    const hosts = new Set<string>();
    // The coordinator's node: killing it loses the job's in-memory state, so it must resume from the checkpoint.
    for (const w of ['job-job-kill']) {
      const e = await dir.get(w);
      if (e) hosts.add((decode(e.value) as DirectoryEntry).nodeId);
    }
    const victim = ['train-c', 'train-a', 'train-b'].find((n) => hosts.has(n))!;
    expect(victim).toBeDefined();
    nodes[victim === 'train-a' ? 'a' : victim === 'train-b' ? 'b' : 'c']!.kill('SIGKILL');
    const done: JobRecord = await jobs.follow('job-kill', () => undefined, 120_000);
    expect(done.reason ?? '').not.toMatch(/failed/);
    expect(done.state).toBe('succeeded');
    expect((done.result as unknown as Result).metrics.auc).toBeGreaterThan(0.8);
    const resumed = /resumed from the checkpoint at step (\d+)/.exec(done.reason ?? '');
    expect(resumed, `reason: ${done.reason}`).not.toBeNull();
    expect(Number(resumed![1])).toBeGreaterThanOrEqual(10);
    // The copy placed again claimed later: a write of the killed copy would now be refused.
    expect(done.coordinatorClaim).toBeGreaterThan(st.coordinatorClaim!);
    // Resuming loses nothing: the same spec run without interruption ends with the same model.
    await jobs.submit(spec({ hyper: { optimizer: 'adam', lr: 0.05, steps: 80, batchSize: 512, seed: 9 }, workers: 3 }), { id: 'job-kill-ref' });
    const ref = await jobs.follow('job-kill-ref', () => undefined, 60_000);
    expect((done.result as unknown as Result).check.predictions).toEqual((ref.result as unknown as Result).check.predictions);
  });
});

