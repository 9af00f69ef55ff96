/**
 * `shoal up --nats.cluster 3`, for real: three clustered nats-servers (own names, stores, ports),
 * the scheduler's streams at R3, every child given all three URLs; a nats-server SIGKILLed is
 * restarted by the supervisor on its own store and port while the rest keep running; Ctrl-C stops
 * the children and then every server. And the refusals: an even cluster size (RAFT quorum), and a
 * `nats.servers` list where nothing answers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type ClusterInfo } from '../../cluster/index.ts';
import type { StatusReport } from '../../cli/status.ts';
import { until } from '../harness/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SHOAL = join(ROOT, 'bin', 'shoal.mjs');
const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LOG_LEVEL: 'info' };
delete env.SHOAL_NATS_URL;
delete env.SHOAL_NATS_PASS;

const shoal = (args: string[], cwd: string) => spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 });
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('shoal up --nats.cluster 3 (real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-upc-'));
  const dataDir = join(cwd, '.shoal');
  let up: ChildProcess;
  let output = '';
  let exit: Promise<number | null>;
  const info = () => JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterInfo;

  beforeAll(async () => {
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.cluster', '3', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    exit = new Promise((res) => up.once('exit', (code) => res(code)));
    await until(() => (/Shoal is up/.test(output) ? true : undefined), 150_000, `"Shoal is up" in:\n${output}`);
  }, 160_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      process.kill(-up.pid!, 'SIGINT');
      await exit;
    }
  });

  it('starts three named servers with their own stores, gives the children all three URLs, and the scheduler makes R3 streams', () => {
    const i = info();
    expect(i.natsServers?.map((s) => s.name)).toEqual(['shoal-1', 'shoal-2', 'shoal-3']);
    expect(i.natsUrl.split(',')).toEqual(i.natsServers!.map((s) => s.url));
    expect(new Set(i.natsServers!.map((s) => s.url)).size).toBe(3);
    for (const n of [1, 2, 3]) expect(existsSync(join(dataDir, `nats-${n}`, 'jetstream'))).toBe(true);
    expect(i.natsServers!.every((s) => alive(s.pid))).toBe(true);
    expect(output).toMatch(/"replicas":3,"msg":"JetStream resources ready"/);
    const status = JSON.parse(shoal(['status', '--json'], cwd).stdout) as StatusReport;
    const environ = readFileSync(`/proc/${status.processes.find((p) => p.role === 'gateway')!.pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain(`SHOAL_NATS_URL=${i.natsUrl}`);
  });

  it('a nats-server SIGKILLed is restarted on the same port and store; the cluster keeps serving', async () => {
    const victim = info().natsServers![1]!;
    process.kill(victim.pid, 'SIGKILL');
    await until(() => (/nats-server shoal-2 restarted \(pid \d+\)/.test(output) ? true : undefined), 60_000, `the restart in:\n${output}`);
    expect(output).toMatch(new RegExp(`nats-server shoal-2 \\(pid ${victim.pid}\\) exited unexpectedly \\(SIGKILL\\); the cluster keeps running on the other 2; restarting it in 1 s`));
    const after = info().natsServers![1]!;
    expect(after.pid).not.toBe(victim.pid);
    expect(after.url).toBe(victim.url);
    expect(alive(after.pid)).toBe(true);
    const status = await until(() => {
      const r = shoal(['status', '--json'], cwd);
      return r.status === 0 ? (JSON.parse(r.stdout) as StatusReport) : undefined;
    }, 30_000, 'shoal status after the restart');
    expect(status.processes.map((p) => p.role).sort()).toEqual(['gateway', 'node', 'node', 'scheduler']);
    expect((await fetch(`${info().gatewayUrl}/v2/health/ready`)).status).toBe(200);
  }, 90_000);

  it('Ctrl-C stops the children, then every nats-server', async () => {
    const pids = info().natsServers!.map((s) => s.pid);
    process.kill(-up.pid!, 'SIGINT');
    expect(await exit).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(output).toMatch(/all processes stopped/);
  }, 60_000);
});

describe('shoal up refuses a cluster it cannot run', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-upc-bad-'));
  const oneLine = (r: ReturnType<typeof shoal>, pattern: RegExp) => {
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(pattern);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  };

  it('an even --nats.cluster: refused naming nats.cluster and the RAFT quorum', () => {
    oneLine(shoal(['up', '--nats.cluster', '2', '--nats.port', '0', '--gateway.port', '0'], cwd), /invalid config nats\.cluster: 2 servers refused: JetStream's RAFT needs a majority \(quorum 2 of 2\).*use 1 or 3.*\[SHOAL_ERR_BAD_CONFIG\]/);
    oneLine(shoal(['up', '--nats.cluster', '4', '--nats.port', '0', '--gateway.port', '0'], cwd), /nats\.cluster: 4 servers refused.*quorum 3 of 4/);
  });

  it('more replicas than servers: refused naming nats.replicas', () => {
    oneLine(shoal(['up', '--nats.replicas', '3', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], cwd), /invalid config nats\.replicas: 3 replicas need at least 3 servers; nats\.cluster is 1/);
  });

  it('nats.servers where no server answers: one error naming each', async () => {
    const a = `nats://127.0.0.1:${await freePort('127.0.0.1')}`;
    const b = `nats://127.0.0.1:${await freePort('127.0.0.1')}`;
    const r = shoal(['up', '--nats.servers', `${a},${b}`, '--gateway.port', '0', '--gateway.grpcPort', '0'], cwd);
    oneLine(r, /cannot connect to NATS.*none of the 2 server\(s\) answered/);
    expect(r.stderr).toContain(`${a} (ECONNREFUSED)`);
    expect(r.stderr).toContain(`${b} (ECONNREFUSED)`);
  });
});
