/**
 * The large-tensor row of `npm run bench:serving`: one 16 MiB request — a [1, 4, 1024, 1024]
 * FP32 image in the OIP binary tensor data extension — to an image model that reduces it
 * (`channelSumModel`: per-channel sums, a JSON answer of 4 numbers), so the figure is the cost
 * of carrying the body. Shoal (gateway → NATS, the body pulled by the replica in 1 MiB chunks)
 * against the naive in-process server (Fastify + onnxruntime in one process), measured in
 * turns with autocannon like the rest of the bench; MB/s counts request bytes.
 */
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import { subjects, type NatsConnection } from '../../cluster/index.ts';
import { RegistryClient } from '../../ml/index.ts';
import { measureInTurns, median, ratioRow } from './results.ts';
import { deployWhenServed } from './serving-cluster.ts';
import { channelSumModel } from '../../test/fixtures/onnx.ts';

export const LARGE_SHAPE = [1, 4, 1024, 1024];
const CONNECTIONS = (process.env.BENCH_LARGE_C ?? '1,4').split(',').map(Number);

/** The request: JSON header, then the image's bytes. */
function largeRequest(): { body: Buffer; headers: Record<string, string> } {
  const n = LARGE_SHAPE.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n }, (_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
  const head = Buffer.from(JSON.stringify({ inputs: [{ name: 'X', shape: LARGE_SHAPE, datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }] }));
  return {
    body: Buffer.concat([head, Buffer.from(x.buffer)]),
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length) },
  };
}

/** Registers and deploys the pooling model on the Shoal cluster; resolves once the gateway serves it. */
export async function deployLargeModel(nc: NatsConnection, gatewayUrl: string): Promise<void> {
  const registry = new RegistryClient(nc, subjects());
  await registry.register('pool', channelSumModel(), { aliases: ['production'] });
  await deployWhenServed(registry, 'pool', { replicas: 1, maxBatchSize: 4, maxQueueDelayMs: 0, readyTimeoutMs: 30_000 }, gatewayUrl);
}

interface Cell {
  mbps: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}


/**
 * Measures each target (naive first in the list, then Shoal) at each connection count,
 * `rounds` rounds in a rotated order; returns the markdown section for the results file.
 */
export async function measureLarge(targets: { name: string; url: string }[], seconds: number, rounds: number): Promise<string[]> {
  const { body, headers } = largeRequest();
  const run = async (url: string, connections: number, s: number): Promise<Cell> => {
    const r = await autocannon({ url: `${url}/v2/models/pool/infer`, method: 'POST', headers, body, connections, duration: s, pipelining: 1, timeout: 30 });
    return { reqPerSec: r.requests.average, mbps: (r.requests.average * body.length) / 1e6, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
  };
  for (const t of targets) await run(t.url, 1, 2); // warm-up
  const load = [loadavg()[0]!];
  const rows: string[] = [];
  const ratios: string[] = [];
  const measured = await measureInTurns(targets, CONNECTIONS, rounds, (url, c) => run(url, c, seconds), (x) => x.mbps, (name, c, round, cell) =>
    process.stderr.write(`large ${name} c=${c} round ${round}: ${cell.mbps.toFixed(0)} MB/s p99 ${cell.p99} ms errors ${cell.errors}\n`),
  );
  for (const m of measured) {
    targets.forEach((t, i) => {
      const cs = m.cells[i]!;
      rows.push(`| ${t.name} | ${m.connections} | ${median(cs.map((x) => x.mbps)).toFixed(0)} | ${median(cs.map((x) => x.reqPerSec)).toFixed(1)} | ${median(cs.map((x) => x.p50))} | ${median(cs.map((x) => x.p99))} | ${cs.reduce((a, x) => a + x.errors, 0)} |`);
    });
    if (m.ratios.length) ratios.push(ratioRow(m.connections, m.ratios));
  }
  load.push(loadavg()[0]!);
  const loadNote = `load average (1 min) ${load.map((l) => l.toFixed(1)).join(' → ')}${Math.max(...load) > 3 ? ' — **over 3: the machine was shared, read the ratio, not the MB/s**' : ''}`;
  return [
    '## Large tensor: one 16 MiB request',
    '',
    `[${LARGE_SHAPE.join(', ')}] FP32 (${(body.length / 1e6).toFixed(1)} MB with its JSON header, OIP binary tensor data) to a model that sums each channel (JSON answer, 4 numbers); ${seconds} s per measurement, ${rounds} round(s) in a rotated order, medians; ${loadNote}.`,
    'Shoal: the gateway holds the body, the replica pulls it over NATS in 1 MiB chunks (4 in flight) — see `cluster/payloads.ts`.',
    '',
    '| target | connections | MB/s | req/s | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    '| connections | Shoal / naive (MB/s): median of per-round ratios [range] |',
    '|---:|---:|',
    ...ratios,
    '',
  ];
}
