/**
 * startLeading (scheduler/leader.ts): the lease holder's start is tried again until it works,
 * for as long as the lease is held — the fix for a scheduler that took the lease after a
 * failover, failed to start leading while JetStream re-elected, and then held the lease without
 * serving `shoal.sched.status` (seen in the netns leader-host test).
 */
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../cluster/index.ts';
import { startLeading } from '../../scheduler/leader.ts';

function recorder() {
  const errors: { attempt: number; msg: string }[] = [];
  const log = { error: (o: { attempt: number }, msg: string) => void errors.push({ attempt: o.attempt, msg }) } as unknown as Logger;
  const waits: number[] = [];
  const wait = async (ms: number) => void waits.push(ms);
  return { errors, log, waits, wait };
}

describe('startLeading', () => {
  it('tries a failing start again with a growing back-off until it works', async () => {
    const r = recorder();
    let calls = 0;
    const stop = await startLeading({
      start: async () => {
        if (++calls < 4) throw new Error('JetStream system temporarily unavailable');
        return 'leading';
      },
      holding: () => true,
      log: r.log,
      wait: r.wait,
    });
    expect(stop).toBe('leading');
    expect(calls).toBe(4);
    expect(r.waits).toEqual([500, 1000, 2000]);
    expect(r.errors.map((e) => e.attempt)).toEqual([1, 2, 3]);
  });

  it('the back-off stops growing at 5 s', async () => {
    const r = recorder();
    let calls = 0;
    await startLeading({
      start: async () => {
        if (++calls < 8) throw new Error('timeout');
        return true;
      },
      holding: () => true,
      log: r.log,
      wait: r.wait,
    });
    expect(r.waits).toEqual([500, 1000, 2000, 4000, 5000, 5000, 5000]);
  });

  it('gives up once the lease is no longer held, and never starts without it', async () => {
    const r = recorder();
    let held = true;
    let calls = 0;
    const out = await startLeading({
      start: async () => {
        calls++;
        held = false; // the lease lapses while this start fails
        throw new Error('timeout');
      },
      holding: () => held,
      log: r.log,
      wait: r.wait,
    });
    expect(out).toBeUndefined();
    expect(calls).toBe(1);
    expect(await startLeading({ start: async () => 'x', holding: () => false, log: r.log, wait: r.wait })).toBeUndefined();
  });
});
