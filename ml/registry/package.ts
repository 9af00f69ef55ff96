/**
 * ONNX models whose weights live beside the graph — ONNX's external data, how models over
 * protobuf's 2 GB limit are stored: initializers say `external_data {location, offset, length}`
 * and onnxruntime reads them from files next to the graph — registered as **one artifact**: an
 * uncompressed tarball of the model's directory (format `onnx-tar`).
 *
 * Why a tarball and not a directory of objects: it is one byte string, so everything the
 * registry does for a single `.onnx` holds unchanged — one sha256 names it, one object in the
 * content-addressed store holds it, one upload carries it, the digest is checked on the way in
 * and on every fetch. Uncompressed, because weights do not compress and a replica then unpacks
 * at disk speed; it also means what a package unpacks to is never larger than what was uploaded.
 * Packing a directory is deterministic (sorted paths, zero times and owners), so the same
 * directory registers as the same sha256.
 *
 * Everything streams: a package may be larger than memory (and than a JS buffer can hold).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { MlErrors } from '../errors.ts';
import { extractTar, writeTar, type TarFile } from './tar.ts';

/** The version record's `format` of a package. */
export const PACKAGE_FORMAT = 'onnx-tar';

/** Every regular file under `dir`, sorted by path; a symlink or other special file is refused. */
async function listFiles(root: string, dir = root, out: TarFile[] = []): Promise<TarFile[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const full = join(dir, e.name);
    if (e.isDirectory()) await listFiles(root, full, out);
    else if (e.isFile()) {
      const { size } = await lstat(full);
      out.push({ name: relative(root, full).split(sep).join('/'), size, data: () => createReadStream(full) });
    } else throw MlErrors.BAD_MODEL(root, `${full} is not a regular file or directory (a package holds files only; links are not followed)`);
  }
  return out;
}

/** A model directory (the graph and its external data files) as a package: a tarball stream. */
export async function packDirectory(dir: string): Promise<AsyncIterable<Uint8Array>> {
  const files = await listFiles(dir);
  if (!files.some((f) => f.name.endsWith('.onnx'))) throw MlErrors.BAD_MODEL(dir, 'the directory holds no .onnx file');
  return writeTar(files);
}

/** Whether a file is a tarball (`ustar` at byte 257: POSIX, GNU and pax archives) rather than a bare ONNX graph. */
export async function isTarball(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(5);
    const { bytesRead } = await fh.read(b, 0, 5, 257);
    return bytesRead === 5 && b.toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

/** A stream passed through while its sha256 and length are taken; `result()` once it is consumed. */
export function hashing(source: AsyncIterable<Uint8Array>): { stream: AsyncGenerator<Uint8Array>; result: () => { sha256: string; size: number } } {
  const h = createHash('sha256');
  let size = 0;
  async function* stream() {
    for await (const c of source) {
      h.update(c);
      size += c.length;
      yield c;
    }
  }
  let digest: string | undefined;
  return { stream: stream(), result: () => ({ sha256: (digest ??= h.digest('hex')), size }) };
}

/** Writes a stream to a new file; its sha256 and size. */
export async function writeHashed(source: AsyncIterable<Uint8Array>, file: string): Promise<{ sha256: string; size: number }> {
  const { stream, result } = hashing(source);
  const fh = await open(file, 'wx');
  try {
    for await (const c of stream) await fh.write(c, 0, c.length);
  } finally {
    await fh.close();
  }
  return result();
}

/**
 * Unpacks a package stream under `dest` and finds its graph: the one `.onnx` file nearest the
 * top (a tarball of `dir/` works as well as one of `dir`'s contents). Returns the graph's path and
 * the stream's sha256 and size — all of it, the tar's trailing padding included.
 */
export async function unpackPackage(source: AsyncIterable<Uint8Array>, dest: string, label: string): Promise<{ graph: string; sha256: string; size: number }> {
  const { stream, result } = hashing(source);
  const files = await extractTar(stream, dest, label);
  for await (const _ of stream); // the rest (tar pads to whole records) counts toward the digest
  const graphs = files.filter((f) => f.endsWith('.onnx'));
  const depth = Math.min(...graphs.map((g) => g.split('/').length));
  const top = graphs.filter((g) => g.split('/').length === depth);
  if (top.length !== 1) {
    throw MlErrors.BAD_MODEL(label, top.length === 0 ? `the package holds no .onnx file (files: ${files.slice(0, 10).join(', ') || 'none'})` : `the package holds several graphs at its top (${top.join(', ')}): keep exactly one .onnx there`);
  }
  return { graph: join(dest, top[0]!), ...result() };
}

/** Where a node keeps the packages its replicas unpacked, by sha256. */
export const packageCacheDir = (): string => join(tmpdir(), 'shoal-models');

/**
 * The graph of package `sha256` unpacked on this machine: from the cache when an earlier load
 * left it there, else fetched, unpacked and checked against its sha256 (refused, and nothing
 * cached, when it does not match). Unpacked into a private directory and renamed into place,
 * so replicas loading the same package at once never see half of one.
 */
export async function materializePackage(sha256: string, label: string, fetch: () => Promise<AsyncIterable<Uint8Array>>, cacheDir = packageCacheDir()): Promise<string> {
  const dir = join(cacheDir, sha256);
  const cached = await readFile(join(dir, 'graph'), 'utf8').catch(() => undefined);
  if (cached !== undefined) return join(dir, 'files', cached);
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(join(cacheDir, `${sha256}.partial-`));
  try {
    await mkdir(join(work, 'files'));
    const got = await unpackPackage(await fetch(), join(work, 'files'), label);
    if (got.sha256 !== sha256) throw MlErrors.ARTIFACT_CORRUPT(label, sha256, got.sha256);
    const graph = relative(join(work, 'files'), got.graph);
    await writeFile(join(work, 'graph'), graph);
    try {
      await rename(work, dir);
    } catch (err) {
      // Another replica on this machine got there first: theirs is the same bytes.
      if (!['ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
    return join(dir, 'files', graph);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
