/**
 * The one poll loop behind the dashboard's later topics (gateway/ui-panels.ts `polledSource`), on a
 * virtual clock: read on start, then every `pollMs` of the feed's clock only while a page is open;
 * a failed read becomes `{ error }` and the next good one replaces it; a read still going is not
 * started twice; stop ends the loop.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import { polledSource } from '../../gateway/ui-panels.ts';

const flush = () => new Promise((r) => setImmediate(r));

describe('polledSource', () => {
  it('reads on start, then on the feed clock only while watched; errors become { error }', async () => {
    const clock = new VirtualClock(0);
    let watched = false;
    let reads = 0;
    let fail = false;
    const src = polledSource({ clock, watched: () => watched }, 'demo', 1000, async () => {
      reads++;
      if (fail) throw new Error('scheduler gone');
      return { n: reads };
    });
    expect(src.topic).toBe('demo');
    await src.start!();
    expect(src.snapshot()).toEqual({ n: 1 });

    clock.advance(5000); // nobody watching: no read
    await flush();
    expect(reads).toBe(1);

    watched = true;
    clock.advance(1000);
    await flush();
    expect(src.snapshot()).toEqual({ n: 2 });

    fail = true;
    clock.advance(1000);
    await flush();
    expect(src.snapshot()).toEqual({ error: 'scheduler gone' });

    fail = false;
    clock.advance(1000);
    await flush();
    expect(src.snapshot()).toEqual({ n: 4 });

    src.stop!();
    clock.advance(10_000);
    await flush();
    expect(reads).toBe(4);
    expect(clock.pending).toBe(0);
  });

  it('does not start a read while one is still going', async () => {
    const clock = new VirtualClock(0);
    let reads = 0;
    let release: () => void = () => undefined;
    const src = polledSource({ clock, watched: () => true }, 'slow', 100, () => {
      reads++;
      return reads === 1 ? Promise.resolve('first') : new Promise((r) => (release = () => r('slow')));
    });
    await src.start!();
    clock.advance(100);
    clock.advance(100);
    clock.advance(100);
    await flush();
    expect(reads).toBe(2);
    expect(src.snapshot()).toBe('first');
    release();
    await flush();
    expect(src.snapshot()).toBe('slow');
    src.stop!();
  });
});
