/**
 * The node-type catalogue: validated once, then used for two things — rejecting impossible
 * requests at submission (more GPUs than any type has, a label no pool offers), and choosing
 * what to buy when demand is pending (the autoscaler). The scheduler process builds its own from
 * the configured node profiles (`catalogueFromProfiles`).
 */
import { availableParallelism, totalmem } from 'node:os';
import type { Config } from '../cluster/index.ts';
import { SchedulerErrors } from './errors.ts';
import { dominantShare, hasFeatures, labelsMatch, formatLabels } from './request.ts';
import {
  ImpossibleCode,
  type Catalogue,
  type ImpossibleReason,
  type NodeSpec,
  type NormalizedRequest,
  type ResolvedCatalogue,
  type ResolvedPool,
  type ResourceVector,
} from './types.ts';

const NAME = /^[A-Za-z0-9_-]+$/;

function positive(option: string, v: number, allowZero = true): void {
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw SchedulerErrors.BAD_OPTION(option, `must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
}

/** Validates a catalogue (names, numbers, pool → type references, min ≤ max). */
export function resolveCatalogue(c: Catalogue): ResolvedCatalogue {
  const types = new Map<string, Catalogue['types'][number]>();
  for (const [i, t] of c.types.entries()) {
    const at = `catalogue.types[${i}]`;
    if (!NAME.test(t.name)) throw SchedulerErrors.BAD_OPTION(`${at}.name`, `"${t.name}" must be letters, digits, '_' or '-'`);
    if (types.has(t.name)) throw SchedulerErrors.BAD_OPTION(`${at}.name`, `duplicate type ${t.name}`);
    positive(`${at}.resources.cpu`, t.resources.cpu, false);
    positive(`${at}.resources.memoryBytes`, t.resources.memoryBytes);
    positive(`${at}.resources.gpu`, t.resources.gpu ?? 0);
    positive(`${at}.onDemandPricePerHour`, t.onDemandPricePerHour);
    positive(`${at}.spotPricePerHour`, t.spotPricePerHour);
    positive(`${at}.interruptionRatePerHour`, t.interruptionRatePerHour);
    positive(`${at}.startupLatencyMs`, t.startupLatencyMs);
    types.set(t.name, t);
  }
  const pools = new Map<string, ResolvedPool>();
  for (const [i, p] of c.pools.entries()) {
    const at = `catalogue.pools[${i}]`;
    if (!NAME.test(p.name)) throw SchedulerErrors.BAD_OPTION(`${at}.name`, `"${p.name}" must be letters, digits, '_' or '-'`);
    if (pools.has(p.name)) throw SchedulerErrors.BAD_OPTION(`${at}.name`, `duplicate pool ${p.name}`);
    const t = types.get(p.type);
    if (!t) throw SchedulerErrors.BAD_OPTION(`${at}.type`, `unknown node type ${p.type} (known: ${[...types.keys()].join(', ')})`);
    const min = p.min ?? 0;
    if (!Number.isInteger(min) || min < 0) throw SchedulerErrors.BAD_OPTION(`${at}.min`, `must be an integer ≥ 0, got ${min}`);
    if (!Number.isInteger(p.max) || p.max < min) throw SchedulerErrors.BAD_OPTION(`${at}.max`, `must be an integer ≥ min (${min}), got ${p.max}`);
    const listPricePerHour = p.spot ? t.spotPricePerHour : t.onDemandPricePerHour;
    pools.set(p.name, {
      name: p.name,
      type: p.type,
      zone: p.zone,
      spot: p.spot,
      min,
      max: p.max,
      labels: { ...(p.labels ?? {}), pool: p.name, zone: p.zone, spot: p.spot, pricePerHour: listPricePerHour },
      nodeType: t,
      listPricePerHour,
    });
  }
  return { types, pools };
}

/** A pool of the catalogue by name, or SHOAL_ERR_UNKNOWN_POOL. */
export function poolOf(cat: ResolvedCatalogue, name: string): ResolvedPool {
  const p = cat.pools.get(name);
  if (!p) throw SchedulerErrors.UNKNOWN_POOL(name);
  return p;
}

export function poolCapacity(pool: ResolvedPool): ResourceVector {
  const r = pool.nodeType.resources;
  return { cpu: r.cpu, memoryBytes: r.memoryBytes, gpu: r.gpu ?? 0, gpuMemoryBytes: r.gpuMemoryBytes ?? 0, ...(r.custom ? { custom: { ...r.custom } } : {}) };
}

/** The spec of a node launched in `pool` (what the provider reports and the placer adds). */
export function nodeSpecForPool(pool: ResolvedPool, nodeId: string, pricePerHour = pool.listPricePerHour): NodeSpec {
  return {
    nodeId,
    pool: pool.name,
    zone: pool.zone,
    spot: pool.spot,
    pricePerHour,
    labels: { ...pool.labels, pricePerHour },
    capacity: poolCapacity(pool),
    gpuFeatures: pool.nodeType.resources.gpuFeatures ?? [],
    type: pool.type,
    interruptionRatePerHour: pool.spot ? pool.nodeType.interruptionRatePerHour : 0,
  };
}

/** True when a node of `pool` could host `req` when empty. */
export function poolCanEverHost(req: NormalizedRequest, pool: ResolvedPool): boolean {
  if (!labelsMatch(req.labels, pool.labels)) return false;
  if (pool.spot && !req.spotOk) return false;
  const cap = poolCapacity(pool);
  if (req.cpu > cap.cpu || req.memoryBytes > cap.memoryBytes || req.gpu > cap.gpu || req.gpuMemoryBytes > cap.gpuMemoryBytes) return false;
  if (!hasFeatures(req.gpuFeatures, pool.nodeType.resources.gpuFeatures ?? [])) return false;
  if (req.custom) for (const k in req.custom) if ((req.custom[k] ?? 0) > (cap.custom?.[k] ?? 0)) return false;
  return true;
}

/**
 * Why `req` can never be placed on anything the catalogue can buy, or undefined when some pool
 * could host it. Checked in the order a user would fix things: labels, market, then size.
 */
export function impossibleReason(req: NormalizedRequest, cat: ResolvedCatalogue): ImpossibleReason | undefined {
  const all = [...cat.pools.values()];
  if (all.some((p) => poolCanEverHost(req, p))) return undefined;
  const labelled = all.filter((p) => labelsMatch(req.labels, p.labels));
  if (labelled.length === 0) {
    return { code: ImpossibleCode.NO_POOL_WITH_LABELS, message: `no pool offers labels ${formatLabels(req.labels ?? {})}` };
  }
  const market = labelled.filter((p) => req.spotOk || !p.spot);
  if (market.length === 0) {
    return { code: ImpossibleCode.NO_ON_DEMAND_POOL, message: `it may not run on spot and every pool matching its labels is spot (set constraints.spotOk)` };
  }
  const largest = (pick: (c: ResourceVector) => number) => {
    let best = market[0]!;
    for (const p of market) if (pick(poolCapacity(p)) > pick(poolCapacity(best))) best = p;
    return { pool: best, value: pick(poolCapacity(best)) };
  };
  const g = largest((c) => c.gpu);
  if (req.gpu > g.value) return { code: ImpossibleCode.TOO_MANY_GPUS, message: `needs ${req.gpu} GPUs; the largest node type it may use (${g.pool.type}) has ${g.value}` };
  const cpu = largest((c) => c.cpu);
  if (req.cpu > cpu.value) return { code: ImpossibleCode.TOO_MUCH_CPU, message: `needs ${req.cpu} CPUs; the largest node type it may use (${cpu.pool.type}) has ${cpu.value}` };
  const mem = largest((c) => c.memoryBytes);
  if (req.memoryBytes > mem.value) return { code: ImpossibleCode.TOO_MUCH_MEMORY, message: `needs ${gib(req.memoryBytes)} GiB memory; the largest node type it may use (${mem.pool.type}) has ${gib(mem.value)} GiB` };
  const gm = largest((c) => c.gpuMemoryBytes);
  if (req.gpuMemoryBytes > gm.value) return { code: ImpossibleCode.TOO_MUCH_GPU_MEMORY, message: `needs ${gib(req.gpuMemoryBytes)} GiB GPU memory; the most any node type it may use has is ${gib(gm.value)} GiB` };
  if (req.gpuFeatures.length > 0 && !market.some((p) => hasFeatures(req.gpuFeatures, p.nodeType.resources.gpuFeatures ?? []))) {
    return { code: ImpossibleCode.NO_GPU_FEATURES, message: `no node type has GPU features ${req.gpuFeatures.join(', ')}` };
  }
  if (req.custom) {
    for (const k in req.custom) {
      const most = Math.max(0, ...market.map((p) => p.nodeType.resources.custom?.[k] ?? 0));
      if ((req.custom[k] ?? 0) > most) return { code: ImpossibleCode.NO_CUSTOM_RESOURCE, message: `needs ${req.custom[k]} of custom resource "${k}"; the most any node type offers is ${most}` };
    }
  }
  return { code: ImpossibleCode.NO_TYPE_FITS, message: `each resource fits some node type, but no single type it may use has all of ${req.cpu} cpu, ${gib(req.memoryBytes)} GiB, ${req.gpu} gpu` };
}

/**
 * Why a gang can never be placed whole: a member is impossible, or the gang needs more than the
 * pools could ever hold at their max sizes.
 */
export function gangImpossibleReason(members: readonly NormalizedRequest[], cat: ResolvedCatalogue): ImpossibleReason | undefined {
  for (const m of members) {
    const r = impossibleReason(m, cat);
    if (r) return { code: r.code, message: `member ${m.id}: ${r.message}` };
  }
  // Upper bound: every pool full-size, each member in its best pool. Coarse, but it catches a
  // 64-GPU gang on a catalogue that can buy 16 GPUs in total.
  let gpus = 0;
  let maxGpus = 0;
  for (const m of members) gpus += m.gpu;
  for (const p of cat.pools.values()) if (members.some((m) => poolCanEverHost(m, p))) maxGpus += p.max * (p.nodeType.resources.gpu ?? 0);
  if (gpus > maxGpus) return { code: ImpossibleCode.GANG_TOO_LARGE, message: `the gang needs ${gpus} GPUs in total; the pools it may use can hold at most ${maxGpus}` };
  return undefined;
}

/** Fraction of a `pool` node that `req` uses (for price-per-share comparisons). */
export function shareOfPool(req: NormalizedRequest, pool: ResolvedPool): number {
  return dominantShare(req, poolCapacity(pool));
}

function gib(b: number): string {
  return (b / 2 ** 30).toFixed(1);
}

/** One node type + one pool per profile; a GPU profile is assumed to have one adapter. */
export function catalogueFromProfiles(config: Config): Catalogue {
  const cpus = availableParallelism();
  const mem = totalmem();
  return {
    types: config.nodes.map((p) => ({
      name: p.name,
      resources: { cpu: cpus, memoryBytes: mem, gpu: p.gpu ? 1 : 0, gpuMemoryBytes: p.gpu ? mem : 0 },
      onDemandPricePerHour: p.labels.spot ? p.labels.pricePerHour * 3 : p.labels.pricePerHour,
      spotPricePerHour: p.labels.pricePerHour,
      interruptionRatePerHour: p.labels.spot ? 0.05 : 0,
      startupLatencyMs: 2000,
    })),
    pools: config.nodes.map((p) => ({
      name: p.labels.pool,
      type: p.name,
      zone: p.labels.zone,
      spot: p.labels.spot,
      max: p.replicas + (config.autoscaler.enabled ? config.autoscaler.maxPerPool : 0),
      labels: Object.fromEntries(Object.entries(p.labels).filter(([k]) => !['pool', 'zone', 'spot', 'pricePerHour'].includes(k))),
    })),
  };
}
