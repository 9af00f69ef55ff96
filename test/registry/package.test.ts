/**
 * ONNX models with external data (weights in a file beside the graph, as models over 2 GB are
 * stored) registered as one artifact — a tarball — and served: the tar format both ways (ours,
 * deterministic; GNU tar's), registration through the registry service (the digest, the graph
 * loaded by onnxruntime with its data beside it, nothing stored when it cannot be), the `shoal
 * models register NAME DIR|FILE.tar` command, and a replica on a real node process unpacking the
 * package into its sha256-keyed cache and answering inference.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Objm } from '@nats-io/obj';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, resources, type NatsConnection } from '../../cluster/index.ts';
import { withExternalData } from '../../kernels/index.ts';
import { MlErrors, ModelRegistry, PACKAGE_FORMAT, materializePackage, packDirectory, packageCacheDir, registryKeys, toBytes, type InferReply, type RegistryClient } from '../../ml/index.ts';
import { extractTar, writeTar } from '../../ml/registry/tar.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { mlpModel, randomRows } from '../fixtures/onnx.ts';

const ARGS = ['--membership.heartbeatMs', '200', '--membership.deadAfterMs', '1500', '--actors.modules', '["ml/serving/actors.ts"]'];

/** A model directory: the MLP's graph with every initializer moved to `weights.bin` beside it. */
function modelDir(seed: number, edit?: (files: { graph: Uint8Array; data: Uint8Array }) => { graph: Uint8Array; data?: Uint8Array }): string {
  const { model, data } = withExternalData(mlpModel({ seed }), 'weights.bin');
  const files = edit ? edit({ graph: model, data }) : { graph: model, data };
  const dir = mkdtempSync(join(tmpdir(), 'shoal-pkg-'));
  writeFileSync(join(dir, 'model.onnx'), files.graph);
  if (files.data) writeFileSync(join(dir, 'weights.bin'), files.data);
  return dir;
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}
async function* once(b: Uint8Array): AsyncGenerator<Uint8Array> {
  yield b;
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const files = (dir: string) => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1)).sort();

/** onnxruntime's answer for a row: the reference every load path is compared with. */
async function reference(seed: number, row: number[]): Promise<number[]> {
  const s = await ort.InferenceSession.create(mlpModel({ seed }));
  const y = (await s.run({ X: new ort.Tensor('float32', Float32Array.from(row), [1, 32]) })).Y!.data as Float32Array;
  await s.release();
  return Array.from(y);
}

