/**
 * In-process micro-benchmark of the replica's hot path: decoding OIP v2 `infer` bodies (JSON
 * bytes → typed arrays checked against the signature), the code before the codec split
 * (`ml/serving/requests.ts` and `ml/tensor.ts` as they were at DECODE_BASE, taken from git) and
 * the code now (`ml/serving/codecs/`), in one run. Not a test: no assertion on time.
 *
 *   npx tsx bench/lib/decode-micro.ts
 *   DECODE_BASE=<commit> DECODE_ROUNDS=3 DECODE_MS=600 npx tsx bench/lib/decode-micro.ts
 *
 * Bodies: 4000 single rows (FP32 [1,30]) and 250 batches of 32 rows (FP32 [32,30]), nested as
 * clients send them. After a warm-up of both, each round times old and new over the same bodies
 * in alternating passes until each has had DECODE_MS; a round's ratio new/old is the median of
 * its blocks' ratios (see `time`), "all" the two sets weighted by old time over the whole mix.
 * Prints the median ratio of the rounds and their range.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeOip, type Signature, type TensorData } from '../../ml/index.ts';
import { randomRows } from '../../test/fixtures/onnx.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const ROUNDS = Number(process.env.DECODE_ROUNDS ?? 3);
const MIN_MS = Number(process.env.DECODE_MS ?? 600);

type Decode = (sig: Signature, label: string, body: Uint8Array) => { inputs: TensorData[] };

const git = (...args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();

/** The last commit before the codec split (issue #12 part 5): requests.ts and its own fast path. */
const BEFORE_SPLIT = '8d76cf7';

/**
 * The old decoder: the two files at DECODE_BASE (default: the commit before the split), written
 * next to this script so that their package imports resolve, with their imports of files that
 * did not change (errors, registry schemas) pointed at today's.
 */
async function oldDecoder(): Promise<{ decode: Decode; base: string; cleanup: () => void }> {
  const base = process.env.DECODE_BASE ?? BEFORE_SPLIT;
  const dir = mkdtempSync(join(import.meta.dirname, '.decode-old-'));
  const abs = (p: string) => JSON.stringify(join(ROOT, p));
  const requests = git('show', `${base}:ml/serving/requests.ts`)
    .replace("'../errors.ts'", abs('ml/errors.ts'))
    .replace("'../registry/schemas.ts'", abs('ml/registry/schemas.ts'))
    .replace("'../tensor.ts'", "'./tensor.ts'");
  const tensor = git('show', `${base}:ml/tensor.ts`).replace("'./errors.ts'", abs('ml/errors.ts'));
  writeFileSync(join(dir, 'requests.ts'), requests);
  writeFileSync(join(dir, 'tensor.ts'), tensor);
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const mod = (await import(join(dir, 'requests.ts'))) as { decodeJson: (f: 'oip', ...rest: Parameters<Decode>) => ReturnType<Decode> };
    return { decode: (sig, label, body) => mod.decodeJson('oip', sig, label, body), base: git('rev-parse', '--short', base), cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

const SIG: Signature = { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 30] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 2] }] };
const body = (rows: number[][], i: number) => Buffer.from(JSON.stringify({ id: `r${i}`, inputs: [{ name: 'X', shape: [rows.length, 30], datatype: 'FP32', data: rows }] }));
const SETS: Record<string, Buffer[]> = {
  'row [1,30]': Array.from({ length: 4000 }, (_, i) => body(randomRows(1, 30, i + 1), i)),
  'batch [32,30]': Array.from({ length: 250 }, (_, i) => body(randomRows(32, 30, 10_000 + i), i)),
};

/** Milliseconds for one pass over `bodies`. */
function pass(decode: Decode, bodies: Buffer[]): number {
  let sink = 0;
  const t0 = performance.now();
  for (const b of bodies) sink += decode(SIG, 'bench v1', b).inputs[0]!.length;
  const t = performance.now() - t0;
  if (sink === 0) throw new Error('nothing decoded');
  return t;
}

/**
 * Old and new over `bodies` in blocks of four passes (old, new, new, old) until each has had
 * `ms`: µs per body of each, and the ratio new/old as the median of the blocks' ratios, so that a
 * busy moment of the machine (it is shared) lands on both alike and a spike does not count.
 */
function time(old: Decode, now: Decode, bodies: Buffer[], ms: number): { old: number; new: number; ratio: number } {
  const spent = [0, 0];
  const ratios: number[] = [];
  while (Math.min(spent[0]!, spent[1]!) < ms) {
    const a = pass(old, bodies);
    const b = pass(now, bodies) + pass(now, bodies);
    const c = pass(old, bodies);
    spent[0]! += a + c;
    spent[1]! += b;
    ratios.push(b / (a + c));
  }
  const perBody = (t: number) => (t * 1000) / ((ratios.length * 2) * bodies.length);
  return { old: perBody(spent[0]!), new: perBody(spent[1]!), ratio: median(ratios) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `${median(xs).toFixed(2)} [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`;

async function main(): Promise<void> {
  const old = await oldDecoder();
  try {
    const now: Decode = (sig, label, b) => decodeOip(sig, label, b);
    // Both give the same tensors for every body.
    for (const bodies of Object.values(SETS)) {
      for (const b of bodies) {
        const [x, y] = [old.decode(SIG, 'bench v1', b).inputs[0]!, now(SIG, 'bench v1', b).inputs[0]!];
        if (x.length !== y.length || Array.from(x as Float32Array).some((v, i) => !Object.is(v, y[i]))) throw new Error('old and new decoders disagree');
      }
    }
    for (const bodies of Object.values(SETS)) time(old.decode, now, bodies, MIN_MS / 2); // warm-up
    const ratios: Record<string, number[]> = { all: [] };
    const rows: string[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // The whole mix: each set's ratio weighted by its share of the old time.
      let [oldAll, newAll] = [0, 0];
      for (const [name, bodies] of Object.entries(SETS)) {
        const us = time(old.decode, now, bodies, MIN_MS);
        (ratios[name] ??= []).push(us.ratio);
        oldAll += us.old * bodies.length;
        newAll += us.ratio * us.old * bodies.length;
        rows.push(`| ${r + 1} | ${name} | ${us.old.toFixed(2)} | ${us.new.toFixed(2)} | ${us.ratio.toFixed(3)} |`);
      }
      ratios.all!.push(newAll / oldAll);
    }
    console.log(`decode micro-benchmark: old = ${old.base}, ${ROUNDS} rounds, ≥ ${MIN_MS} ms per cell, Node ${process.version}\n`);
    console.log('| round | bodies | old µs/body | new µs/body | new/old (median of blocks) |\n|---:|---|---:|---:|---:|');
    console.log(rows.join('\n'));
    console.log('');
    for (const [name, xs] of Object.entries(ratios)) console.log(`new/old ${name}: ${fmt(xs)}`);
  } finally {
    old.cleanup();
  }
}

await main();
