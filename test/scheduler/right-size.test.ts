/**
 * The right-sizing policy (a pure function): over-provisioned replicas shrink with a negative
 * $/h change, busy ones grow, unused nodes go, on-demand nodes running only interruptible work
 * move to spot, batching advice follows batch fill, and too little evidence gives no advice.
 */
import { describe, expect, it } from 'vitest';
import { rightSize, type NodeObservation, type ServiceObservation } from '../../scheduler/cost/right-size.ts';

const svc = (o: Partial<ServiceObservation>): ServiceObservation => ({ service: 'model-fraud-v1', model: 'fraud@v1', replicas: 3, dollarsPerHourPerReplica: 0.002, ongoing: Array(10).fill(0), ...o });
const node = (o: Partial<NodeObservation>): NodeObservation => ({ nodeId: 'n1', profile: 'cpu-ondemand', pool: 'cpu-ondemand', spot: false, pricePerHour: 0.04, cpus: 2, cpuPercent: Array(10).fill(3), actors: 1, interruptibleOnly: false, ...o });

describe('right-sizing policy', () => {
  it('shrinks an over-provisioned deployment to its floor, with a negative $/h change', () => {
    const out = rightSize({ services: [svc({ ongoing: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0] })], nodes: [], profiles: [] });
    expect(out.recommendations).toHaveLength(1);
    const r = out.recommendations[0]!;
    expect(r).toMatchObject({ kind: 'replicas', target: 'model-fraud-v1', current: 3, proposed: 1 });
    expect(r.dollarsPerHourChange).toBeCloseTo(-0.004, 9);
    expect(r.evidence.samples).toBe(10);
  });

  it('respects the autoscale floor and grows a busy service', () => {
    expect(rightSize({ services: [svc({ minReplicas: 3 })], nodes: [], profiles: [] }).recommendations).toEqual([]);
    const grow = rightSize({ services: [svc({ replicas: 1, ongoing: Array(10).fill(6) })], nodes: [], profiles: [] }).recommendations[0]!;
    // p95 of 6 in flight at 2 per replica and 70 % target: ceil(6 / 1.4) = 5.
    expect(grow).toMatchObject({ kind: 'replicas', current: 1, proposed: 5 });
    expect(grow.dollarsPerHourChange).toBeCloseTo(0.008, 9);
  });

  it('gives no advice on too few samples, and says so', () => {
    const out = rightSize({ services: [svc({ ongoing: [0, 0] })], nodes: [node({ cpuPercent: [1] })], profiles: [], minSamples: 6 });
    expect(out.recommendations).toEqual([]);
    expect(out.skipped.map((s) => s.target)).toEqual(['model-fraud-v1', 'n1']);
  });

  it('removes nodes that host nothing, and moves interruptible-only on-demand nodes to spot', () => {
    const out = rightSize({
      services: [],
      nodes: [node({ nodeId: 'idle-1', actors: 0 }), node({ nodeId: 'busy', actors: 2, cpuPercent: Array(10).fill(150) }), node({ nodeId: 'trainer', actors: 2, interruptibleOnly: true })],
      profiles: [{ name: 'cpu-spot', spot: true, pricePerHour: 0.012, cpus: 2 }, { name: 'cpu-ondemand', spot: false, pricePerHour: 0.04, cpus: 2 }],
    });
    const kinds = out.recommendations.map((r) => [r.kind, r.target, r.proposed]);
    expect(kinds).toContainEqual(['instances', 'cpu-ondemand', 2]);
    expect(kinds).toContainEqual(['node-profile', 'trainer', 'cpu-spot']);
    expect(out.recommendations.find((r) => r.kind === 'node-profile')!.dollarsPerHourChange).toBeCloseTo(-0.028, 9);
    expect(out.recommendations.find((r) => r.kind === 'instances')!.dollarsPerHourChange).toBeCloseTo(-0.04, 9);
  });

  it('advises on batching from batch fill and queue time', () => {
    const full = rightSize({ services: [svc({ replicas: 1, batch: { maxBatchSize: 16, maxQueueDelayMs: 2, meanBatchRows: 15.5, meanQueueMs: 9 } })], nodes: [], profiles: [] });
    expect(full.recommendations.map((r) => [r.kind, r.proposed, r.dollarsPerHourChange])).toEqual([['batch-size', 32, 0]]);
    // Queue time not measured: more requests in flight than the replicas' batches hold is the evidence.
    const crowded = rightSize({ services: [svc({ replicas: 1, ongoing: Array(10).fill(40), batch: { maxBatchSize: 16, maxQueueDelayMs: 2, meanBatchRows: 15.8 } })], nodes: [], profiles: [] });
    expect(crowded.recommendations.map((r) => r.kind).sort()).toEqual(['batch-size', 'replicas']);
    const calm = rightSize({ services: [svc({ replicas: 1, ongoing: Array(10).fill(1), batch: { maxBatchSize: 16, maxQueueDelayMs: 2, meanBatchRows: 15.8 } })], nodes: [], profiles: [] });
    expect(calm.recommendations).toEqual([]);
    const empty = rightSize({ services: [svc({ replicas: 1, batch: { maxBatchSize: 32, maxQueueDelayMs: 5, meanBatchRows: 1.2 } })], nodes: [], profiles: [] });
    expect(empty.recommendations.map((r) => [r.kind, r.proposed])).toEqual([['queue-delay', 0]]);
  });
});
