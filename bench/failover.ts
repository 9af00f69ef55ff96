/**
 * `npm run bench:failover`: what a SIGKILLed node agent costs a deployed model and a running
 * training job, on a real embedded cluster (nats-server, scheduler, two node agents and the
 * gateway as processes, default membership settings: heartbeat 1 s, dead after 5 s).
 *
 * Each round deploys a model with two replicas (anti-affinity puts one on each node), starts a
 * training job (its coordinator and worker also land on different nodes), puts 8 closed-loop
 * HTTP clients on the model, then SIGKILLs the node that runs the job's coordinator — which also
 * hosts a replica — and measures:
 *   - the serving gap: the longest time without a successful answer, and requests that failed;
 *   - replicas back: until both replicas answer a readiness probe again;
 *   - the job: until its record moves again, and until it is past the step it had reached.
 * Scenarios: the node restarted under the same id 1 s later (what `shoal up`'s supervisor does),
 * and the node gone for good. The bound the issue sets is `deadAfterMs` + 2 s = 7 s.
 * Three rounds per scenario; medians and ranges go to bench/results/failover.md.
 */
import { cpus } from 'node:os';
import { Role, subjects } from '../cluster/index.ts';
import { JobClient, ModelDeployments, RegistryClient, generateFraud } from '../ml/index.ts';
import { mlpModel, randomRows } from '../test/fixtures/onnx.ts';
import { startTestNats, type TestNats } from '../test/harness/nats.ts';
import { ProcessSet, type TestProcess } from '../test/harness/processes.ts';
import { writeResults } from './lib/results.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNS = 8;
const DEAD_AFTER_MS = 5000;
const ARGS = ['--actors.modules', '["shoal:ml/serving/actors.ts","shoal:ml/training/actors.ts"]'];
const s = subjects();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Round {
  gapMs: number;
  failed: number;
  served: number;
  maxLatencyMs: number;
  replicasBackMs: number;
  jobMovesMs: number;
  jobPastMs: number;
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** What clients saw from the kill on: the longest time without a successful answer, failures, the slowest answer. */
function servingAfter(done: { at: number; ok: boolean; ms: number }[], killedAt: number): Pick<Round, 'gapMs' | 'failed' | 'served' | 'maxLatencyMs'> {
  const after = done.filter((d) => d.at >= killedAt).sort((a, b) => a.at - b.at);
  let gap = 0;
  let lastOk = killedAt;
  for (const d of after) {
    if (!d.ok) continue;
    gap = Math.max(gap, d.at - lastOk);
    lastOk = d.at;
  }
  return { gapMs: gap, failed: after.filter((d) => !d.ok).length, served: after.filter((d) => d.ok).length, maxLatencyMs: Math.max(...after.map((d) => d.ms)) };
}

async function round(restart: boolean): Promise<Round> {
  const nats: TestNats = await startTestNats();
  const procs = new ProcessSet(nats);
  try {
    await procs.startScheduler(ARGS).ready;
    const nodes: Record<string, TestProcess> = {};
    for (const id of ['fo-1', 'fo-2']) nodes[id] = await procs.startNode(id, 'cpu-ondemand', ARGS);
    await Promise.all(Object.values(nodes).map((n) => n.ready));
    const gw = procs.startGateway(['--gateway.port', '0', '--gateway.grpcPort', '0', ...ARGS]);
    const url = ((await gw.ready) as { url: string }).url;
    const nc = await nats.connect(Role.CLIENT);
    const control = new RegistryClient(nc, s);
    const live = await ModelDeployments.open(await nats.connect(Role.SCHEDULER), s);
    await control.register('fo', mlpModel({ seed: 2 }), { aliases: ['production'] });
    await until(() => control.deploy('fo', { replicas: 2, readyTimeoutMs: 30_000 }).then((d) => (d.stable.state === 'ready' ? d : undefined)), 60_000, 'model deployed');
    await control.registerDataset('fo-data', generateFraud({ rows: 20_000, seed: 3 }));
    const jobs = await JobClient.open(nc);
    const { id } = await jobs.submit({ model: { name: 'fo-job', type: 'mlp', hidden: 16 }, dataset: 'fo-data', hyper: { steps: 1_000_000, batchSize: 256 }, workers: 1, checkpointEvery: 20 });
    const running = await until(async () => {
      const r = await jobs.get(id);
      const p = r.progress as { step?: number; node?: string } | undefined;
      return p?.node && (p.step ?? 0) >= 60 ? p : undefined;
    }, 60_000, 'the job running');
    const victim = running.node!;
    // The victim must host a replica too (it does when both spread over the two nodes).
    const replicas = (await live.live('fo')).stable.replicas;
    if (!replicas.some((r) => r.nodeId === victim)) throw new Error(`coordinator on ${victim} but replicas on ${replicas.map((r) => r.nodeId).join(', ')}`);

    // Load: closed-loop clients; every answer's completion time and status.
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1) }] });
    const done: { at: number; ok: boolean; ms: number }[] = [];
    let loading = true;
    const loops = Array.from({ length: CONNS }, async () => {
      while (loading) {
        const t0 = performance.now();
        const ok = await fetch(`${url}/v2/models/fo/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.ok, () => false);
        done.push({ at: performance.now(), ok, ms: performance.now() - t0 });
      }
    });
    await sleep(2000);

    const stepAtKill = ((await jobs.get(id)).progress as { step: number }).step;
    const seenAtKill = (await jobs.get(id)).updatedAt;
    const killedAt = performance.now();
    nodes[victim]!.kill('SIGKILL');
    await nodes[victim]!.exited;
    if (restart) {
      await sleep(1000);
      nodes[victim] = await procs.startNode(victim, 'cpu-ondemand', ARGS);
    }
    const [replicasBackMs, job] = await Promise.all([
      until(async () => ((await live.live('fo', 500)).stable.serving === 2 ? performance.now() - killedAt : undefined), 60_000, 'both replicas serving'),
      (async () => {
        const moves = await until(async () => ((await jobs.get(id)).updatedAt > seenAtKill ? performance.now() - killedAt : undefined), 60_000, 'the job moving');
        const past = await until(async () => {
          const r = await jobs.get(id);
          return ((r.progress as { step?: number } | undefined)?.step ?? 0) > stepAtKill && r.state !== 'failed' ? performance.now() - killedAt : undefined;
        }, 90_000, 'the job past its step at the kill');
        return { moves, past };
      })(),
    ]);
    await sleep(2000);
    loading = false;
    await Promise.all(loops);
    await jobs.cancel(id).catch(() => undefined);

    return { ...servingAfter(done, killedAt), replicasBackMs, jobMovesMs: job.moves, jobPastMs: job.past };
  } finally {
    await procs.stopAll();
    await nats.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const cell = (xs: number[], unit: 'ms' | 's' | '') => {
  const f = (x: number) => (unit === 's' ? (x / 1000).toFixed(1) : unit === 'ms' ? x.toFixed(0) : String(x));
  return `${f(median(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;
};

const results: Record<string, Round[]> = { 'restarted under the same id after 1 s': [], 'gone for good': [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const [label, restart] of [['restarted under the same id after 1 s', true], ['gone for good', false]] as const) {
    const x = await round(restart);
    results[label]!.push(x);
    console.log(`round ${r + 1} ${label}: ${JSON.stringify(x, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}`);
  }
}

const rows = Object.entries(results).map(([label, rs]) => {
  const col = (k: keyof Round, unit: 'ms' | 's' | '') => cell(rs.map((x) => x[k]), unit);
  return `| ${label} | ${col('gapMs', 'ms')} | ${col('failed', '')} of ${median(rs.map((x) => x.failed + x.served))} | ${col('maxLatencyMs', 'ms')} | ${col('replicasBackMs', 's')} | ${col('jobMovesMs', 's')} | ${col('jobPastMs', 's')} |`;
});
const md = `# Failover: SIGKILL a node agent under load

\`npm run bench:failover\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores (shared; client, gateway, scheduler, nodes and nats-server on one machine).
Two node agents (cpu-ondemand), heartbeat 1 s, dead after ${DEAD_AFTER_MS / 1000} s; a model with 2 replicas (one per node) under ${CONNS}
closed-loop HTTP clients; a training job (1 worker, checkpoint every 20 steps) whose coordinator shares the killed node with a
replica. Median [min–max] of ${ROUNDS} rounds. Bound asked for: serving again and the job progressing within deadAfterMs + 2 s = ${(DEAD_AFTER_MS + 2000) / 1000} s.

| node after the kill | longest gap without a 2xx (ms) | failed requests | max latency (ms) | both replicas serving again (s) | job record moves again (s) | job past its step at the kill (s) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

- The gap is what a client sees: requests in flight to the dead replica are hedged to the live one after 250 ms (no NATS
  signal says a SIGKILLed process will never answer); new requests go to the live replica at once.
- "Restarted": the new process is a new incarnation; the scheduler re-places the old one's actors at its first heartbeat,
  without waiting for the heartbeat timeout. "Gone for good": re-placement starts when the node is declared dead (5 s).
- The job resumes from its last checkpoint (up to 20 steps lost), so "past its step at the kill" includes redoing them.
`;
writeResults(new URL('./results/failover.md', import.meta.url).pathname, md);
console.log(md);
process.exit(0);
