/**
 * The outside tester's reproduction, on a real `shoal up`: SIGKILL the node agent that hosts a
 * model's only replica, and the one that hosts a training job's coordinator. The supervisor
 * restarts each within a second or two under the same node id — before any heartbeat timeout
 * (set to a minute here, so only the node's new incarnation can explain a recovery within the
 * waits below). The model serves again and `shoal models status` says so from live replicas; the
 * job resumes from its checkpoint and succeeds.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterInfo, JobRecord } from '../../cluster/index.ts';
import type { StatusReport } from '../../cli/status.ts';
import type { LiveStatus } from '../../ml/index.ts';
import { until } from '../harness/wait.ts';
import { SHOAL, shoalEnv } from '../harness/shoal-cli.ts';

const env = shoalEnv();

describe('SIGKILL a node agent under shoal up: what it hosted comes back (real processes)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-kill-'));
  let up: ChildProcess;
  let output = '';
  let gateway = '';
  const shoal = (...args: string[]) => spawnSync(process.execPath, [SHOAL, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  const json = <T>(...args: string[]): T => {
    const r = shoal(...args, '--json');
    if (r.status !== 0 && !r.stdout.trim().startsWith('{')) throw new Error(`shoal ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };
  // `shoal status` lists who answered its presence ping within 500 ms: a node busy training can miss one, so ask again.
  const nodePid = (nodeId: string) =>
    until(() => {
      const r = shoal('status', '--json');
      return r.status === 0 ? (JSON.parse(r.stdout) as StatusReport).processes.find((x) => x.role === 'node' && x.id === nodeId)?.pid : undefined;
    }, 30_000, `${nodeId} in shoal status`, 250);
  const restarted = (nodeId: string, oldPid: number) => until(() => {
    const r = shoal('status', '--json');
    const p = r.status === 0 ? (JSON.parse(r.stdout) as StatusReport).processes.find((x) => x.role === 'node' && x.id === nodeId) : undefined;
    return p && p.pid !== oldPid ? p.pid : undefined;
  }, 30_000, `${nodeId} restarted by the supervisor`, 250);

  beforeAll(async () => {
    up = spawn(process.execPath, [SHOAL, 'up', '--nats.port', '0', '--gateway.port', '0', '--gateway.grpcPort', '0', '--membership.deadAfterMs', '60000'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await until(() => (/Shoal is up/.test(output) ? true : undefined), 90_000, 'Shoal is up', 200);
    gateway = (JSON.parse(readFileSync(join(cwd, '.shoal', 'cluster.json'), 'utf8')) as ClusterInfo).gatewayUrl!;
    expect(shoal('datasets', 'generate', 'fraud', '--rows', '4000', '--seed', '1').status).toBe(0);
  }, 120_000);

  afterAll(async () => {
    if (up && up.exitCode === null) {
      up.kill('SIGINT');
      await new Promise((r) => up.once('exit', r));
    }
  });

  it('a model whose only replica\'s node was killed serves again, and status counts live replicas', async () => {
    writeFileSync(join(cwd, 'train.json'), JSON.stringify({ model: { name: 'fraud', type: 'logreg' }, dataset: 'fraud', hyper: { steps: 40, batchSize: 128 }, workers: 1, checkpointEvery: 10 }));
    expect(shoal('submit', 'train.json', '--id', 'first').status).toBe(0);
    expect(shoal('models', 'deploy', 'fraud', '--replicas', '1').status).toBe(0);
    const before = json<LiveStatus>('models', 'status', 'fraud');
    expect(before).toMatchObject({ ready: true, stable: { desired: 1, serving: 1 } });
    const hostId = before.stable.replicas[0]!.nodeId;
    const oldPid = await nodePid(hostId);
    process.kill(oldPid, 'SIGKILL');
    await restarted(hostId, oldPid);
    // Serving again, through the gateway, with an answer computed by a replica.
    const meta = (await (await fetch(`${gateway}/v2/models/fraud`)).json()) as { inputs: { name: string; datatype: string; shape: number[] }[] };
    const input = meta.inputs[0]!;
    const features = input.shape.at(-1)!;
    const body = JSON.stringify({ inputs: [{ name: input.name, datatype: input.datatype, shape: [1, features], data: Array(features).fill(0) }] });
    const answer = await until(async () => {
      const r = await fetch(`${gateway}/v2/models/fraud/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return r.status === 200 ? ((await r.json()) as { outputs: unknown[] }) : undefined;
    }, 30_000, 'an inference answered after the restart', 250);
    expect(answer.outputs.length).toBeGreaterThan(0);
    expect((await fetch(`${gateway}/v2/models/fraud/ready`)).status).toBe(200);
    const after = json<LiveStatus>('models', 'status', 'fraud');
    expect(after).toMatchObject({ ready: true, stable: { desired: 1, serving: 1 } });
    expect(shoal('models', 'status', 'fraud').stdout).toMatch(/fraud: ready — stable v1 .*1 of 1 replicas serving/);
  });

  it('a training job whose coordinator\'s node was killed resumes and succeeds', async () => {
    writeFileSync(join(cwd, 'long.json'), JSON.stringify({ model: { name: 'fraud-long', type: 'mlp', hidden: 16 }, dataset: 'fraud', hyper: { steps: 20000, batchSize: 256 }, workers: 1, checkpointEvery: 100 }));
    expect(shoal('submit', 'long.json', '--id', 'long', '--no-wait').status).toBe(0);
    const running = await until(() => {
      const r = json<JobRecord>('jobs', 'long');
      const p = r.progress as { step?: number; node?: string } | undefined;
      // Past its first checkpoint and well before the end: a step takes ~1 ms here, so a short job could finish before the kill.
      return p?.node && (p.step ?? 0) >= 150 && (p.step ?? 0) <= 8000 ? { node: p.node, step: p.step! } : undefined;
    }, 60_000, 'the long job past its first checkpoints', 200);
    const oldPid = await nodePid(running.node);
    process.kill(oldPid, 'SIGKILL');
    await restarted(running.node, oldPid);
    const done = await until(() => {
      const r = json<JobRecord>('jobs', 'long');
      return r.state === 'succeeded' || r.state === 'failed' ? r : undefined;
    }, 120_000, 'the long job to finish', 500);
    expect(done.state, JSON.stringify(done)).toBe('succeeded');
    expect(done.reason ?? '', `${JSON.stringify(done)}\nkilled ${running.node} (pid ${oldPid}) at step ${running.step}`).toMatch(/resumed from the checkpoint at step \d+/);
  }, 300_000);
});
