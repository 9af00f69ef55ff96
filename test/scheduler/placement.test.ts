/**
 * Placement: filter → score → bind with each strategy, pending reasons as data, impossible
 * requests rejected with a typed error, gang all-or-nothing, and invariants under random
 * place/release sequences (never over capacity, "waiting for capacity" never a lie).
 */
import { describe, expect, it } from 'vitest';
import {
  ImpossibleCode,
  PendingCode,
  Placer,
  SchedulerErrors,
  assertGangPlaceable,
  nodeSpecFromView,
  placeGang,
  type NodeState,
  type PlacementRequest,
} from '../../scheduler/index.ts';
import { seededRandom, type NodeView } from '../../cluster/index.ts';
import { ClusterPlacer } from '../../scheduler/actor-placer.ts';
import { CATALOGUE, GiB, node, req } from './fixtures.ts';

function placed(p: Placer, r: PlacementRequest): string {
  const res = p.place(r);
  if (!res.ok) throw new Error(`${r.id} pending: ${res.reason.message}`);
  return res.placement.nodeId;
}

describe('strategies', () => {
  it('pack fills one node before using the next', () => {
    const p = new Placer({ strategy: 'pack' });
    for (const id of ['n1', 'n2', 'n3']) p.addNode(node(id));
    const nodes = new Set([1, 2, 3, 4].map((i) => placed(p, req(`a${i}`, { cpu: 1 }))));
    expect(nodes.size).toBe(1);
    expect(placed(p, req('a5', { cpu: 1 }))).not.toBe([...nodes][0]);
  });

  it('spread puts the replicas of one group in different zones, then on different nodes', () => {
    const p = new Placer({ strategy: 'spread' });
    for (const z of ['a', 'b', 'c']) for (const i of [1, 2]) p.addNode(node(`${z}${i}`, { pool: `p-${z}`, zone: z }));
    const first = [1, 2, 3].map((i) => p.node(placed(p, req(`r${i}`, { group: 'svc', kind: 'inference' })))!.zone);
    expect(new Set(first)).toEqual(new Set(['a', 'b', 'c']));
    const nodes = [4, 5, 6].map((i) => placed(p, req(`r${i}`, { group: 'svc', kind: 'inference' })));
    const all = new Set([...nodes, ...['r1', 'r2', 'r3'].map((id) => p.placementOf(id)!.nodeId)]);
    expect(all.size).toBe(6);
  });

  it('anti-affinity by default: the replicas of one service land on different nodes of the same pool', () => {
    // Three idle nodes of one shape: cost-aware alone best-fits them all onto the first node.
    const p = new Placer();
    for (const id of ['n1', 'n2', 'n3']) p.addNode(node(id, { cpu: 16 }));
    const nodes = [1, 2, 3].map((i) => placed(p, req(`r${i}`, { kind: 'inference', group: 'svc', cpu: 0.5 })));
    expect(new Set(nodes).size).toBe(3);
    // A fourth replica doubles up (capacity allows nothing else); ungrouped actors still best-fit.
    expect(nodes).toContain(placed(p, req('r4', { kind: 'inference', group: 'svc', cpu: 0.5 })));
    expect(placed(p, req('x1', { cpu: 0.5 }))).toBe(placed(p, req('x2', { cpu: 0.5 })));
  });

  it('anti-affinity: a job\'s actors spread over nodes, and cost chooses among the spread placements', () => {
    const p = new Placer();
    p.addNode(node('cheap-1', { pool: 'spot-cheap', spot: true, price: 0.1 }));
    p.addNode(node('cheap-2', { pool: 'spot-cheap', spot: true, price: 0.1 }));
    p.addNode(node('dear-1', { pool: 'spot-dear', spot: true, price: 0.5, zone: 'b' }));
    const first = [1, 2].map((i) => placed(p, req(`w${i}`, { kind: 'training', group: 'job-1' })));
    // Both cheap nodes before the dear one (a training job does not pay to spread over zones)…
    expect(new Set(first)).toEqual(new Set(['cheap-1', 'cheap-2']));
    // …and a third worker takes the dear node rather than double up on a cheap one.
    expect(placed(p, req('w3', { kind: 'training', group: 'job-1' }))).toBe('dear-1');
  });

  it('anti-affinity: serving replicas also spread over zones before cost', () => {
    const p = new Placer();
    p.addNode(node('a1', { pool: 'od-a', zone: 'a', price: 0.2 }));
    p.addNode(node('a2', { pool: 'od-a', zone: 'a', price: 0.2 }));
    p.addNode(node('b1', { pool: 'od-b', zone: 'b', price: 0.3 }));
    const zones = [1, 2].map((i) => p.node(placed(p, req(`m${i}`, { kind: 'inference', group: 'model-v1' })))!.zone);
    expect(zones).toEqual(['a', 'b']);
  });

  it('pack turns anti-affinity off: asked-for packing keeps a group together', () => {
    const p = new Placer({ strategy: 'pack' });
    for (const id of ['n1', 'n2', 'n3']) p.addNode(node(id, { cpu: 16 }));
    expect(new Set([1, 2, 3].map((i) => placed(p, req(`r${i}`, { kind: 'inference', group: 'svc' })))).size).toBe(1);
  });

  it('cost-aware: training goes to spot, inference to on-demand unless allowed on spot', () => {
    const p = new Placer();
    p.addNode(node('od', { pool: 'od', price: 1 }));
    p.addNode(node('spot', { pool: 'spot', spot: true, price: 0.3 }));
    expect(placed(p, req('t', { kind: 'training' }))).toBe('spot');
    expect(placed(p, req('i', { kind: 'inference' }))).toBe('od');
    expect(placed(p, req('i2', { kind: 'inference', constraints: { spotOk: true } }))).toBe('spot');
  });

  it('cost-aware: spot inference replicas spread over spot pools (one pool = one failure domain)', () => {
    const p = new Placer();
    for (const z of ['a', 'b', 'c']) p.addNode(node(`s-${z}`, { pool: `spot-${z}`, zone: z, spot: true, price: 0.3, cpu: 16 }));
    const pools = [1, 2, 3].map((i) => p.placementOf(placed(p, req(`r${i}`, { kind: 'inference', group: 'm', constraints: { spotOk: true } })) && `r${i}`)!.pool);
    expect(new Set(pools).size).toBe(3);
  });

  it('cost-aware: a CPU-only actor does not take a share of an expensive GPU node', () => {
    const p = new Placer();
    p.addNode(node('gpu', { pool: 'gpu', cpu: 16, gpu: 4, price: 4 }));
    p.addNode(node('cpu', { pool: 'cpu', cpu: 4, price: 0.2 }));
    expect(placed(p, req('c', { cpu: 1 }))).toBe('cpu');
    expect(placed(p, req('g', { cpu: 1, gpu: 1 }))).toBe('gpu');
  });

  it('cost-aware: a pool marked risky loses to an equally priced calm one', () => {
    let risky = '';
    const p = new Placer({ risk: (pool) => (pool === risky ? 50 : 1) });
    p.addNode(node('a', { pool: 'spot-a', spot: true, price: 0.3 }));
    p.addNode(node('b', { pool: 'spot-b', spot: true, price: 0.3 }));
    risky = 'spot-a';
    expect(placed(p, req('x', { kind: 'training' }))).toBe('b');
    risky = 'spot-b';
    expect(placed(p, req('y', { kind: 'training' }))).toBe('a');
  });
});

