/**
 * Profiles target (d) of `npm run bench:serving` alone: nats-server (auth on), scheduler, one
 * node hosting the inference replica, the gateway — with the gateway and the node started under
 * V8's CPU profiler (the same profiles `node --cpu-prof` writes) — driven by autocannon at `PROFILE_C` connections (default 64) for
 * `PROFILE_SECONDS` (default 8) after a warm-up. Then stops them (SIGTERM: profiles are written
 * on exit) and prints the top self-time functions of each profile.
 *
 *   npx tsx bench/lib/profile-serving.ts                # profiles into /tmp/prof
 *   PROFILE_OFF=1 npx tsx bench/lib/profile-serving.ts  # same load, no profiler (req/s only)
 *   PROFILE_MONITORING='{"sampleRate":1,"monitor":false}' npx tsx bench/lib/profile-serving.ts
 *       # the same MLP deployed as `mlp-logged` with that monitoring (and a reference profile), and profiled instead
 */
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Role, subjects } from '../../cluster/index.ts';
import { RegistryClient, buildReferenceProfile } from '../../ml/index.ts';
import { mlpModel, randomRows } from '../../test/fixtures/onnx.ts';
import { deployWhenServed, startServingCluster } from './serving-cluster.ts';
import { summarize } from './profile-summary.ts';

const SECONDS = Number(process.env.PROFILE_SECONDS ?? 8);
const C = Number(process.env.PROFILE_C ?? 64);
const DIR = process.env.PROFILE_DIR ?? '/tmp/prof';
const OFF = process.env.PROFILE_OFF === '1';
const MONITORING = process.env.PROFILE_MONITORING ? (JSON.parse(process.env.PROFILE_MONITORING) as Record<string, unknown>) : undefined;
const MODEL = MONITORING ? 'mlp-logged' : 'mlp';
const BODY = JSON.stringify({ ...(MONITORING ? {} : { id: 'bench' }), inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1)[0] }] });

/** utime + stime of a process, in seconds (Linux /proc). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

/** The machine's CPU time counters (first line of /proc/stat). */
function systemTimes(): number[] {
  return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
}

