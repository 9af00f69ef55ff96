/**
 * Small pure helpers shared by the placer, the strategies, gang placement and the autoscaler:
 * defaults for a request, "does it fit", "do the labels match".
 */
import { ActorKind } from '../cluster/index.ts';
import type { LabelValue, NodeState, NormalizedRequest, PlacementRequest, ResourceVector } from './types.ts';

/** CPU asked for when a request names none (as in `ResourceRequest`). */
export const DEFAULT_CPU = 0.1;

/** Spot is fine for interruptible work; serving and control actors default to on-demand. */
export function defaultSpotOk(kind: ActorKind): boolean {
  return kind === ActorKind.TRAINING || kind === ActorKind.BATCH;
}

export function normalizeRequest(req: PlacementRequest): NormalizedRequest {
  const r = req.resources;
  const c = req.constraints;
  return {
    id: req.id,
    kind: req.kind,
    group: req.group,
    actorType: req.actorType,
    cpu: r.cpu ?? DEFAULT_CPU,
    memoryBytes: r.memoryBytes ?? 0,
    gpu: r.gpu ?? 0,
    gpuMemoryBytes: r.gpuMemoryBytes ?? 0,
    gpuFeatures: r.gpuFeatures ?? [],
    custom: r.custom && Object.keys(r.custom).length > 0 ? r.custom : undefined,
    labels: c?.labels && Object.keys(c.labels).length > 0 ? c.labels : undefined,
    spotOk: c?.spotOk ?? defaultSpotOk(req.kind),
    nodeId: c?.nodeId,
  };
}

export function zeroVector(): ResourceVector {
  return { cpu: 0, memoryBytes: 0, gpu: 0, gpuMemoryBytes: 0 };
}

// Floating-point slack so that ten 0.1-CPU actors fit on one CPU.
const EPS = 1e-9;

/** True when `req` fits in `free` (capacity minus allocation). */
export function fitsIn(req: NormalizedRequest, free: ResourceVector): boolean {
  if (req.cpu > free.cpu + EPS || req.memoryBytes > free.memoryBytes + EPS || req.gpu > free.gpu + EPS || req.gpuMemoryBytes > free.gpuMemoryBytes + EPS) return false;
  if (req.custom) {
    for (const k in req.custom) if ((req.custom[k] ?? 0) > (free.custom?.[k] ?? 0) + EPS) return false;
  }
  return true;
}

/** True when `req` fits on `node` now. */
export function fitsNode(req: NormalizedRequest, node: NodeState): boolean {
  const c = node.capacity;
  const a = node.allocated;
  if (req.cpu > c.cpu - a.cpu + EPS || req.memoryBytes > c.memoryBytes - a.memoryBytes + EPS || req.gpu > c.gpu - a.gpu + EPS || req.gpuMemoryBytes > c.gpuMemoryBytes - a.gpuMemoryBytes + EPS) return false;
  if (req.custom) {
    for (const k in req.custom) if ((req.custom[k] ?? 0) > (c.custom?.[k] ?? 0) - (a.custom?.[k] ?? 0) + EPS) return false;
  }
  return true;
}

/** Adds `sign × req` to `v` in place. */
export function addRequest(v: ResourceVector, req: NormalizedRequest, sign: 1 | -1): void {
  addVector(v, req, sign);
}

/** Adds `sign × w` to `v` in place. */
export function addVector(v: ResourceVector, w: Readonly<Omit<ResourceVector, 'custom'>> & { readonly custom?: Readonly<Record<string, number>> | undefined }, sign: 1 | -1): void {
  v.cpu += sign * w.cpu;
  v.memoryBytes += sign * w.memoryBytes;
  v.gpu += sign * w.gpu;
  v.gpuMemoryBytes += sign * w.gpuMemoryBytes;
  if (w.custom) {
    v.custom ??= {};
    for (const k in w.custom) v.custom[k] = (v.custom[k] ?? 0) + sign * (w.custom[k] ?? 0);
  }
}

/** Every constraint label equals the node's (a missing label never matches). */
export function labelsMatch(want: Readonly<Record<string, LabelValue>> | undefined, have: Readonly<Record<string, LabelValue>>): boolean {
  if (!want) return true;
  for (const k in want) if (have[k] !== want[k]) return false;
  return true;
}

export function hasFeatures(want: readonly string[], have: ReadonlySet<string> | readonly string[]): boolean {
  if (want.length === 0) return true;
  const set = have instanceof Set ? have : new Set(have as readonly string[]);
  return want.every((f) => set.has(f));
}

/**
 * The largest fraction of any one resource of `capacity` that `req` takes: the share of the node
 * it effectively uses (a 1-GPU actor on a 4-GPU node uses a quarter of it, whatever its CPU).
 */
export function dominantShare(req: NormalizedRequest, capacity: ResourceVector): number {
  let s = 0;
  if (capacity.cpu > 0) s = Math.max(s, req.cpu / capacity.cpu);
  if (capacity.memoryBytes > 0) s = Math.max(s, req.memoryBytes / capacity.memoryBytes);
  if (capacity.gpu > 0) s = Math.max(s, req.gpu / capacity.gpu);
  if (capacity.gpuMemoryBytes > 0) s = Math.max(s, req.gpuMemoryBytes / capacity.gpuMemoryBytes);
  return Math.min(1, s);
}

/** Dominant fraction of `node` in use once `req` is added (0 = empty, 1 = full). */
export function utilizationAfter(req: NormalizedRequest, node: NodeState): number {
  const c = node.capacity;
  const a = node.allocated;
  let u = 0;
  if (c.cpu > 0) u = Math.max(u, (a.cpu + req.cpu) / c.cpu);
  if (c.memoryBytes > 0) u = Math.max(u, (a.memoryBytes + req.memoryBytes) / c.memoryBytes);
  if (c.gpu > 0) u = Math.max(u, (a.gpu + req.gpu) / c.gpu);
  if (c.gpuMemoryBytes > 0) u = Math.max(u, (a.gpuMemoryBytes + req.gpuMemoryBytes) / c.gpuMemoryBytes);
  return Math.min(1, u);
}

export function describeRequest(req: NormalizedRequest): string {
  const parts = [`${req.cpu} cpu`];
  if (req.memoryBytes) parts.push(`${(req.memoryBytes / 2 ** 30).toFixed(1)} GiB`);
  if (req.gpu) parts.push(`${req.gpu} gpu`);
  if (req.gpuMemoryBytes) parts.push(`${(req.gpuMemoryBytes / 2 ** 30).toFixed(1)} GiB gpu memory`);
  return parts.join(', ');
}

export function formatLabels(labels: Readonly<Record<string, LabelValue>>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(',');
}
