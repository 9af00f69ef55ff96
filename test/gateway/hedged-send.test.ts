/**
 * The hedging policy alone (gateway/hedged-send.ts), on fake timers: `ask` stands in for NATS, so
 * when each copy goes out is decided by the timers the test advances, not by how fast this machine
 * pulls a body. The real dispatcher over a real nats-server is in test/serving/payloads.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceHealth, sendHedged, type SendOutcome } from '../../gateway/hedged-send.ts';
import type { InferJsonReply } from '../../ml/index.ts';

const reply = (actorId: string): InferJsonReply => ({ results: [{ body: new Uint8Array(1), batch: 1 }], queueRows: 0, actorId, version: 1 });

describe('sendHedged', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A send whose copies are recorded and answered only when the test says so. */
  function start(hedgeExtraMs: number) {
    const health = new ServiceHealth({ hedgeAfterMs: 50, hedgeLatencyFactor: 4, hedgeBudget: 10 });
    health.answered('replica-b');
    const copies: (string | undefined)[] = [];
    const hedges: boolean[] = [];
    const answers: ((r: InferJsonReply) => void)[] = [];
    let outcome: SendOutcome | undefined;
    void sendHedged({
      service: 'svc',
      health,
      requests: 1,
      deadline: Date.now() + 20_000,
      maxAttempts: 8,
      hedgeExtraMs,
      ask: (direct, _timeoutMs, hedge) => {
        copies.push(direct);
        hedges.push(hedge);
        return new Promise((resolve) => answers.push(resolve));
      },
    }).then((o) => (outcome = o));
    return { copies, hedges, answers, outcome: () => outcome };
  }

  it('a small message is hedged after hedgeAfterMs, straight to the replica that answered last', async () => {
    const s = start(0);
    expect(s.copies).toEqual([undefined]);
    await vi.advanceTimersByTimeAsync(49);
    expect(s.copies).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.copies).toEqual([undefined, 'replica-b']);
    // The hedge says so, so its replica answers without logging the requests the first copy logs.
    expect(s.hedges).toEqual([false, true]);
    s.answers[1]!(reply('replica-b'));
    await vi.advanceTimersByTimeAsync(0);
    expect(s.outcome()).toMatchObject({ reply: { actorId: 'replica-b' }, attempts: 2 });
  });

  it("a large message's first hedge also waits for its pull (hedgeExtraMs); an answer before then means one copy only", async () => {
    // 20 MiB at the dispatcher's 32 MB/s: 655 ms on top of the 50.
    const s = start((20 * 1024 * 1024) / 32_000);
    await vi.advanceTimersByTimeAsync(700);
    expect(s.copies).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10);
    expect(s.copies).toHaveLength(2);

    const t = start((20 * 1024 * 1024) / 32_000);
    await vi.advanceTimersByTimeAsync(600);
    t.answers[0]!(reply('replica-a'));
    await vi.advanceTimersByTimeAsync(2000);
    expect(t.copies).toHaveLength(1);
    expect(t.outcome()).toMatchObject({ reply: { actorId: 'replica-a' }, attempts: 1 });
  });
});
