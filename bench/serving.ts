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
 * Writes bench/results/serving.md. Everything shares this machine's cores with autocannon, so
 * compare ratios, not absolute numbers, across machines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { findNatsServer } from '../cluster/index.ts';
import type { Child } from '../nodes/index.ts';
import { randomRows } from '../test/fixtures/onnx.ts';
import { startServingCluster } from './lib/serving-cluster.ts';

const DURATION_S = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = (process.env.BENCH_C ?? '1,16,64,128').split(',').map(Number);
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

async function measure(target: string, url: string): Promise<Result[]> {
  await cannon(target, url, 16, 2); // warm-up
  const out: Result[] = [];
  for (const c of CONNECTIONS) {
    const r = await cannon(target, url, c);
    process.stderr.write(`${target} c=${c}: ${r.reqPerSec.toFixed(0)} req/s p50 ${r.p50} ms p99 ${r.p99} ms errors ${r.errors}\n`);
    out.push(r);
  }
  return out;
}

const results: Result[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'shoal-bench-serving-'));
try {
  const only = process.env.BENCH_ONLY; // e.g. "d" to run Shoal alone
  // (a) and (b)
  for (const [name, mode] of (only && !/[ab]/.test(only) ? [] : [
    ['(a) Fastify echo', 'echo'],
    ['(b) naive Fastify + onnxruntime', 'naive'],
  ]) as [string, string][]) {
    const { proc, match } = await start('bench/lib/serving-naive.ts', ['--mode', mode], /listening (\d+)/);
    results.push(...(await measure(name, `http://127.0.0.1:${match[1]}`)));
    proc.kill('SIGTERM');
  }

  // (c) Moleculer over its own nats-server (no auth, as Moleculer's default setup)
  if (!only || only.includes('c')) {
  const natsPort = 20000 + Math.floor(Math.random() * 20000);
  const natsBin = findNatsServer();
  const mnats = spawn(natsBin, ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
  children.push(mnats);
  if (mnats.pid) natsPids.push(mnats.pid);
  await new Promise((r) => setTimeout(r, 500));
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const svc = await start('bench/lib/serving-moleculer.ts', ['--role', 'service', '--nats', natsUrl], /ready/);
  const mgw = await start('bench/lib/serving-moleculer.ts', ['--role', 'gateway', '--nats', natsUrl], /listening (\d+)/);
  results.push(...(await measure('(c) Moleculer over NATS + onnxruntime', `http://127.0.0.1:${mgw.match[1]}`)));
  mgw.proc.kill('SIGTERM');
  svc.proc.kill('SIGTERM');
  mnats.kill('SIGTERM');
  }

  // (d) Shoal
  const cluster = await startServingCluster(tmp, 'bench-node');
  natsPids.push(cluster.server.pid);
  clusterChildren.push(...Object.values(cluster.children));
  const url = cluster.url;
  results.push(...(await measure('(d) Shoal (gateway → NATS → batching replica)', url)));
  const metrics = await (await fetch(`${url}/metrics`)).text();
  const sum = Number(/shoal_gateway_batch_size_sum\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const count = Number(/shoal_gateway_batch_size_count\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const msgSum = Number(/shoal_gateway_nats_message_requests_sum\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  const msgCount = Number(/shoal_gateway_nats_message_requests_count\{[^}]*\} ([\d.e+]+)/.exec(metrics)?.[1]);
  await cluster.nc.close();
  await cluster.stop();

  // ---- report ---------------------------------------------------------------------------------
  const by = (t: string, c: number) => results.find((r) => r.target.startsWith(t) && r.connections === c);
  const lines = [
    '# Serving benchmark',
    '',
    `\`npm run bench:serving\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model.trim()}), Node ${process.version}.`,
    `Same MLP (32 → 64 → 4, onnxruntime-node CPU, 1 intra-op thread), same OIP JSON body (one row), autocannon on loopback, ${DURATION_S} s per cell after a warm-up;`,
    'every process of every target shares the cores with autocannon. One prediction per request, so predictions/s = req/s.',
    '',
    '| target | connections | req/s (= predictions/s) | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|',
    ...results.map((r) => `| ${r.target} | ${r.connections} | ${r.reqPerSec.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.errors} |`),
    '',
    '## Ratios (req/s)',
    '',
    '| connections | Shoal / naive (b) | Shoal / Moleculer (c) | Shoal / echo ceiling (a) |',
    '|---:|---:|---:|---:|',
    ...CONNECTIONS.map((c) => {
      const d = by('(d)', c)?.reqPerSec ?? 0;
      const f = (x: number | undefined) => (x ? `${(d / x).toFixed(2)}×` : '-');
      return `| ${c} | ${f(by('(b)', c)?.reqPerSec)} | ${f(by('(c)', c)?.reqPerSec)} | ${f(by('(a)', c)?.reqPerSec)} |`;
    }),
    '',
    `Shoal, whole run: average onnxruntime batch ${count ? (sum / count).toFixed(1) : '?'} rows per request's run; ${msgCount ? (msgSum / msgCount).toFixed(1) : '?'} requests per NATS message (gateway coalescing).`,
    '',
    `Targets (issue 6): at 64 connections Shoal ≥ 1.0× (b) and ≥ 1.5× (c) in req/s, p99 ≤ 20 ms. Measured: ${(() => {
      const d = by('(d)', 64);
      const b = by('(b)', 64);
      const c = by('(c)', 64);
      if (!d || !b || !c) return 'n/a (64 not in BENCH_C)';
      return `${(d.reqPerSec / b.reqPerSec).toFixed(2)}× (b), ${(d.reqPerSec / c.reqPerSec).toFixed(2)}× (c), p99 ${d.p99} ms`;
    })()}.`,
    '',
  ];
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/serving.md', lines.join('\n'));
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
