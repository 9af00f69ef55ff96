/**
 * Just enough of the tar format for model packages, streamed both ways (a package may be far
 * larger than memory): writing POSIX ustar, deterministically (zero times and owners, fixed
 * modes, the caller's order; a pax header for a path ustar cannot hold, base-256 for a size over
 * 8 GiB, as GNU tar does), and reading what `tar` itself writes — ustar, GNU (`L` long
 * names, base-256 sizes) and pax (`x` headers for `path` and `size`). Only regular files and
 * directories are taken; links, devices and names that are absolute or climb out with `..` are
 * refused, so extracting can write nowhere but under its destination.
 */
import { mkdir, open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MlErrors } from '../errors.ts';

const BLOCK = 512;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** One file of a tarball being written: its path inside the archive, its size and its bytes. */
export interface TarFile {
  name: string;
  size: number;
  data: () => AsyncIterable<Uint8Array>;
}

/** An octal field (`width` bytes with its NUL), or base-256 (GNU) past what the octal digits hold: a file over 8 GiB. */
function numeric(block: Uint8Array, at: number, width: number, v: number): void {
  if (v < 8 ** (width - 1)) {
    block.set(utf8.encode(v.toString(8).padStart(width - 1, '0')), at);
    return;
  }
  block[at] = 0x80;
  for (let i = width - 1, x = v; i >= 1; i--, x = Math.floor(x / 256)) block[at + i] = x % 256;
}

/** Where a name over 100 bytes splits into ustar's prefix (155) and name (100): at a `/`, if one fits; else undefined. */
function ustarSplit(name: string): [Uint8Array, Uint8Array] | undefined {
  const all = utf8.encode(name);
  if (all.length <= 100) return [new Uint8Array(0), all];
  for (let cut = name.indexOf('/'); cut > 0; cut = name.indexOf('/', cut + 1)) {
    const p = utf8.encode(name.slice(0, cut));
    const n = utf8.encode(name.slice(cut + 1));
    if (p.length <= 155 && n.length <= 100) return [p, n];
  }
  return undefined;
}

/** A ustar header (type `0`, a file; `x`, a pax header) whose name is already split. */
function header(prefix: Uint8Array, n: Uint8Array, size: number, type = 0x30): Uint8Array {
  const b = new Uint8Array(BLOCK);
  b.set(n, 0);
  numeric(b, 100, 8, 0o644);
  numeric(b, 108, 8, 0);
  numeric(b, 116, 8, 0);
  numeric(b, 124, 12, size);
  numeric(b, 136, 12, 0);
  b.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  b[156] = type;
  b.set(utf8.encode('ustar\u000000'), 257);
  b.set(prefix, 345);
  let sum = 0;
  for (const x of b) sum += x;
  b.set(utf8.encode(`${sum.toString(8).padStart(6, '0')}\u0000 `), 148);
  return b;
}

/** A pax extended header giving `path` to the entry after it: for a name ustar cannot hold. */
function paxPath(name: string): Uint8Array[] {
  const rest = ` path=${name}\n`;
  let len = utf8.encode(rest).length;
  len += String(len + String(len).length).length; // the length counts its own digits
  const body = utf8.encode(`${len}${rest}`);
  const pad = new Uint8Array((BLOCK - (body.length % BLOCK)) % BLOCK);
  return [header(new Uint8Array(0), utf8.encode('PaxHeader'), body.length, 0x78), body, pad];
}

/** The tarball of `files`, in their order, as a stream of chunks. */
export async function* writeTar(files: Iterable<TarFile>): AsyncGenerator<Uint8Array> {
  for (const f of files) {
    const split = ustarSplit(f.name);
    if (split) yield header(split[0], split[1], f.size);
    else {
      yield* paxPath(f.name);
      yield header(new Uint8Array(0), utf8.encode(f.name.slice(0, 100)), f.size);
    }
    let n = 0;
    for await (const chunk of f.data()) {
      n += chunk.length;
      yield chunk;
    }
    if (n !== f.size) throw MlErrors.BAD_MODEL(f.name, `changed while it was being packed (${f.size} bytes, then ${n})`);
    if (n % BLOCK) yield new Uint8Array(BLOCK - (n % BLOCK));
  }
  yield new Uint8Array(2 * BLOCK);
}

const text = (b: Uint8Array, at: number, width: number) => {
  const s = b.subarray(at, at + width);
  const end = s.indexOf(0);
  return fromUtf8.decode(end < 0 ? s : s.subarray(0, end));
};

