/**
 * When a node writes its record (cluster/heartbeat.ts), as a policy: every heartbeat is a beat;
 * the record goes to the bucket at start, at once when state, labels or capabilities change, and
 * otherwise every RECORD_EVERY_BEATS beats — the first refresh spread at random over one more
 * such period, so a fleet started together does not rewrite every record in the same second. A
 * put still in flight is not piled onto. (A stand-in connection and bucket record the calls;
 * membership-beats.test.ts runs the same class against a real server.)
 */
import { describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import { nodeRecord } from '../fixtures/node-record.ts';
import { NodeHeartbeat, RECORD_EVERY_BEATS, decode, subjects, type NatsConnection, type NodeRecord } from '../../cluster/index.ts';

function rig() {
  const beats: unknown[] = [];
  const puts: { value: NodeRecord; resolve: () => void; reject: (e: Error) => void }[] = [];
  const nc = { publish: (_subject: string, data: Uint8Array) => void beats.push(decode(data)) } as unknown as NatsConnection;
  const bucket = {
    put: (_key: string, data: Uint8Array) =>
      new Promise<number>((resolve, reject) => puts.push({ value: decode(data) as NodeRecord, resolve: () => resolve(puts.length), reject })),
  } as unknown as KV;
  const hb = new NodeHeartbeat(nc, subjects(), bucket, 'n1');
  let t = 0;
  const record = (over: Partial<NodeRecord> = {}): NodeRecord => nodeRecord('n1', ++t, { incarnation: 'i1', load: { actors: 0, mailboxDepth: 0, cpuPercent: 0, eventLoopDelayMs: 0, rssBytes: 0, heapUsedBytes: 0 }, ...over });
  /** Beats until a record put is due; returns how many beats that took (resolving the put). */
  const beatsToNextPut = async (max: number) => {
    for (let k = 1; k <= max; k++) {
      const r = hb.beat(record());
      if (r.record === 'put') {
        puts.at(-1)!.resolve();
        await r.done;
        return k;
      }
    }
    return Infinity;
  };
  return { hb, beats, puts, record, beatsToNextPut };
}

describe('a node\'s heartbeat: beats always, the record when it says something new', () => {
  it('start, then a refresh 30–59 beats later, then every 30; a state change at once', async () => {
    const firsts = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const { hb, beats, puts, record, beatsToNextPut } = rig();
      const started = hb.put(record());
      puts[0]!.resolve();
      await started;
      const first = await beatsToNextPut(3 * RECORD_EVERY_BEATS);
      expect(first).toBeGreaterThanOrEqual(RECORD_EVERY_BEATS);
      expect(first).toBeLessThan(2 * RECORD_EVERY_BEATS);
      firsts.add(first);
      expect(await beatsToNextPut(3 * RECORD_EVERY_BEATS)).toBe(RECORD_EVERY_BEATS);
      // Every beat went out, whatever happened to the record.
      expect(beats).toHaveLength(first + RECORD_EVERY_BEATS);
      expect(beats.at(-1)).toEqual({ nodeId: 'n1', incarnation: 'i1', state: 'running', load: record().load, heartbeatAt: expect.any(Number) });
      // Draining: written with the very next beat.
      const r = hb.beat(record({ state: 'draining' }));
      expect(r.record).toBe('put');
      expect(puts.at(-1)!.value.state).toBe('draining');
    }
    // Spread: forty fleets' first refreshes did not all land on the same beat.
    expect(firsts.size).toBeGreaterThan(5);
  });

  it('a put still in flight is not piled onto; a failed put is due again at the next beat', async () => {
    const { hb, puts, record } = rig();
    const started = hb.put(record());
    // Labels change while the first put hangs (an overloaded server): due, but skipped.
    expect(hb.beat(record({ labels: { pool: 'cpu', zone: 'b', spot: false, pricePerHour: 0.1 } })).record).toBe('skipped');
    puts[0]!.reject(new Error('timeout'));
    await expect(started).rejects.toThrow('timeout');
    await new Promise((r) => setImmediate(r));
    const again = hb.beat(record({ labels: { pool: 'cpu', zone: 'b', spot: false, pricePerHour: 0.1 } }));
    expect(again.record).toBe('put');
    puts.at(-1)!.resolve();
    if (again.record === 'put') await again.done;
    expect(hb.beat(record({ labels: { pool: 'cpu', zone: 'b', spot: false, pricePerHour: 0.1 } })).record).toBe('none');
  });
});
