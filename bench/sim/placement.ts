/**
 * Placement throughput: a fleet of simulated nodes (CPU and GPU types, spot and on-demand, in
 * several zones) and a stream of mixed actors, placed one by one through `Placer.place()`.
 */
import { seededRandom } from '../../cluster/index.ts';
import { Placer, type NodeSpec, type PlacementRequest, type StrategyName } from '../../scheduler/index.ts';

const GiB = 2 ** 30;

export interface PlacementBenchResult {
  strategy: StrategyName;
  nodes: number;
  actors: number;
  placed: number;
  pending: number;
  ms: number;
  perSecond: number;
  /** Mean CPU utilisation of nodes that got at least one actor. */
  usedNodes: number;
}

export function fleet(nodes: number, seed: number): NodeSpec[] {
  const rnd = seededRandom(seed);
  const zones = ['a', 'b', 'c', 'd'];
  const types = [
    { name: 'c8', cpu: 8, mem: 32, gpu: 0, od: 0.34, spot: 0.1, share: 0.45 },
    { name: 'c16', cpu: 16, mem: 64, gpu: 0, od: 0.68, spot: 0.21, share: 0.3 },
    { name: 'c32', cpu: 32, mem: 128, gpu: 0, od: 1.36, spot: 0.45, share: 0.1 },
    { name: 'g1', cpu: 8, mem: 64, gpu: 1, od: 3, spot: 0.9, share: 0.1 },
    { name: 'g4', cpu: 48, mem: 192, gpu: 4, od: 12, spot: 3.6, share: 0.05 },
  ];
  const out: NodeSpec[] = [];
  for (let i = 0; i < nodes; i++) {
    let x = rnd();
    const t = types.find((ty) => (x -= ty.share) < 0) ?? types[0]!;
    const spot = rnd() < 0.6;
    const zone = zones[Math.floor(rnd() * zones.length)]!;
    const pool = `${t.name}-${spot ? 'spot' : 'od'}-${zone}`;
    const price = spot ? t.spot : t.od;
    out.push({
      nodeId: `n${i}`,
      pool,
      zone,
      spot,
      pricePerHour: price,
      labels: { pool, zone, spot, pricePerHour: price, type: t.name },
      capacity: { cpu: t.cpu, memoryBytes: t.mem * GiB, gpu: t.gpu, gpuMemoryBytes: t.gpu * 24 * GiB },
      type: t.name,
      interruptionRatePerHour: spot ? 0.05 : 0,
    });
  }
  return out;
}

export function actors(n: number, seed: number): PlacementRequest[] {
  const rnd = seededRandom(seed);
  const kinds = ['inference', 'training', 'batch', 'service'] as const;
  const out: PlacementRequest[] = [];
  for (let i = 0; i < n; i++) {
    const kind = kinds[Math.floor(rnd() * kinds.length)]!;
    const gpu = rnd() < 0.04 ? 1 : 0;
    const cpu = [0.25, 0.5, 0.5, 1, 1, 2][Math.floor(rnd() * 6)]!;
    out.push({
      id: `a${i}`,
      kind,
      resources: { cpu, memoryBytes: cpu * 2 * GiB, ...(gpu ? { gpu } : {}) },
      ...(kind === 'inference' ? { group: `svc-${i % 200}` } : {}),
      ...(rnd() < 0.05 ? { constraints: { labels: { zone: ['a', 'b', 'c', 'd'][i % 4]! } } } : {}),
    });
  }
  return out;
}

export function benchPlacement(strategy: StrategyName, nodes: number, count: number, seed = 1): PlacementBenchResult {
  const placer = new Placer({ strategy });
  for (const s of fleet(nodes, seed)) placer.addNode(s);
  const reqs = actors(count, seed + 1);
  // Warm the JIT on a throw-away placer so the timed run measures steady state.
  const warm = new Placer({ strategy });
  for (const s of fleet(500, seed + 2)) warm.addNode(s);
  for (const r of actors(5000, seed + 3)) warm.place(r);
  let placed = 0;
  const t0 = performance.now();
  for (const r of reqs) if (placer.place(r).ok) placed++;
  const ms = performance.now() - t0;
  return { strategy, nodes, actors: count, placed, pending: count - placed, ms, perSecond: (count / ms) * 1000, usedNodes: placer.nodes().filter((n) => n.actors > 0).length };
}
