/**
 * The README's feature-store worked example, command by command, against `shoal up` (real
 * processes): generate the events, apply the five views, push the events, train on the views
 * with labels from the label view, deploy, and predict by customer over HTTP.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';
import { ROOT, SHOAL, shoalEnv } from '../harness/shoal-cli.ts';
import { until } from '../harness/wait.ts';

const EX = join(ROOT, 'examples', 'feature-store');
const env = shoalEnv();

describe('README feature-store worked example (shoal up, real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-fs-example-'));
  const data = join(cwd, 'data');
  let up: ChildProcess;
  let output = '';
  let gateway = '';
  const shoal = (...args: string[]) => {
    const r = spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 240_000 });
    if (r.status !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  beforeAll(async () => {
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (/Shoal is up/.test(output)) {
          clearInterval(check);
          resolve();
        } else if (up.exitCode !== null) {
          clearInterval(check);
          reject(new Error(`shoal up exited: ${output}`));
        }
      }, 100);
    });
    gateway = (JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo).gatewayUrl!;
  }, 120_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      const exited = new Promise((r) => up.once('exit', r));
      process.kill(-up.pid!, 'SIGINT');
      await exited;
    }
  }, 30_000);

  it('events → views → pushes → training on the views → deploy → prediction by customer', async () => {
    const gen = spawnSync(process.execPath, ['--import', 'tsx', join(EX, 'events.ts'), '--out', data, '--customers', '120', '--days', '10'], { cwd: ROOT, env, encoding: 'utf8' });
    expect(gen.status, gen.stderr).toBe(0);
    expect(gen.stdout).toMatch(/wrote .*: 120 customers, 40 merchants, \d+ payments, \d+ outcome rows \(\d+ chargebacks\)/);
    for (const v of ['customer', 'merchant', 'payment']) expect(shoal('features', 'apply', join(EX, `${v}.json`), '--snapshot', join(data, `${v}-snapshot.jsonl`))).toMatch(new RegExp(`^${v} version 1 applied \\(new\\); fitted on \\d+ rows`));
    expect(shoal('features', 'apply', join(EX, 'txn_stats.json'))).toMatch(/^txn_stats version 1 applied \(new\)/);
    expect(shoal('features', 'apply', join(EX, 'outcome.json'))).toMatch(/^outcome version 1 applied \(new\)/);
    for (const v of ['customer', 'merchant', 'payment', 'outcome']) expect(shoal('features', 'push', v, join(data, `${v}.jsonl`))).toMatch(new RegExp(`^${v}: pushed \\d+ events \\(seq \\d+-\\d+\\), 0 duplicates`));

    const trained = shoal('submit', join(EX, 'job.json'), '--id', 'fs-example');
    expect(trained).toMatch(/job fs-example: succeeded/);
    expect(trained).toMatch(/model fraud-fs v1/);
    expect(shoal('models', 'deploy', 'fraud-fs')).toMatch(/fraud-fs: v1 serving/);
    await until(async () => ((await fetch(`${gateway}/v2/models/fraud-fs/ready`)).status === 200 ? true : undefined), 30_000, 'fraud-fs ready');

    const r = await fetch(`${gateway}/v1/models/fraud-fs/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entities: [{ customer_id: 'c-2', merchant_id: 'm-3' }, { customer_id: 'c-new', merchant_id: 'm-3' }], features: [{ amount: 129.5, channel: 'online' }, { amount: 2400, channel: 'online' }] }),
    });
    const body = (await r.json()) as { predictions: number[][]; entities: { found: Record<string, boolean>; filled: string[] }[] };
    expect(r.status, JSON.stringify(body)).toBe(200);
    expect(body.predictions).toHaveLength(2);
    for (const [p] of body.predictions) expect(p).toBeGreaterThanOrEqual(0), expect(p).toBeLessThanOrEqual(1);
    expect(body.entities[0]).toEqual({ found: { customer: true, merchant: true, payment: true, txn_stats: true }, filled: [] });
    expect(body.entities[1]!.found).toMatchObject({ customer: false, merchant: true });
    expect(body.entities[1]!.filled).toEqual(['customer.home_country', 'customer.segment', 'customer.account_age_days']);
  }, 300_000);
});
