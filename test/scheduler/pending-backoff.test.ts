/** The pending-actor backoff on a virtual clock: 250 ms doubling to 5 s, per actor, reset by a joining node. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import { PendingBackoff } from '../../scheduler/pending-backoff.ts';

describe('pending backoff', () => {
  it('spaces the tries of an actor that keeps failing: 250 ms, doubling, capped at 5 s', () => {
    const clock = new VirtualClock(0);
    const b = new PendingBackoff(clock);
    expect(b.due('a')).toBe(true);
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const w = b.failed('a');
      waits.push(w);
      clock.advance(w - 1);
      expect(b.due('a')).toBe(false); // not a millisecond early
      clock.advance(1);
      expect(b.due('a')).toBe(true);
    }
    expect(waits).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    // In a minute of failing, a dozen or so tries — not the hundreds of a loop.
    const c2 = new VirtualClock(0);
    const b2 = new PendingBackoff(c2);
    let tries = 0;
    while (c2.now() < 60_000) {
      if (b2.due('x')) {
        tries++;
        b2.failed('x');
      }
      c2.advance(50);
    }
    expect(tries).toBeGreaterThan(10);
    expect(tries).toBeLessThan(20);
  });

  it('is per actor, forgets a placed one, and a joining node resets everyone', () => {
    const clock = new VirtualClock(0);
    const b = new PendingBackoff(clock);
    b.failed('a');
    b.failed('a');
    expect(b.due('a')).toBe(false);
    expect(b.due('b')).toBe(true);
    b.forget('a');
    expect(b.due('a')).toBe(true);
    expect(b.failed('a')).toBe(250);
    b.failed('b');
    b.reset();
    expect(b.due('a') && b.due('b')).toBe(true);
  });
});