describe('pending reasons and impossible requests', () => {
  it('says why a request waits, as data', () => {
    const p = new Placer();
    expect(p.place(req('x')).ok).toBe(false);
    p.addNode(node('spot', { pool: 'spot', spot: true }));
    const why = (r: PlacementRequest) => {
      const res = p.place(r);
      return res.ok ? 'placed' : res.reason.code;
    };
    expect(why(req('g', { gpu: 1 }))).toBe(PendingCode.NO_GPU_NODE);
    expect(why(req('l', { constraints: { labels: { zone: 'mars' } } }))).toBe(PendingCode.NO_MATCHING_LABELS);
    expect(why(req('i', { kind: 'inference' }))).toBe(PendingCode.NO_ON_DEMAND_NODE);
    expect(why(req('big', { cpu: 64 }))).toBe(PendingCode.NO_NODE_LARGE_ENOUGH);
    expect(why(req('pin', { constraints: { nodeId: 'nope' } }))).toBe(PendingCode.NODE_UNAVAILABLE);
    expect(why(req('fill', { cpu: 4 }))).toBe('placed');
    const res = p.place(req('more', { cpu: 1 }));
    expect(res.ok ? undefined : res.reason).toMatchObject({ code: PendingCode.WAITING_FOR_CAPACITY, message: expect.stringMatching(/waiting for capacity/) });
    p.addNode(node('spot2', { pool: 'spot', spot: true }));
    expect(why(req('more', { cpu: 1 }))).toBe('placed');
  });

  it('rejects an impossible request at once with SHOAL_ERR_UNSCHEDULABLE and a reason code', () => {
    const p = new Placer({ catalogue: CATALOGUE });
    const cases: [PlacementRequest, string][] = [
      [req('g8', { gpu: 8 }), ImpossibleCode.TOO_MANY_GPUS],
      [req('mars', { constraints: { labels: { zone: 'mars' } } }), ImpossibleCode.NO_POOL_WITH_LABELS],
      [req('od', { kind: 'inference', constraints: { labels: { pool: 'c4-spot-a' } } }), ImpossibleCode.NO_ON_DEMAND_POOL],
      [req('cpu', { cpu: 100 }), ImpossibleCode.TOO_MUCH_CPU],
      [req('feat', { resources: { gpu: 1, gpuFeatures: ['subgroups-f64'] } }), ImpossibleCode.NO_GPU_FEATURES],
    ];
    for (const [r, code] of cases) {
      const err = (() => {
        try {
          p.assertPlaceable(r);
        } catch (e) {
          return e;
        }
      })();
      expect(SchedulerErrors.UNSCHEDULABLE.is(err), r.id).toBe(true);
      expect((err as { details: { reason: string } }).details.reason, r.id).toBe(code);
      expect((err as Error).message).toContain(r.id);
    }
    expect((() => p.assertPlaceable(req('ok', { gpu: 4 })))()).toBeUndefined();
    // Possible but nothing running yet: it waits, it is not rejected.
    const res = p.place(req('ok', { gpu: 4 }));
    expect(res.ok).toBe(false);
  });

  it('a message names the largest type when too many GPUs are asked for', () => {
    const p = new Placer({ catalogue: CATALOGUE });
    expect(p.check(req('g8', { gpu: 8 }))?.message).toMatch(/needs 8 GPUs; the largest node type it may use \(g4\) has 4/);
  });
});

