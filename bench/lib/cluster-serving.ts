/**
 * bench:scale's serving row (issue #19): the same MLP served through a cluster of three
 * nats-servers (routes on loopback, JetStream R3, every process given every URL) and through one
 * server, in the same run. Both Shoal clusters (scheduler, node, gateway each) run at once, and
 * autocannon's runs alternate between them — `subruns` runs of `seconds` per target per round, the
 * order flipped every run — because this machine's speed drifts by ±25 % over tens of seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { randomRows } from '../../test/fixtures/onnx.ts';
import { median } from './results.ts';
import { startServingCluster, type ServingCluster } from './serving-cluster.ts';

export interface ClusterServingRound {
  one: { rps: number; p99: number };
  three: { rps: number; p99: number };
  errors: number;
}

const BODY = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 32], datatype: 'FP32', data: randomRows(1)[0] }] });

async function cannon(url: string, connections: number, seconds: number): Promise<{ rps: number; p99: number; errors: number }> {
  const r = await autocannon({ url: `${url}/v2/models/mlp/infer`, method: 'POST', headers: { 'content-type': 'application/json' }, body: BODY, connections, duration: seconds, pipelining: 1 });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

export async function measureClusterServing(o: { rounds: number; subruns: number; seconds: number; connections: number; log: (line: string) => void }): Promise<ClusterServingRound[]> {
  const dirs = [mkdtempSync(join(tmpdir(), 'shoal-bench-one-')), mkdtempSync(join(tmpdir(), 'shoal-bench-three-'))];
  const started: ServingCluster[] = [];
  try {
    const one = await startServingCluster(dirs[0]!, 'one-node');
    started.push(one);
    const three = await startServingCluster(dirs[1]!, 'three-node', () => ({}), ['ml/serving/actors.ts'], 3);
    started.push(three);
    // Warm both (JIT, onnxruntime, the gateways' routes).
    await cannon(one.url, o.connections, 2);
    await cannon(three.url, o.connections, 2);
    const out: ClusterServingRound[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      const runs = { one: [] as { rps: number; p99: number }[], three: [] as { rps: number; p99: number }[] };
      let errors = 0;
      for (let k = 0; k < o.subruns; k++) {
        const order = (round + k) % 2 === 0 ? (['one', 'three'] as const) : (['three', 'one'] as const);
        for (const key of order) {
          const r = await cannon(key === 'one' ? one.url : three.url, o.connections, o.seconds);
          runs[key].push(r);
          errors += r.errors;
        }
      }
      const mean = (xs: { rps: number }[]) => xs.reduce((a, x) => a + x.rps, 0) / xs.length;
      const r: ClusterServingRound = { one: { rps: mean(runs.one), p99: median(runs.one.map((x) => x.p99)) }, three: { rps: mean(runs.three), p99: median(runs.three.map((x) => x.p99)) }, errors };
      o.log(`serving round ${round}: one server ${r.one.rps.toFixed(0)} req/s, three ${r.three.rps.toFixed(0)} req/s (${(r.three.rps / r.one.rps).toFixed(2)}×), errors ${errors}`);
      out.push(r);
    }
    return out;
  } finally {
    for (const c of started) await c.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
