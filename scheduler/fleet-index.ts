/**
 * The placer's index of the fleet: nodes grouped into pools (nodes that share every label but
 * price: one shape, one failure domain), each pool with its summed free space and its nodes on
 * two lists — empty and partly used — so a placement looks at a few nodes, not all of them.
 * Bookkeeping only: which request is bound where is the placer's business (placement.ts).
 */
import type { NodeView } from '../cluster/index.ts';
import { SchedulerErrors } from './errors.ts';
import { addRequest, addVector, zeroVector } from './request.ts';
import type { LabelValue, NodeSpec, NodeState, NormalizedRequest, PoolState, ResourceVector } from './types.ts';

export interface Entry {
  state: NodeState;
  /** Which list of its pool the node is on, and where. */
  list: 'empty' | 'partial' | 'none';
  slot: number;
}

export interface PoolIndex {
  state: PoolState;
  empty: Entry[];
  partial: Entry[];
  cursor: number;
  /** Alive, non-draining nodes. */
  live: number;
}

const FULL_CPU = 1e-6;

/** Pool key: every label but price (spot prices move; the pool stays the same). */
function poolKey(labels: Readonly<Record<string, LabelValue>>): string {
  return Object.keys(labels)
    .filter((k) => k !== 'pricePerHour')
    .sort()
    .map((k) => `${k}=${String(labels[k])}`)
    .join('\u0001');
}

export class FleetIndex {
  readonly nodes = new Map<string, Entry>();
  readonly pools = new Map<string, PoolIndex>();
  readonly poolsByName = new Map<string, PoolIndex[]>();
  readonly poolList: PoolIndex[] = [];

  /** Adds a node (or returns the existing one: adding is idempotent). */
  add(spec: NodeSpec): NodeState {
    const existing = this.nodes.get(spec.nodeId);
    if (existing) return existing.state;
    const key = poolKey(spec.labels);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = {
        state: {
          key,
          pool: spec.pool,
          zone: spec.zone,
          spot: spec.spot,
          labels: spec.labels,
          pricePerHour: spec.pricePerHour,
          interruptionRatePerHour: spec.interruptionRatePerHour ?? 0,
          maxCapacity: { ...zeroVector(), custom: {} },
          gpuFeatures: new Set(spec.gpuFeatures ?? []),
          free: { ...zeroVector(), custom: {} },
          nodes: 0,
        },
        empty: [],
        partial: [],
        cursor: 0,
        live: 0,
      };
      this.pools.set(key, pool);
      this.poolList.push(pool);
      const byName = this.poolsByName.get(spec.pool) ?? [];
      byName.push(pool);
      this.poolsByName.set(spec.pool, byName);
    }
    const ps = pool.state;
    const max = ps.maxCapacity;
    max.cpu = Math.max(max.cpu, spec.capacity.cpu);
    max.memoryBytes = Math.max(max.memoryBytes, spec.capacity.memoryBytes);
    max.gpu = Math.max(max.gpu, spec.capacity.gpu);
    max.gpuMemoryBytes = Math.max(max.gpuMemoryBytes, spec.capacity.gpuMemoryBytes);
    for (const [k, v] of Object.entries(spec.capacity.custom ?? {})) max.custom![k] = Math.max(max.custom![k] ?? 0, v);
    for (const f of spec.gpuFeatures ?? []) (ps.gpuFeatures as Set<string>).add(f);
    ps.nodes++;
    const state: NodeState = {
      nodeId: spec.nodeId,
      pool: spec.pool,
      zone: spec.zone,
      spot: spec.spot,
      pricePerHour: spec.pricePerHour,
      labels: spec.labels,
      capacity: { ...spec.capacity, ...(spec.capacity.custom ? { custom: { ...spec.capacity.custom } } : {}) },
      gpuFeatures: spec.gpuFeatures ?? [],
      interruptionRatePerHour: spec.interruptionRatePerHour ?? 0,
      type: spec.type,
      actorTypes: spec.actorTypes ? new Set(spec.actorTypes) : undefined,
      allocated: zeroVector(),
      actors: 0,
      alive: true,
      draining: false,
      poolKey: key,
    };
    const entry: Entry = { state, list: 'none', slot: -1 };
    this.nodes.set(spec.nodeId, entry);
    addVector(ps.free, state.capacity, 1);
    pool.live++;
    this.relist(entry, pool);
    return state;
  }

  /** Forgets a node whose bindings are already released. */
  remove(entry: Entry): void {
    const pool = this.poolOf(entry);
    this.unlist(entry, pool);
    if (this.schedulable(entry.state)) {
      addVector(pool.state.free, this.freeOf(entry.state), -1);
      pool.live--;
    }
    pool.state.nodes--;
    this.nodes.delete(entry.state.nodeId);
  }

  poolOf(entry: Entry): PoolIndex {
    return this.pools.get(entry.state.poolKey)!;
  }

  setFlags(nodeId: string, flags: { alive?: boolean; draining?: boolean }): void {
    const entry = this.nodes.get(nodeId);
    if (!entry) throw SchedulerErrors.UNKNOWN_NODE(nodeId);
    const pool = this.poolOf(entry);
    const before = this.schedulable(entry.state);
    if (flags.alive !== undefined) entry.state.alive = flags.alive;
    if (flags.draining !== undefined) entry.state.draining = flags.draining;
    const after = this.schedulable(entry.state);
    if (before !== after) {
      addVector(pool.state.free, this.freeOf(entry.state), after ? 1 : -1);
      pool.live += after ? 1 : -1;
    }
    this.relist(entry, pool);
  }

  /** Updates the price or interruption rate of every pool named `pool` (spot prices move). */
  updatePool(pool: string, update: { pricePerHour?: number; interruptionRatePerHour?: number }): void {
    for (const p of this.poolsByName.get(pool) ?? []) {
      if (update.pricePerHour !== undefined) p.state.pricePerHour = update.pricePerHour;
      if (update.interruptionRatePerHour !== undefined) p.state.interruptionRatePerHour = update.interruptionRatePerHour;
    }
    // O(nodes), but prices change every few minutes at most, not per placement.
    if (update.pricePerHour !== undefined) for (const e of this.nodes.values()) if (e.state.pool === pool) e.state.pricePerHour = update.pricePerHour;
  }

  /** Takes (`sign` 1) or gives back (-1) a request's resources on a node and in its pool. */
  allocate(entry: Entry, n: NormalizedRequest, sign: 1 | -1): void {
    const pool = this.poolOf(entry);
    addRequest(entry.state.allocated, n, sign);
    entry.state.actors += sign;
    if (sign === 1 || this.schedulable(entry.state)) addRequest(pool.state.free, n, -sign as 1 | -1);
    this.relist(entry, pool);
  }

  schedulable(s: NodeState): boolean {
    return s.alive && !s.draining;
  }

  freeOf(s: NodeState): ResourceVector {
    const f: ResourceVector = { cpu: s.capacity.cpu - s.allocated.cpu, memoryBytes: s.capacity.memoryBytes - s.allocated.memoryBytes, gpu: s.capacity.gpu - s.allocated.gpu, gpuMemoryBytes: s.capacity.gpuMemoryBytes - s.allocated.gpuMemoryBytes };
    if (s.capacity.custom) {
      f.custom = {};
      for (const k in s.capacity.custom) f.custom[k] = (s.capacity.custom[k] ?? 0) - (s.allocated.custom?.[k] ?? 0);
    }
    return f;
  }

  /** Puts a node on the list that matches its state (empty / partly used / neither). */
  relist(e: Entry, pool: PoolIndex): void {
    const s = e.state;
    const want: Entry['list'] = !this.schedulable(s) ? 'none' : s.actors === 0 ? 'empty' : s.capacity.cpu - s.allocated.cpu < FULL_CPU ? 'none' : 'partial';
    if (want === e.list) return;
    this.unlist(e, pool);
    if (want === 'none') return;
    const list = want === 'empty' ? pool.empty : pool.partial;
    e.list = want;
    e.slot = list.length;
    list.push(e);
  }

  unlist(e: Entry, pool: PoolIndex): void {
    if (e.list === 'none') return;
    const list = e.list === 'empty' ? pool.empty : pool.partial;
    const last = list.pop()!;
    if (last !== e) {
      list[e.slot] = last;
      last.slot = e.slot;
    }
    e.list = 'none';
    e.slot = -1;
  }
}

