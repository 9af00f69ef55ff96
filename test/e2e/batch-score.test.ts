/**
 * Batch inference on a real `shoal up` (nats-server with auth, scheduler, node agents under the
 * supervisor): `shoal batch score` over a registered dataset gives, row for row, what one
 * onnxruntime loop in this process gives over the same rows with the same model version; a run
 * whose replica's node is SIGKILLed mid-run resumes and registers the very same scores dataset
 * (same digest, same values); a dataset whose columns are not the model's is refused before any
 * job is queued, naming the columns.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { JobStore, Role, connectAs, readClusterInfo, readCredentials, type JobRecord } from '../../cluster/index.ts';
import type { StatusReport } from '../../cli/status.ts';
import { DatasetStore, ModelRegistry, openScoringSession, scoreRows } from '../../ml/index.ts';
import { until } from '../harness/wait.ts';
import { SHOAL, shoalEnv } from '../harness/shoal-cli.ts';

const env = shoalEnv();
const ROWS = 120_000;

interface BatchResult {
  model: string;
  version: number;
  input: { name: string; digest: string; rows: number };
  output: { name: string; digest: string; rows: number; columns: string[] };
}

describe('shoal batch score (real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-batch-'));
  let up: ChildProcess;
  let output = '';
  let nc: NatsConnection;
  const shoal = (...args: string[]) => spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 300_000 });
  const json = <T>(...args: string[]): T => {
    const r = shoal(...args, '--json');
    if (r.status !== 0 && !r.stdout.trim().startsWith('{')) throw new Error(`shoal ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as T;
  };
  
  /** The model version's first output over every row of the input, in one onnxruntime loop here. */
  async function reference(model: string, version: number, inputDigest: string): Promise<Float32Array> {
    const registry = await ModelRegistry.open(nc);
    const datasets = await DatasetStore.open(nc);
    const data = await datasets.load(await datasets.resolve(`sha256:${inputDigest}`));
    const s = await openScoringSession((await registry.loadModel(model, version)).model);
    try {
      return (await scoreRows(s, data, 0, data.rows)).values;
    } finally {
      await s.release();
    }
  }

  async function scores(digest: string): Promise<{ values: Float32Array; labels: Uint8Array; columns: string[] }> {
    const datasets = await DatasetStore.open(nc);
    const d = await datasets.load(await datasets.resolve(`sha256:${digest}`));
    return { values: d.features, labels: d.labels, columns: d.columns };
  }

  beforeAll(async () => {
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0', '--membership.deadAfterMs', '60000'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await until(() => (/Shoal is up/.test(output) ? true : undefined), 90_000, 'Shoal is up', 200);
    const dataDir = join(cwd, '.shoal');
    nc = await connectAs({ servers: readClusterInfo(dataDir)!.natsUrl, role: Role.CLIENT, credential: readCredentials(dataDir).client, reconnect: false });
    expect(shoal('datasets', 'generate', 'fraud', '--rows', String(ROWS), '--seed', '3').status).toBe(0);
    writeFileSync(join(cwd, 'train.json'), JSON.stringify({ model: { name: 'fraud', type: 'logreg' }, dataset: 'fraud', hyper: { steps: 30, batchSize: 128 }, workers: 1, checkpointEvery: 10 }));
    const t = shoal('submit', 'train.json', '--id', 'train');
    expect(t.status, t.stdout + t.stderr).toBe(0);
    expect(shoal('models', 'alias', 'fraud', 'production', '1').status).toBe(0);
  }, 240_000);

  afterAll(async () => {
    await nc?.close();
    if (up && up.exitCode === null) {
      up.kill('SIGINT');
      await new Promise((r) => up.once('exit', r));
    }
  });

  let plain: BatchResult;

  it('scores the dataset as a job; the scores equal a single-process onnxruntime loop row for row, with lineage', async () => {
    const r = shoal('batch', 'score', '--model', 'fraud@production', '--dataset', 'fraud', '--out', 'plain', '--shard-rows', '5000', '--replicas', '2', '--id', 'plain');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/batch job plain submitted: fraud v1 over fraud@[0-9a-f]{12} \(120000 rows\) → plain/);
    expect(r.stdout).toMatch(/scores plain@[0-9a-f]{12} {2}120000 rows/);
    const rec = json<JobRecord>('jobs', 'plain');
    expect(rec.state).toBe('succeeded');
    plain = rec.result as unknown as BatchResult;
    expect(plain).toMatchObject({ model: 'fraud', version: 1, input: { name: 'fraud', rows: ROWS }, output: { name: 'plain', rows: ROWS } });
    const out = await scores(plain.output.digest);
    const ref = await reference('fraud', 1, plain.input.digest);
    expect(out.values.length).toBe(ref.length);
    expect(Array.from(out.values)).toEqual(Array.from(ref));
    // The input's labels ride along (for evaluating the scores), and the lineage is in the dataset's source.
    const input = await (await DatasetStore.open(nc)).load(await (await DatasetStore.open(nc)).resolve(`sha256:${plain.input.digest}`));
    expect(Array.from(out.labels)).toEqual(Array.from(input.labels));
    const shown = json<{ source: string }>('datasets', 'show', `plain@${plain.output.digest.slice(0, 12)}`);
    expect(shown.source).toContain(`fraud v1`);
    expect(shown.source).toContain(`fraud@sha256:${plain.input.digest}`);
  }, 300_000);

  it('SIGKILL the node of a replica mid-run: the job resumes and its scores are the uninterrupted run\'s, row for row', async () => {
    // The node agents' pids before the run, and the job's record read here over NATS (not through
    // the CLI, which takes a second a call), so the kill lands mid-run.
    const pids = new Map(json<StatusReport>('status').processes.filter((p) => p.role === 'node').map((p) => [p.id, p.pid]));
    const jobs = await JobStore.open(nc);
    const r = shoal('batch', 'score', '--model', 'fraud@production', '--dataset', 'fraud', '--out', 'killed', '--shard-rows', '100', '--replicas', '2', '--id', 'killed', '--no-wait');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const running = await until(async () => {
      const rec = await jobs.get('killed');
      const p = rec?.progress as { step?: number; steps?: number; replicas?: Record<string, string>; node?: string } | undefined;
      const node = p?.replicas?.['job-killed-r-1'];
      return node && p!.node && (p!.step ?? 0) >= 5 && (p!.step ?? 0) < (p!.steps ?? 0) / 2 ? { node, coordinator: p!.node, step: p!.step! } : undefined;
    }, 120_000, 'the batch job a few shards in', 10);
    const oldPid = pids.get(running.node)!;
    process.kill(oldPid, 'SIGKILL');
    // And the coordinator's node, where placement put it elsewhere: the job then also has to resume from its shard checkpoints.
    if (running.coordinator !== running.node) process.kill(pids.get(running.coordinator)!, 'SIGKILL');
    const done = await until(() => {
      const rec = json<JobRecord>('jobs', 'killed');
      return rec.state === 'succeeded' || rec.state === 'failed' ? rec : undefined;
    }, 240_000, 'the batch job to finish', 500);
    expect(done.state, `${JSON.stringify(done)}\nkilled ${running.node} (pid ${oldPid}) at shard ${running.step}`).toBe('succeeded');
    expect(done.reason ?? '', JSON.stringify(done)).toMatch(/resumed with \d+ of \d+ shards checkpointed/);
    // Which way it came back (a replica re-placed, or a re-placed coordinator resuming from the shard checkpoints) depends on where placement put them.
    process.stderr.write(`killed ${running.node} at shard ${running.step}; ${done.reason ?? ''} ${JSON.stringify({ resumedWithShards: (done.result as { resumedWithShards?: number }).resumedWithShards, replicaFailures: (done.result as { replicaFailures?: number }).replicaFailures })}\n`);
    const res = done.result as unknown as BatchResult;
    const a = await scores(res.output.digest);
    const b = await scores(plain.output.digest);
    // Content-addressed: the same digest is the same bytes; the values are checked as well.
    expect(res.output.digest).toBe(plain.output.digest);
    expect(Array.from(a.values)).toEqual(Array.from(b.values));
  }, 400_000);

  it('a dataset whose columns are not the model\'s is refused before any job is queued, naming the columns', async () => {
    writeFileSync(join(cwd, 'odd.csv'), ['amount,colour,label', ...Array.from({ length: 50 }, (_, i) => `${i},${i % 3},${i % 2}`)].join('\n'));
    expect(shoal('datasets', 'import', 'odd.csv', '--name', 'odd', '--label', 'label', '--numeric', 'amount,colour').status).toBe(0);
    const r = shoal('batch', 'score', '--model', 'fraud@production', '--dataset', 'odd', '--id', 'odd');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/does not match the signature of fraud v1/);
    expect(r.stderr).toMatch(/unexpected columns amount, colour/);
    expect(r.stderr).toMatch(/missing columns /);
    expect(r.stdout).not.toMatch(/submitted/);
    // Nothing was queued: there is no job by that id, so no replica was ever asked for.
    const j = shoal('jobs', 'odd', '--json');
    expect(j.status).not.toBe(0);
    expect(j.stdout + j.stderr).toMatch(/SHOAL_ERR_JOB_NOT_FOUND|not found/i);
  }, 120_000);
});
