/**
 * The README's first command, for real: `shoal up` starts nats-server, a scheduler, two node
 * agents and the gateway as separate processes; `shoal status` sees them over NATS; SIGINT
 * stops every one of them. Then the bad-input cases: each one clear line and a non-zero exit.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo } from '../../cluster/index.ts';
import { loadInferencePackage } from '../../gateway/grpc/proto.ts';
import type { StatusReport } from '../../cli/status.ts';
import { SHOAL, shoalEnv, alive } from '../harness/shoal-cli.ts';
import { until } from '../harness/wait.ts';

const env = shoalEnv();

function shoal(args: string[], cwd: string) {
  return spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 });
}



describe('shoal up / shoal status (real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-up-'));
  const dataDir = join(cwd, '.shoal');
  let up: ChildProcess;
  let output = '';
  let exit: Promise<number | null>;

  beforeAll(async () => {
    // Its own process group, as a terminal's foreground job: Ctrl-C below goes to the whole group.
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    exit = new Promise((res) => up.once('exit', (code) => res(code)));
    await until(() => (/Shoal is up/.test(output) ? true : undefined), 90_000, `"Shoal is up" in:\n${output}`);
  }, 100_000);

  afterAll(() => {
    if (up && up.exitCode === null) up.kill('SIGKILL');
  });

  it('writes its store, credentials (0600) and where it listens under ./.shoal', () => {
    const info = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterInfo;
    expect(info.natsUrl).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    expect(info.gatewayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(existsSync(join(dataDir, 'jetstream'))).toBe(true);
    const mode = spawnSync('stat', ['-c', '%a', join(dataDir, 'credentials.json')], { encoding: 'utf8' }).stdout.trim();
    expect(mode).toBe('600');
  });

  it('shoal status lists the scheduler, both nodes and the gateway, seen over NATS', async () => {
    // Nodes heartbeat every second; allow the scheduler's view to fill.
    const report = await until(() => {
      const r = shoal(['status', '--json'], cwd);
      if (r.status !== 0) return undefined;
      const rep = JSON.parse(r.stdout) as StatusReport;
      return 'nodes' in rep.scheduler && rep.scheduler.nodes.length >= 2 ? rep : undefined;
    }, 30_000, 'status with two nodes');
    const roles = report.processes.map((p) => p.role).sort();
    expect(roles).toEqual(['gateway', 'node', 'node', 'scheduler']);
    if (!('nodes' in report.scheduler)) throw new Error('scheduler unavailable');
    const nodes = report.scheduler.nodes;
    expect(nodes.map((n) => n.nodeId).sort()).toEqual(['cpu-ondemand-1', 'cpu-spot-1']);
    expect(nodes.every((n) => n.alive && n.state === 'running')).toBe(true);
    expect(new Set(nodes.map((n) => n.labels.spot))).toEqual(new Set([true, false]));
    expect(nodes.every((n) => n.capabilities.cpus >= 1 && n.capabilities.onnxruntime !== null)).toBe(true);
    // Each is its own OS process.
    const pids = new Set(report.processes.map((p) => p.pid));
    expect(pids.size).toBe(4);
    expect(pids.has(up.pid!)).toBe(false);

    // Each node connects as its own NATS user and never sees the node secret; the scheduler has
    // it (to derive autoscaled nodes' credentials).
    const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    for (const p of report.processes.filter((x) => x.role === 'node')) {
      const e = environ(p.pid);
      expect(e).toContain(`SHOAL_NATS_USER=node-${p.id}`);
      expect(e.some((l) => l.startsWith('SHOAL_NATS_NODE_SECRET='))).toBe(false);
    }
    const sched = report.processes.find((x) => x.role === 'scheduler')!;
    expect(environ(sched.pid).some((l) => l.startsWith('SHOAL_NATS_NODE_SECRET='))).toBe(true);

    const text = shoal(['status'], cwd);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/scheduler\s+scheduler-/);
    expect(text.stdout).toMatch(/cpu-spot-1/);
    expect(text.stdout).toMatch(/gateway\s+gateway-.*http:\/\/127\.0\.0\.1:\d+/);
  });

  it('the gateway answers on the port it printed', async () => {
    const info = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterInfo;
    const ready = await fetch(`${info.gatewayUrl}/v2/health/ready`);
    expect(ready.status).toBe(200);
    const status = (await (await fetch(`${info.gatewayUrl}/v1/status`)).json()) as StatusReport;
    expect(status.processes.some((p) => p.role === 'scheduler')).toBe(true);
    const missing = await fetch(`${info.gatewayUrl}/v2/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { code: string }).code).toBe('SHOAL_ERR_NOT_FOUND');
    // A training job with a bad spec is refused at the door, naming the field.
    const bad = await fetch(`${info.gatewayUrl}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ spec: { model: { name: 'm', type: 'logreg' }, dataset: 'd', workers: 0 } }) });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'SHOAL_ERR_BAD_JOB', error: expect.stringMatching(/workers/) });
    // …and its gRPC service where cluster.json says (gateway.grpcPort 0: a free port).
    expect(info.gatewayGrpc).toMatch(/^127\.0\.0\.1:\d+$/);
    // (The banner's spacing differs between a terminal and the log line: compare words.)
    expect(output.replace(/\s+/g, ' ')).toContain(`gRPC ${info.gatewayGrpc} `);
    const Service = loadInferencePackage().inference.GRPCInferenceService;
    const client = new Service(info.gatewayGrpc!, credentials.createInsecure());
    const live = await new Promise((res, rej) => (client as unknown as { ServerLive: (r: object, cb: (e: Error | null, r: unknown) => void) => void }).ServerLive({}, (e, r) => (e ? rej(e) : res(r))));
    client.close();
    expect(live).toEqual({ live: true });
    const metrics = await (await fetch(`${info.gatewayUrl}/metrics`)).text();
    expect(metrics).toMatch(/shoal_gateway_http_request_duration_seconds_count\{[^}]*route="\/v2\/health\/ready"/);
  });

  it('a second shoal up on the same data dir is refused while the first runs', () => {
    const r = shoal(['up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0'], cwd);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/a cluster is already running from .*\.shoal/);
  });

  it('a child that crashes is started again: SIGKILL the gateway and a node, both come back', async () => {
    const before = JSON.parse(shoal(['status', '--json'], cwd).stdout) as StatusReport;
    const gw = before.processes.find((p) => p.role === 'gateway')!;
    const node = before.processes.find((p) => p.role === 'node' && p.id === 'cpu-ondemand-1')!;
    process.kill(gw.pid, 'SIGKILL');
    process.kill(node.pid, 'SIGKILL');
    await until(() => (/gateway restarted \(pid \d+\)/.test(output) && /node:cpu-ondemand-1 restarted \(pid \d+\)/.test(output) ? true : undefined), 30_000, `restarts in:\n${output}`);
    expect(output).toMatch(new RegExp(`gateway \\(pid ${gw.pid}\\) exited unexpectedly \\(SIGKILL\\); restarting it in 1 s`));
    // The new gateway answers where cluster.json now says (gateway.port 0: a new port).
    // ("restarted" is printed when the process is spawned; it listens and rewrites cluster.json a moment later.)
    const ready = await until(async () => {
      const info = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterInfo;
      const res = await fetch(`${info.gatewayUrl}/v2/health/ready`).catch(() => undefined);
      return res?.status === 200 ? res.status : undefined;
    }, 30_000, 'the restarted gateway ready where cluster.json says');
    expect(ready).toBe(200);
    const after = await until(() => {
      const r = JSON.parse(shoal(['status', '--json'], cwd).stdout) as StatusReport;
      const n = r.processes.find((p) => p.role === 'node' && p.id === 'cpu-ondemand-1');
      const g = r.processes.find((p) => p.role === 'gateway');
      return n && g && n.pid !== node.pid && g.pid !== gw.pid ? r : undefined;
    }, 20_000, 'the restarted gateway and node in shoal status');
    expect(after.processes.filter((p) => p.role === 'node')).toHaveLength(2);
  });

  it('shoal drain / preempt reach a node through the scheduler; a drained node leaves cleanly', async () => {
    const bad = shoal(['preempt', 'no-such-node'], cwd);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/no-such-node/);
    const usage = shoal(['drain'], cwd);
    expect(usage.status).toBe(2);
    const r = shoal(['drain', 'cpu-spot-1', '--deadline', '2000'], cwd);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/cpu-spot-1: draining/);
    await until(() => (/node:cpu-spot-1 \(pid \d+\) exited cleanly \(drained\)/.test(output) ? true : undefined), 20_000, 'drained node exit');
  });

  it('Ctrl-C (SIGINT to the whole process group) stops every process in order — gateway, nodes, scheduler, nats-server last — with no warning or error line, and leaves no orphan', async () => {
    const report = JSON.parse(shoal(['status', '--json'], cwd).stdout) as StatusReport;
    const info = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterInfo;
    const pids = [...report.processes.map((p) => p.pid), info.natsPid];
    expect(report.processes.map((p) => p.role).sort()).toEqual(['gateway', 'node', 'scheduler']);
    expect(pids.every(alive)).toBe(true);
    const from = output.length;
    process.kill(-up.pid!, 'SIGINT'); // what a terminal does: every process of the foreground group gets it
    expect(await exit).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    const lines = output
      .slice(from)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; role: string; msg: string });
    // Had nats-server gone first, the nodes' heartbeats, the hand-off and the scheduler's lease would fail loudly.
    expect(lines.filter((l) => l.level >= 40)).toEqual([]);
    const stopped = lines.filter((l) => l.msg === 'stopped').map((l) => l.role);
    // The gateway first, then the live nodes (one was drained above when the whole file runs), the scheduler last.
    expect(stopped[0]).toBe('gateway');
    expect(stopped.at(-1)).toBe('scheduler');
    expect(stopped.slice(1, -1).length).toBeGreaterThan(0);
    expect(stopped.slice(1, -1).every((r) => r === 'node')).toBe(true);
    expect(existsSync(join(dataDir, 'cluster.json'))).toBe(false);
    expect(output).toMatch(/all processes stopped/);
    const after = shoal(['status'], cwd);
    expect(after.status).not.toBe(0);
    expect(after.stderr).toMatch(/no cluster is running/);
  });
});

describe('shoal up refuses bad input with one clear line and a non-zero exit', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-bad-'));
  let busy: Server;
  let busyPort = 0;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    busyPort = (busy.address() as { port: number }).port;
  });
  afterAll(() => busy?.close());

  const expectOneLine = (r: ReturnType<typeof shoal>, pattern: RegExp) => {
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(pattern);
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  };

  it('a bad config value names the field', () => {
    expectOneLine(shoal(['up', '--gateway.port', '70000'], cwd), /^shoal: invalid config gateway\.port: .*70000.*\[SHOAL_ERR_BAD_CONFIG\]$/);
    writeFileSync(join(cwd, 'shoal.config.json'), JSON.stringify({ membership: { heartbeatMs: -5 } }));
    expectOneLine(shoal(['up'], cwd), /invalid config membership\.heartbeatMs: .*-5.*shoal\.config\.json/);
  });

  it('a missing nats-server binary', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-bad-'));
    expectOneLine(shoal(['up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0', '--nats.serverBin', '/nonexistent/nats-server'], dir), /nats-server binary not found.*\[SHOAL_ERR_NATS_SERVER_NOT_FOUND\]/);
  });

  it('a port in use', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-bad-'));
    expectOneLine(shoal(['up', '--nats.port', String(busyPort), '--gateway.port', '0', '--gateway.grpcPort', '0'], dir), new RegExp(`NATS port ${busyPort} is already in use`));
    expectOneLine(shoal(['up', '--nats.port', '0', '--gateway.port', String(busyPort)], dir), new RegExp(`gateway HTTP port ${busyPort} is already in use`));
    expectOneLine(shoal(['up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', String(busyPort)], dir), new RegExp(`gateway gRPC port ${busyPort} is already in use`));
  });

  it('a store directory that cannot be written', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-bad-'));
    writeFileSync(join(dir, 'a-file'), 'x');
    expectOneLine(shoal(['up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0', '--dataDir', join(dir, 'a-file', 'store')], dir), /store directory .*a-file\/store is not writable: ENOTDIR/);
  });

  it('an unknown command', () => {
    const r = shoal(['frobnicate'], cwd);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown command "frobnicate"/);
  });
});
