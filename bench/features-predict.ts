/**
 * Predict-by-entity against predict-by-tensor (issue #14's benchmark row): one cluster — nats-server
 * (auth on), scheduler (features service), a node hosting the replica, the gateway, as real
 * processes — two feature views with pushed values for 256 customers and 16 merchants, and one
 * model over their vector. autocannon sends `/v1/models/fraud/predict` bodies of one row, rotating
 * over the same 256 (customer, merchant) pairs: by entity (`{"entities": [...]}`: the replica reads
 * both views' online records and encodes them) and by tensor (`{"instances": [vector]}`, the same
 * vectors made beforehand by the views' encoders). Measured in turns (tensor, entity, tensor,
 * entity) so a slow moment on the machine hits both; each figure is the mean of its two turns.
 *
 * `npx tsx bench/features-predict.ts` prints the numbers (BENCH_C connections, default 64;
 * BENCH_SECONDS per turn, default 5).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { subjects } from '../cluster/index.ts';
import { FeatureClient, RegistryClient, encodeOne } from '../ml/index.ts';
import { customerSnapshot, customerView, featureEvents, featureModel, merchantSnapshot, merchantView } from '../test/fixtures/feature-predict.ts';
import { deployWhenServed, startServingCluster } from './lib/serving-cluster.ts';

export interface EntityVsTensor {
  entityRps: number;
  tensorRps: number;
  entityP99Ms: number;
  tensorP99Ms: number;
  /** entity/tensor req/s, per round. */
  ratios: number[];
}

const PAIRS = 256;

async function measure(url: string, bodies: string[], connections: number, durationS: number): Promise<{ rps: number; p99: number; errors: number }> {
  let i = 0;
  const r = await autocannon({
    url: `${url}/v1/models/fraud/predict`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    connections,
    duration: durationS,
    pipelining: 1,
    requests: [{ setupRequest: (req) => ({ ...req, body: bodies[i++ % bodies.length]! }) }],
  });
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

export async function predictByEntityVsTensor(opts: { connections: number; durationS: number; rounds?: number }): Promise<EntityVsTensor> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-features-predict-'));
  const cluster = await startServingCluster(dir, 'bench-node');
  try {
    const s = subjects();
    const fc = await FeatureClient.open(cluster.nc, s);
    const cust = (await fc.apply(customerView(), customerSnapshot())).version;
    const merch = (await fc.apply(merchantView(), merchantSnapshot())).version;
    const ev = featureEvents(PAIRS, 16, Date.now() - 60_000);
    for (let k = 0; k < ev.cust.length; k += 32) await Promise.all(ev.cust.slice(k, k + 32).map((e) => fc.push('cust', e)));
    await Promise.all(ev.merch.map((e) => fc.push('merch', e)));
    // The lineage a training job on these views records: the pinned versions and the input columns.
    const views = [cust, merch];
    const columns = views.flatMap((v) => v.fitted!.columns.map((c) => `${v.name}.${c}`));
    const registry = new RegistryClient(cluster.nc, s);
    await registry.register('fraud', featureModel(columns.length), { lineage: { features: { views: views.map((v) => ({ view: `${v.name}@${v.version}`, digest: v.digest })), columns } } });
    await deployWhenServed(registry, 'fraud', { replicas: 1, maxBatchSize: 64, maxQueueDelayMs: 0, readyTimeoutMs: 30_000 }, cluster.url);

    const pairs = Array.from({ length: PAIRS }, (_, i) => ({ customer_id: `c-${i}`, merchant_id: `m-${i % 16}` }));
    const custRows = await fc.rows('cust', pairs.map((p) => ({ customer_id: p.customer_id })));
    const merchRows = await fc.rows('merch', pairs.map((p) => ({ merchant_id: p.merchant_id })));
    const entityBodies = pairs.map((p) => JSON.stringify({ entities: [p] }));
    const tensorBodies = pairs.map((_, i) => JSON.stringify({ instances: [[...encodeOne(fc.views.encoder(cust), custRows[i]!.values), ...encodeOne(fc.views.encoder(merch), merchRows[i]!.values)]] }));

    // Both answer, and alike, before anything is timed.
    const check = async (body: string) => (await fetch(`${cluster.url}/v1/models/fraud/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json() as Promise<{ predictions?: unknown }>;
    const [a, b] = [await check(entityBodies[0]!), await check(tensorBodies[0]!)];
    if (JSON.stringify(a.predictions) !== JSON.stringify(b.predictions)) throw new Error(`by entity and by tensor disagree: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);

    await measure(cluster.url, tensorBodies, opts.connections, 1);
    await measure(cluster.url, entityBodies, opts.connections, 1);
    const t: { rps: number; p99: number; errors: number }[] = [];
    const e: { rps: number; p99: number; errors: number }[] = [];
    const ratios: number[] = [];
    for (let round = 0; round < (opts.rounds ?? 2); round++) {
      // The pair's order flips every round, so a slow moment does not always land on one path.
      if (round % 2 === 0) {
        t.push(await measure(cluster.url, tensorBodies, opts.connections, opts.durationS));
        e.push(await measure(cluster.url, entityBodies, opts.connections, opts.durationS));
      } else {
        e.push(await measure(cluster.url, entityBodies, opts.connections, opts.durationS));
        t.push(await measure(cluster.url, tensorBodies, opts.connections, opts.durationS));
      }
      ratios.push(e[round]!.rps / t[round]!.rps);
    }
    const errors = [...t, ...e].reduce((n, x) => n + x.errors, 0);
    if (errors > 0) process.stderr.write(`features-predict: ${errors} requests failed (non-2xx, errors or timeouts)\n`);
    const mean = (xs: { rps: number; p99: number }[], k: 'rps' | 'p99') => xs.reduce((n, x) => n + x[k], 0) / xs.length;
    return { entityRps: mean(e, 'rps'), tensorRps: mean(t, 'rps'), entityP99Ms: mean(e, 'p99'), tensorP99Ms: mean(t, 'p99'), ratios };
  } finally {
    await cluster.nc.close().catch(() => undefined);
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const connections = Number(process.env.BENCH_C ?? 64);
  const durationS = Number(process.env.BENCH_SECONDS ?? 5);
  const r = await predictByEntityVsTensor({ connections, durationS });
  console.log(`predict by entity vs by tensor, ${connections} connections, ${durationS} s turns`);
  console.log(`  by entity: ${r.entityRps.toFixed(0)} req/s, p99 ${r.entityP99Ms.toFixed(1)} ms`);
  console.log(`  by tensor: ${r.tensorRps.toFixed(0)} req/s, p99 ${r.tensorP99Ms.toFixed(1)} ms`);
  console.log(`  entity/tensor throughput: ${(r.entityRps / r.tensorRps).toFixed(2)}×`);
}
