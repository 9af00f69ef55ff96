/**
 * `npm run bench:tenants`: what counting each tenant's requests cluster-wide costs. Two gateways
 * built in this process against one real nats-server (auth on), the same API keys, side by side
 * in one run, BENCH_ROUNDS rounds with the order rotated: requests per minute counted in NATS KV
 * (`@fastify/rate-limit` with the KV store: a CAS increment per batch of concurrent requests,
 * the default) against counted in the gateway's own memory (the store's local fallback: N
 * gateways allow N× the limit). The route is an authenticated one that answers from memory
 * (`GET /v1/tenants/owners`, admin key), so the difference is the admission path. autocannon (its
 * own process), BENCH_SECONDS per cell, at 1 and 64 connections. Writes bench/results/tenants.md.
 */
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Role, createLogger, ensureResources, subjects } from '../cluster/index.ts';
import { buildGateway } from '../gateway/index.ts';
import { startTestNats } from '../test/harness/nats.ts';
import { measureInTurns, median, ratioRow, writeResults } from './lib/results.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? '1,64').split(',').map(Number);
const KEY = 'bench-admin-key-0001';
const ROOT = join(import.meta.dirname, '..');
const exec = promisify(execFile);

interface Cell {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  non2xx: number;
}

const nats = await startTestNats();
await ensureResources(await nats.connect(Role.SCHEDULER));
const logger = createLogger({ level: 'error', pretty: false });
const gw = async (shared: boolean) => {
  const app = await buildGateway({
    nc: await nats.connect(Role.GATEWAY),
    subjects: subjects(),
    logger,
    inference: false,
    dashboard: false,
    apiKeys: [{ key: KEY, tenant: 'ops', role: 'admin' }],
    rateLimitPerMinute: 1_000_000_000,
    sharedRateCounts: shared,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/tenants/owners?kind=model&tenant=ops` };
};
const local = await gw(false);
const kv = await gw(true);

/** autocannon in its own process: in this one it would share the event loop with the gateways it measures. */
const run = async (url: string, connections: number): Promise<Cell> => {
  const { stdout } = await exec(join(ROOT, 'node_modules/.bin/autocannon'), ['-j', '-c', String(connections), '-d', String(SECONDS), '-H', `x-api-key=${KEY}`, url], { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number };
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, requests: r.requests.total, non2xx: r.non2xx };
};

const results = await measureInTurns(
  [
    { name: 'in-process counts', url: local.url },
    { name: 'NATS KV counts', url: kv.url },
  ],
  CONNECTIONS,
  ROUNDS,
  run,
  (c) => c.rps,
  (t, c, round, cell) => process.stdout.write(`${t} c=${c} round ${round}: ${Math.round(cell.rps)} req/s p50 ${cell.p50} ms p99 ${cell.p99} ms (${cell.requests} requests, ${cell.non2xx} non-2xx)\n`),
);

const row = (name: string, c: number, cells: Cell[]) =>
  `| ${name} | ${c} | ${Math.round(median(cells.map((x) => x.rps)))} [${Math.round(Math.min(...cells.map((x) => x.rps)))}–${Math.round(Math.max(...cells.map((x) => x.rps)))}] | ${median(cells.map((x) => x.p50))} | ${median(cells.map((x) => x.p99))} | ${cells.reduce((a, x) => a + x.requests, 0)} | ${cells.reduce((a, x) => a + x.non2xx, 0)} |`;
const md = [
  '# Tenants: the cost of a cluster-wide rate limit',
  '',
  `\`npm run bench:tenants\` — ${ROUNDS} rounds × ${SECONDS} s per cell, order rotated each round; one authenticated route answered from memory, so the difference is admission. The machine is shared by several engineers: figures are noisy; compare rows of one run, not runs.`,
  '',
  '| counting | connections | req/s median [range] | p50 ms | p99 ms | requests (all rounds) | non-2xx |',
  '|---|---|---|---|---|---|---|',
  ...results.flatMap((r) => [row('in-process', r.connections, r.cells[0]!), row('NATS KV', r.connections, r.cells[1]!)]),
  '',
  'NATS KV throughput as a ratio of in-process (median per-round ratio [range]):',
  '',
  '| connections | ratio |',
  '|---|---|',
  ...results.map((r) => ratioRow(r.connections, r.ratios)),
  '',
].join('\n');
writeResults('bench/results/tenants.md', md);
process.stdout.write(md);
await local.app.close();
await kv.app.close();
await nats.stop();
process.exit(0);