const tmp = mkdtempSync(join(tmpdir(), 'shoal-prof-serving-'));
rmSync(DIR, { recursive: true, force: true });
// `--cpu-prof` is not allowed in NODE_OPTIONS (and spawnChild fixes the node flags), so a preload
// module starts V8's profiler through the inspector and writes the profile on exit.
const HOOK = join(tmp, 'cpu-prof-hook.mjs');
writeFileSync(
  HOOK,
  `import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
const dir = process.env.SHOAL_CPU_PROF_DIR;
const s = new Session();
s.connect();
s.post('Profiler.enable');
s.post('Profiler.setSamplingInterval', { interval: 1000 });
let on = false;
// Start on SIGUSR2 (after start-up and warm-up), so module loading stays out of the profile.
process.on('SIGUSR2', () => { if (!on) { on = true; s.post('Profiler.start'); } });
process.on('exit', () => {
  if (!on) return;
  // Same-thread inspector sessions answer synchronously, so this works inside 'exit'.
  s.post('Profiler.stop', (err, r) => {
    if (err) return;
    mkdirSync(dir, { recursive: true });
    writeFileSync(dir + '/' + process.pid + '.cpuprofile', JSON.stringify(r.profile));
  });
});
`,
);
// Profiling hooks go to the gateway and the node (PROFILE_SCHEDULER=1: the scheduler too, which runs the label join).
const PROFILED: Partial<Record<Role, string>> = { [Role.NODE]: 'node', [Role.GATEWAY]: 'gateway', ...(process.env.PROFILE_SCHEDULER === '1' ? { [Role.SCHEDULER]: 'scheduler' } : {}) };
const cluster = await startServingCluster(tmp, 'prof-node', (role) => {
  const prof = PROFILED[role];
  return prof && !OFF ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim(), SHOAL_CPU_PROF_DIR: join(DIR, prof) } : {};
});
try {
  const { url, server, nc } = cluster;
  const { scheduler: sched, node, gateway: gw } = cluster.children;
  if (MONITORING) {
    // As bench:monitoring's logged target: a reference profile (X_0…X_31), so the replica profiles its traffic too.
    const reference = buildReferenceProfile(randomRows(1000).map((x) => ({ features: Object.fromEntries(x.map((v, j) => [`X_${j}`, v])), outputs: {} })), undefined, { createdAt: 0 });
    const registry = new RegistryClient(nc, subjects());
    await registry.register(MODEL, mlpModel({ seed: 1 }), { aliases: ['production'], reference: new TextEncoder().encode(JSON.stringify(reference)) });
    await deployWhenServed(registry, MODEL, { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000, monitoring: MONITORING }, url);
  }
  const run = (seconds: number) =>
    autocannon({ url: `${url}/v2/models/${MODEL}/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, connections: C, duration: seconds, pipelining: 1 });
  await run(2);
  if (!OFF) for (const c of [gw, node, ...(PROFILED[Role.SCHEDULER] ? [sched] : [])]) c.process.kill('SIGUSR2');
  const pids = { gateway: gw.pid, node: node.pid, 'nats-server': server.pid, scheduler: sched.pid, 'autocannon (this process)': process.pid };
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const metric = async (name: string) => {
    const text = await (await fetch(`${url}/metrics`)).text();
    const v = (suffix: string) => Number(new RegExp(`${name}_${suffix}\\{[^}]*\\} ([\\d.e+]+)`).exec(text)?.[1] ?? 0);
    return { sum: v('sum'), count: v('count') };
  };
  const [batch0, msg0] = [await metric('shoal_gateway_batch_size'), await metric('shoal_gateway_nats_message_requests')];
  const sys0 = systemTimes();
  const t0 = performance.now();
  const r = await run(SECONDS);
  const sys1 = systemTimes();
  const wall = (performance.now() - t0) / 1000;
  process.stdout.write(`c=${C}: ${r.requests.average.toFixed(0)} req/s p50 ${r.latency.p50} ms p99 ${r.latency.p99} ms errors ${r.errors + r.timeouts + r.non2xx}\n`);
  process.stdout.write('CPU during the run (cores = CPU seconds / wall seconds; µs per request):\n');
  for (const [k, pid] of Object.entries(pids)) {
    const used = cpuSeconds(pid) - before[k]!;
    process.stdout.write(`  ${k.padEnd(26)} ${(used / wall).toFixed(2)} cores  ${((used * 1e6) / (r.requests.average * wall)).toFixed(1)} µs/req\n`);
  }
  const [batch1, msg1] = [await metric('shoal_gateway_batch_size'), await metric('shoal_gateway_nats_message_requests')];
  const avg = (a: { sum: number; count: number }, b: { sum: number; count: number }) => ((b.sum - a.sum) / Math.max(1, b.count - a.count)).toFixed(1);
  process.stdout.write(`  onnxruntime batch ${avg(batch0, batch1)} rows per request's run; ${avg(msg0, msg1)} requests per NATS message; ${((msg1.count - msg0.count) / wall).toFixed(0)} messages/s\n`);
  const d = sys1.map((v, i) => v - sys0[i]!);
  const all = d.reduce((a, b) => a + b, 0);
  // /proc/stat cpu: user nice system idle iowait irq softirq steal
  process.stdout.write(`  machine: ${(((all - d[3]! - d[4]!) / all) * 100).toFixed(0)}% busy (softirq ${((d[6]! / all) * 100).toFixed(0)}%, steal ${((d[7]! / all) * 100).toFixed(0)}%)\n`);
  await nc.close();
} finally {
  await cluster.stop();
}
rmSync(tmp, { recursive: true, force: true });
if (!OFF) {
  mkdirSync(DIR, { recursive: true });
  for (const who of Object.values(PROFILED)) {
    const dir = join(DIR, who);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
      process.stdout.write(`\n== ${who} (${f})\n${summarize(join(dir, f), Number(process.env.PROFILE_TOP ?? 30))}\n`);
    }
  }
}
process.exit(0);
