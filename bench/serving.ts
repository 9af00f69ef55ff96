/**
 * `npm run bench:serving`: the same small ONNX model (an MLP on 32 features, 64 hidden, 4
 * outputs), the same OIP request body (one row), side by side in one run, with autocannon on
 * loopback at several connection counts:
 *   (a) a bare Fastify echo route — the ceiling
 *   (b) naive single-process Fastify + onnxruntime (one `session.run` per request)
 *   (c) Moleculer services over NATS calling onnxruntime (Fastify front + Moleculer node, own
 *       nats-server without auth)
 *   (d) Shoal: nats-server (auth on), scheduler, one node agent hosting the inference replica,
 *       and the gateway — four processes, dynamic batching in the replica
 * All four run at once (an idle one costs nothing) and are measured in turns — for each
 * connection count, BENCH_ROUNDS rounds, each measuring every target once in a rotated order — so
 * that a slow minute on this shared machine hits every target alike. A cell's figure is the
 * median of its rounds; the Shoal/naive ratio is the median of the per-round ratios.
 * Then the large-tensor row (bench/lib/serving-large.ts): one 16 MiB request, MB/s and p99, Shoal
 * against the naive server (b) in turns (BENCH_LARGE=0 skips it). Then the compute-heavy row
 * (bench/lib/serving-heavy.ts): a model of more than 10 ms per run, Shoal with 2 instances
 * against the naive server, in turns (BENCH_HEAVY=0 skips it; BENCH_HEAVY_C sets its connections).
 * Writes bench/results/serving.md (keeping the hand-written notes below its marker).
 * Everything shares this machine's cores with autocannon, so compare ratios, not absolute
 * numbers, across machines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { findNatsServer, type Child } from '../cluster/index.ts';
import { randomRows } from '../test/fixtures/onnx.ts';
import { startServingCluster } from './lib/serving-cluster.ts';
import { median, writeResults } from './lib/results.ts';
import { deployLargeModel, measureLarge } from './lib/serving-large.ts';
import { deployHeavyModel, measureHeavy } from './lib/serving-heavy.ts';

const DURATION_S = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = (process.env.BENCH_C ?? '1,16,64,128').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BODY = JSON.stringify({ id: 'bench', inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1)[0] }] });
const children: ChildProcess[] = [];
const clusterChildren: Child[] = [];
const natsPids: number[] = [];

function start(file: string, args: string[], until: RegExp): Promise<{ proc: ChildProcess; match: RegExpMatchArray }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = until.exec(out);
      if (m) resolve({ proc, match: m });
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => process.stderr.write(`[${file}] ${d.toString()}`));
    proc.once('exit', (code) => reject(new Error(`${file} exited (${code}) before it was ready:\n${out}`)));
  });
}

interface Result {
  target: string;
  connections: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

async function cannon(target: string, url: string, connections: number, seconds = DURATION_S): Promise<Result> {
  const r = await autocannon({ url: `${url}/v2/models/mlp/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, connections, duration: seconds, pipelining: 1 });
  return { target, connections, reqPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}


const results: Result[] = [];
/** Per connection count and round: req/s by target letter. */
const rounds: { c: number; round: number; rps: Record<string, number> }[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'shoal-bench-serving-'));
try {
  const only = process.env.BENCH_ONLY; // e.g. "bd": naive and Shoal only
  const want = (letter: string) => !only || only.includes(letter);
  const targets: { letter: string; name: string; url: string }[] = [];
  // (a) and (b)
  for (const [letter, name, mode] of [
    ['a', '(a) Fastify echo', 'echo'],
    ['b', '(b) naive Fastify + onnxruntime', 'naive'],
  ] as [string, string, string][]) {
    if (!want(letter)) continue;
    const { match } = await start('bench/lib/serving-naive.ts', ['--mode', mode], /listening (\d+)/);
    targets.push({ letter, name, url: `http://127.0.0.1:${match[1]}` });
  }

  // (c) Moleculer over its own nats-server (no auth, as Moleculer's default setup)
  if (want('c')) {
    const natsPort = 20000 + Math.floor(Math.random() * 20000);
    const natsBin = findNatsServer();
    const mnats = spawn(natsBin, ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
    children.push(mnats);
    if (mnats.pid) natsPids.push(mnats.pid);
    await new Promise((r) => setTimeout(r, 500));
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    await start('bench/lib/serving-moleculer.ts', ['--role', 'service', '--nats', natsUrl], /ready/);
    const mgw = await start('bench/lib/serving-moleculer.ts', ['--role', 'gateway', '--nats', natsUrl], /listening (\d+)/);
    targets.push({ letter: 'c', name: '(c) Moleculer over NATS + onnxruntime', url: `http://127.0.0.1:${mgw.match[1]}` });
  }

  // (d) Shoal
  const cluster = await startServingCluster(tmp, 'bench-node');
  natsPids.push(cluster.server.pid);
  clusterChildren.push(...Object.values(cluster.children));
  const url = cluster.url;
  targets.push({ letter: 'd', name: '(d) Shoal (gateway → NATS → batching replica)', url });

  for (const t of targets) await cannon(t.name, t.url, 16, 2); // warm-up
  for (const c of CONNECTIONS) {
    const cells = new Map<string, Result[]>();
    for (let round = 0; round < ROUNDS; round++) {
      const rps: Record<string, number> = {};
      // Rotate the order each round: no target always goes first (or right after another).
      for (let k = 0; k < targets.length; k++) {
        const t = targets[(k + round) % targets.length]!;
        const r = await cannon(t.name, t.url, c);
        process.stderr.write(`${t.name} c=${c} round ${round + 1}: ${r.reqPerSec.toFixed(0)} req/s p50 ${r.p50} ms p99 ${r.p99} ms errors ${r.errors}\n`);
        rps[t.letter] = r.reqPerSec;
        cells.set(t.letter, [...(cells.get(t.letter) ?? []), r]);
      }
      rounds.push({ c, round, rps });
    }
    for (const t of targets) {
      const rs = cells.get(t.letter)!;
      results.push({ target: t.name, connections: c, reqPerSec: median(rs.map((r) => r.reqPerSec)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), errors: rs.reduce((a, r) => a + r.errors, 0) });
    }
  }
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const sum = Number(/shoal_gateway_batch_size_sum\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const count = Number(/shoal_gateway_batch_size_count\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const msgSum = Number(/shoal_gateway_nats_message_requests_sum\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const msgCount = Number(/shoal_gateway_nats_message_requests_count\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  // The large-tensor row, after the small-request figures are read (its messages would count in them).
  const naiveTarget = targets.find((t) => t.letter === 'b');
  let large: string[] = [];
  if (process.env.BENCH_LARGE !== '0' && naiveTarget) {
    await deployLargeModel(cluster.nc, url);
    large = await measureLarge([naiveTarget, targets.find((t) => t.letter === 'd')!], DURATION_S, ROUNDS);
  }
  let heavy: string[] = [];
  if (process.env.BENCH_HEAVY !== '0' && naiveTarget) {
    await deployHeavyModel(cluster.nc, url);
    heavy = await measureHeavy([naiveTarget, targets.find((t) => t.letter === 'd')!], DURATION_S, ROUNDS);
  }
  await cluster.nc.close();
  await cluster.stop();

  // ---- report ---------------------------------------------------------------------------------
  const by = (t: string, c: number) => results.find((r) => r.target.startsWith(t) && r.connections === c);
  /** Shoal over target `x` at `c` connections: median of the per-round ratios [min–max]. */
  const ratio = (c: number, x: string): string => {
    const rs = rounds.filter((r) => r.c === c && r.rps.d && r.rps[x]).map((r) => r.rps.d! / r.rps[x]!);
    if (rs.length === 0) return '-';
    return rs.length === 1 ? `${rs[0]!.toFixed(2)}×` : `${median(rs).toFixed(2)}× [${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}]`;
  };
  const lines = [
    '# Serving benchmark',
    '',
    `\`npm run bench:serving\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), Node ${process.version}.`,
    `Same MLP (32 → 64 → 4, onnxruntime-node CPU, 1 intra-op thread), same OIP JSON body (one row), autocannon on loopback, ${DURATION_S} s per measurement after a warm-up;`,
    `all targets up at once and measured in turns, ${ROUNDS} round(s) per connection count in a rotated order; each cell is the median of its rounds.`,
    'Every process of every target shares the 2 cores with autocannon. One prediction per request, so predictions/s = req/s.',
    '',
    '| target | connections | req/s (= predictions/s) | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map((r) => `| ${r.target} | ${r.connections} | ${r.reqPerSec.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`),
    '',
    '## Ratios (req/s): median of the per-round ratios, and the range',
    '',
    '| connections | Shoal / naive (b) | Shoal / Moleculer (c) | Shoal / echo ceiling (a) |',
    '|---:|---:|---:|---:|',
    ...CONNECTIONS.map((c) => `| ${c} | ${ratio(c, 'b')} | ${ratio(c, 'c')} | ${ratio(c, 'a')} |`),
    '',
    `Shoal, whole run: average onnxruntime batch ${count ? (sum / count).toFixed(1) : '?'} rows per request's run; ${msgCount ? (msgSum / msgCount).toFixed(1) : '?'} requests per NATS message (gateway coalescing).`,
    '',
    `Targets (issue 6): at 64 connections Shoal ≥ 1.0× (b) and ≥ 1.5× (c) in req/s, p99 ≤ 20 ms. Measured: ${(() => {
      const d = by('(d)', 64);
      if (!d) return 'n/a (64 not in BENCH_C)';
      return `${ratio(64, 'b')} (b), ${ratio(64, 'c')} (c), p99 ${d.p99} ms`;
    })()}.`,
    '',
    ...large,
    ...heavy,
  ];
  writeResults('bench/results/serving.md', lines.join('\n'));
  process.stdout.write(lines.join('\n'));
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const c of clusterChildren) c.process.kill('SIGKILL');
  for (const pid of natsPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
