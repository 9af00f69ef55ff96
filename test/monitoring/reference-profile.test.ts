/**
 * A model version carries its reference profile: a training job (real scheduler and node
 * process, real registry service) stores its holdout's with the version it registers; a version
 * registered by hand may be given one (built with `buildReferenceProfile`) and a reference dataset.
 * Bad references are refused with errors that name them.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, type NatsConnection } from '../../cluster/index.ts';
import { JobClient, MlErrors, ModelRegistry, RegistryClient, generateFraud, type DatasetVersion } from '../../ml/index.ts';
import { REFERENCE_PROFILE_FORMAT, buildReferenceProfile } from '../../ml/monitoring/stats/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { mlpModel } from '../fixtures/onnx.ts';
import { fraudRows } from '../fixtures/monitoring-stats.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '3000', '--actors.modules', '["shoal:ml/training/actors.ts"]'];
const utf8 = new TextEncoder();

describe('reference profiles in the registry (real cluster)', () => {
  let c: TestCluster;
  let nc: NatsConnection;
  let control: RegistryClient;
  let ds: DatasetVersion;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: ['train-a'] });
    nc = c.client;
    control = c.control;
    ds = await control.registerDataset('fraud-mon', generateFraud({ rows: 6000, seed: 12 }), { splitSeed: 3 });
  }, 120_000);

  afterAll(async () => c?.stop());

  it('a trained version has its holdout\'s reference profile', async () => {
    const jobs = await JobClient.open(nc);
    await jobs.submit({ model: { name: 'fraud-ref', type: 'logreg' }, dataset: 'fraud-mon', hyper: { optimizer: 'adam', lr: 0.05, steps: 20, batchSize: 256, seed: 4 }, workers: 1, checkpointEvery: 10 }, { id: 'job-ref' });
    const done = await jobs.follow('job-ref', () => undefined, 180_000);
    expect(done.reason).toBeUndefined();
    expect(done.state).toBe('succeeded');
    const result = done.result as unknown as { version: number; metrics: { auc: number; threshold: number; rows: number; accuracy: number } };

    const registry = await ModelRegistry.open(nc);
    const mv = await registry.version('fraud-ref', result.version);
    expect(mv.reference).toMatchObject({ rows: ds.splits.holdout });
    const ref = (await registry.loadReference(mv))!;
    expect(ref.format).toBe(REFERENCE_PROFILE_FORMAT);
    expect(ref.rows).toBe(ds.splits.holdout);
    expect(ref.source).toMatchObject({ datasetDigest: ds.digest, trainingJobId: 'job-ref', split: 'holdout' });
    // Per-feature sketches under the dataset's column names; one-hot columns are categories.
    expect(Object.keys(ref.profile.features)).toEqual(ds.columns);
    expect(ref.schema.features.log_amount).toBe('numeric');
    expect(ref.schema.features.channel_online).toBe('categorical');
    expect(ref.profile.features.log_amount!.count).toBe(ds.splits.holdout);
    // The prediction distribution: the model's output Y, its probability.
    expect(ref.schema.score).toBe('Y');
    expect(ref.profile.outputs.Y!.kll!.n).toBe(ds.splits.holdout);
    // The holdout metrics are the job's own, now with intervals and sample sizes.
    expect(ref.threshold).toBe(result.metrics.threshold);
    expect(ref.metrics!.rows).toBe(result.metrics.rows);
    expect(ref.metrics!.auc.value).toBeCloseTo(result.metrics.auc, 9);
    expect(ref.metrics!.accuracy.value).toBeCloseTo(result.metrics.accuracy, 9);
    expect(ref.metrics!.auc.lower).toBeLessThan(ref.metrics!.auc.value);
    expect(ref.calibration).toBeDefined();
  }, 200_000);

  it('a version registered by hand may be given a reference profile and a reference dataset', async () => {
    const rows = fraudRows({ rows: 800, seed: 2 });
    const profile = buildReferenceProfile(rows, undefined, { createdAt: 1 });
    const mv = await control.register('by-hand', mlpModel({ features: 15, outputs: 1 }), { reference: utf8.encode(JSON.stringify(profile)), referenceDataset: 'fraud-mon' });
    expect(mv.reference).toMatchObject({ rows: 800 });
    expect(mv.referenceDataset).toBe(`fraud-mon@${ds.digest}`);
    const registry = await ModelRegistry.open(nc);
    expect(await registry.loadReference(await registry.version('by-hand', mv.version))).toEqual(JSON.parse(JSON.stringify(profile)));
    // Without one: no reference, nothing to load.
    const plain = await control.register('by-hand', mlpModel({ features: 15, outputs: 1, seed: 2 }));
    expect(plain.reference).toBeUndefined();
    expect(await registry.loadReference(plain)).toBeUndefined();
  }, 60_000);

  it('refuses a malformed reference profile and an unknown reference dataset, naming them', async () => {
    const bad = await control.register('by-hand', mlpModel({ features: 15, outputs: 1 }), { reference: utf8.encode(JSON.stringify({ format: 'evidently', rows: 3 })) }).catch((e: unknown) => e as Error);
    expect(MlErrors.BAD_MODEL.is(bad)).toBe(true);
    expect((bad as Error).message).toMatch(/reference profile has format "evidently"/);
    const notJson = await control.register('by-hand', mlpModel({ features: 15, outputs: 1 }), { reference: utf8.encode('{oops') }).catch((e: unknown) => e as Error);
    expect((notJson as Error).message).toMatch(/reference profile is not JSON/);
    const missing = await control.register('by-hand', mlpModel({ features: 15, outputs: 1 }), { referenceDataset: 'no-such-data' }).catch((e: unknown) => e as Error);
    expect(MlErrors.DATASET_NOT_FOUND.is(missing)).toBe(true);
    expect((missing as Error).message).toMatch(/no-such-data/);
  }, 60_000);

  it('shoal models register --reference FILE --reference-dataset NAME', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-reference-'));
    writeFileSync(join(dir, 'm.onnx'), mlpModel({ features: 15, outputs: 1, seed: 5 }));
    writeFileSync(join(dir, 'ref.json'), JSON.stringify(buildReferenceProfile(fraudRows({ rows: 300, seed: 8 }), undefined, { createdAt: 2 })));
    const out = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', 'register', 'cli-ref', 'm.onnx', '--reference', 'ref.json', '--reference-dataset', 'fraud-mon'], { env: c.nats.env(Role.CLIENT), cwd: dir, timeout: 60_000 });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (x: Buffer) => (stdout += x.toString('utf8')));
      p.stderr.on('data', (x: Buffer) => (stderr += x.toString('utf8')));
      p.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toContain(`reference profile of 300 rows, reference dataset fraud-mon@${ds.digest}`);
  }, 90_000);
});
