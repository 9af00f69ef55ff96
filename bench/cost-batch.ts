/**
 * Batch scoring (issue #17 part 5): `batch-score-job` over a generated fraud dataset with the
 * fraud scoring model (logistic over the generator's 15 columns), against one onnxruntime loop
 * in this process over the same rows (the same `scoreRows` the replicas run), BENCH_ROUNDS (3)
 * rounds each, interleaved. Figures: rows/s (the job: submit → succeeded, queueing, planning,
 * replica start, shards, checkpoints and registering the scores included; the loop: the scoring
 * only), and $/million rows at the node's price (cpu-ondemand) for the time each took. One node
 * here, so the replicas share its cores: the job's cost is its machinery, not its parallelism.
 *
 * `batchBench()` returns the markdown section; run alone (`tsx bench/cost-batch.ts`) it writes
 * the "## Batch scoring" section of bench/results/cost.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request, subjects, type SchedulerStatus } from '../cluster/index.ts';
import { DatasetStore, JobClient, RegistryClient, generateFraud, openScoringSession, scoreRows, submitBatch } from '../ml/index.ts';
import { fraudModel } from '../test/fixtures/monitoring-monitor.ts';
import { startServingCluster } from './lib/serving-cluster.ts';
import { writeCostSection } from './lib/cost-sections.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROWS = Number(process.env.BENCH_BATCH_ROWS ?? 200_000);

const range = (xs: number[], d = 0) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;

export async function batchBench(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-batch-'));
  const c = await startServingCluster(dir, 'batch-node', () => ({}), ['ml/serving/actors.ts', 'ml/batch/actors.ts']);
  try {
    const registry = new RegistryClient(c.nc, subjects());
    await registry.register('fraud', fraudModel(), { aliases: ['production'] });
    const dv = await registry.registerDataset('bench-fraud', generateFraud({ rows: ROWS, seed: 9 }), { source: 'bench' });
    const st = await request<SchedulerStatus>(c.nc, subjects().scheduler('status'), { type: 'status' }, { timeoutMs: 5000 });
    const price = st.nodes.find((n) => n.nodeId === 'batch-node')?.labels.pricePerHour ?? 0;
    const jobs = await JobClient.open(c.nc);
    const datasets = await DatasetStore.open(c.nc);
    const data = await datasets.load(dv);
    const model = fraudModel();
    const job: number[] = [];
    const loop: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const t0 = performance.now();
      const { id } = await submitBatch(c.nc, 'shoal', jobs, { model: 'fraud@production', dataset: `bench-fraud@${dv.digest.slice(0, 12)}`, out: `bench-scores-${round}`, shardRows: 5000, replicas: 2 }, { id: `bench-batch-${round}-${Date.now()}` });
      const done = await jobs.follow(id, () => undefined, 600_000);
      if (done.state !== 'succeeded') throw new Error(`batch job ${id}: ${done.state} ${done.reason ?? ''}`);
      job.push(performance.now() - t0);
      const s = await openScoringSession(model);
      const t1 = performance.now();
      await scoreRows(s, data, 0, data.rows);
      loop.push(performance.now() - t1);
      await s.release();
      process.stderr.write(`  round ${round}: job ${job.at(-1)!.toFixed(0)} ms, loop ${loop.at(-1)!.toFixed(0)} ms\n`);
    }
    const rps = (ms: number[]) => ms.map((m) => ROWS / (m / 1000));
    const usd = (ms: number[]) => ms.map((m) => ((price * m) / 3_600_000 / ROWS) * 1e6);
    const jr = rps(job);
    const lr = rps(loop);
    const ratios = jr.map((r, i) => r / lr[i]!);
    return [
      '## Batch scoring',
      '',
      `\`batch-score-job\` (2 \`batch-scorer\` replicas, 5000-row shards, one cpu-ondemand node at $${price}/h) vs one onnxruntime loop in the bench process over the same ${ROWS} fraud rows (15 columns, logistic model), ${ROUNDS} rounds, interleaved. The job's time is submit → succeeded (planning, replica start, per-shard checkpoints, registering the scores); the loop's is scoring only.`,
      '',
      '| | rows/s (range) | $/million rows (range) |',
      '|---|---|---|',
      `| batch job | ${range(jr)} | ${range(usd(job), 6)} |`,
      `| single-process loop | ${range(lr)} | ${range(usd(loop), 6)} |`,
      `| ratio job/loop | ${range(ratios, 3)} | |`,
      '',
    ].join('\n');
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  writeCostSection(await batchBench());
  process.exit(0);
}
