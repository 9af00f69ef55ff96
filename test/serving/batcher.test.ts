/** Dynamic batcher semantics and canary routing/judging, with no cluster. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import { CanaryMonitor, DEFAULT_POLICY, DynamicBatcher, OutcomeTally, pickTrack, type Deployment } from '../../ml/index.ts';

const tick = () => new Promise((r) => setImmediate(r));

describe('DynamicBatcher (Triton semantics)', () => {
  it('forms the largest batch available, one run per batch, results back in order', async () => {
    const runs: number[][] = [];
    const b = new DynamicBatcher<number, number>(async (xs) => {
      runs.push(xs);
      await tick();
      return xs.map((x) => x * 10);
    }, { maxBatchSize: 4 });
    const out = await Promise.all([1, 2, 3, 4, 5, 6].map((x) => b.submit(x, 1)));
    expect(out.map((o) => o.value)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(runs).toEqual([[1, 2, 3, 4], [5, 6]]);
    expect(out[0]!.batch).toBe(4);
    expect(b.stats()).toMatchObject({ batches: 2, requests: 6, rows: 6, avgBatchSize: 3, maxBatchSeen: 4 });
  });

  it('counts rows: a pre-batched request fills the batch; one larger than max runs alone', async () => {
    const runs: number[] = [];
    const b = new DynamicBatcher<string, string>(async (xs, rows) => {
      runs.push(rows);
      return xs;
    }, { maxBatchSize: 8 });
    await Promise.all([b.submit('a', 6), b.submit('b', 3), b.submit('c', 20), b.submit('d', 2)]);
    // 6 goes alone (6+3 > 8); then 3 and 2 share a run; 20 (over max) runs by itself.
    expect(runs).toEqual([6, 5, 20]);
  });

  it('waits up to maxQueueDelayMs only when a full batch cannot be formed', async () => {
    const runs: number[][] = [];
    const clock = new VirtualClock(1000);
    const b = new DynamicBatcher<number, number>(async (xs) => (runs.push(xs), xs), { maxBatchSize: 3, maxQueueDelayMs: 40, clock });
    const first = b.submit(1, 1);
    clock.advance(5);
    await tick();
    expect(runs).toEqual([]); // not full: waiting
    const second = b.submit(2, 1);
    clock.advance(34); // 39 ms after the oldest arrived: still waiting for a fuller batch
    await tick();
    expect(runs).toEqual([]);
    clock.advance(1); // the oldest's delay runs out
    await tick();
    await Promise.all([first, second]);
    expect(runs).toEqual([[1, 2]]); // dispatched when the oldest's delay ran out
    await Promise.all([b.submit(3, 1), b.submit(4, 1), b.submit(5, 1)]);
    expect(runs[1]).toEqual([3, 4, 5]); // a full batch goes at once
  });

  it('batches only requests with the same shape key; refuses past its queue bound', async () => {
    const runs: string[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new DynamicBatcher<string, string>(async (xs) => {
      runs.push(xs);
      await gate;
      return xs;
    }, { maxBatchSize: 4, maxQueueRows: 5, onFull: () => new Error('full') });
    const p = [b.submit('a1', 1, 'a'), b.submit('b1', 1, 'b'), b.submit('a2', 1, 'a')];
    await tick();
    const q = [b.submit('x', 1, 'a'), b.submit('y', 1, 'b'), b.submit('z', 1, 'a'), b.submit('w', 1, 'a')];
    await expect(b.submit('over', 1, 'a')).rejects.toThrow('full');
    release();
    await Promise.all([...p, ...q]);
    expect(runs[0]).toEqual(['a1', 'a2']);
    expect(runs.flat().sort()).toEqual(['a1', 'a2', 'b1', 'w', 'x', 'y', 'z']);
    for (const r of runs) expect(new Set(r.map((x) => (['a1', 'a2', 'x', 'z', 'w'].includes(x) ? 'a' : 'b'))).size).toBe(1);
  });

  it('a failed run fails only its own batch', async () => {
    let n = 0;
    const b = new DynamicBatcher<number, number>(async (xs) => {
      if (n++ === 0) throw new Error('boom');
      return xs;
    }, { maxBatchSize: 2 });
    const r = await Promise.allSettled([b.submit(1, 1), b.submit(2, 1), b.submit(3, 1)]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
  });
});

describe('canary routing and judging', () => {
  const dep = (weight: number, sticky = false, state: 'ready' | 'starting' = 'ready'): Deployment => ({
    model: 'm',
    stable: { version: 1, service: 's1', replicas: 1, state: 'ready', maxBatchSize: 8, maxQueueDelayMs: 0, since: 0 },
    canary: { version: 2, service: 's2', replicas: 1, state, maxBatchSize: 8, maxQueueDelayMs: 0, since: 0, weight, sticky },
    policy: { ...DEFAULT_POLICY, minRequests: 10 },
    history: [],
    updatedAt: 0,
  });

  it('splits by weight, never routes to a canary that is not ready, sticks by key', () => {
    let seed = 1;
    const rand = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const n = 20_000;
    const share = Array.from({ length: n }, () => pickTrack(dep(0.2), undefined, rand)).filter((r) => r === 'canary').length / n;
    expect(share).toBeGreaterThan(0.18);
    expect(share).toBeLessThan(0.22);
    expect(Array.from({ length: 100 }, () => pickTrack(dep(1, false, 'starting'), undefined)).every((r) => r === 'stable')).toBe(true);
    for (const key of ['a', 'b', 'c', 'd']) expect(new Set(Array.from({ length: 20 }, () => pickTrack(dep(0.5, true), key))).size).toBe(1);
    const keyed = Array.from({ length: 4000 }, (_, i) => pickTrack(dep(0.3, true), `user-${i}`)).filter((r) => r === 'canary').length / 4000;
    expect(keyed).toBeGreaterThan(0.25);
    expect(keyed).toBeLessThan(0.35);
  });

  it('calls for a rollback on error rate or p99 against stable, not before enough requests', () => {
    let now = 1000;
    const m = new CanaryMonitor(() => now);
    const d = dep(0.5);
    for (let i = 0; i < 50; i++) m.record('m', 1, true, 2);
    for (let i = 0; i < 5; i++) m.record('m', 2, false, 2);
    expect(m.judge(d)?.rollback).toBe(false); // 5 < minRequests
    for (let i = 0; i < 10; i++) m.record('m', 2, true, 2);
    const v = m.judge(d)!;
    expect(v.rollback).toBe(true);
    expect(v.reason).toMatch(/error rate 33\.3%/);
    const slow = new CanaryMonitor(() => now);
    for (let i = 0; i < 100; i++) slow.record('m', 1, true, 3);
    for (let i = 0; i < 50; i++) slow.record('m', 2, true, i < 45 ? 3 : 80);
    // 50 canary requests: enough for the error rate, not for a p99 (minLatencyRequests 100).
    expect(slow.judge(d)?.rollback).toBe(false);
    for (let i = 0; i < 50; i++) slow.record('m', 2, true, i < 45 ? 3 : 80);
    // p99 comes from a latency histogram (5% buckets, read at the bucket's upper bound).
    const verdict = slow.judge(d)!;
    expect(verdict.rollback).toBe(true);
    expect(Number(/canary p99 ([\d.]+) ms/.exec(verdict.reason ?? '')?.[1])).toBeGreaterThanOrEqual(80);
    expect(Number(/canary p99 ([\d.]+) ms/.exec(verdict.reason ?? '')?.[1])).toBeLessThanOrEqual(84);
    // Tallies from several gateways add up: 6 failures here + 6 there pass minRequests (10).
    const merged = new CanaryMonitor(() => now);
    const tallies = [new OutcomeTally(), new OutcomeTally()];
    for (const t of tallies) {
      const stable = t.recorder('m', 1);
      const canary = t.recorder('m', 2);
      for (let i = 0; i < 30; i++) stable(true, 2);
      for (let i = 0; i < 6; i++) canary(false, 2);
    }
    const alone = new CanaryMonitor(() => now);
    for (const c of tallies[0]!.take()) {
      alone.addCounts(c);
      merged.addCounts(c);
    }
    expect(alone.judge(d)?.rollback).toBe(false); // one gateway's 6 < minRequests
    for (const c of tallies[1]!.take()) merged.addCounts(c);
    expect(merged.judge(d)).toMatchObject({ rollback: true, canary: { requests: 12, errors: 12 }, stable: { requests: 60, errors: 0 } });
    expect(tallies[0]!.take()).toEqual([]); // take() starts over
    now += 120_000; // outside the window: nothing to judge
    expect(slow.judge(d)?.rollback).toBe(false);
  });
});
