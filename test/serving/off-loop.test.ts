/**
 * Compute never blocks a node (issue #13, item 4), with real processes: a replica whose single
 * run lasts longer than `membership.deadAfterMs` runs it on a session worker thread, so while it
 * runs its node keeps heartbeating (the scheduler never declares it dead) and another actor on
 * the same node keeps answering. onnxruntime-node runs `session.run` on the calling thread: on
 * the node's event loop, the same run would have silenced the node for its whole length.
 *
 * Nothing here reads the clock to decide: the run's length shows as heartbeats — the node's
 * beats on core NATS, published every `heartbeatMs` — counted while the replica reports the
 * batch in flight; more of them than `deadAfterMs / heartbeatMs` means the run outlasted the
 * dead-after window with the node beating all along.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role, subjects, decode, type NatsConnection } from '../../cluster/index.ts';
import type { InferReply, ItemOk, ReplicaStats } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';
import { until } from '../harness/wait.ts';
import { slowModel } from '../fixtures/onnx-real.ts';

const HEARTBEAT_MS = 100;
const DEAD_AFTER_MS = 800;
const ARGS = ['--membership.heartbeatMs', String(HEARTBEAT_MS), '--membership.deadAfterMs', String(DEAD_AFTER_MS), '--actors.modules', '["ml/serving/actors.ts", "test/fixtures/actors.ts"]'];
const NODE = 'node-x';
const s = subjects();

describe('inference off the event loop (real processes, real onnxruntime)', () => {
  let c: TestCluster;
  let sched: NatsConnection;

  beforeAll(async () => {
    c = await startCluster({ args: ARGS, nodes: [{ id: NODE, profile: 'cpu-ondemand' }] });
    sched = await c.nats.connect(Role.SCHEDULER);
  }, 90_000);

  afterAll(async () => {
    await c?.stop();
  });

  it('a run longer than deadAfterMs: the node keeps heartbeating, is never declared dead, and another actor on it keeps answering', async () => {
    // About 2·1024³·120 ≈ 260 GFLOP a run whatever the batch: seconds on one core, many times deadAfterMs.
    await c.control.register('slow', slowModel({ dim: 1024, depth: 120 }));
    // No warm-up: a run is the slow part, and it is what the test makes once, on purpose.
    await c.control.deploy('slow', { replicas: 1, warmup: 'off', instances: 1, intraOpThreads: 1, readyTimeoutMs: 60_000 });
    await c.actors.spawn({ type: 'echo', id: 'echo-x' });
    expect(await c.actors.ref('echo-x').ask<{ nodeId: string }>({ type: 'where' })).toMatchObject({ nodeId: NODE });
    const replica = c.actors.ref('model-slow-v1-1');
    expect(await replica.ask<ReplicaStats>({ type: 'stats' })).toMatchObject({ nodeId: NODE, instances: 1, inflight: 0 });

    // Every node-dead event, and every heartbeat of the node, from now on.
    const dead: unknown[] = [];
    const deadSub = c.client.subscribe(s.event('node-dead'), { callback: (_e, m) => void dead.push(decode(m.data)) });
    let beats = 0;
    const watch = sched.subscribe(s.nodeBeat(NODE), { callback: (err) => void (err || beats++) });

    const x = Float32Array.from({ length: 8 }, (_, i) => i + 1);
    let settled = false;
    const run = replica
      .ask<InferReply>({ type: 'infer', items: [{ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: new Uint8Array(x.buffer) }] }] }, { timeoutMs: 180_000 })
      .finally(() => (settled = true));

    // The replica itself answers while its batch runs: it says so.
    await until(async () => ((await replica.ask<ReplicaStats>({ type: 'stats' }, { timeoutMs: 5000 })).inflight === 1 ? true : undefined), 30_000, 'the replica reporting its batch in flight');
    const beatsAtStart = beats;
    let echoes = 0;
    let echoesWhileRunning = 0;
    let beatsWhileRunning = 0;
    while (!settled) {
      const r = await c.actors.ref('echo-x').ask<{ text: string; nodeId: string }>({ type: 'echo', text: `ping ${echoes}` }, { timeoutMs: 5000 });
      expect(r).toMatchObject({ text: `ping ${echoes}`, nodeId: NODE });
      echoes++;
      // Counted only while the replica still says the batch is in flight.
      const st = await replica.ask<ReplicaStats>({ type: 'stats' }, { timeoutMs: 5000 });
      if (st.inflight === 1) {
        echoesWhileRunning = echoes;
        beatsWhileRunning = beats - beatsAtStart;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const reply = await run;
    deadSub.unsubscribe();
    watch.unsubscribe();

    // The answer is right (Y = each row's sum) …
    const out = (reply.results[0] as ItemOk).outputs[0]!;
    expect(out.shape).toEqual([1, 1]);
    expect(new Float32Array(out.data.buffer.slice(out.data.byteOffset, out.data.byteOffset + 4))[0]).toBe(36);
    // … the run outlasted the dead-after window, with the node beating through it …
    expect(beatsWhileRunning).toBeGreaterThan(DEAD_AFTER_MS / HEARTBEAT_MS);
    // … the other actor on the node answered all along …
    expect(echoesWhileRunning).toBeGreaterThan(1);
    // … and nobody declared the node dead.
    expect(dead).toEqual([]);
    const st = await c.status();
    expect(st.nodes.find((n) => n.nodeId === NODE)).toMatchObject({ alive: true });
  }, 240_000);

  it('instances: N sessions per replica run N batches at once, each on its own worker', async () => {
    await c.control.register('slow2', slowModel({ dim: 1024, depth: 40 }));
    // One request per batch, so two requests are two batches; two sessions run them together.
    const d = await c.control.deploy('slow2', { replicas: 1, warmup: 'off', instances: 2, intraOpThreads: 1, maxBatchSize: 1, readyTimeoutMs: 60_000 });
    expect(d.stable.serving).toMatchObject({ instances: 2, intraOpThreads: 1 });
    const replica = c.actors.ref('model-slow2-v1-1');
    const ask = (v: number) =>
      replica.ask<InferReply>({ type: 'infer', items: [{ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 8], data: new Uint8Array(Float32Array.from({ length: 8 }, () => v).buffer) }] }] }, { timeoutMs: 180_000 });
    let done = 0;
    const runs = [ask(1), ask(2)].map((p) => p.finally(() => done++));
    let most = 0;
    while (done === 0) {
      // Two batches in flight could also be one running and one queued on the same session: count the sessions.
      most = Math.max(most, (await replica.ask<ReplicaStats>({ type: 'stats' }, { timeoutMs: 5000 })).busySessions);
      await new Promise((r) => setTimeout(r, 20));
    }
    const replies = await Promise.all(runs);
    expect(most).toBe(2);
    const y = (r: InferReply) => {
      const o = (r.results[0] as ItemOk).outputs[0]!;
      return new Float32Array(o.data.buffer.slice(o.data.byteOffset, o.data.byteOffset + 4))[0];
    };
    expect(replies.map(y)).toEqual([8, 16]);
    expect(await replica.ask<ReplicaStats>({ type: 'stats' })).toMatchObject({ batches: 2, requests: 2, instances: 2, inflight: 0 });
  }, 240_000);
});
