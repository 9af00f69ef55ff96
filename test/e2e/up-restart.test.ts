/**
 * Restart the whole cluster — every nats-server, the scheduler, the nodes, the gateway — with
 * `shoal up` again on the same data directory (`--nats.cluster 3`): the dataset, the trained model
 * version, the job record and the deployment are all back, and the deployed model answers again
 * with no manual step. The predictions before and after are the same numbers (same version).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';
import { SHOAL, alive, shoalEnv } from '../harness/shoal-cli.ts';
import { until } from '../harness/wait.ts';

const env = shoalEnv();

describe('shoal up, stopped and started again on the same data (3 nats-servers)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-restart-'));
  const info = () => JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
  let up: ChildProcess | undefined;
  let output = '';
  const shoal = (...args: string[]) => {
    const r = spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 240_000 });
    if (r.status !== 0) throw new Error(`shoal ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  async function start(): Promise<void> {
    output = '';
    const p = spawn(process.execPath, [SHOAL, 'up', '--nats.cluster', '3', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    p.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    up = p;
    // A restart recovers every stream's replicas and elects their leaders before the processes
    // start: on a loaded 2-core box (CI runs other suites beside it) that took over 150 s once.
    await until(() => (/Shoal is up/.test(output) || p.exitCode !== null ? true : undefined), 270_000, '"Shoal is up"').catch((err: Error) => {
      throw new Error(`${err.message}; shoal up printed:\n${output.slice(-6000)}`);
    });
    if (!/Shoal is up/.test(output)) throw new Error(`shoal up exited ${p.exitCode}:\n${output.slice(-6000)}`);
  }

  async function stop(): Promise<void> {
    const p = up;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    process.kill(-p.pid!, 'SIGINT');
    await exited;
  }

  afterAll(async () => {
    await stop();
  }, 60_000);

  const predict = async () => {
    const row = (k: number) => Array.from({ length: FEATURES }, (_, i) => (((i + k) * 7) % 11) / 10 - 0.5);
    const r = await fetch(`${info().gatewayUrl}/v1/models/fraud-r/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: [row(0), row(1)] }),
    }).catch(() => undefined);
    return r?.status === 200 ? ((await r.json()) as { predictions: unknown[] }).predictions : undefined;
  };
  let FEATURES = 0;

  it('everything comes back after every process and server has stopped', async () => {
    await start();
    const gen = shoal('datasets', 'generate', 'fraud', '--rows', '4000', '--seed', '3');
    const ref = gen.match(/(fraud@[0-9a-f]+)/)![1]!;
    FEATURES = Number(gen.match(/× (\d+) features/)![1]);
    writeFileSync(join(cwd, 'job.json'), JSON.stringify({ model: { name: 'fraud-r', type: 'mlp', hidden: [8] }, dataset: ref, hyper: { optimizer: 'adam', lr: 0.02, steps: 30, batchSize: 256, seed: 1 }, workers: 1 }));
    expect(shoal('submit', join(cwd, 'job.json'), '--id', 'restart-job')).toMatch(/job restart-job: succeeded/);
    expect(shoal('models', 'deploy', 'fraud-r', '--replicas', '2')).toMatch(/fraud-r: v1 serving/);
    const before = await until(predict, 60_000, 'a prediction before the restart');

    const firstServers = info().natsServers!.map((s) => s.pid);
    await stop();
    expect(firstServers.filter(alive)).toEqual([]);

    await start();
    // No manual step: the scheduler re-places the deployment's replicas from what JetStream kept.
    const after = await until(predict, 90_000, 'a prediction after the restart');
    expect(after).toEqual(before);
    expect(shoal('datasets', 'show', ref)).toContain(ref);
    expect(shoal('jobs', 'restart-job')).toMatch(/succeeded/);
    expect(shoal('models', 'show', 'fraud-r')).toMatch(/v1/);
  }, 900_000);
});
