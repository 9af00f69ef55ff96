/** liveHostReason: whether some alive node could ever host a spawn spec (scale-to-zero's deploy check). */
import { describe, expect, it } from 'vitest';
import type { NodeView } from '../../cluster/index.ts';
import { liveHostReason } from '../../scheduler/index.ts';

const GiB = 2 ** 30;
function node(nodeId: string, o: { cpus?: number; memGiB?: number; spot?: boolean; labels?: Record<string, string>; alive?: boolean; actorTypes?: string[] } = {}): NodeView {
  return {
    nodeId,
    incarnation: 'i',
    profile: 'cpu',
    state: 'running',
    alive: o.alive ?? true,
    lastSeenMsAgo: 0,
    labels: { pool: 'p', zone: 'z', spot: o.spot ?? false, pricePerHour: 0.1, ...o.labels },
    capabilities: { cpus: o.cpus ?? 4, memoryBytes: (o.memGiB ?? 8) * GiB, gpu: null, onnxruntime: null, ...(o.actorTypes ? { actorTypes: o.actorTypes } : {}) },
    load: { actors: 0, cpuPercent: 0, eventLoopDelayMs: 0, rssBytes: 0, heapUsedBytes: 0 },
  };
}
const spec = { type: 'shoal-inference', kind: 'inference' as const };

describe('liveHostReason', () => {
  it('is undefined when one alive node fits, whatever is allocated on it', () => {
    expect(liveHostReason({ ...spec, resources: { cpu: 4, memoryBytes: 8 * GiB } }, [node('a', { cpus: 2 }), node('b')])).toBeUndefined();
  });
  it('names the filter that leaves no node', () => {
    expect(liveHostReason(spec, [node('a', { alive: false })])).toBe('no node is alive');
    expect(liveHostReason(spec, [node('a', { actorTypes: ['trainer'] })])).toBe('no alive node hosts actor type shoal-inference');
    expect(liveHostReason({ ...spec, constraints: { labels: { accelerator: 'h100' } } }, [node('a')])).toBe('no alive node has labels {"accelerator":"h100"}');
    expect(liveHostReason({ ...spec, constraints: { spotOk: false } }, [node('a', { spot: true })])).toMatch(/may not run on spot/);
    expect(liveHostReason({ ...spec, resources: { cpu: 16 } }, [node('a', { cpus: 4 }), node('b', { cpus: 8 })])).toMatch(/^it needs 16 CPU.*largest: b, 8 CPU/);
    expect(liveHostReason({ ...spec, constraints: { nodeId: 'gone' } }, [node('a')])).toBe('node gone (its nodeId constraint) is not alive');
  });
});