/**
 * A node's spec from its membership record. GPU memory is not probed by WebGPU: a numeric
 * `gpuMemoryBytes` label wins, else the node's memory (software and unified adapters share it).
 * Numeric labels named `resource.<name>` become custom resources.
 */
export function nodeSpecFromView(v: NodeView): NodeSpec {
  const custom: Record<string, number> = {};
  const labels = v.labels as Readonly<Record<string, LabelValue>>;
  for (const [k, val] of Object.entries(labels)) if (k.startsWith('resource.') && typeof val === 'number') custom[k.slice('resource.'.length)] = val;
  const gpu = v.capabilities.gpu ? 1 : 0;
  const gpuMem = typeof labels.gpuMemoryBytes === 'number' ? labels.gpuMemoryBytes : gpu ? v.capabilities.memoryBytes : 0;
  const rate = typeof labels.interruptionRatePerHour === 'number' ? labels.interruptionRatePerHour : v.labels.spot ? 0.05 : 0;
  return {
    nodeId: v.nodeId,
    pool: v.labels.pool,
    zone: v.labels.zone,
    spot: v.labels.spot,
    pricePerHour: v.labels.pricePerHour,
    labels: v.labels,
    capacity: { cpu: v.capabilities.cpus, memoryBytes: v.capabilities.memoryBytes, gpu, gpuMemoryBytes: gpuMem, ...(Object.keys(custom).length ? { custom } : {}) },
    gpuFeatures: v.capabilities.gpu?.features ?? [],
    interruptionRatePerHour: rate,
    ...(typeof labels.type === 'string' ? { type: labels.type } : {}),
    ...(v.capabilities.actorTypes ? { actorTypes: v.capabilities.actorTypes } : {}),
  };
}
