/**
 * The gateway's activator (gateway/activator.ts) against a real nats-server, with the leader's
 * controller played by a responder on the wake subject: the bound, the release (by wake reply or
 * by the record), the hold deadline with the wake's failure as its reason. Waits on promises, not
 * on time.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, createLogger, encode, errorHeaders, subjects, type NatsConnection } from '../../cluster/index.ts';
import { Activator } from '../../gateway/activator.ts';
import { createMetrics } from '../../gateway/metrics.ts';
import type { RoutingTable } from '../../gateway/routing-table.ts';
import { MlErrors, WAKE_SERVICE, type Deployment } from '../../ml/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const s = subjects();
const log = createLogger({ level: 'silent', pretty: false });

function deployment(model: string, zero: boolean, hold = { holdTimeoutMs: 30_000, maxHeld: 3 }): Deployment {
  return {
    model,
    stable: {
      version: 1,
      service: `model-${model}-v1`,
      replicas: 1,
      state: 'ready',
      maxBatchSize: 32,
      maxQueueDelayMs: 0,
      since: 0,
      scaleToZero: { idleTimeoutMs: 1000, prewarm: true, ...hold },
      ...(zero ? { zero: { since: 0, spec: { type: 'shoal-inference' } } } : {}),
    },
    policy: { auto: true, maxErrorRateDelta: 0.05, maxP99Ratio: 2, minP99DeltaMs: 25, minRequests: 20, windowMs: 60_000 },
    history: [],
    updatedAt: 0,
  };
}

/** The routing table's part the activator reads: deployments and their change listeners. */
function fakeRouting() {
  const deployments = new Map<string, Deployment>();
  const listeners: ((name: string) => void)[] = [];
  const routing = { deployments, onDeploymentChange: (fn: (n: string) => void) => listeners.push(fn), versionOf: () => 1 } as unknown as RoutingTable;
  return { routing, set: (d: Deployment) => (deployments.set(d.model, d), listeners.forEach((l) => l(d.model))) };
}

describe('activator', () => {
  let nats: TestNats;
  let gw: NatsConnection;
  let leader: NatsConnection;
  beforeAll(async () => {
    nats = await startTestNats();
    gw = await nats.connect(Role.GATEWAY);
    leader = await nats.connect(Role.SCHEDULER);
  });
  afterAll(async () => nats?.stop());

  it('holds up to maxHeld, refuses one more at once, releases all on the wake reply and records the cold start', async () => {
    const { routing, set } = fakeRouting();
    const metrics = createMetrics();
    const a = new Activator({ nc: gw, subjects: s, routing, metrics, log });
    set(deployment('m', true));
    const wakes: { respond: (d: Uint8Array) => boolean }[] = [];
    const sub = leader.subscribe(s.service(WAKE_SERVICE), { callback: (_e, m) => void wakes.push(m) });
    await leader.flush();
    const held = [a.admit('m', undefined)!, a.admit('m', undefined)!, a.admit('m', undefined)!];
    const refused = await a.admit('m', undefined)!.catch((e: unknown) => e);
    expect(MlErrors.COLD_QUEUE_FULL.is(refused)).toBe(true);
    expect(a.held('m')).toBe(3);
    await until(() => (wakes.length === 1 ? true : undefined), 5000, 'one wake for three held requests');
    wakes[0]!.respond(encode({ model: 'm', version: 1, started: true, coldStartSeconds: 0.1 }));
    await Promise.all(held);
    expect(a.held('m')).toBe(0);
    expect(wakes).toHaveLength(1);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/shoal_model_cold_start_seconds_count\{model="m",version="1"\} 1/);
    expect(text).toMatch(/shoal_model_cold_requests_total\{model="m",outcome="released"\} 3/);
    expect(text).toMatch(/shoal_model_cold_requests_total\{model="m",outcome="queue-full"\} 1/);
    sub.unsubscribe();
  });

  it('releases on the record without its zero mark (another gateway woke it); passes requests through when not at zero', async () => {
    const { routing, set } = fakeRouting();
    const a = new Activator({ nc: gw, subjects: s, routing, metrics: createMetrics(), log });
    set(deployment('n', false));
    expect(a.admit('n', undefined)).toBeUndefined();
    set(deployment('n', true));
    const sub = leader.subscribe(s.service(WAKE_SERVICE), { callback: () => undefined }); // never answers
    await leader.flush();
    const p = a.admit('n', undefined)!;
    set(deployment('n', false));
    await p;
    expect(a.held('n')).toBe(0);
    sub.unsubscribe();
  });

  it('past the hold deadline: SHOAL_ERR_COLD_START_TIMEOUT naming why the wake failed', async () => {
    const { routing, set } = fakeRouting();
    const a = new Activator({ nc: gw, subjects: s, routing, metrics: createMetrics(), log });
    set(deployment('o', true, { holdTimeoutMs: 300, maxHeld: 3 }));
    const sub = leader.subscribe(s.service(WAKE_SERVICE), { callback: (_e, m) => void m.respond(new Uint8Array(), { headers: errorHeaders(new Error("no node fits")) }) });
    await leader.flush();
    const err = (await a.admit('o', undefined)!.catch((e: unknown) => e)) as Error;
    expect(MlErrors.COLD_START_TIMEOUT.is(err)).toBe(true);
    expect(err.message).toMatch(/^o is scaled to zero and no replica served within the 300 ms hold: .*no node fits/);
    sub.unsubscribe();
  });
});
