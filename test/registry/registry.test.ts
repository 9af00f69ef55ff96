/**
 * The model registry on a real nats-server (KV + object store): versions are monotonic under
 * concurrent registration, aliases move and roll back, artifacts are content-addressed and a
 * corrupted one is refused at load; and the `shoal models` CLI drives the same API.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors, ModelRegistry, registryKeys, sha256 } from '../../ml/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { dtypesModel, mlpModel } from '../fixtures/onnx.ts';
import { ensureResources } from '../../cluster/index.ts';

describe('model registry (real nats-server: KV + object store)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let reg: ModelRegistry;

  beforeAll(async () => {
    nats = await startTestNats();
    const sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    nc = await nats.connect(Role.CLIENT);
    reg = await ModelRegistry.open(nc);
  }, 30_000);
  afterAll(async () => nats?.stop());

  it('registers versions with signature, metrics, lineage; artifacts are content-addressed', async () => {
    const bytes = mlpModel({ seed: 11 });
    const v1 = await reg.register('churn', bytes, { metrics: { auc: 0.9 }, lineage: { datasetDigest: 'sha256:abc', trainingJobId: 'job-1', hyperParameters: { lr: 0.01 }, codeVersion: 'git:1234' }, aliases: ['production'] });
    expect(v1).toMatchObject({ name: 'churn', version: 1, sha256: sha256(bytes), format: 'onnx', metrics: { auc: 0.9 }, lineage: { trainingJobId: 'job-1' } });
    expect(v1.signature).toEqual({ inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 32] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 4] }] });
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
    await reg.store.putBlob({ name: registryKeys.artifact(mv.sha256) }, mlpModel({ seed: 100 }));
    const err = await reg.loadArtifact('fragile', mv.version).catch((e: unknown) => e);
    expect(MlErrors.ARTIFACT_CORRUPT.is(err)).toBe(true);
    expect((err as Error).message).toMatch(/does not match the registered/);
  });

  it('shoal models: register, list, show, alias, rollback from the command line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-models-'));
    const file = join(dir, 'm.onnx');
    writeFileSync(file, mlpModel({ seed: 5 }));
    const env = nats.env(Role.CLIENT);
    const shoal = (...args: string[]) => spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', ...args], { env, encoding: 'utf8', cwd: dir, timeout: 30_000 });
    let r = shoal('register', 'cli-model', file, '--alias', 'production', '--metrics', '{"acc":0.8}');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/registered cli-model v1 .*production → v1/);
    expect(shoal('register', 'cli-model', file).stdout).toMatch(/v2/);
    r = shoal('list', '--json');
    expect(JSON.parse(r.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'cli-model', latest: 2, aliases: { production: 1 } })]));
    expect(shoal('show', 'cli-model').stdout).toMatch(/v2 .*X:FP32\[-1,32\]/);
    expect(shoal('alias', 'cli-model', 'production', '2').stdout).toMatch(/production → v2/);
    expect(shoal('rollback', 'cli-model').stdout).toMatch(/production v2 → v1/);
    r = shoal('rollback', 'cli-model');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no previous version.*SHOAL_ERR_NO_PREVIOUS_VERSION/);
    r = shoal('show', 'ghost');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not registered/);
  });
});
