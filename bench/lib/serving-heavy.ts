/**
 * The compute-heavy row of `npm run bench:serving`: a model of more than 10 ms per one-row run
 * (`tokenStackModel`: 32 MatMul+Tanh layers over 64 positions of 512, about 1.1 GFLOP a row, its
 * cost proportional to the rows — batching saves no arithmetic), one row per request. Shoal
 * serves it with 2 instances (two sessions on two worker threads, the batcher running two
 * batches at once); the naive in-process server runs one session on its event loop. Measured in
 * turns with autocannon like the rest of the bench.
 */
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import { subjects, type NatsConnection } from '../../cluster/index.ts';
import { RegistryClient } from '../../ml/index.ts';
import { measureInTurns, median, ratioRow } from './results.ts';
import { deployWhenServed } from './serving-cluster.ts';
import { TOKEN_STACK, tokenStackModel } from '../../test/fixtures/onnx-real.ts';

const CONNECTIONS = (process.env.BENCH_HEAVY_C ?? '1,16,64').split(',').map(Number);
/** Sessions per Shoal replica. */
export const HEAVY_INSTANCES = Number(process.env.BENCH_HEAVY_INSTANCES ?? 2);

/** One row, values from a formula (the same body for every target). */
export const HEAVY_BODY = JSON.stringify({ id: 'heavy', inputs: [{ name: 'X', shape: [1, TOKEN_STACK.dim], datatype: 'FP32', data: Array.from({ length: TOKEN_STACK.dim }, (_, i) => Math.round(Math.sin(i) * 1000) / 1000) }] });

/** Registers and deploys the heavy model (2 instances) on the Shoal cluster; resolves once the gateway serves it. */
export async function deployHeavyModel(nc: NatsConnection, gatewayUrl: string): Promise<void> {
  const registry = new RegistryClient(nc, subjects());
  await registry.register('heavy', tokenStackModel(), { aliases: ['production'], sample: new TextEncoder().encode(HEAVY_BODY) });
  await deployWhenServed(registry, 'heavy', { replicas: 1, instances: HEAVY_INSTANCES, intraOpThreads: 1, maxBatchSize: 8, maxQueueDelayMs: 0, readyTimeoutMs: 60_000 }, gatewayUrl);
}

interface Cell {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}


/**
 * Measures each target (naive first in the list, then Shoal) at each connection count, `rounds`
 * rounds in a rotated order; returns the markdown section for the results file.
 */
export async function measureHeavy(targets: { name: string; url: string }[], seconds: number, rounds: number): Promise<string[]> {
  const run = async (url: string, connections: number, s: number): Promise<Cell> => {
    const r = await autocannon({ url: `${url}/v2/models/heavy/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: HEAVY_BODY, connections, duration: s, pipelining: 1, timeout: 30 });
    return { reqPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
  };
  for (const t of targets) await run(t.url, 4, 2); // warm-up
  const load = [loadavg()[0]!];
  const rows: string[] = [];
  const ratios: string[] = [];
  const measured = await measureInTurns(targets, CONNECTIONS, rounds, (url, c) => run(url, c, seconds), (x) => x.reqPerSec, (name, c, round, cell) =>
    process.stderr.write(`heavy ${name} c=${c} round ${round}: ${cell.reqPerSec.toFixed(1)} req/s p50 ${cell.p50} ms p99 ${cell.p99} ms errors ${cell.errors}\n`),
  );
  for (const m of measured) {
    targets.forEach((t, i) => {
      const cs = m.cells[i]!;
      rows.push(`| ${t.name} | ${m.connections} | ${median(cs.map((x) => x.reqPerSec)).toFixed(1)} | ${median(cs.map((x) => x.p50))} | ${median(cs.map((x) => x.p99))} | ${cs.reduce((a, x) => a + x.errors, 0)} |`);
    });
    if (m.ratios.length) ratios.push(ratioRow(m.connections, m.ratios));
  }
  load.push(loadavg()[0]!);
  const loadNote = `load average (1 min) ${load.map((l) => l.toFixed(1)).join(' → ')}${Math.max(...load) > 3 ? ' — **over 3: the machine was shared, read the ratio, not the req/s**' : ''}`;
  return [
    '## Compute-heavy: a model of more than 10 ms per run',
    '',
    `\`tokenStackModel\` (${TOKEN_STACK.depth} MatMul+Tanh layers over ${TOKEN_STACK.tokens} positions of ${TOKEN_STACK.dim}, about ${((2 * TOKEN_STACK.tokens * TOKEN_STACK.dim * TOKEN_STACK.dim * TOKEN_STACK.depth) / 1e9).toFixed(1)} GFLOP per row, one row per request, OIP JSON); ${seconds} s per measurement, ${rounds} round(s) in a rotated order, medians; ${loadNote}.`,
    `Shoal: one replica with ${HEAVY_INSTANCES} instances (sessions on worker threads, 1 intra-op thread each), dynamic batching up to 8 rows; naive: one session (1 intra-op thread) run on its event loop.`,
    '',
    '| target | connections | req/s | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    '| connections | Shoal / naive (req/s): median of per-round ratios [range] |',
    '|---:|---:|',
    ...ratios,
    '',
  ];
}
