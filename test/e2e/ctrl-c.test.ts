/**
 * Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group of `shoal up`
 * (the supervisor and anything left in its group), with a model deployed so the nodes have
 * replicas to drain and hand off. Everything stops, in order — gateway, nodes, scheduler, then
 * nats-server — with no warning or error line, and no process is left.
 *
 * nats-server runs in its own process group (`ownGroup`): in the terminal's group it got the
 * SIGINT at the same moment and exited first, and the rest then spent seconds on heartbeat
 * failures, hand-off timeouts and a scheduler that could not release its lease. How long the
 * stop takes is printed, not asserted (no test decides by the wall clock).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';
import type { StatusReport } from '../../cli/status.ts';
import { mlpModel } from '../fixtures/onnx.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SHOAL = join(ROOT, 'bin', 'shoal.mjs');
const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LOG_LEVEL: 'info' };
delete env.SHOAL_NATS_URL;
delete env.SHOAL_NATS_PASS;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitFor<T>(fn: () => T | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Line {
  level?: number;
  role?: string;
  id?: string;
  msg?: string;
}

describe('Ctrl-C: SIGINT to the process group of shoal up', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-ctrlc-'));
  const shoal = (args: string[]) => spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 90_000 });
  let up: ChildProcess;
  let output = '';

  beforeAll(async () => {
    // detached: its own process group, the way a shell runs a foreground job.
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(() => (/Shoal is up/.test(output) ? true : undefined), 90_000, `"Shoal is up" in:\n${output}`);
    writeFileSync(join(cwd, 'mlp.onnx'), mlpModel({ seed: 1 }));
    const reg = shoal(['models', 'register', 'mlp', join(cwd, 'mlp.onnx')]);
    expect(reg.status, reg.stderr).toBe(0);
    const dep = shoal(['models', 'deploy', 'mlp', '--replicas', '2']);
    expect(dep.status, dep.stderr).toBe(0);
  }, 180_000);

  afterAll(() => {
    if (up && up.exitCode === null) process.kill(-up.pid!, 'SIGKILL');
  });

  it('stops gateway, nodes (draining their replicas), scheduler, then nats-server, with no warning or error, and leaves nothing running', async () => {
    const info = JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
    const report = await waitFor(() => {
      const r = shoal(['status', '--json']);
      if (r.status !== 0) return undefined;
      const rep = JSON.parse(r.stdout) as StatusReport;
      return rep.processes.length === 4 ? rep : undefined;
    }, 30_000, 'four processes in shoal status');
    const pids = [...report.processes.map((p) => p.pid), info.natsPid, up.pid!];
    expect(pids.every(alive)).toBe(true);

    const from = output.length;
    const t0 = performance.now();
    const exited = new Promise<number | null>((res) => up.once('exit', (code) => res(code)));
    process.kill(-up.pid!, 'SIGINT');
    const code = await exited;
    console.log(`[ctrl-c] shoal up stopped ${Math.round(performance.now() - t0)} ms after SIGINT`);
    expect(code).toBe(0);
    await waitFor(() => (pids.filter(alive).length === 0 ? true : undefined), 20_000, `no process left of ${pids.join(', ')}`);

    const lines: Line[] = output
      .slice(from)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
    const loud = lines.filter((l) => (l.level ?? 0) >= 40);
    expect(loud, JSON.stringify(loud, null, 1)).toEqual([]);
    // Every replica was handed back (drained), not cut off.
    expect(lines.filter((l) => l.msg === 'actor drained and handed off').length).toBe(2);
    // In order: each role's last "stopped" before the next role's first.
    const stoppedAt = (role: string) => lines.map((l, i) => (l.role === role && l.msg === 'stopped' ? i : -1)).filter((i) => i >= 0);
    const gateway = stoppedAt('gateway');
    const nodes = stoppedAt('node');
    const scheduler = stoppedAt('scheduler');
    expect(gateway.length).toBe(1);
    expect(nodes.length).toBe(2);
    expect(scheduler.length).toBe(1);
    expect(Math.max(...gateway)).toBeLessThan(Math.min(...nodes));
    expect(Math.max(...nodes)).toBeLessThan(scheduler[0]!);
    // nats-server last: the supervisor stops it after the scheduler has stopped.
    const done = lines.findIndex((l) => l.role === 'supervisor' && l.msg === 'all processes stopped');
    expect(done).toBeGreaterThan(scheduler[0]!);
  }, 60_000);
});
