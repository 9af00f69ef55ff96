/**
 * `npm run bench:actors`: cross-process ask round-trips/s and tell messages/s at several
 * concurrencies, side by side in the same run with raw NATS request/reply between the same two
 * processes (the ceiling). Writes bench/results/actors.md.
 *
 * Client and far side share this machine's cores (and nats-server), so compare the ratios, not
 * the absolute numbers, across machines.
 */
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActorClient, Role, connectAs, credentialOf, encode, ensureResources, generateCredentials, spawnChild, startNatsServer, subjects } from '../cluster/index.ts';

const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const CONCURRENCY = (process.env.BENCH_C ?? '1,16,64,256').split(',').map(Number);
const TELLS = Number(process.env.BENCH_TELLS ?? 300_000);

const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-'));
const credentials = generateCredentials();
const server = await startNatsServer({ dir, port: 0, credentials, nodeIds: ['bench-node'] });
const env = (role: Role) => {
  const c = credentialOf(credentials, role, role === Role.NODE ? 'bench-node' : undefined);
  return { ...process.env, SHOAL_NATS_URL: server.url, SHOAL_NATS_USER: c.user, SHOAL_NATS_PASS: c.pass };
};
const admin = await connectAs({ servers: server.url, role: Role.SCHEDULER, credential: credentials.scheduler });
await ensureResources(admin);
const far = spawnChild({ name: 'bench-node', entry: 'bench/lib/actor-bench-node.ts', args: [], env: env(Role.NODE), onLine: (l) => process.stderr.write(`[far] ${l}\n`) });
await far.ready;
const nc = await connectAs({ servers: server.url, role: Role.CLIENT, credential: credentials.client });
const s = subjects();
const ref = new ActorClient(nc, s).ref('bench-actor');
const rawSubject = s.service('bench-raw');

/** c concurrent loops of sequential calls for DURATION_MS; returns calls/s. */
async function closedLoop(c: number, call: (i: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  const end = Date.now() + DURATION_MS;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (Date.now() < end) {
        await call(done);
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

const raw = (i: number) => nc.request(rawSubject, encode({ type: 'echo', n: i }), { timeout: 10_000 });
const ask = (i: number) => ref.ask({ type: 'echo', n: i }, { timeoutMs: 10_000 });

// Warm up both paths.
await closedLoop(16, raw);
await closedLoop(16, ask);

const rows: string[] = [];
for (const c of CONCURRENCY) {
  // Interleave (raw, ask, raw, ask) and keep the best of two, to damp the noise of a shared box.
  const r1 = await closedLoop(c, raw);
  const a1 = await closedLoop(c, ask);
  const r2 = await closedLoop(c, raw);
  const a2 = await closedLoop(c, ask);
  const rawBest = Math.max(r1, r2);
  const askBest = Math.max(a1, a2);
  rows.push(`| ${c} | ${Math.round(rawBest).toLocaleString('en-US')} | ${Math.round(askBest).toLocaleString('en-US')} | ${(askBest / rawBest).toFixed(2)}× |`);
  console.log(`c=${c}: raw ${Math.round(rawBest)}/s, ask ${Math.round(askBest)}/s, ratio ${(askBest / rawBest).toFixed(2)}`);
}

// Tell: publish TELLS messages as fast as the client can, then wait until the actor has counted
// them all. Throughput = messages processed by the actor per second, end to end.
async function tellRun(): Promise<number> {
  const before = await ref.ask<number>({ type: 'count' });
  const t0 = performance.now();
  const msg = { type: 'inc' };
  for (let i = 0; i < TELLS; i++) {
    ref.tell(msg);
    if (i % 10_000 === 9_999) await nc.flush();
  }
  await nc.flush();
  for (;;) {
    const n = await ref.ask<number>({ type: 'count' }, { timeoutMs: 30_000 });
    if (n - before >= TELLS) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  return TELLS / ((performance.now() - t0) / 1000);
}
await tellRun(); // warm-up
const tells = Math.max(await tellRun(), await tellRun());
console.log(`tell: ${Math.round(tells)} msgs/s`);

const md = `# Actor benchmark

\`npm run bench:actors\` — ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.
Client (this process) → nats-server (${server.url.replace(/:\d+$/, '')}, auth on) → one far process that hosts the actor through the real
\`ActorHost\` **and** a raw NATS responder on the same connection. Closed loop: *c* concurrent callers, each waiting for its reply;
${DURATION_MS} ms per run, best of two interleaved runs. All three processes share the machine's cores, so read the ratio.

## ask vs raw NATS request/reply (same two processes)

| concurrency | raw NATS req/reply (round-trips/s) | actor ask (round-trips/s) | ask / raw |
|---|---|---|---|
${rows.join('\n')}

The ask path adds: MessagePack decode + TypeBox check of the message, the bounded mailbox, one-at-a-time processing, and a MessagePack reply.

## tell

${TELLS.toLocaleString('en-US')} fire-and-forget tells, counted by the actor (end to end, until the actor has processed the last one): **${Math.round(tells).toLocaleString('en-US')} msgs/s**.
`;
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/actors.md', import.meta.url), md);
console.log('wrote bench/results/actors.md');

await nc.close();
await admin.close();
await far.stop(5000);
await server.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