describe('binding lifecycle', () => {
  it('is idempotent, releases, evacuates, and skips draining and dead nodes', () => {
    const p = new Placer({ strategy: 'pack' });
    p.addNode(node('n1', { cpu: 2 }));
    p.addNode(node('n2', { cpu: 2 }));
    const a = placed(p, req('a', { cpu: 1 }));
    expect(placed(p, req('a', { cpu: 1 }))).toBe(a);
    expect(p.node(a)!.allocated.cpu).toBe(1);
    placed(p, req('b', { cpu: 1 }));
    expect(p.boundTo(a).sort()).toEqual(['a', 'b']);
    p.setDraining(a, true);
    const other = a === 'n1' ? 'n2' : 'n1';
    expect(placed(p, req('c', { cpu: 1 }))).toBe(other);
    const moved = p.evacuate(a).map((r) => r.id).sort();
    expect(moved).toEqual(['a', 'b']);
    expect(p.node(a)!.allocated.cpu).toBe(0);
    expect(placed(p, req('a', { cpu: 1 }))).toBe(other);
    const res = p.place(req('b', { cpu: 1 }));
    expect(res.ok).toBe(false);
    p.setAlive(other, false);
    p.setDraining(a, false);
    expect(placed(p, req('b', { cpu: 1 }))).toBe(a);
    expect(p.release('b')).toBe(true);
    expect(p.release('b')).toBe(false);
    expect(p.removeNode(other).map((r) => r.id).sort()).toEqual(['a', 'c']);
    expect(p.size).toBe(0);
  });

  it('excludes nodes for one decision only, and skips nodes that do not load the actor type', () => {
    const p = new Placer({ strategy: 'pack' });
    p.addNode(node('n1'));
    p.addNode({ ...node('n2'), actorTypes: ['echo'] });
    expect(placed(p, req('a', { cpu: 1 }))).toBe('n1');
    const r = p.place(req('b', { cpu: 1 }), { exclude: new Set(['n1']) });
    expect(r.ok && r.placement.nodeId).toBe('n2');
    expect(placed(p, req('c', { cpu: 1 }))).toBe('n1'); // the exclusion did not stick
    // n2 loads only `echo`: an actor of another type waits rather than go there.
    const typed = (id: string, actorType: string) => ({ ...req(id, { cpu: 1 }), actorType });
    expect(p.place(typed('d', 'shoal-inference'), { exclude: new Set(['n1']) }).ok).toBe(false);
    const e = p.place(typed('e', 'echo'), { exclude: new Set(['n1']) });
    expect(e.ok && e.placement.nodeId).toBe('n2');
  });

  it('ClusterPlacer follows membership one node at a time: join, death, restart, leave', () => {
    const cp = new ClusterPlacer();
    const view = (nodeId: string, o: Partial<NodeView> = {}): NodeView => ({
      nodeId,
      incarnation: 'boot-1',
      profile: 'p',
      state: 'running',
      alive: true,
      lastSeenMsAgo: 0,
      labels: { pool: 'od', zone: 'a', spot: false, pricePerHour: 1 },
      capabilities: { cpus: 4, memoryBytes: 8 * GiB, gpu: null, onnxruntime: null },
      load: { actors: 0, cpuPercent: 0, eventLoopDelayMs: 0, rssBytes: 0, heapUsedBytes: 0 },
      ...o,
    });
    const spec = { type: 'echo', kind: 'service' as const };
    expect(cp.choose('x', spec, new Set())).toMatchObject({ reason: expect.any(String) });
    cp.nodeChanged('n1', view('n1'));
    expect(cp.choose('x', spec, new Set())).toEqual({ nodeId: 'n1' });
    cp.nodeChanged('n1', view('n1', { alive: false }));
    expect(cp.choose('y', spec, new Set())).toMatchObject({ reason: expect.any(String) });
    cp.nodeChanged('n1', view('n1', { incarnation: 'boot-2' })); // restarted: added afresh, old bindings gone
    expect(cp.placer.boundTo('n1')).toEqual([]);
    expect(cp.choose('y', spec, new Set())).toEqual({ nodeId: 'n1' });
    cp.nodeChanged('n1', undefined);
    expect(cp.placer.node('n1')).toBeUndefined();
  });

  it('builds nodes from membership views and re-syncs', () => {
    const view = (nodeId: string, alive = true): NodeView => ({
      nodeId,
      incarnation: `boot-${nodeId}`,
      profile: 'cpu-spot',
      state: 'running',
      alive,
      lastSeenMsAgo: 10,
      labels: { pool: 'cpu-spot', zone: 'local-a', spot: true, pricePerHour: 0.012 },
      capabilities: { cpus: 2, memoryBytes: 8 * GiB, gpu: null, onnxruntime: null },
      load: { actors: 0, cpuPercent: 0, eventLoopDelayMs: 0, rssBytes: 0, heapUsedBytes: 0 },
    });
    expect(nodeSpecFromView(view('x')).capacity).toMatchObject({ cpu: 2, gpu: 0 });
    const p = new Placer();
    expect(p.syncViews([view('x'), view('y')]).added).toEqual(['x', 'y']);
    placed(p, req('t', { cpu: 1, constraints: { nodeId: 'x' } }));
    const r = p.syncViews([view('y')]);
    expect(r.removed).toEqual(['x']);
    expect(r.orphaned.map((o) => o.id)).toEqual(['t']);
    p.syncViews([view('y', false)]);
    expect(p.place(req('u')).ok).toBe(false);
  });
});