describe('the package format (tar)', () => {
  it('packs a directory deterministically, and unpacks it (and what GNU tar writes) to the same files', async () => {
    const dir = modelDir(1);
    mkdirSync(join(dir, 'sub'));
    // A path ustar splits into its prefix, and one it cannot hold at all (a pax header carries it).
    mkdirSync(join(dir, 'sub', 'd'.repeat(90)), { recursive: true });
    writeFileSync(join(dir, 'sub', 'd'.repeat(90), 'f.txt'), 'split at a /');
    writeFileSync(join(dir, 'sub', `${'n'.repeat(120)}.txt`), 'a pax path');
    const a = await collect(await packDirectory(dir));
    const b = await collect(await packDirectory(dir));
    expect(sha(a)).toBe(sha(b));
    expect(a.length % 512).toBe(0);
    // GNU tar reads ours…
    const out = mkdtempSync(join(tmpdir(), 'shoal-untar-'));
    writeFileSync(join(out, '..', `${out.split('/').pop()}.tar`), a);
    expect(spawnSync('tar', ['-xf', `${out}.tar`, '-C', out]).status).toBe(0);
    expect(files(out)).toEqual(files(dir));
    expect(readFileSync(join(out, 'weights.bin'))).toEqual(readFileSync(join(dir, 'weights.bin')));
    // …and we read GNU tar's (its own header format, `./` names, a long name, record padding).
    const gnu = mkdtempSync(join(tmpdir(), 'shoal-gnu-'));
    expect(spawnSync('tar', ['-cf', join(gnu, 'm.tar'), '-C', dir, '.']).status).toBe(0);
    const back = mkdtempSync(join(tmpdir(), 'shoal-back-'));
    expect((await extractTar(createReadStream(join(gnu, 'm.tar')), back, 'gnu')).sort()).toEqual(files(dir));
    expect(readFileSync(join(back, 'model.onnx'))).toEqual(readFileSync(join(dir, 'model.onnx')));
  });

  it('refuses a path that climbs out of the package, a link, and a name given twice', async () => {
    const one = (name: string) => ({ name, size: 1, data: async function* () { yield new Uint8Array([1]); } });
    const climb = mkdtempSync(join(tmpdir(), 'shoal-climb-'));
    const e1 = await extractTar(writeTar([one('../escaped.bin')]), climb, 'climb').catch((e: unknown) => e);
    expect(MlErrors.BAD_MODEL.is(e1) && (e1 as Error).message).toMatch(/leaves its directory: "\.\.\/escaped\.bin"/);
    expect(existsSync(join(climb, '..', 'escaped.bin'))).toBe(false);
    const twice = await extractTar(writeTar([one('a.bin'), one('./a.bin')]), mkdtempSync(join(tmpdir(), 'shoal-twice-')), 'twice').catch((e: unknown) => e);
    expect((twice as Error).message).toMatch(/holds a\.bin twice/);
    const dir = modelDir(1);
    symlinkSync('/etc/passwd', join(dir, 'link'));
    const gnu = mkdtempSync(join(tmpdir(), 'shoal-gnu-'));
    spawnSync('tar', ['-cf', join(gnu, 'l.tar'), '-C', dir, '.']);
    const link = await extractTar(createReadStream(join(gnu, 'l.tar')), mkdtempSync(join(tmpdir(), 'shoal-link-')), 'link').catch((e: unknown) => e);
    expect((link as Error).message).toMatch(/"\.\/link", which is not a regular file or directory \(tar type "2"\)/);
    // Packing refuses the link too, rather than following it out of the directory.
    expect(((await packDirectory(dir).catch((e: unknown) => e)) as Error).message).toMatch(/link is not a regular file/);
  });

  it('a replica-side cache: a package that does not match its sha256 is refused and nothing is cached', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'shoal-cache-'));
    const bytes = await collect(await packDirectory(modelDir(3)));
    const wrong = sha(Buffer.from('something else'));
    const e = await materializePackage(wrong, 'm v1', async () => once(bytes), cache).catch((x: unknown) => x);
    expect(MlErrors.ARTIFACT_CORRUPT.is(e)).toBe(true);
    expect(readdirSync(cache)).toEqual([]);
    const graph = await materializePackage(sha(bytes), 'm v1', async () => once(bytes), cache);
    expect(graph).toBe(join(cache, sha(bytes), 'files', 'model.onnx'));
    // The second load is the cache's: the fetch is not called.
    expect(await materializePackage(sha(bytes), 'm v1', () => Promise.reject(new Error('fetched again')), cache)).toBe(graph);
  });
});

