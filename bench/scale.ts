/**
 * `npm run bench:scale`: Shoal's control plane with 1,000 and 5,000 nodes on this one machine.
 * The nodes are virtual (nodes/virtual-fleet.ts, in one child process): each has its own NATS
 * connection and user and speaks the node protocol — beats on core NATS, its record in KV, its control subject,
 * presence, directory claims — against the real scheduler process and a real nats-server.
 *
 * Per fleet size, after the scheduler sees every node alive:
 *   - heartbeat traffic: beats/s and record puts/s, and the CPU of nats-server, the scheduler and the fleet;
 *   - `shoal status`: time until every process has answered the presence ping, and the leader's
 *     status reply (its node table) time and size;
 *   - placement latency: spawning single echo actors through the scheduler, one request at a time;
 *   - failure detection: a node stops heartbeating (its connection stays up, as with a hung
 *     machine) → the scheduler's `node-dead` event, with the default heartbeat 1 s / dead after 5 s.
 * Three rounds of the measurements per size (one fleet per size); medians and ranges in
 * bench/results/scale.md. SCALE_NODES=200,1000 changes the sizes.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RECORD_EVERY_BEATS, Role, decode, encode, request, subjects, type NatsConnection, type SchedulerStatus, type SpawnResult } from '../cluster/index.ts';
import { virtualNodeIds } from '../nodes/index.ts';
import { startTestNats, type TestNats } from '../test/harness/nats.ts';
import { ProcessSet } from '../test/harness/processes.ts';
import { median, writeResults } from './lib/results.ts';
import { measureClusterServing } from './lib/cluster-serving.ts';

// SCALE_NODES=none: only the serving comparison. SCALE_SERVING=0: without it.
const SIZES = process.env.SCALE_NODES === 'none' ? [] : (process.env.SCALE_NODES ?? '1000,5000').split(',').map(Number);
const SERVING = process.env.SCALE_SERVING !== '0';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HEARTBEAT_MS = 1000;
const DEAD_AFTER_MS = 5000;
const PLACEMENTS = 100;
const s = subjects();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TICK = 100; // getconf CLK_TCK on Linux

/** CPU seconds a process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
}

function pct(xs: number[], p: number): number {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor((p / 100) * a.length))]!;
}

class Fleet {
  readonly child: ChildProcess;
  #waiters: Array<{ type: string; resolve: (m: any) => void }> = [];
  constructor() {
    this.child = fork(fileURLToPath(new URL('./lib/virtual-fleet-main.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: { type: string; message?: string }) => {
      if (m.type === 'error') throw new Error(`fleet: ${m.message}`);
      const i = this.#waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(m);
    });
  }
  ask<T>(cmd: object, reply: string): Promise<T> {
    return new Promise((resolve) => {
      this.#waiters.push({ type: reply, resolve });
      this.child.send(cmd);
    });
  }
}

interface Round {
  beatsPerSec: number;
  putsPerSec: number;
  natsCpu: number;
  schedCpu: number;
  fleetCpu: number;
  presenceMs: number;
  presenceAnswers: number;
  statusMs: number;
  statusBytes: number;
  placeP50: number;
  placeP99: number;
}

async function presence(nc: NatsConnection, expected: number): Promise<{ ms: number; answers: number }> {
  const t0 = performance.now();
  let answers = 0;
  const it = await nc.requestMany(s.sysPing, encode({ type: 'ping' }), { strategy: 'count', maxMessages: expected, maxWait: 10_000 });
  for await (const _m of it) answers++;
  return { ms: performance.now() - t0, answers };
}

async function measureSize(n: number): Promise<{ n: number; joinMs: number; startMs: number; rounds: Round[]; detectMs: number[]; errors: number; skipped: number }> {
  const nats: TestNats = await startTestNats();
  const procs = new ProcessSet(nats);
  const fleet = new Fleet();
  try {
    const args = ['--membership.heartbeatMs', String(HEARTBEAT_MS), '--membership.deadAfterMs', String(DEAD_AFTER_MS), '--log.level', 'warn'];
    const sched = procs.startScheduler(args);
    await sched.ready;
    const ids = virtualNodeIds('vn', n);
    await nats.addNodes(ids);
    const client = await nats.connect(Role.CLIENT);
    // Counts the beats that reach a subscriber, as the scheduler's own subscription gets them.
    let beatsSeen = 0;
    const watcher = await nats.connect(Role.SCHEDULER);
    watcher.subscribe(s.nodeBeatAll, { callback: () => void beatsSeen++ });
    const t0 = performance.now();
    const ready = await fleet.ask<{ ms: number }>({ type: 'start', url: nats.url, nodeSecret: nats.credentials.nodeSecret, count: n, idPrefix: 'vn', heartbeatMs: HEARTBEAT_MS }, 'ready');
    const statusNow = () => request<SchedulerStatus>(client, s.scheduler('status'), { type: 'status' }, { timeoutMs: 30_000 });
    for (;;) {
      const st = await statusNow().catch(() => undefined);
      if (st && st.nodes.filter((x) => x.alive).length === n) break;
      await sleep(200);
    }
    const joinMs = performance.now() - t0;
    process.stdout.write(`  ${n} nodes: connected in ${(ready.ms / 1000).toFixed(1)} s, all alive at the scheduler after ${(joinMs / 1000).toFixed(1)} s\n`);

    // Steady state first: a node's first record refresh comes 30–59 beats after its start, so
    // windows before that would see no refresh at all (and the first after it a burst).
    const steadyIn = t0 + 2 * RECORD_EVERY_BEATS * HEARTBEAT_MS - performance.now();
    if (steadyIn > 0) {
      process.stdout.write(`  waiting ${(steadyIn / 1000).toFixed(0)} s for record refreshes to reach their steady rate\n`);
      await sleep(steadyIn);
    }
    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Steady state: 10 s of heartbeats.
      const a = await fleet.ask<{ recordPuts: number; cpu: NodeJS.CpuUsage; at: number }>({ type: 'stats' }, 'stats');
      const beatsA = beatsSeen;
      const natsA = cpuSeconds(nats.server.pid);
      const schedA = cpuSeconds(sched.process.pid!);
      await sleep(10_000);
      const b = await fleet.ask<{ recordPuts: number; cpu: NodeJS.CpuUsage; at: number }>({ type: 'stats' }, 'stats');
      const secs = (b.at - a.at) / 1000;
      const round: Partial<Round> = {
        beatsPerSec: (beatsSeen - beatsA) / secs,
        putsPerSec: (b.recordPuts - a.recordPuts) / secs,
        natsCpu: ((cpuSeconds(nats.server.pid) - natsA) / secs) * 100,
        schedCpu: ((cpuSeconds(sched.process.pid!) - schedA) / secs) * 100,
        fleetCpu: ((b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system) / 1e6 / secs) * 100,
      };
      const errs = await fleet.ask<{ heartbeatErrors: number; lastError?: string }>({ type: 'stats' }, 'stats');
      if (errs.heartbeatErrors) process.stdout.write(`    heartbeat errors so far: ${errs.heartbeatErrors} (${errs.lastError})\n`);
      const p = await presence(client, n + 1);
      round.presenceMs = p.ms;
      round.presenceAnswers = p.answers;
      const st0 = performance.now();
      const st = await statusNow();
      round.statusMs = performance.now() - st0;
      round.statusBytes = encode(st).length;
      const lat: number[] = [];
      for (let i = 0; i < PLACEMENTS; i++) {
        const q0 = performance.now();
        const res = await request<SpawnResult>(client, s.scheduler('actors'), { type: 'spawn', spec: { type: 'echo', id: `e${r}-${i}` } }, { timeoutMs: 30_000 });
        lat.push(performance.now() - q0);
        if (res.actors[0]?.state !== 'running') throw new Error(`placement ${i}: ${JSON.stringify(res)}`);
      }
      round.placeP50 = pct(lat, 50);
      round.placeP99 = pct(lat, 99);
      rounds.push(round as Round);
      process.stdout.write(`    round ${r + 1}: ${JSON.stringify(Object.fromEntries(Object.entries(round).map(([k, v]) => [k, Math.round(v * 10) / 10])))}\n`);
    }

    // Failure detection: silence 5 nodes one after another.
    const detectMs: number[] = [];
    for (let k = 0; k < 5; k++) {
      const victim = ids[(k * 997 + 13) % n]!;
      const seen = new Promise<number>((resolve) => {
        const sub = client.subscribe(s.event('node-dead'), {
          callback: (_e, m) => {
            if ((decode(m.data) as { nodeId: string }).nodeId === victim) {
              sub.unsubscribe();
              resolve(Date.now());
            }
          },
        });
      });
      const { at } = await fleet.ask<{ at: number }>({ type: 'silence', nodeId: victim }, 'silenced');
      detectMs.push((await seen) - at);
    }
    const stats = await fleet.ask<{ heartbeatErrors: number; lastError?: string; skipped: number; heartbeats: number }>({ type: 'stats' }, 'stats');
    if (stats.heartbeatErrors) process.stdout.write(`  heartbeat errors: ${stats.heartbeatErrors}, the last: ${stats.lastError}\n`);
    await fleet.ask({ type: 'stop' }, 'stopped');
    return { n, joinMs, startMs: ready.ms, rounds, detectMs, errors: stats.heartbeatErrors, skipped: stats.skipped / Math.max(1, stats.skipped + stats.heartbeats + stats.heartbeatErrors) };
  } finally {
    if (fleet.child.exitCode === null) fleet.child.kill('SIGKILL');
    await procs.stopAll();
    await nats.stop();
  }
}

const fmt = (xs: number[], digits = 0) => {
  const m = median(xs);
  return `${m.toFixed(digits)} [${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}]`;
};

const results = [];
for (const n of SIZES) {
  process.stdout.write(`fleet of ${n} virtual nodes\n`);
  results.push(await measureSize(n));
}

// Serving through three nats-servers vs one, in the same run (interleaved).
const serving = SERVING ? await measureClusterServing({ rounds: ROUNDS, subruns: Number(process.env.BENCH_SUBRUNS ?? 3), seconds: Number(process.env.BENCH_SECONDS ?? 3), connections: 64, log: (l) => process.stdout.write(`${l}\n`) }) : [];
const servingSection = serving.length
  ? `
## Serving through a NATS cluster of three vs one server

The MLP (32 features, one-row OIP requests, 64 connections) served by the same Shoal processes (a
scheduler, one node, a gateway) on one nats-server and on a cluster of three (routes on loopback,
JetStream R3, every process given every URL; each connects to one of them), both running at once;
autocannon alternates between them, ${Number(process.env.BENCH_SUBRUNS ?? 3)} runs of ${Number(process.env.BENCH_SECONDS ?? 3)} s per target per round. ${serving.length} rounds; a round's req/s is the mean of its runs.

| one server req/s | three servers req/s | three / one | one p99 ms | three p99 ms | errors |
|---|---|---|---|---|---|
| ${fmt(serving.map((r) => r.one.rps))} | ${fmt(serving.map((r) => r.three.rps))} | ${fmt(serving.map((r) => r.three.rps / r.one.rps), 2)}× | ${fmt(serving.map((r) => r.one.p99))} | ${fmt(serving.map((r) => r.three.p99))} | ${serving.reduce((a, r) => a + r.errors, 0)} |

Every request crosses NATS twice (gateway → replica → gateway); with three servers a request may
hop a route when the gateway and the node are attached to different servers, and the two extra
nats-servers (and the idle one-server cluster's processes, and vice versa) share the same 2 cores.
`
  : '';

const rows = results.map((r) => {
  const col = (k: keyof Round, d = 0) => fmt(r.rounds.map((x) => x[k]), d);
  return `| ${r.n} | ${(r.startMs / 1000).toFixed(1)} s / ${(r.joinMs / 1000).toFixed(1)} s | ${col('beatsPerSec')} / ${col('putsPerSec', 1)} | ${col('natsCpu')} % | ${col('schedCpu')} % | ${col('fleetCpu')} % | ${col('presenceMs')} ms (${Math.min(...r.rounds.map((x) => x.presenceAnswers))}/${r.n + 1}) | ${col('statusMs')} ms, ${(median(r.rounds.map((x) => x.statusBytes)) / 1024).toFixed(0)} KiB | ${col('placeP50', 1)} / ${col('placeP99', 1)} ms | ${fmt(r.detectMs)} ms | ${r.errors} / ${(r.skipped * 100).toFixed(1)} % |`;
});
writeResults(
  'bench/results/scale.md',
  `# bench:scale — the control plane at ${SIZES.join(' and ')} nodes

Generated by \`npm run bench:scale\` on ${new Date().toISOString().slice(0, 10)}; this machine: 2 cores, one nats-server 2.9.10
(JetStream, auth on), one scheduler process, and every virtual node in one child process
(nodes/virtual-fleet.ts: each node has its own NATS connection and user, beats on core NATS every
${HEARTBEAT_MS} ms, writes its record into the \`nodes\` KV bucket when it changes and every ${RECORD_EVERY_BEATS} beats
(cluster/heartbeat.ts, as a real agent), answers its control subject and presence, and claims actors in the
directory by CAS). Dead after ${DEAD_AFTER_MS} ms of silence (the defaults). Rounds (10 s windows) begin
${2 * RECORD_EVERY_BEATS} beats after the fleet's start, once record refreshes run at their steady rate. Medians over ${ROUNDS} rounds, [min–max].
All four processes share the same 2 cores, so the CPU columns compete with each other.

| nodes | connect / all alive at the scheduler | beats/s received / record puts/s | nats-server CPU | scheduler CPU | fleet CPU | presence: every answer (answers) | leader status reply | placement p50 / p99 (${PLACEMENTS} single spawns) | failure detection (5 nodes) | record put errors / skipped |
|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

- **Heartbeat traffic**: one core NATS message per node per heartbeat (the beats/s a subscriber received —
  the scheduler's subscription gets the same), plus a JetStream KV put of the node's record when its state
  changes and every ${RECORD_EVERY_BEATS} beats; nats-server's CPU is what both cost the server (100 % = one core).
- **Skipped record puts**: a node writes its next record only once the previous put is acknowledged, so an
  overloaded server shows up as skipped puts (the share of all beats), not as a pile of timeouts; beats are
  never held back.
- **Presence** is \`shoal status\`'s scatter-gather ping, timed until every process has answered
  (\`shoal status\` itself waits a fixed 500 ms by default, so it shows only the processes that answered in time).
- **Failure detection** is from the moment a node stops heartbeating to the scheduler's \`node-dead\` event:
  the bound is deadAfterMs plus one sweep (deadAfterMs / 4).
- **Ray's published scalability envelope**, for comparison (\`release/benchmarks/README.md\` in ray-project/ray,
  in the version read: 250+ nodes with a trivial task workload, 10k+ actors, 10k+ simultaneously running
  tasks; measured on 64-core machines). These figures are from one 2-core machine and virtual nodes, so they
  bound Shoal's control plane from below; they are not a like-for-like comparison.
${servingSection}`,
);
process.stdout.write('wrote bench/results/scale.md\n');
