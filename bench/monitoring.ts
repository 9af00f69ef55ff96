/**
 * `npm run bench:monitoring`: what the prediction log costs serving, how fast one monitor core
 * digests records, and how long a shift takes to alert. One Shoal cluster (nats-server with auth,
 * scheduler, one node, gateway — real processes, bench/lib/serving-cluster.ts) serves the same MLP
 * under three names: `mlp` without monitoring, `mlp-logged` with `monitoring: {sampleRate: 1}`
 * (every request logged, columnar batches to SHOAL_PREDICTIONS; at 100 % replicas do not profile
 * by default) and `mlp-sampled` at `sampleRate: 0.1` (the replica's profile of all traffic, the
 * version having a reference profile, and a tenth logged). autocannon sends the same one-row OIP
 * request to each: BENCH_ROUNDS rounds of BENCH_SUBRUNS short runs per target, interleaved; ratios
 * are per round (median and range). Then, in process, the digest rate (bench/lib/monitoring-offline.ts) and the time to
 * detect a shift on a virtual clock. Writes bench/results/monitoring.md (notes kept).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { subjects } from '../cluster/index.ts';
import { RegistryClient, buildReferenceProfile } from '../ml/index.ts';
import { mlpModel, randomRows } from '../test/fixtures/onnx.ts';
import { detectShift, digestRound, logCostRound, type LogCost } from './lib/monitoring-offline.ts';
import { deployWhenServed, startServingCluster } from './lib/serving-cluster.ts';
import { median, writeResults } from './lib/results.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
/** Runs per arm in a round, interleaved with the other arms' (off, logged, sampled, off, …): this machine's speed drifts by ±25 % over tens of seconds, so a round's ratio compares runs seconds apart. */
const SUBRUNS = Number(process.env.BENCH_SUBRUNS ?? 5);
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
const ARMS = [
  { key: 'off', model: 'mlp' },
  { key: 'logged', model: 'mlp-logged' },
  { key: 'sampled', model: 'mlp-sampled' },
] as const;
const lines = [
  '# Monitoring benchmark',
  '',
  `\`npm run bench:monitoring\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${ROUNDS} rounds; a round runs each target ${SUBRUNS} times for ${SECONDS} s, interleaved (off, logged, sampled, off, …, the order rotated every run), and a target's req/s in a round is the mean of its runs.`,
  '',
  '## Prediction log: serving with every request logged vs logging off',
  '',
  'The same MLP (32 features) deployed three times on one node: no monitoring; `monitoring: {sampleRate: 1}` (every request logged as columnar batches, to the predictions stream, read by the label join on the scheduler; no replica profile — at 100 % the monitor profiles the records — by the `profiles` default); `sampleRate: 0.1` (the replica’s profile of all its traffic — the version has a reference profile — and a tenth logged). One-row OIP requests through the gateway.',
  '',
  '| connections | off req/s | logged req/s | sampled req/s | off p99 ms | logged p99 ms | errors | logged/off | sampled/off |',
  '|---|---|---|---|---|---|---|---|---|',
];
let servingRps = 0;
try {
  const registry = new RegistryClient(cluster.nc, subjects());
  // A reference profile (32 features X_0…X_31), so the monitored replicas profile their traffic as a deployed trained version does.
  const reference = buildReferenceProfile(randomRows(1000).map((x) => ({ features: Object.fromEntries(x.map((v, j) => [`X_${j}`, v])), outputs: {} })), undefined, { createdAt: 0 });
  for (const [name, rate] of [['mlp-logged', 1], ['mlp-sampled', 0.1]] as const) {
    await registry.register(name, mlpModel({ seed: 1 }), { aliases: ['production'], reference: new TextEncoder().encode(JSON.stringify(reference)) });
    await deployWhenServed(registry, name, { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000, monitoring: { sampleRate: rate, monitor: false } }, cluster.url);
  }
  for (const c of CONNECTIONS) {
    for (const a of ARMS) await cannon(cluster.url, a.model, c); // warm all
    const cells: Record<string, Cell[]> = { off: [], logged: [], sampled: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const parts: Record<string, Cell[]> = { off: [], logged: [], sampled: [] };
      for (let sub = 0; sub < SUBRUNS; sub++) {
        for (let k = 0; k < ARMS.length; k++) {
          const a = ARMS[(k + round + sub) % ARMS.length]!;
          parts[a.key]!.push(await cannon(cluster.url, a.model, c));
        }
      }
      for (const a of ARMS) {
        const xs = parts[a.key]!;
        const cell = { rps: xs.reduce((n, x) => n + x.rps, 0) / xs.length, p99: median(xs.map((x) => x.p99)), errors: xs.reduce((n, x) => n + x.errors, 0) };
        cells[a.key]!.push(cell);
        console.log(`[c=${c}] round ${round + 1} ${a.key}: ${cell.rps.toFixed(0)} req/s (${xs.map((x) => x.rps.toFixed(0)).join(', ')}), p99 ${cell.p99} ms, ${cell.errors} errors`);
      }
    }
    const { off, logged, sampled } = cells as Record<'off' | 'logged' | 'sampled', Cell[]>;
    const ratio = (xs: Cell[]) => {
      const r = xs.map((x, i) => x.rps / off[i]!.rps);
      return `${median(r).toFixed(2)}× [${Math.min(...r).toFixed(2)}–${Math.max(...r).toFixed(2)}]`;
    };
    servingRps = Math.max(servingRps, median(logged.map((x) => x.rps)));
    lines.push(
      `| ${c} | ${median(off.map((x) => x.rps)).toFixed(0)} | ${median(logged.map((x) => x.rps)).toFixed(0)} | ${median(sampled.map((x) => x.rps)).toFixed(0)} | ${median(off.map((x) => x.p99))} | ${median(logged.map((x) => x.p99))} | ${[...off, ...logged, ...sampled].reduce((n, x) => n + x.errors, 0)} | ${ratio(logged)} | ${ratio(sampled)} |`,
    );
    lines.push('', `Per round (req/s, off / logged / sampled): ${off.map((x, i) => `${x.rps.toFixed(0)} / ${logged[i]!.rps.toFixed(0)} / ${sampled[i]!.rps.toFixed(0)}`).join('; ')}.`, '');
  }
} finally {
  await cluster.nc.close().catch(() => undefined);
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}

