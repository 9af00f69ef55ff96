/**
 * `shoal batch score --model fraud@production --dataset <ref> [--out name]`: scores a dataset
 * with a model version as a job on the cluster's (spot) capacity, and follows it with a progress
 * bar like `shoal submit` (shards done / shards, rows/s, $ so far). A dataset whose columns are
 * not the model's is refused before anything is queued. Prints the scores' dataset at the end.
 */
import cliProgress from 'cli-progress';
import { Errors, parseFlags, type Config, type JobRecord } from '../cluster/index.ts';
import { JobClient, submitBatch } from '../ml/index.ts';
import { followWithBar } from './jobs.ts';
import { connectClient } from './status.ts';

export const BATCH_FLAGS = ['model', 'dataset', 'out', 'shard-rows', 'replicas', 'id', 'no-wait', 'json'] as const;

const USAGE = 'usage: shoal batch score --model NAME[@ALIAS|@VERSION] --dataset REF [--out NAME] [--shard-rows N] [--replicas N] [--id ID] [--no-wait]';

function summary(r: JobRecord): string {
  const lines = [`batch job ${r.id}: ${r.state}${r.reason ? ` — ${r.reason}` : ''}`];
  const res = r.result as { model?: string; version?: number; input?: { name: string; digest: string; rows: number }; output?: { name: string; digest: string; rows: number }; shards?: number; nodes?: string[] } | undefined;
  if (res?.output && res.input) {
    lines.push(`  scores ${res.output.name}@${res.output.digest.slice(0, 12)}  ${res.output.rows} rows`);
    lines.push(`  lineage: ${res.model} v${res.version} over ${res.input.name}@${res.input.digest.slice(0, 12)} (${res.shards} shards on ${res.nodes?.length ?? 0} node(s))`);
  }
  return lines.join('\n');
}

const int = (flags: Map<string, string>, name: string): number | undefined => {
  if (!flags.has(name)) return undefined;
  const n = Number(flags.get(name));
  if (!Number.isInteger(n) || n < 1) throw Errors.USAGE(`--${name} must be an integer ≥ 1, got ${flags.get(name)}`);
  return n;
};

export async function batchCommand(argv: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(argv);
  if (positionals[0] !== 'score') throw Errors.USAGE(USAGE);
  const model = flags.get('model');
  const dataset = flags.get('dataset');
  if (!model || !dataset) throw Errors.USAGE(USAGE);
  const shardRows = int(flags, 'shard-rows');
  const replicas = int(flags, 'replicas');
  const spec = { model, dataset, ...(flags.get('out') ? { out: flags.get('out') } : {}), ...(shardRows ? { shardRows } : {}), ...(replicas ? { replicas } : {}) };
  const nc = await connectClient(config);
  try {
    const jobs = await JobClient.open(nc, config.subjectPrefix);
    const { id, duplicate, plan } = await submitBatch(nc, config.subjectPrefix, jobs, spec, flags.get('id') ? { id: flags.get('id')! } : {});
    process.stdout.write(`batch job ${id} ${duplicate ? 'was already submitted' : 'submitted'}: ${plan.mv.name} v${plan.mv.version} over ${plan.dv.name}@${plan.dv.digest.slice(0, 12)} (${plan.dv.rows} rows) → ${plan.out}\n`);
    if (flags.has('no-wait')) return 0;
    const tty = process.stdout.isTTY === true;
    const bar = new cliProgress.SingleBar({ format: ' {state} |{bar}| shard {value}/{total}  {rows} rows  {rps} rows/s  ${cost}', hideCursor: true, noTTYOutput: !tty, notTTYSchedule: 2000 }, cliProgress.Presets.shades_classic);
    const done = await followWithBar(jobs, id, bar, (r, p: { rows?: number; rowsPerSec?: number; costSoFar?: number }) => ({ state: r.state.padEnd(12), rows: p.rows ?? 0, rps: Math.round(p.rowsPerSec ?? 0), cost: (p.costSoFar ?? 0).toFixed(5) }));
    process.stdout.write(flags.has('json') ? `${JSON.stringify(done, null, 2)}\n` : `${summary(done)}\n`);
    return done.state === 'succeeded' ? 0 : 1;
  } finally {
    await nc.close();
  }
}
