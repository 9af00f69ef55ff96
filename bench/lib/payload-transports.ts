/**
 * `tsx bench/lib/payload-transports.ts`: how to carry a body larger than one NATS message from
 * one process to another — the choice behind `cluster/payloads.ts`, measured on the same
 * nats-server (auth on, max_payload 8 MB) between two processes (a "gateway" here, a "replica"
 * child), the same 16 MiB body:
 *   (1) object store (memory storage): put, a core request naming it, the receiver gets it;
 *       the sender deletes it after the answer — at several chunk sizes;
 *   (2) chunked core NATS, pulled — what Shoal ships (`PayloadHost` / `fetchPayload` of
 *       cluster/payloads.ts): the sender holds the body and answers chunk requests, the
 *       receiver pulls them with a window of requests in flight — at several chunk sizes.
 * Prints MB/s and p50/p99 per variant (of the whole round trip: put/hold, ask, fetch, answer).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StorageType } from '@nats-io/jetstream';
import { Objm, setSha256Backend } from '@nats-io/obj';
import { PayloadHost, connectAs, credentialOf, fetchPayload, generateCredentials, startNatsServer, subjects, Role, type PayloadRef } from '../../cluster/index.ts';

const SIZE = Number(process.env.BENCH_MB ?? 16) * 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30);
const STORE = 'bench-payloads';
setSha256Backend('native');

interface Ask {
  kind: 'store' | 'chunks';
  /** The object's name (store). */
  name: string;
  /** Where the held body is (chunks). */
  ref?: PayloadRef;
  window: number;
}

/** The receiving side: fetches what each ask names, answers its length. */
async function receiver(url: string, user: string, pass: string): Promise<void> {
  const nc = await connectAs({ servers: url, role: Role.SCHEDULER, credential: { user, pass } });
  const os = await new Objm(nc).open(STORE);
  nc.subscribe('shoal.bench.ask', {
    callback: (_e, m) => {
      const a = JSON.parse(new TextDecoder().decode(m.data)) as Ask;
      const got = a.kind === 'store' ? os.getBlob(a.name).then((b) => b?.length ?? -1) : fetchPayload(nc, a.ref!, { timeoutMs: 30_000, window: a.window }).then((b) => b.length);
      void got.then((n) => m.respond(new TextEncoder().encode(String(n))));
    },
  });
  await nc.flush();
  process.stdout.write('ready\n');
}

const q = (xs: number[], p: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-payloads-'));
  const credentials = generateCredentials();
  const server = await startNatsServer({ dir, port: 0, credentials });
  const c = credentialOf(credentials, Role.SCHEDULER);
  const nc = await connectAs({ servers: server.url, role: Role.SCHEDULER, credential: c });
  await new Objm(nc).create(STORE, { storage: StorageType.Memory, ttl: 60_000 * 1_000_000 });
  const os = await new Objm(nc).open(STORE);
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename, 'receiver', server.url, c.user, c.pass], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && res()));
  const body = new Uint8Array(SIZE).map((_, i) => i & 0xff);
  const maxPayload = nc.info!.max_payload;
  const variants: { label: string; kind: Ask['kind']; chunk: number; window: number }[] = [
    { label: 'object store, 128 KiB chunks (nats.js default)', kind: 'store', chunk: 128 * 1024, window: 0 },
    { label: 'object store, 1 MiB chunks', kind: 'store', chunk: 1024 * 1024, window: 0 },
    { label: `object store, max_payload chunks (${maxPayload >> 20} MiB)`, kind: 'store', chunk: maxPayload, window: 0 },
    { label: 'chunked pull, 1 MiB × 4 in flight (shipped)', kind: 'chunks', chunk: 1024 * 1024, window: 4 },
    { label: 'chunked pull, 1 MiB × 8 in flight', kind: 'chunks', chunk: 1024 * 1024, window: 8 },
    { label: 'chunked pull, 4 MiB × 2 in flight', kind: 'chunks', chunk: 4 * 1024 * 1024, window: 2 },
  ];
  const lines: string[] = [];
  for (const v of variants) {
    const ms: number[] = [];
    const host = v.kind === 'chunks' ? new PayloadHost(nc, subjects().payloadGateway('bench'), { chunkBytes: v.chunk }) : undefined;
    for (let r = 0; r < ROUNDS + 2; r++) {
      const name = `p${r}-${Math.random().toString(36).slice(2)}`;
      const t0 = performance.now();
      let ask: Ask;
      let release = () => {};
      if (v.kind === 'store') {
        await os.putBlob({ name, options: { max_chunk_size: v.chunk } }, body);
        ask = { kind: 'store', name, window: 0 };
      } else {
        const held = host!.hold(body, { ttlMs: 60_000 });
        release = held.release;
        ask = { kind: 'chunks', name, ref: held.ref, window: v.window };
      }
      const reply = await nc.request('shoal.bench.ask', JSON.stringify(ask), { timeout: 30_000 });
      if (Number(new TextDecoder().decode(reply.data)) !== SIZE) throw new Error(`${v.label}: receiver got ${new TextDecoder().decode(reply.data)} bytes`);
      if (v.kind === 'store') await os.delete(name);
      release();
      if (r >= 2) ms.push(performance.now() - t0); // two warm-up rounds
    }
    host?.close();
    const mbps = (SIZE / 1e6) / (q(ms, 0.5) / 1000);
    lines.push(`| ${v.label} | ${mbps.toFixed(0)} | ${q(ms, 0.5).toFixed(1)} | ${q(ms, 0.99).toFixed(1)} |`);
    process.stderr.write(`${lines.at(-1)}\n`);
  }
  process.stdout.write(['', `${SIZE / 1024 / 1024} MiB, ${ROUNDS} rounds, one way + a small answer, two processes:`, '', '| transport | MB/s (median) | p50 ms | p99 ms |', '|---|---:|---:|---:|', ...lines, ''].join('\n'));
  child.kill('SIGKILL');
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === 'receiver') await receiver(process.argv[3]!, process.argv[4]!, process.argv[5]!);
else await main();
