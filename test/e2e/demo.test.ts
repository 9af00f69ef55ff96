/**
 * The README's first command: `shoal up --demo` in an empty directory starts the cluster, then
 * generates the fraud data, trains, deploys and prints a curl. The curl, run by a shell as a
 * user would paste it, gets a prediction from the gateway; then SIGINT to the process group (a
 * terminal's Ctrl-C) stops everything. How long the demo took is printed, not asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';
import { SHOAL, alive, shoalEnv } from '../harness/shoal-cli.ts';
import { until } from '../harness/wait.ts';

const env = shoalEnv();

describe('shoal up --demo (real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-demo-'));
  let up: ChildProcess;
  let output = '';
  let exit: Promise<number | null>;
  let t0 = 0;

  beforeAll(() => {
    t0 = performance.now();
    // Its own process group, as a terminal's foreground job.
    up = spawn(process.execPath, [SHOAL, 'up', '--demo', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    exit = new Promise((res) => up.once('exit', (code) => res(code)));
  });

  afterAll(() => {
    if (up && up.exitCode === null) process.kill(-up.pid!, 'SIGKILL');
  });

  it('prints a curl that gets a prediction from the trained model, and the dashboard URL', async () => {
    const curl = await until(() => /^ {2}(curl -s .*)$/m.exec(output)?.[1], 170_000, `the demo's curl in:\n${output}`);
    console.log(`[demo] curl printed ${Math.round(performance.now() - t0)} ms after shoal up --demo started`);
    expect(output).not.toMatch(/demo failed/);
    const info = JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
    expect(curl).toContain(`${info.gatewayUrl}/v2/models/fraud/infer`);
    expect(output).toContain(`Dashboard: ${info.gatewayUrl}/ui`);
    // As a user pastes it: through a shell.
    const r = spawnSync('sh', ['-c', curl], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const answer = JSON.parse(r.stdout) as { model_name: string; model_version: string; outputs: { shape: number[]; data: number[] }[] };
    expect(answer.model_name).toBe('fraud');
    expect(answer.outputs[0]!.shape).toEqual([2, 1]);
    const [fraud, ordinary] = answer.outputs[0]!.data;
    for (const p of [fraud!, ordinary!]) expect(p >= 0 && p <= 1).toBe(true);
    // The printed answer is the one the curl gets (the same model, the same rows).
    const printed = /it answered ([\d.]+), ([\d.]+)/.exec(output);
    expect(printed).not.toBeNull();
    expect(Math.abs(Number(printed![1]) - fraud!)).toBeLessThan(1e-4);
    expect(Math.abs(Number(printed![2]) - ordinary!)).toBeLessThan(1e-4);
    // A trained model tells them apart: the riskiest fraud scores above the ordinary transaction.
    expect(fraud!).toBeGreaterThan(ordinary!);
    // The job, the dataset and the model are the cluster's own, seen with the CLI.
    const status = spawnSync(process.execPath, [SHOAL, 'models', 'status', 'fraud', '--json'], { cwd, env, encoding: 'utf8', timeout: 60_000 });
    expect(status.status, status.stderr).toBe(0);
  }, 180_000);

  it('SIGINT to the group stops everything', async () => {
    const info = JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
    process.kill(-up.pid!, 'SIGINT');
    expect(await exit).toBe(0);
    await until(() => (!alive(info.natsPid) && !alive(up.pid!) ? true : undefined), 20_000, 'nats-server and shoal up gone');
    expect(output).toMatch(/all processes stopped/);
  }, 60_000);
});
