/**
 * `npm run bench:training`: training jobs on a real embedded cluster (nats-server, scheduler,
 * node agents as processes) on the generated fraud data. Side by side in one run:
 * - samples/s and time to a target validation AUC with 1, 2 and 4 workers;
 * - the overhead of checkpointing (every 5 steps vs every 1000);
 * - the cost of the same job at the nodes' prices: workers allowed on spot vs on-demand only.
 * Writes bench/results/training.md. Every process shares this machine's cores: on 2 cores more
 * workers add coordination, not compute — read the ratios with that in mind.
 */
import { cpus } from 'node:os';
import { Role, subjects, type JobRecord } from '../cluster/index.ts';
import { JobClient, RegistryClient, generateFraud } from '../ml/index.ts';
import { startTestNats } from '../test/harness/nats.ts';
import { ProcessSet } from '../test/harness/processes.ts';
import { writeResults } from './lib/results.ts';

const ROWS = Number(process.env.BENCH_ROWS ?? 50_000);
const STEPS = Number(process.env.BENCH_STEPS ?? 150);
const TARGET = Number(process.env.BENCH_TARGET_AUC ?? 0.85);
const ARGS = ['--membership.heartbeatMs', '500', '--actors.modules', '["shoal:ml/training/actors.ts"]'];

const nats = await startTestNats();
const procs = new ProcessSet(nats);
await procs.startScheduler(ARGS).ready;
await Promise.all([(await procs.startNode('bench-spot', 'cpu-spot', ARGS)).ready, (await procs.startNode('bench-od', 'cpu-ondemand', ARGS)).ready]);
const nc = await nats.connect(Role.CLIENT);
const ds = await new RegistryClient(nc, subjects()).registerDataset('bench-fraud', generateFraud({ rows: ROWS, seed: 5 }));
const jobs = await JobClient.open(nc);

interface Run {
  label: string;
  workers: number;
  seconds: number;
  samplesPerSec: number;
  timeToTarget: number | undefined;
  auc: number;
  cost: number;
  workerSeconds: number;
}

let n = 0;
async function run(label: string, workers: number, over: Record<string, unknown> = {}): Promise<Run> {
  const id = `bench-${++n}-${Date.now()}`;
  const t0 = performance.now();
  let timeToTarget: number | undefined;
  let sps = 0;
  await jobs.submit({ model: { name: 'bench-fraud', type: 'logreg' }, dataset: 'bench-fraud', hyper: { optimizer: 'adam', lr: 0.05, steps: STEPS, batchSize: 1024, seed: 3 }, workers, checkpointEvery: 10, ...over }, { id });
  const done: JobRecord = await jobs.follow(id, (r) => {
    const p = (r.progress ?? {}) as { valAuc?: number; elapsedMs?: number; samplesPerSec?: number };
    if (p.samplesPerSec) sps = p.samplesPerSec;
    if (timeToTarget === undefined && p.valAuc !== undefined && p.valAuc >= TARGET && p.elapsedMs !== undefined) timeToTarget = p.elapsedMs / 1000;
  });
  if (done.state !== 'succeeded') throw new Error(`${label}: ${done.state} ${done.reason}`);
  const res = done.result as { metrics: { auc: number }; cost: number; workerSeconds: number };
  const r = { label, workers, seconds: (performance.now() - t0) / 1000, samplesPerSec: sps, timeToTarget, auc: res.metrics.auc, cost: res.cost, workerSeconds: res.workerSeconds };
  console.log(JSON.stringify(r));
  return r;
}

await run('warm-up', 1, { hyper: { steps: 10 } });
const scale = [await run('1 worker', 1), await run('2 workers', 2), await run('4 workers', 4)];
const ckFrequent = await run('checkpoint every 5 steps', 2, { checkpointEvery: 5 });
const ckRare = await run('checkpoint every 1000 steps', 2, { checkpointEvery: 1000 });
const spot = await run('workers on spot allowed', 2, { spotOk: true });
const onDemand = await run('on-demand only', 2, { spotOk: false });

const f = (x: number | undefined, d = 2) => (x === undefined ? '—' : x.toFixed(d));
const md = `# Training benchmark

\`npm run bench:training\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.
Logistic regression, Adam, ${STEPS} steps, 1024 rows per worker per step, on the generated fraud data (${ROWS.toLocaleString('en-US')} rows, ${ds.columns.length} features, ${((ds.positives / ds.rows) * 100).toFixed(1)} % fraud).
A real embedded cluster: nats-server, the scheduler and two node agents (one spot at $0.012/h, one on-demand at $0.04/h) as processes; every process shares the machine's 2 cores.

## Workers

| run | workers | wall s | samples/s | time to validation AUC ≥ ${TARGET} (s) | holdout AUC |
|---|---:|---:|---:|---:|---:|
${scale.map((r) => `| ${r.label} | ${r.workers} | ${f(r.seconds)} | ${Math.round(r.samplesPerSec).toLocaleString('en-US')} | ${f(r.timeToTarget)} | ${f(r.auc, 4)} |`).join('\n')}

Throughput ratio 2 workers / 1: **${(scale[1]!.samplesPerSec / scale[0]!.samplesPerSec).toFixed(2)}×**, 4 / 1: **${(scale[2]!.samplesPerSec / scale[0]!.samplesPerSec).toFixed(2)}×** (each step is synchronous: every worker's gradient is averaged before the next step).

## Checkpointing

| run | wall s | samples/s |
|---|---:|---:|
| ${ckFrequent.label} | ${f(ckFrequent.seconds)} | ${Math.round(ckFrequent.samplesPerSec).toLocaleString('en-US')} |
| ${ckRare.label} | ${f(ckRare.seconds)} | ${Math.round(ckRare.samplesPerSec).toLocaleString('en-US')} |

Overhead of checkpointing every 5 steps vs (almost) never: **${(((ckRare.samplesPerSec - ckFrequent.samplesPerSec) / ckRare.samplesPerSec) * 100).toFixed(1)} %** of throughput.

## Cost at the scheduler's prices

| run | worker-seconds | cost ($) |
|---|---:|---:|
| ${spot.label} | ${f(spot.workerSeconds, 1)} | ${spot.cost.toFixed(6)} |
| ${onDemand.label} | ${f(onDemand.workerSeconds, 1)} | ${onDemand.cost.toFixed(6)} |

Spot / on-demand cost: **${(spot.cost / onDemand.cost).toFixed(2)}×** for the same job (the cost-aware placement puts interruptible training workers on spot when allowed).
`;
writeResults(new URL('./results/training.md', import.meta.url).pathname, md);
console.log('wrote bench/results/training.md');
await procs.stopAll(10_000);
await nats.stop();
process.exit(0);