describe('gang placement', () => {
  it('binds all members or none', () => {
    const p = new Placer({ catalogue: CATALOGUE });
    p.addNode(node('g1', { pool: 'gpu', cpu: 16, gpu: 2 }));
    p.addNode(node('g2', { pool: 'gpu', cpu: 16, gpu: 1 }));
    const gang = [0, 1, 2, 3].map((i) => req(`w${i}`, { gpu: 1, group: 'job' }));
    const r = placeGang(p, gang);
    expect(r.ok).toBe(false);
    expect(r.ok ? undefined : r.reason.code).toBe(PendingCode.GANG_INCOMPLETE);
    expect(p.size).toBe(0);
    expect(p.node('g1')!.allocated.gpu).toBe(0);
    p.addNode(node('g3', { pool: 'gpu', cpu: 16, gpu: 1 }));
    const ok = placeGang(p, gang);
    expect(ok.ok).toBe(true);
    expect(ok.ok && ok.placements.map((x) => x.requestId)).toEqual(['w0', 'w1', 'w2', 'w3']);
    expect(p.size).toBe(4);
  });

  it('rejects a gang larger than every pool could ever hold', () => {
    const p = new Placer({ catalogue: CATALOGUE });
    const gang = Array.from({ length: 40 }, (_, i) => req(`w${i}`, { gpu: 1 }));
    expect(() => assertGangPlaceable(p, 'big', gang)).toThrow(/needs 40 GPUs in total; the pools it may use can hold at most 32/);
    expect(() => assertGangPlaceable(p, 'fine', gang.slice(0, 8))).not.toThrow();
  });
});

