/**
 * Liveness over core NATS: nodes beat on `<prefix>.node.<id>.beat` (as their own NATS users, with
 * the node role's permissions) and write their record to the nodes bucket only when it changes
 * (cluster/heartbeat.ts). The scheduler's view (injected clock) keeps a beating node alive with no
 * new record, takes state and load from its beats, ignores beats it cannot vouch for, and keeps
 * the newer of a beat and a record that crossed on the way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import { NodeHeartbeat, RECORD_EVERY_BEATS, Role, createLogger, encode, ensureResources, openBucket, resources, subjects, type NatsConnection, type NodeRecord } from '../../cluster/index.ts';
import { MembershipView } from '../../scheduler/membership-view.ts';
import { nodeRecord } from '../fixtures/node-record.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const DEAD = 1000;
const s = subjects();

describe('membership over core NATS beats', () => {
  let nats: TestNats;
  let sched: NatsConnection;
  let kv: KV;
  const views: MembershipView[] = [];

  beforeAll(async () => {
    nats = await startTestNats();
    sched = await nats.connect(Role.SCHEDULER);
    await ensureResources(sched);
    kv = await openBucket(sched, resources().buckets.nodes);
  });

  afterAll(async () => {
    for (const v of views) v.stop();
    await nats?.stop();
  });

  async function view() {
    const clock = { t: 0 };
    const v = new MembershipView(kv, DEAD, createLogger({ level: 'silent' }), {
      now: () => clock.t,
      beats: (onBeat) => {
        const sub = sched.subscribe(s.nodeBeatAll, { callback: (err, m) => void (err || onBeat(m.subject.split('.').at(-2)!, m.data)) });
        return () => sub.unsubscribe();
      },
    });
    views.push(v);
    await v.start();
    const dead: string[] = [];
    v.onDead((id) => dead.push(id));
    return { clock, v, dead };
  }

  /** A node on its own NATS user: its record and its beats, through the same NodeHeartbeat the agents use. */
  async function node(nodeId: string) {
    const nc = await nats.connect(Role.NODE, { nodeId });
    const hb = new NodeHeartbeat(nc, s, await openBucket(nc, resources().buckets.nodes), nodeId);
    let n = 0;
    const record = (over: Partial<NodeRecord> = {}): NodeRecord => nodeRecord(nodeId, ++n, over);
    return { id: nodeId, nc, hb, record, seq: () => n };
  }

  const processed = (v: MembershipView, id: string) => v.view().find((x) => x.nodeId === id)?.load.processed;

  it('a node that only beats stays alive with no new record, and its load comes from the beats; one that stops beating dies on time', async () => {
    const { clock, v, dead } = await view();
    const a = await node('beat-a');
    const b = await node('beat-b');
    const puts = { a: 0, b: 0 };
    for (const x of [a, b]) {
      await x.hb.put(x.record());
    }
    await until(() => (processed(v, 'beat-a') && processed(v, 'beat-b') ? true : undefined), 10_000, 'both records seen');
    // Beats every 300 ms of the view's clock, for 3 dead-after periods; b stops after the first period.
    for (let t = 300; t <= 3 * DEAD; t += 300) {
      clock.t = t;
      const beating = t <= DEAD ? [a, b] : [a];
      for (const x of beating) {
        const r = x.hb.beat(x.record());
        if (r.record === 'put') {
          await r.done;
          puts[x === a ? 'a' : 'b']++;
        }
      }
      await until(() => (beating.every((x) => processed(v, x.id) === x.seq()) ? true : undefined), 10_000, `beats at ${t} applied`, 5);
      v.sweep();
    }
    // Ten beats of a, no record due (fewer than RECORD_EVERY_BEATS beats, nothing changed but load).
    expect(RECORD_EVERY_BEATS).toBeGreaterThan(10);
    expect(puts.a).toBe(0);
    expect(v.isAlive('beat-a')).toBe(true);
    expect(processed(v, 'beat-a')).toBe(a.seq());
    expect(dead.filter((id) => id.startsWith('beat-'))).toEqual(['beat-b']);
  });

  it('a state change writes the record at once; an older record arriving after newer beats does not roll the state back', async () => {
    const { clock, v } = await view();
    const c = await node('beat-c');
    await c.hb.put(c.record());
    await until(() => (processed(v, 'beat-c') ? true : undefined), 10_000, 'record seen');
    clock.t = 100;
    expect(c.hb.beat(c.record()).record).toBe('none');
    const r = c.hb.beat(c.record({ state: 'draining' }));
    expect(r.record).toBe('put');
    if (r.record === 'put') await r.done;
    await until(() => (v.view().find((x) => x.nodeId === 'beat-c')?.state === 'draining' ? true : undefined), 10_000, 'draining seen');
    // A record written before those beats (heartbeatAt 1) lands late: state and load stay the beats'.
    const beatsAt = c.seq();
    await kv.put('beat-c', encode(c.record({ heartbeatAt: 1, state: 'running', labels: { pool: 'cpu', zone: 'late', spot: false, pricePerHour: 0.1 } })));
    await until(() => (v.view().find((x) => x.nodeId === 'beat-c')?.labels.zone === 'late' ? true : undefined), 10_000, 'late record applied');
    const seen = v.view().find((x) => x.nodeId === 'beat-c')!;
    expect(seen.state).toBe('draining');
    expect(seen.load.processed).toBe(beatsAt);
  });

  it('beats it cannot vouch for are ignored: another incarnation, no record yet, or a beat naming another node', async () => {
    const { clock, v, dead } = await view();
    const d = await node('beat-d');
    const e = await node('beat-e');
    await d.hb.put(d.record());
    await e.hb.put(e.record());
    await until(() => (processed(v, 'beat-d') && processed(v, 'beat-e') ? true : undefined), 10_000, 'records seen');
    const f = await node('beat-f'); // never writes a record
    for (let t = 300; t <= DEAD + 300; t += 300) {
      clock.t = t;
      e.hb.beat(e.record());
      // d's beats name a process the view does not know (its record says i-beat-d).
      d.nc.publish(s.nodeBeat('beat-d'), encode({ nodeId: 'beat-d', incarnation: 'someone-else', state: 'running', load: d.record().load, heartbeatAt: t }));
      // f speaks for d on its own subject (the only one it may publish on).
      f.nc.publish(s.nodeBeat('beat-f'), encode({ nodeId: 'beat-d', incarnation: 'i-beat-d', state: 'running', load: d.record().load, heartbeatAt: t }));
      // f beats for itself, but has written no record: the view knows nothing it could vouch for.
      f.nc.publish(s.nodeBeat('beat-f'), encode({ nodeId: 'beat-f', incarnation: 'i-beat-f', state: 'running', load: f.record().load, heartbeatAt: t }));
      await until(() => (processed(v, 'beat-e') === e.seq() ? true : undefined), 10_000, `e's beat at ${t}`, 5);
      v.sweep();
    }
    expect(dead.filter((id) => ['beat-d', 'beat-e', 'beat-f'].includes(id))).toEqual(['beat-d']);
    expect(v.isKnown('beat-f')).toBe(false);
    expect(v.isAlive('beat-e')).toBe(true);
  });
});
