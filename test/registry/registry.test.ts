/**
 * The model registry on a real nats-server (KV + object store): versions are monotonic under
 * concurrent registration, aliases move and roll back, artifacts are content-addressed and a
 * corrupted one is refused at load — the registry library, as the registry service in the
 * scheduler runs it (scheduler role). Clients change it only through that service (here run in
 * this process): models larger than one NATS message travel through the uploads store, and the
 * `shoal models` CLI drives the same service.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Objm } from '@nats-io/obj';
import { Errors, Role, createLogger, request, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors, ModelRegistry, RegistryClient, registryKeys, sha256, startRegistryService, type RegistryService } from '../../ml/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { dtypesModel, mlpModel } from '../fixtures/onnx.ts';
import { ensureResources } from '../../cluster/index.ts';

describe('model registry (real nats-server: KV + object store)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let sched: NatsConnection;
  let reg: ModelRegistry;
  let service: RegistryService;

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    nc = await nats.connect(Role.CLIENT);
    reg = await ModelRegistry.open(sched);
    service = await startRegistryService({ nc: sched, subjects: subjects(), log: createLogger({ level: 'silent', pretty: false }) });
  }, 30_000);
  afterAll(async () => {
    await service?.stop();
    await nats?.stop();
  });

  it('registers versions with signature, metrics, lineage; artifacts are content-addressed', async () => {
    const bytes = mlpModel({ seed: 11 });
    const v1 = await reg.register('churn', bytes, { metrics: { auc: 0.9 }, lineage: { datasetDigest: 'sha256:abc', trainingJobId: 'job-1', hyperParameters: { lr: 0.01 }, codeVersion: 'git:1234' }, aliases: ['production'] });
    expect(v1).toMatchObject({ name: 'churn', version: 1, sha256: sha256(bytes), format: 'onnx', metrics: { auc: 0.9 }, lineage: { trainingJobId: 'job-1' } });
    // With each dimension's symbolic name (what batching matches on; '' where fixed).
    expect(v1.signature).toEqual({ inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 32], dimParams: ['N', ''] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 4], dimParams: ['N', ''] }] });
    // Same bytes again: a new version, one stored object.
    const v2 = await reg.register('churn', bytes);
    expect(v2.version).toBe(2);
    expect(v2.sha256).toBe(v1.sha256);
    const loaded = await reg.loadArtifact('churn', 2);
    expect(Buffer.from(loaded.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect((await reg.get('churn')).aliases).toEqual({ production: 1 });
    expect(await reg.list()).toEqual([expect.objectContaining({ name: 'churn', latest: 2, versions: [1, 2] })]);
  });

  it('hands out monotonic, unique versions under concurrent registration', async () => {
    const bytes = dtypesModel();
    const vs = await Promise.all(Array.from({ length: 8 }, () => reg.register('race', bytes)));
    expect(vs.map((v) => v.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await reg.get('race')).versions).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await reg.register('race', bytes)).version).toBe(9);
  });

  it('a training job registering the same model again gets its version back: one job, one version', async () => {
    const bytes = mlpModel({ seed: 21 });
    const lineage = { trainingJobId: 'job-once', datasetDigest: 'sha256:def' };
    const first = await reg.register('once', bytes, { lineage });
    const again = await reg.register('once', bytes, { lineage });
    expect(again.version).toBe(first.version);
    expect((await reg.get('once')).versions).toEqual([first.version]);
    // Other bytes from the same job, or the same bytes from another job, are new versions.
    expect((await reg.register('once', mlpModel({ seed: 22 }), { lineage })).version).toBe(first.version + 1);
    expect((await reg.register('once', bytes, { lineage: { ...lineage, trainingJobId: 'job-other' } })).version).toBe(first.version + 2);
  });

  it('moves aliases and rolls them back to the previous version', async () => {
    await reg.register('churn', mlpModel({ seed: 12 })); // v3
    await reg.setAlias('churn', 'production', 2);
    await reg.setAlias('churn', 'production', 3);
    await reg.setAlias('churn', 'canary', 3);
    expect((await reg.resolve('churn', 'production')).version).toBe(3);
    expect(await reg.rollbackAlias('churn', 'production')).toEqual({ from: 3, to: 2 });
    expect(await reg.rollbackAlias('churn', 'production')).toEqual({ from: 2, to: 1 });
    expect(MlErrors.NO_PREVIOUS_VERSION.is(await reg.rollbackAlias('churn', 'production').catch((e: unknown) => e))).toBe(true);
    expect((await reg.resolve('churn', 'latest')).version).toBe(3);
    expect(MlErrors.MODEL_VERSION_NOT_FOUND.is(await reg.setAlias('churn', 'production', 42).catch((e: unknown) => e))).toBe(true);
    expect(MlErrors.MODEL_VERSION_NOT_FOUND.is(await reg.resolve('churn', 'staging').catch((e: unknown) => e))).toBe(true);
    expect(MlErrors.MODEL_NOT_FOUND.is(await reg.get('nope').catch((e: unknown) => e))).toBe(true);
  });

  it('refuses files onnxruntime cannot load and bad names', async () => {
    expect(MlErrors.BAD_MODEL.is(await reg.register('junk', new TextEncoder().encode('not onnx')).catch((e: unknown) => e))).toBe(true);
    expect(MlErrors.BAD_MODEL.is(await reg.register('bad name!', mlpModel()).catch((e: unknown) => e))).toBe(true);
    expect(MlErrors.BAD_MODEL.is(await reg.register('x', new Uint8Array(0)).catch((e: unknown) => e))).toBe(true);
  });

  it('a corrupted artifact (sha256 mismatch) is refused at load', async () => {
    const mv = await reg.register('fragile', mlpModel({ seed: 99 }));
    // Overwrite the stored object with other bytes under the same content address.
    await (await reg.store()).putBlob({ name: registryKeys.artifact(mv.sha256) }, mlpModel({ seed: 100 }));
    const err = await reg.loadArtifact('fragile', mv.version).catch((e: unknown) => e);
    expect(MlErrors.ARTIFACT_CORRUPT.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/does not match the registered/);
  });

  it('a client registers through the service only: no KV write of its own, a model past 8 MB through the uploads store', async () => {
    const client = new RegistryClient(nc, subjects());
    // The direct way is closed to the client role…
    const denied = await (await ModelRegistry.open(nc)).register('direct', mlpModel({ seed: 3 })).catch((e: unknown) => e);
    expect(String((denied as Error).message)).toMatch(/Permissions Violation/);
    // …the service's is open: a model bigger than one NATS message (max_payload 8 MB).
    const big = mlpModel({ seed: 4, hidden: 80_000 });
    expect(big.length).toBeGreaterThan(8 * 1024 * 1024);
    const mv = await client.register('big', big, { aliases: ['production'], metrics: { auc: 0.5 } });
    expect(mv).toMatchObject({ name: 'big', version: 1, sha256: sha256(big), sizeBytes: big.length });
    const loaded = await (await ModelRegistry.open(nc)).loadArtifact('big', 1);
    expect(loaded.bytes.length).toBe(big.length);
    expect((await client.setAlias('big', 'staging', 1)).aliases).toEqual({ production: 1, staging: 1 });
    // The upload was taken: nothing is left in the uploads store.
    const uploads = await new Objm(sched).open(resources().stores.uploads);
    expect((await uploads.list()).filter((o) => !o.deleted)).toEqual([]);
    // The service's own errors come back typed.
    expect(MlErrors.BAD_MODEL.is(await client.register('junk', new TextEncoder().encode('not onnx')).catch((e: unknown) => e))).toBe(true);
    expect((await uploads.list()).filter((o) => !o.deleted)).toEqual([]);
  });

  it('the service refuses an upload that is missing or does not match its sha256', async () => {
    const bytes = mlpModel({ seed: 21 });
    const missing = await request(nc, subjects().registry('register'), { name: 'ghost', upload: 'upload-none', sha256: sha256(bytes) }).catch((e: unknown) => e);
    expect(MlErrors.UPLOAD_NOT_FOUND.is(missing)).toBe(true);
    const uploads = await new Objm(nc).open(resources().stores.uploads);
    await uploads.putBlob({ name: 'upload-tampered' }, bytes);
    const tampered = await request(nc, subjects().registry('register'), { name: 'ghost', upload: 'upload-tampered', sha256: sha256(mlpModel({ seed: 22 })) }).catch((e: unknown) => e);
    expect(MlErrors.ARTIFACT_CORRUPT.is(tampered)).toBe(true);
    expect((await uploads.info('upload-tampered'))?.deleted ?? true).toBe(true); // deleted all the same
    const bad = await request(nc, subjects().registry('register'), { name: 'ghost', upload: '../etc', sha256: 'x' }).catch((e: unknown) => e);
    expect(Errors.BAD_MESSAGE.is(bad)).toBe(true);
    expect(MlErrors.MODEL_NOT_FOUND.is(await reg.get('ghost').catch((e: unknown) => e))).toBe(true);
  });

  it('shoal models: register, list, show, alias, rollback from the command line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-models-'));
    const file = join(dir, 'm.onnx');
    writeFileSync(file, mlpModel({ seed: 5 }));
    const env = nats.env(Role.CLIENT);
    // Not spawnSync: the registry service answering the CLI runs in this process.
    const shoal = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', ...args], { env, cwd: dir, timeout: 90_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
        p.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    let r = await shoal('register', 'cli-model', file, '--alias', 'production', '--metrics', '{"acc":0.8}');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/registered cli-model v1 .*production → v1/);
    expect((await shoal('register', 'cli-model', file)).stdout).toMatch(/v2/);
    r = await shoal('list', '--json');
    expect(JSON.parse(r.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'cli-model', latest: 2, aliases: { production: 1 } })]));
    expect((await shoal('show', 'cli-model')).stdout).toMatch(/v2 .*X:FP32\[-1,32\]/);
    expect((await shoal('alias', 'cli-model', 'production', '2')).stdout).toMatch(/production → v2/);
    expect((await shoal('rollback', 'cli-model')).stdout).toMatch(/production v2 → v1/);
    r = await shoal('rollback', 'cli-model');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no previous version.*SHOAL_ERR_NO_PREVIOUS_VERSION/);
    r = await shoal('show', 'ghost');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not registered/);
    // Eight CLI processes, each a cold Node start: generous bounds for a loaded 2-core machine.
  }, 300_000);
});