describe('external-data models through the registry service and a replica (real cluster)', () => {
  let c: TestCluster;
  let control: RegistryClient;
  let sched: NatsConnection;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: 'node-p', profile: 'cpu-ondemand' }] });
    control = c.control;
    sched = await c.nats.connect(Role.SCHEDULER);
  }, 60_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('registers a directory as one content-addressed artifact, and loads it back with its data beside the graph', async () => {
    const dir = modelDir(4);
    const tar = await collect(await packDirectory(dir));
    const mv = await control.registerPackage('ext', await packDirectory(dir), { aliases: ['production'] });
    expect(mv).toMatchObject({ name: 'ext', version: 1, format: PACKAGE_FORMAT, sha256: sha(tar), sizeBytes: tar.length, signature: { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 32] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 4] }] } });
    // What the replica does: the graph path in the node's cache, loadable by onnxruntime.
    const { model } = await (await ModelRegistry.open(c.client)).loadModel('ext', 1);
    expect(model).toBe(join(packageCacheDir(), sha(tar), 'files', 'model.onnx'));
    const s = await ort.InferenceSession.create(model as string);
    const row = randomRows(1)[0]!;
    const y = (await s.run({ X: new ort.Tensor('float32', Float32Array.from(row), [1, 32]) })).Y!.data as Float32Array;
    await s.release();
    expect(Array.from(y)).toEqual(await reference(4, row));
    // The same directory again is the same artifact (one object), as a new version.
    expect((await control.registerPackage('ext', await packDirectory(dir))).sha256).toBe(mv.sha256);
  });

  it('a package onnxruntime cannot load is refused with its message, and nothing is stored', async () => {
    const cases: [string, (f: { graph: Uint8Array; data: Uint8Array }) => { graph: Uint8Array; data?: Uint8Array }, RegExp][] = [
      ['truncated', (f) => ({ graph: f.graph, data: f.data.subarray(0, 100) }), /onnxruntime cannot load it: .*out of bounds or can not be read in full/],
      ['no-weights', (f) => ({ graph: f.graph }), /onnxruntime cannot load it: .*External data path does not exist/],
      ['escaping', () => ({ graph: withExternalData(mlpModel({ seed: 6 }), '../weights.bin').model }), /onnxruntime cannot load it: .*escapes model directory/],
    ];
    const artifacts = await new Objm(sched).open(resources().stores.artifacts);
    const uploads = await new Objm(sched).open(resources().stores.uploads);
    for (const [name, edit, why] of cases) {
      const dir = modelDir(6, edit);
      const digest = sha(await collect(await packDirectory(dir)));
      const e = await control.registerPackage(name, await packDirectory(dir)).catch((x: unknown) => x);
      expect(MlErrors.BAD_MODEL.is(e), name).toBe(true);
      expect((e as Error).message).toMatch(why);
      expect(MlErrors.MODEL_NOT_FOUND.is(await control.reader().then((r) => r.get(name)).catch((x: unknown) => x))).toBe(true);
      expect(await artifacts.info(registryKeys.artifact(digest))).toBeNull();
    }
    expect((await uploads.list()).filter((o) => !o.deleted)).toEqual([]);
  });

  it('shoal models register takes a directory or a tarball (GNU tar\'s)', async () => {
    const dir = modelDir(7);
    const tarDir = mkdtempSync(join(tmpdir(), 'shoal-tarball-'));
    expect(spawnSync('tar', ['-cf', join(tarDir, 'm.tar'), '-C', dir, '.']).status).toBe(0);
    const shoal = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), 'models', ...args], { env: c.nats.env(Role.CLIENT), cwd: dir, timeout: 60_000 });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (x: Buffer) => (stdout += x.toString('utf8')));
        p.stderr.on('data', (x: Buffer) => (stderr += x.toString('utf8')));
        p.on('close', (status) => resolve({ status, stdout, stderr }));
      });
    const fromDir = await shoal('register', 'cli-ext', dir, '--json');
    expect(fromDir.stderr).toBe('');
    expect(JSON.parse(fromDir.stdout)).toMatchObject({ version: 1, format: PACKAGE_FORMAT, sha256: sha(await collect(await packDirectory(dir))) });
    const fromTar = await shoal('register', 'cli-ext', join(tarDir, 'm.tar'));
    expect(fromTar.stdout).toMatch(/registered cli-ext v2 \(package, sha256 /);
    // GNU tar's bytes differ from our packing, and are stored as they came.
    expect((await control.reader().then((r) => r.version('cli-ext', 2))).sha256).toBe(sha(readFileSync(join(tarDir, 'm.tar'))));
  });

  it('a replica on a node process unpacks the package and serves it', async () => {
    const dir = modelDir(8);
    await control.registerPackage('served', await packDirectory(dir));
    await until(async () => (await control.deploy('served', { replicas: 1, readyTimeoutMs: 20_000 })).stable.state === 'ready' || undefined, 30_000, 'served deployed');
    const row = randomRows(1, 32, 9)[0]!;
    const r = await c.actors.ref('model-served-v1-1').ask<InferReply>({ type: 'infer', items: [{ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32], data: toBytes(Float32Array.from(row)) }] }] });
    const out = r.results[0]!;
    if ('error' in out) throw new Error(out.error.message);
    const y = out.outputs[0]!.data;
    expect(Array.from(new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.byteLength)))).toEqual(await reference(8, row));
  });
});
