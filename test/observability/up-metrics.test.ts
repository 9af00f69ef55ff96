/**
 * `shoal up` gives every process a Prometheus endpoint: the scheduler `metrics.basePort`, each
 * node agent the next port, the gateway its own `/metrics` — printed in the banner, recorded in
 * cluster.json (what docs/prometheus.yml scrapes), and each answering with its own series.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const SHOAL = join(ROOT, 'bin', 'shoal.mjs');
const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LOG_LEVEL: 'info' };
delete env.SHOAL_NATS_URL;
delete env.SHOAL_NATS_PASS;
delete env.SHOAL_METRICS_PORT;

const portFree = (port: number) =>
  new Promise<boolean>((res) => {
    const srv = createServer();
    srv.once('error', () => res(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => res(true)));
  });

/** A base port with the next `n` - 1 free too (the scheduler and two nodes). */
async function freeRun(n: number): Promise<number> {
  for (let base = 20_000 + (process.pid % 2000) * 10; base < 60_000; base += 7) {
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no run of free ports');
}

async function waitFor<T>(fn: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(fn()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('shoal up: a metrics endpoint per process (one of its ports taken)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-up-metrics-'));
  let up: ChildProcess;
  let output = '';
  let base = 0;
  /** Holds the port `shoal up` would give the first node: it must serve on another one, and say where. */
  const squatter = createServer();

  beforeAll(async () => {
    base = await freeRun(3);
    await new Promise<void>((r) => squatter.listen({ host: '127.0.0.1', port: base + 1 }, () => r()));
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpc', 'false', '--metrics.basePort', String(base)], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(() => (/Shoal is up/.test(output) ? true : undefined), 90_000, `"Shoal is up" in:\n${output}`);
  }, 100_000);

  afterAll(async () => {
    squatter.close();
    if (!up || up.exitCode !== null) return;
    const exited = new Promise((r) => up.once('exit', r));
    process.kill(-up.pid!, 'SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 20_000))]);
    if (up.exitCode === null) up.kill('SIGKILL');
  });

  it('records each process\'s endpoint in cluster.json and prints them', () => {
    const info = JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
    const spot = info.metrics?.['node:cpu-spot-1'];
    expect(info.metrics).toEqual({
      scheduler: `http://127.0.0.1:${base}/metrics`,
      // Its port was taken: it serves on a free one, and that is what is recorded.
      'node:cpu-spot-1': expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/),
      'node:cpu-ondemand-1': `http://127.0.0.1:${base + 2}/metrics`,
      gateway: `${info.gatewayUrl}/metrics`,
    });
    expect(spot).not.toBe(`http://127.0.0.1:${base + 1}/metrics`);
    expect(output).toMatch(new RegExp(`metrics .*http://127\\.0\\.0\\.1:${base}/metrics`));
    // The same endpoints as a Prometheus file_sd target file (docs/prometheus.yml reads it).
    const groups = JSON.parse(readFileSync(join(cwd, '.shoal', 'prometheus-targets.json'), 'utf8')) as { targets: string[]; labels: Record<string, string> }[];
    expect(groups).toContainEqual({ targets: [new URL(spot!).host], labels: { role: 'node', process: 'node:cpu-spot-1', __metrics_path__: '/metrics' } });
    expect(groups).toContainEqual({ targets: [`127.0.0.1:${base + 2}`], labels: { role: 'node', process: 'node:cpu-ondemand-1', __metrics_path__: '/metrics' } });
    expect(groups.map((g) => g.labels.role).sort()).toEqual(['gateway', 'node', 'node', 'scheduler']);
  });

  it('each endpoint serves its own process\'s series', async () => {
    const info = JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo;
    const text = async (url: string) => (await fetch(url)).text();
    const sched = await waitFor(async () => {
      const t = await text(info.metrics!.scheduler!);
      return /^shoal_scheduler_is_leader 1$/m.test(t) ? t : undefined;
    }, 20_000, 'the scheduler leading');
    expect(sched).toMatch(/^shoal_scheduler_nodes\{state="alive"\} 2$/m);
    expect(sched).not.toContain('shoal_node_');
    for (const node of ['node:cpu-spot-1', 'node:cpu-ondemand-1']) {
      const t = await text(info.metrics![node]!);
      expect(t).toContain('# TYPE shoal_node_actors gauge');
      expect(t).toMatch(/^shoal_node_worker_pool_threads [1-9]/m);
      expect(t).not.toContain('shoal_scheduler_');
    }
    expect(await text(info.metrics!.gateway!)).toContain('# TYPE shoal_gateway_http_request_duration_seconds histogram');
  });
});
