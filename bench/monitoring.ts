/**
 * `npm run bench:monitoring`: what the prediction log costs serving. One Shoal cluster (nats-server
 * with auth, scheduler, one node, gateway — real processes, bench/lib/serving-cluster.ts) serves the
 * same MLP under two names: `mlp` without monitoring and `mlp-logged` deployed with
 * `monitoring: {sampleRate: 1}` (every request's inputs and outputs appended to SHOAL_PREDICTIONS
 * in batches). autocannon sends the same one-row OIP request to each in turns, BENCH_ROUNDS rounds,
 * the order flipped every round; the ratio is logged/off req/s per round (median and range).
 * Writes the "Prediction log" part of bench/results/monitoring.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { subjects } from '../cluster/index.ts';
import { RegistryClient } from '../ml/index.ts';
import { mlpModel, randomRows } from '../test/fixtures/onnx.ts';
import { deployWhenServed, startServingCluster } from './lib/serving-cluster.ts';
import { median, writeResults } from './lib/results.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = (process.env.BENCH_C ?? '64').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BODY = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1)[0] }] });

interface Cell {
  rps: number;
  p99: number;
  errors: number;
}

async function cannon(url: string, model: string, connections: number): Promise<Cell> {
  const r = await autocannon({ url: `${url}/v2/models/${model}/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, connections, duration: SECONDS, pipelining: 1 });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-monitoring-'));
const cluster = await startServingCluster(dir, 'bench-node');
const lines = [
  '# Monitoring benchmark',
  '',
  `\`npm run bench:monitoring\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${ROUNDS} rounds of ${SECONDS} s per target, order flipped every round.`,
  '',
  '## Prediction log: serving with every request logged vs logging off',
  '',
  'The same MLP (32 features) deployed twice on one node; one with `monitoring: {sampleRate: 1}`. One-row OIP requests through the gateway.',
  '',
  '| connections | off req/s | logged req/s | off p99 ms | logged p99 ms | errors | logged/off |',
  '|---|---|---|---|---|---|---|',
];
try {
  const registry = new RegistryClient(cluster.nc, subjects());
  await registry.register('mlp-logged', mlpModel({ seed: 1 }), { aliases: ['production'] });
  await deployWhenServed(registry, 'mlp-logged', { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000, monitoring: { sampleRate: 1 } }, cluster.url);
  for (const c of CONNECTIONS) {
    await cannon(cluster.url, 'mlp', c); // warm both
    await cannon(cluster.url, 'mlp-logged', c);
    const off: Cell[] = [];
    const on: Cell[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const which of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
        const cell = await cannon(cluster.url, which === 'off' ? 'mlp' : 'mlp-logged', c);
        (which === 'off' ? off : on).push(cell);
        console.log(`[c=${c}] round ${round + 1} logging ${which}: ${cell.rps.toFixed(0)} req/s, p99 ${cell.p99} ms, ${cell.errors} errors`);
      }
    }
    const ratios = on.map((x, i) => x.rps / off[i]!.rps);
    lines.push(
      `| ${c} | ${median(off.map((x) => x.rps)).toFixed(0)} | ${median(on.map((x) => x.rps)).toFixed(0)} | ${median(off.map((x) => x.p99))} | ${median(on.map((x) => x.p99))} | ${[...off, ...on].reduce((n, x) => n + x.errors, 0)} | ${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}] |`,
    );
  }
} finally {
  await cluster.nc.close().catch(() => undefined);
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
writeResults(new URL('./results/monitoring.md', import.meta.url).pathname, lines.join('\n'));
console.log(lines.join('\n'));