describe('invariants under random workloads', () => {
  it('never over-allocates, and "waiting for capacity" means no live node fits', () => {
    for (const strategy of ['pack', 'spread', 'cost-aware'] as const) {
      const rnd = seededRandom(42);
      const p = new Placer({ strategy, maxScanPerPool: 4, candidatesPerPool: 2 });
      const specs = Array.from({ length: 60 }, (_, i) => node(`n${i}`, { pool: `p${i % 6}`, zone: `z${i % 3}`, spot: i % 2 === 0, cpu: 4 + (i % 3) * 4, gpu: i % 5 === 0 ? 2 : 0 }));
      for (const s of specs) p.addNode(s);
      const live = new Set<string>();
      let waits = 0;
      for (let step = 0; step < 3000; step++) {
        if (live.size > 0 && rnd() < 0.35) {
          const ids = [...live];
          const id = ids[Math.floor(rnd() * ids.length)]!;
          expect(p.release(id)).toBe(true);
          live.delete(id);
          continue;
        }
        const r = req(`r${step}`, { cpu: 0.5 + Math.floor(rnd() * 6) * 0.5, gpu: rnd() < 0.1 ? 1 : 0, kind: rnd() < 0.5 ? 'training' : 'inference', group: `g${step % 7}` });
        const res = p.place(r);
        if (res.ok) live.add(r.id);
        else if (res.reason.code === PendingCode.WAITING_FOR_CAPACITY) {
          waits++;
          const n = { ...r, constraints: {} };
          const anyFits = p.nodes().some((s: NodeState) => s.alive && !s.draining && (n.kind !== 'inference' || !s.spot) && s.capacity.cpu - s.allocated.cpu >= (r.resources.cpu ?? 0) - 1e-9 && s.capacity.gpu - s.allocated.gpu >= (r.resources.gpu ?? 0));
          expect(anyFits, `${strategy} step ${step}`).toBe(false);
        }
        if (step % 500 === 0) p.setDraining(`n${step % 60}`, step % 1000 === 0);
      }
      for (const s of p.nodes()) {
        expect(s.allocated.cpu).toBeLessThanOrEqual(s.capacity.cpu + 1e-9);
        expect(s.allocated.gpu).toBeLessThanOrEqual(s.capacity.gpu);
        expect(s.allocated.cpu).toBeGreaterThanOrEqual(-1e-9);
      }
      expect(p.size).toBe(live.size);
      expect(waits).toBeGreaterThan(0);
    }
  });
});