const range = (xs: number[]) => `${median(xs).toFixed(0)} [${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}]`;

// What the log costs the replica's event loop per request, in CPU time (robust to a busy machine, unlike req/s).
const costs: LogCost[] = [];
for (let round = 0; round < ROUNDS; round++) costs.push(await logCostRound(20_000, round + 3));
const us = (f: (c: LogCost) => number) => {
  const xs = costs.map(f);
  return `${median(xs).toFixed(1)} [${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}]`;
};
lines.push(
  '## Prediction log: replica CPU per request',
  '',
  'In process, CPU time (`process.cpuUsage`, user + system) per one-row 32-feature request: making its tensors, then the log (copy, columns, MessagePack encode; the publish a no-op), median [range] of 3 rounds of 20 000 requests. The log\'s own cost is the difference with "no log".',
  '',
  '| no log µs | logged 100 % µs | logged 100 % + replica profile µs | 10 % + replica profile µs |',
  '|---|---|---|---|',
  `| ${us((c) => c.none)} | ${us((c) => c.logged)} | ${us((c) => c.loggedProfiled)} | ${us((c) => c.sampledProfiled)} |`,
  '',
);

// One monitor core's digest rate, in process, on the messages a replica publishes (same run, after the cluster stopped).
const digests = [];
for (let round = 0; round < ROUNDS; round++) {
  const d = await digestRound(50_000, round + 1);
  digests.push(d);
  console.log(`digest round ${round + 1}: ${d.fromLog.toFixed(0)} records/s (drift on records), ${d.fromReplicas.toFixed(0)} records/s (drift on replica profiles)`);
}
lines.push(
  '## One monitor: records digested per second',
  '',
  'In process, one core (what the monitor actor runs): 50 000 one-row records of 32 features, the columnar messages a replica publishes (500 a message) decoded, expanded to records and taken into a 1 h window, then the window tested. The NATS fetch of the actor is not in it.',
  '',
  '| drift tested on | records/s (median [range], 3 rounds) | vs logged serving req/s above |',
  '|---|---|---|',
  `| the logged records (the monitor profiles each) | ${range(digests.map((d) => d.fromLog))} | ${(median(digests.map((d) => d.fromLog)) / servingRps).toFixed(2)}× |`,
  `| the replicas' merged profiles (records feed scores and labels) | ${range(digests.map((d) => d.fromReplicas))} | ${(median(digests.map((d) => d.fromReplicas)) / servingRps).toFixed(2)}× |`,
  '',
);

// Time to detect a shift injected at a known moment (virtual clock: event-based, not noisy).
lines.push(
  '## Time to detect a shift',
  '',
  'Virtual clock: three replicas (10 % sampled, their own profiles; profile deltas every 1 s) serve 150 rows/s of the fraud generator; at a known moment into a 60 s window the drift knob goes to 1. The monitor (60 s windows, 5 s lateness) digests their messages every 100 ms. Times are from the injection.',
  '',
  '| injected at (s into window) | alert raised after (s) | alerting window ends after (s) | window |',
  '|---|---|---|---|',
);
for (const offset of [10, 30, 50]) {
  const d = await detectShift(offset);
  console.log(`shift at ${offset}s:`, d);
  lines.push(d ? `| ${offset} | ${d.alertAfterS.toFixed(1)} | ${d.windowEndAfterS.toFixed(1)} | ${d.window} |` : `| ${offset} | not detected (or a false alarm first) | | |`);
}
writeResults(new URL('./results/monitoring.md', import.meta.url).pathname, lines.join('\n'));
console.log(lines.join('\n'));
