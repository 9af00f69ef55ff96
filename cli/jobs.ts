/**
 * `shoal submit job.json` (a live progress bar until the job ends, then its metrics),
 * `shoal jobs <id>`, `shoal cancel <id>`, and `shoal datasets generate|import|show` to get data
 * in. Jobs go over JetStream with the job id as `Nats-Msg-Id`, so submitting again is safe.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import cliProgress from 'cli-progress';
import { Errors, parseFlags, subjects, type Config, type JobRecord } from '../cluster/index.ts';
import { DatasetStore, JobClient, RegistryClient, generateFraud, importCsv, type CsvSchema } from '../ml/index.ts';
import { connectClient } from './status.ts';

export const JOBS_FLAGS = ['id', 'no-wait', 'json', 'rows', 'seed', 'drift', 'name', 'label', 'numeric', 'categorical', 'sensitive', 'pii', 'split-seed'] as const;

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw Errors.USAGE(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw Errors.USAGE(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

function summary(r: JobRecord): string {
  const lines = [`job ${r.id}: ${r.state}${r.reason ? ` — ${r.reason}` : ''}`];
  const res = r.result as { model?: string; version?: number; metrics?: Record<string, number>; cost?: number; workerSeconds?: number } | undefined;
  if (res?.metrics) {
    lines.push(`  model ${res.model} v${res.version}`);
    const m = res.metrics;
    lines.push(`  holdout: AUC ${m.auc?.toFixed(4)}  accuracy ${m.accuracy?.toFixed(4)}  precision ${m.precision?.toFixed(4)}  recall ${m.recall?.toFixed(4)}  F1 ${m.f1?.toFixed(4)}  Brier ${m.brier?.toFixed(4)}  ECE ${m.ece?.toFixed(4)}`);
    lines.push(`  ${res.workerSeconds?.toFixed(1)} worker-seconds, $${res.cost?.toFixed(5)} at the nodes' prices`);
  }
  return lines.join('\n');
}

/**
 * Follows a job to its end, drawing its `progress.step/steps` on `bar` with the fields `payload`
 * picks from each record (shared by `shoal submit` and `shoal batch score`).
 */
export async function followWithBar<P extends object>(jobs: JobClient, id: string, bar: cliProgress.SingleBar, payload: (r: JobRecord, p: P) => Record<string, unknown>): Promise<JobRecord> {
  let started = false;
  const done = await jobs.follow(id, (r) => {
    const p = (r.progress ?? {}) as P & { step?: number; steps?: number };
    const fields = payload(r, p);
    if (!started) {
      bar.start(p.steps ?? 1, p.step ?? 0, fields);
      started = true;
    } else {
      if (p.steps) bar.setTotal(p.steps);
      bar.update(p.step ?? 0, fields);
    }
  });
  if (started) bar.stop();
  return done;
}

export async function jobsCommand(cmd: 'submit' | 'jobs' | 'cancel' | 'datasets', argv: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(argv);
  const nc = await connectClient(config);
  try {
    if (cmd === 'datasets') return await datasets(positionals, flags, nc, config);
    const jobs = await JobClient.open(nc, config.subjectPrefix);
    if (cmd === 'jobs' || cmd === 'cancel') {
      const id = positionals[0];
      if (!id) throw Errors.USAGE(`usage: shoal ${cmd} <jobId>`);
      const r = cmd === 'jobs' ? await jobs.get(id) : await jobs.cancel(id);
      process.stdout.write(flags.has('json') ? `${JSON.stringify(r, null, 2)}\n` : `${summary(r)}\n`);
      return 0;
    }
    const file = positionals[0];
    if (!file) throw Errors.USAGE('usage: shoal submit <job.json> [--id ID] [--no-wait]');
    const spec = readJson(file);
    const { id, duplicate } = await jobs.submit(spec, flags.get('id') ? { id: flags.get('id')! } : {});
    process.stdout.write(`job ${id} ${duplicate ? 'was already submitted' : 'submitted'} (${basename(file)})\n`);
    if (flags.has('no-wait')) return 0;
    const tty = process.stdout.isTTY === true;
    const bar = new cliProgress.SingleBar(
      { format: ' {state} |{bar}| step {value}/{total}  loss {loss}  {sps} samples/s  ${cost}', hideCursor: true, noTTYOutput: !tty, notTTYSchedule: 2000 },
      cliProgress.Presets.shades_classic,
    );
    const done = await followWithBar(jobs, id, bar, (r, p: { loss?: number; samplesPerSec?: number; costSoFar?: number }) => ({ state: r.state.padEnd(12), loss: p.loss?.toFixed(4) ?? '-', sps: Math.round(p.samplesPerSec ?? 0), cost: (p.costSoFar ?? 0).toFixed(5) }));
    process.stdout.write(flags.has('json') ? `${JSON.stringify(done, null, 2)}\n` : `${summary(done)}\n`);
    return done.state === 'succeeded' ? 0 : 1;
  } finally {
    await nc.close();
  }
}

async function datasets(pos: string[], flags: Map<string, string>, nc: Awaited<ReturnType<typeof connectClient>>, config: Config): Promise<number> {
  // Registering goes through the registry service (data through the uploads store); `show` reads.
  const control = new RegistryClient(nc, subjects(config.subjectPrefix));
  const [sub, arg] = pos;
  const name = flags.get('name');
  const splitSeed = flags.has('split-seed') ? Number(flags.get('split-seed')) : undefined;
  const opts = (source: string) => ({ source, ...(splitSeed !== undefined ? { splitSeed } : {}) });
  let v;
  if (sub === 'generate' && arg === 'fraud') {
    const rows = Number(flags.get('rows') ?? 50_000);
    const seed = Number(flags.get('seed') ?? 1);
    const drift = Number(flags.get('drift') ?? 0);
    if (!Number.isInteger(rows) || rows < 10) throw Errors.USAGE(`--rows must be an integer ≥ 10, got ${flags.get('rows')}`);
    v = await control.registerDataset(name ?? 'fraud', generateFraud({ rows, seed, drift }), opts(`generator fraud rows=${rows} seed=${seed} drift=${drift}`));
  } else if (sub === 'import' && arg) {
    const label = flags.get('label');
    if (!label || !name) throw Errors.USAGE('usage: shoal datasets import <file.csv> --name NAME --label COL [--numeric a,b] [--categorical c,d] [--sensitive s] [--pii a,b]');
    const list = (f: string) => (flags.get(f) ? flags.get(f)!.split(',').map((x) => x.trim()) : []);
    const schema: CsvSchema = { label, numeric: list('numeric'), categorical: list('categorical'), ...(flags.get('sensitive') ? { sensitive: flags.get('sensitive')! } : {}), ...(list('pii')?.length ? { pii: list('pii')! } : {}) };
    v = await control.registerDataset(name, importCsv(readFileSync(arg, 'utf8'), schema), opts(`csv ${basename(arg)}`));
  } else if (sub === 'show' && arg) {
    v = await (await DatasetStore.open(nc, config.subjectPrefix)).resolve(arg);
  } else {
    throw Errors.USAGE('usage: shoal datasets generate fraud [--name N] [--rows R] [--seed S] [--drift D] | import <file.csv> --name N --label COL … | show <name[@digest]>');
  }
  process.stdout.write(flags.has('json') ? `${JSON.stringify(v, null, 2)}\n` : `${v.name}@${v.digest.slice(0, 12)}  ${v.rows} rows × ${v.columns.length} features, ${v.positives} positive; splits (seed ${v.splits.seed}): ${v.splits.train}/${v.splits.validation}/${v.splits.holdout}\n`);
  return 0;
}