function readNumeric(b: Uint8Array, at: number, width: number): number {
  if (b[at]! & 0x80) {
    let v = 0;
    for (let i = 1; i < width; i++) v = v * 256 + b[at + i]!;
    return v;
  }
  const s = text(b, at, width).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** A path inside the archive, normalized (`./a//b` → `a/b`); refused if absolute or climbing out. */
function safePath(label: string, raw: string): string {
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (raw.startsWith('/') || parts.includes('..') || raw.includes('\u0000')) throw MlErrors.BAD_MODEL(label, `the package holds a path that leaves its directory: ${JSON.stringify(raw)}`);
  return parts.join('/');
}

/** pax records `"<len> key=value\n"` → their `path` and `size`. */
function paxRecords(body: Uint8Array): { path?: string; size?: number } {
  const out: { path?: string; size?: number } = {};
  for (const line of fromUtf8.decode(body).split('\n')) {
    const m = /^\d+ ([^=]+)=(.*)$/s.exec(line);
    if (m?.[1] === 'path') out.path = m[2]!;
    else if (m?.[1] === 'size') out.size = Number(m[2]);
  }
  return out;
}

/** Reads exactly the bytes asked for from a chunk stream, keeping the rest for the next read. */
class ChunkReader {
  #buf: Uint8Array = new Uint8Array(0);
  readonly #it: AsyncIterator<Uint8Array>;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }
  /** Up to `max` bytes (fewer only at the end of the stream; empty there). */
  async read(max: number): Promise<Uint8Array> {
    while (this.#buf.length === 0) {
      const r = await this.#it.next();
      if (r.done) return this.#buf;
      this.#buf = r.value;
    }
    const out = this.#buf.subarray(0, max);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }
  /** Exactly `n` bytes, or fails naming what was cut short. */
  async exactly(n: number, label: string): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; ) {
      const c = await this.read(n - at);
      if (c.length === 0) throw MlErrors.BAD_MODEL(label, 'the tarball ends in the middle of an entry');
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Extracts a tarball stream under `dest` (which must exist); returns the paths of the files it
 * wrote, relative to `dest`. A name given twice, or anything but files and directories, is refused.
 */
export async function extractTar(source: AsyncIterable<Uint8Array>, dest: string, label: string): Promise<string[]> {
  const r = new ChunkReader(source);
  const files: string[] = [];
  let pending: { path?: string; size?: number } = {};
  for (;;) {
    const h = await r.read(BLOCK).then(async (c) => (c.length === 0 || c.length === BLOCK ? c : concat(c, await r.exactly(BLOCK - c.length, label))));
    if (h.length === 0 || h.every((x) => x === 0)) return files; // the end blocks (or a tarball without them)
    const type = String.fromCharCode(h[156]!);
    const size = pending.size ?? readNumeric(h, 124, 12);
    const ustar = text(h, 257, 6) === 'ustar';
    const name = pending.path ?? (ustar && h[345] !== 0 ? `${text(h, 345, 155)}/${text(h, 0, 100)}` : text(h, 0, 100));
    pending = {};
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L') {
      const body = await r.exactly(padded, label);
      pending = type === 'x' ? paxRecords(body.subarray(0, size)) : { path: text(body, 0, size) };
    } else if (type === 'g') await r.exactly(padded, label); // pax global header: nothing we use
    else if (type === '5') await mkdir(join(dest, safePath(label, name)), { recursive: true });
    else if (type === '0' || type === '\u0000' || type === '7') {
      const rel = safePath(label, name);
      await mkdir(dirname(join(dest, rel)), { recursive: true });
      await copyOut(r, join(dest, rel), size, label).catch((err: NodeJS.ErrnoException) => {
        throw err.code === 'EEXIST' ? MlErrors.BAD_MODEL(label, `the package holds ${rel} twice`) : err;
      });
      await r.exactly(padded - size, label);
      files.push(rel);
    } else throw MlErrors.BAD_MODEL(label, `the package holds ${JSON.stringify(name)}, which is not a regular file or directory (tar type ${JSON.stringify(type)}): links and devices are refused`);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Writes the next `size` bytes of the stream to a new file (`wx`: never over another). */
async function copyOut(r: ChunkReader, file: string, size: number, label: string): Promise<void> {
  const fh = await open(file, 'wx');
  try {
    for (let left = size; left > 0; ) {
      const c = await r.read(left);
      if (c.length === 0) throw MlErrors.BAD_MODEL(label, 'the tarball ends in the middle of a file');
      const { bytesWritten } = await fh.write(c, 0, c.length);
      if (bytesWritten !== c.length) throw MlErrors.BAD_MODEL(label, `could not write ${file} in full (disk full?)`);
      left -= c.length;
    }
  } finally {
    await fh.close();
  }
}
