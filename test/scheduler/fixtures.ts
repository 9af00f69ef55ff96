/** Shared fixtures for the scheduler suites: node specs and a small catalogue. */
import type { Catalogue, NodeSpec, PlacementRequest } from '../../scheduler/index.ts';

export const GiB = 2 ** 30;

export function node(nodeId: string, o: { pool?: string; zone?: string; spot?: boolean; price?: number; cpu?: number; mem?: number; gpu?: number; features?: string[]; rate?: number; labels?: Record<string, string | number | boolean> } = {}): NodeSpec {
  const pool = o.pool ?? 'cpu-od';
  const zone = o.zone ?? 'a';
  const spot = o.spot ?? false;
  const price = o.price ?? 1;
  return {
    nodeId,
    pool,
    zone,
    spot,
    pricePerHour: price,
    labels: { pool, zone, spot, pricePerHour: price, ...o.labels },
    capacity: { cpu: o.cpu ?? 4, memoryBytes: (o.mem ?? 16) * GiB, gpu: o.gpu ?? 0, gpuMemoryBytes: (o.gpu ?? 0) * 24 * GiB },
    gpuFeatures: o.features ?? [],
    interruptionRatePerHour: o.rate ?? (spot ? 0.05 : 0),
  };
}

export function req(id: string, o: Partial<PlacementRequest> & { cpu?: number; gpu?: number; mem?: number } = {}): PlacementRequest {
  return {
    id,
    kind: o.kind ?? 'training',
    resources: o.resources ?? { cpu: o.cpu ?? 1, ...(o.gpu ? { gpu: o.gpu } : {}), ...(o.mem ? { memoryBytes: o.mem * GiB } : {}) },
    ...(o.constraints ? { constraints: o.constraints } : {}),
    ...(o.group ? { group: o.group } : {}),
  };
}

/** CPU types on spot in three zones and on-demand in one; a 4-GPU type on-demand and spot. */
export const CATALOGUE: Catalogue = {
  types: [
    { name: 'c4', resources: { cpu: 4, memoryBytes: 16 * GiB }, onDemandPricePerHour: 0.2, spotPricePerHour: 0.06, interruptionRatePerHour: 0.05, startupLatencyMs: 60_000 },
    { name: 'c16', resources: { cpu: 16, memoryBytes: 64 * GiB }, onDemandPricePerHour: 0.8, spotPricePerHour: 0.26, interruptionRatePerHour: 0.05, startupLatencyMs: 90_000 },
    { name: 'g4', resources: { cpu: 16, memoryBytes: 128 * GiB, gpu: 4, gpuMemoryBytes: 96 * GiB, gpuFeatures: ['shader-f16'] }, onDemandPricePerHour: 4, spotPricePerHour: 1.3, interruptionRatePerHour: 0.1, startupLatencyMs: 180_000 },
  ],
  pools: [
    { name: 'c4-spot-a', type: 'c4', zone: 'a', spot: true, max: 20 },
    { name: 'c4-spot-b', type: 'c4', zone: 'b', spot: true, max: 20 },
    { name: 'c4-spot-c', type: 'c4', zone: 'c', spot: true, max: 20 },
    { name: 'c4-od-a', type: 'c4', zone: 'a', spot: false, max: 20 },
    { name: 'c16-od-a', type: 'c16', zone: 'a', spot: false, max: 10 },
    { name: 'g4-od-a', type: 'g4', zone: 'a', spot: false, max: 4 },
    { name: 'g4-spot-b', type: 'g4', zone: 'b', spot: true, max: 4 },
  ],
};
