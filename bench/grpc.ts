/**
 * `npm run bench:grpc`: one Shoal gateway (as `shoal up` runs it: nats-server, scheduler, a node
 * hosting the MLP's replica, the gateway — real processes) called four ways side by side with
 * the same one-row request: REST with a JSON body, REST with the binary tensor data extension,
 * gRPC ModelInfer with typed `fp32_contents`, gRPC with `raw_input_contents`. Closed-loop
 * clients in this process (fetch for REST, a grpc-js client for gRPC) keep C requests in flight
 * for BENCH_SECONDS; targets are measured in turns, BENCH_ROUNDS rounds in a rotated order, and a
 * cell is the median of its rounds. Client and cluster share this machine's cores, so compare the
 * rows with each other, not with other machines. Writes bench/results/grpc.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, credentials, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadInferencePackage } from '../gateway/index.ts';
import { randomRows } from '../test/fixtures/onnx.ts';
import { startServingCluster } from './lib/serving-cluster.ts';
import { writeResults } from './lib/results.ts';

const DURATION_S = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = (process.env.BENCH_C ?? '1,16,64').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROW = randomRows(1)[0]!;
const RAW = Buffer.from(Float32Array.from(ROW).buffer);

type Send = () => Promise<void>;
interface Cell {
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

function targets(url: string, client: Client): Record<string, Send> {
  const json = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: ROW }] });
  const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', parameters: { binary_data_size: RAW.length } }], parameters: { binary_data_output: true } }));
  const binary = Buffer.concat([head, RAW]);
  const post = async (body: Buffer | string, headers: Record<string, string>) => {
    const r = await fetch(`${url}/v2/models/mlp/infer`, { method: 'POST', body, headers });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
  };
  const infer = (client as unknown as { ModelInfer: (r: unknown, m: Metadata, cb: (e: ServiceError | null) => void) => void }).ModelInfer.bind(client);
  const grpc = (req: unknown) => new Promise<void>((resolve, reject) => infer(req, new Metadata(), (e) => (e ? reject(e) : resolve())));
  return {
    'REST, JSON body': () => post(json, { 'content-type': 'application/json' }),
    'REST, binary tensor data': () => post(binary, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) }),
    'gRPC, fp32_contents': () => grpc({ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32], contents: { fp32_contents: ROW } }] }),
    'gRPC, raw_input_contents': () => grpc({ model_name: 'mlp', inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 32] }], raw_input_contents: [RAW] }),
  };
}

/** C loops, each sending the next request when its last one is answered, for `seconds`. */
async function measure(send: Send, c: number, seconds: number): Promise<Cell> {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await send();
        lat.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, loop));
  const took = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { reqPerSec: lat.length / took, p50: q(0.5), p99: q(0.99), errors };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-grpc-'));
const cluster = await startServingCluster(dir, 'bench-grpc-node');
const client = new (loadInferencePackage().inference.GRPCInferenceService)(cluster.grpc, credentials.createInsecure());
try {
  const ts = targets(cluster.url, client);
  const names = Object.keys(ts);
  for (const send of Object.values(ts)) await measure(send, 4, 0.5); // warm-up: JIT, connections, batcher
  const rows: string[] = [];
  for (const c of CONNECTIONS) {
    const cells = new Map<string, Cell[]>(names.map((n) => [n, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < names.length; i++) {
        const n = names[(i + r) % names.length]!;
        cells.get(n)!.push(await measure(ts[n]!, c, DURATION_S));
      }
    }
    const restJson = median(cells.get(names[0]!)!.map((x) => x.reqPerSec));
    for (const n of names) {
      const cs = cells.get(n)!;
      const rps = median(cs.map((x) => x.reqPerSec));
      rows.push(`| ${c} | ${n} | ${rps.toFixed(0)} | ${(rps / restJson).toFixed(2)} | ${median(cs.map((x) => x.p50)).toFixed(2)} | ${median(cs.map((x) => x.p99)).toFixed(2)} | ${cs.reduce((a, x) => a + x.errors, 0)} |`);
      console.log(rows.at(-1));
    }
  }
  const md = [
    '# Serving over gRPC vs REST (`npm run bench:grpc`)',
    '',
    `One gateway, one replica of the MLP (32 → 64 → 4), one row per request; ${ROUNDS} rounds × ${DURATION_S} s per cell, medians. ${cpus().length} cores shared by the client and the cluster (${new Date().toISOString().slice(0, 10)}).`,
    '',
    '| in flight | how | req/s | vs REST JSON | p50 ms | p99 ms | errors |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  writeResults(new URL('./results/grpc.md', import.meta.url).pathname, md);
  console.log('wrote bench/results/grpc.md');
} finally {
  client.close();
  await cluster.nc.close();
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}
// fetch's keep-alive sockets would hold the loop a while longer: the run is over.
process.exit(0);
