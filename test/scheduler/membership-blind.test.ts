/**
 * The membership view on a real nats-server's nodes bucket, with an injected clock: when every
 * node goes quiet in the same instant (the bucket's stream stalled — a host holding its leader
 * cut off), no node is declared dead; when records flow again, each node gets a full dead-after
 * period, and only the one that stays quiet dies. One node quiet while the others are heard is
 * declared dead as before; and so is a whole fleet gone quiet when the bucket itself shows that
 * nothing was written (its last sequence is what the watch delivered).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { Role, createLogger, encode, ensureResources, resources } from '../../cluster/index.ts';
import { MembershipView, type NodeAnswer } from '../../scheduler/membership-view.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const DEAD = 1000;

describe('membership view: a stalled nodes bucket is not a dead fleet', () => {
  let nats: TestNats;
  let kvm: Kvm;
  const views: MembershipView[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    const nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
    kvm = new Kvm(nc);
  });

  afterAll(async () => {
    for (const v of views) v.stop();
    await nats?.stop();
  });

  /** A view over its own bucket (node ids `<p>-n1`…, as the scheduler's nodes bucket holds them), on a clock the test moves by hand. */
  async function fixture(p: string, lastSeq?: () => Promise<number>, askNodes?: () => Promise<NodeAnswer[]>) {
    const kv: KV = await kvm.create(`${resources().buckets.nodes}-${p}`, { history: 1 });
    const clock = { t: 0 };
    const view = new MembershipView(kv, DEAD, createLogger({ level: 'silent' }), { now: () => clock.t, ...(lastSeq ? { lastSeq } : {}), ...(askNodes ? { askNodes } : {}) });
    views.push(view);
    await view.start();
    const dead: string[] = [];
    view.onDead((id) => dead.push(id));
    const seen = new Map<string, number>();
    /** Writes one heartbeat per node and waits until the view has applied each (at the clock's time). */
    const heartbeat = async (...ids: string[]) => {
      for (const id of ids) {
        const nodeId = `${p}-${id}`;
        seen.set(nodeId, (seen.get(nodeId) ?? 0) + 1);
        await kv.put(nodeId, encode({ nodeId, profile: 'cpu', host: 'h', pid: 1, state: 'running', labels: {}, capabilities: {}, load: { beat: seen.get(nodeId) }, startedAt: 0, incarnation: `i-${nodeId}`, heartbeatAt: seen.get(nodeId), heartbeatMs: 100 }));
        await until(() => ((view.view().find((n) => n.nodeId === nodeId)?.load as { beat?: number } | undefined)?.beat === seen.get(nodeId) ? true : undefined), 10_000, `${nodeId} applied`, 5);
      }
    };
    return { clock, view, dead, heartbeat, id: (s: string) => `${p}-${s}` };
  }

  it('all nodes quiet at once while the bucket holds records the watch has not delivered: nobody dies; records flow again: only the node that stays quiet dies, a full period later', async () => {
    // The bucket's answer: a last sequence past what the watch delivered (a stalled consumer).
    const f = await fixture('stall', () => Promise.resolve(1_000_000));
    await f.heartbeat('n1', 'n2', 'n3');
    // The bucket stalls for two dead-after periods: nobody is declared dead, and all count as alive.
    f.clock.t = 2 * DEAD;
    f.view.sweep();
    expect(f.view.blind()).toBe(true);
    expect(f.dead).toEqual([]);
    expect(['n1', 'n2', 'n3'].map((n) => f.view.isAlive(f.id(n)))).toEqual([true, true, true]);
    // Records flow again, from n1 and n2 only (n3's host is the one cut off).
    await f.heartbeat('n1', 'n2');
    expect(f.view.blind()).toBe(false);
    // n1 and n2 go on heartbeating (more often than every half period, as nodes do).
    for (const t of [2 * DEAD + 400, 2 * DEAD + 800]) {
      f.clock.t = t;
      await f.heartbeat('n1', 'n2');
    }
    f.clock.t = 3 * DEAD;
    f.view.sweep();
    expect(f.dead).toEqual([]); // n3 has had exactly one period since records came back
    f.clock.t = 3 * DEAD + 1;
    f.view.sweep();
    expect(f.dead).toEqual([f.id('n3')]);
    expect(f.view.isAlive(f.id('n1'))).toBe(true);
  });

  it('one node quiet while the others are heard is declared dead after the period, as before', async () => {
    const f = await fixture('one');
    await f.heartbeat('n1', 'n2', 'n3');
    for (const t of [300, 600, 900]) {
      f.clock.t = t;
      await f.heartbeat('n1', 'n2');
      f.view.sweep();
    }
    f.clock.t = DEAD + 1;
    f.view.sweep();
    expect(f.view.blind()).toBe(false);
    expect(f.dead).toEqual([f.id('n3')]);
  });

  it('a whole fleet quiet while the bucket shows nothing new was written is declared dead; an unanswering bucket keeps the view blind; a single node is never "blind"', async () => {
    const f = await fixture('gone');
    await f.heartbeat('n1', 'n2');
    f.clock.t = DEAD + 1;
    f.view.sweep(); // asks the (real) bucket; until it answers the view holds back
    await until(() => {
      f.view.sweep();
      return f.dead.length === 2 ? true : undefined;
    }, 10_000, 'both nodes declared dead once the bucket answered');
    expect(f.dead.sort()).toEqual([f.id('n1'), f.id('n2')]);

    let asked = 0;
    const down = await fixture('down', () => (asked++, Promise.reject(new Error('timeout'))));
    await down.heartbeat('n1', 'n2');
    down.clock.t = 10 * DEAD;
    down.view.sweep();
    // The bucket is asked again only once its first "no answer" has been taken in, and a quarter
    // period after it: a second ask is the event that the view has judged on that answer.
    await until(() => {
      down.clock.t += DEAD / 4 + 1;
      down.view.sweep();
      return asked >= 2 ? true : undefined;
    }, 10_000, 'the bucket asked a second time');
    down.view.sweep();
    expect(down.dead).toEqual([]);
    expect(down.view.blind()).toBe(true);

    const g = await fixture('single');
    await g.heartbeat('n1');
    g.clock.t = DEAD + 1;
    g.view.sweep();
    expect(g.dead).toEqual([g.id('n1')]);
  });

  it('the bucket stalled: the nodes that answer a roll call over core NATS stay alive, the one cut off dies on time, an answer from another incarnation vouches for no one, and no answer at all keeps the view blind', async () => {
    const calls: number[] = [];
    let answers: NodeAnswer[] = [];
    const f = await fixture('roll', () => Promise.resolve(1_000_000), async () => (calls.push(0), answers));
    answers = [{ nodeId: f.id('n1'), incarnation: `i-${f.id('n1')}` }, { nodeId: f.id('n2') }, { nodeId: f.id('n4'), incarnation: 'x' }];
    await f.heartbeat('n1', 'n2', 'n3');
    f.clock.t = DEAD / 2 + 1;
    f.view.sweep();
    // The roll call's answers are taken in: the view is no longer blind, and it judges n3 by its last record.
    await until(() => (f.view.blind() ? undefined : true), 10_000, 'the roll call answered');
    // The stalled bucket lets one record through (a burst): n3 keeps its count — the roll call
    // was answered during the spell, so the spell is no reason for a fresh period.
    f.clock.t = 0.8 * DEAD;
    await f.heartbeat('n1');
    f.clock.t = DEAD;
    f.view.sweep();
    expect(f.dead).toEqual([]);
    f.clock.t = DEAD + 1;
    f.view.sweep();
    expect(f.dead).toEqual([f.id('n3')]);
    expect([f.view.isAlive(f.id('n1')), f.view.isAlive(f.id('n2'))]).toEqual([true, true]);
    // Still no record: n2 now answers as another process (it restarted; its record has not come
    // through), so only n1 is vouched for and n2 is judged by its last vouched time.
    answers = [{ nodeId: f.id('n1'), incarnation: `i-${f.id('n1')}` }, { nodeId: f.id('n2'), incarnation: 'new-boot' }];
    const asked = calls.length;
    f.clock.t = DEAD + DEAD / 2 + 2;
    f.view.sweep();
    await until(() => (calls.length > asked ? true : undefined), 10_000, 'a second roll call');
    await until(() => {
      f.clock.t += 50;
      f.view.sweep();
      return f.dead.length === 2 ? true : undefined;
    }, 10_000, 'n2 declared dead');
    expect(f.dead).toEqual([f.id('n3'), f.id('n2')]);
    expect(f.view.isAlive(f.id('n1'))).toBe(true);

    // Nobody answers and the bucket does not either: this process may be the one cut off.
    const g = await fixture('alone', () => Promise.reject(new Error('timeout')), async () => []);
    await g.heartbeat('n1', 'n2');
    g.clock.t = 10 * DEAD;
    for (let i = 0; i < 3; i++) {
      g.view.sweep();
      await new Promise((r) => setImmediate(r));
      g.clock.t += DEAD / 4 + 1;
    }
    g.view.sweep();
    expect(g.dead).toEqual([]);
    expect(g.view.blind()).toBe(true);
  });
});
