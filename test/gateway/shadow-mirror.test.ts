/**
 * The gateway's shadow mirroring policy alone (gateway/shadow-mirror.ts): the dispatcher is a
 * fake whose answers the test releases, so what is in flight is decided by the test. `offer`
 * returns before the shadow answers (the caller never waits), only `fraction` of requests are
 * mirrored, at most `maxInflight` at once (the rest dropped and counted), a failing or
 * mis-shaped shadow counts as an error and never throws, and the report carries the comparison.
 * The real path (replicas, gateway, controller) is in test/e2e/pipeline-shadow.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { createLogger, decode, subjects, type NatsConnection } from '../../cluster/index.ts';
import type { JsonItem, ShadowReportMsg } from '../../ml/index.ts';
import { ShadowMirror } from '../../gateway/shadow-mirror.ts';
import type { DispatchResult } from '../../gateway/dispatcher.ts';
import type { ShadowTarget } from '../../gateway/routing-table.ts';

const enc = (v: unknown) => Buffer.from(JSON.stringify(v));
const oip = (data: number[]) => enc({ model_name: 'm', model_version: '2', outputs: [{ name: 'Y', datatype: 'FP32', shape: [data.length, 1], data }] });
const item: JsonItem = { format: 'oip', body: enc({ inputs: [] }), requestId: 'req-1', tenant: 'acme' };
const shadow: ShadowTarget = { model: 'm', version: 2, service: 'model-m-v2', maxBatchSize: 32, fraction: 1, since: 1000 };

function setup(o: { maxInflight?: number; random?: () => number } = {}) {
  const published: { subject: string; msg: ShadowReportMsg }[] = [];
  const nc = { isClosed: () => false, publish: (subject: string, data: Uint8Array) => void published.push({ subject, msg: decode(data) as ShadowReportMsg }) } as unknown as NatsConnection;
  const calls: { service: string; item: JsonItem; answer: (r: DispatchResult | Error) => void }[] = [];
  const dispatcher = {
    infer: (service: string, _max: number, it: JsonItem) =>
      new Promise<DispatchResult>((resolve, reject) => calls.push({ service, item: it, answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) })),
  };
  const mirror = new ShadowMirror({ nc, subjects: subjects(), dispatcher: dispatcher as never, log: createLogger({ level: 'silent' }), ...o });
  return { mirror, calls, published };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('shadow mirror', () => {
  it('mirrors without waiting, compares the two answers per row and reports them on shoal.gw.shadow', async () => {
    const { mirror, calls, published } = setup();
    mirror.offer(shadow, 1, item, oip([0.1, 0.9, 0.6]), undefined);
    // Returned at once: the shadow has not answered, the caller already has stable's answer.
    expect(calls).toHaveLength(1);
    expect(mirror.inflight).toBe(1);
    expect(calls[0]!.service).toBe('model-m-v2');
    // Neither the request id nor the tenant goes to the shadow.
    expect(calls[0]!.item).toEqual({ format: 'oip', body: item.body });
    calls[0]!.answer({ body: oip([0.2, 0.3, 0.7]), batch: 1, queueRows: 0, attempts: 1 });
    await settle();
    expect(mirror.inflight).toBe(0);
    mirror.report();
    expect(published).toHaveLength(1);
    expect(published[0]!.subject).toBe(subjects().gatewayShadow);
    const c = published[0]!.msg.counts[0]!;
    expect(c).toMatchObject({ model: 'm', version: 2, stable: 1, since: 1000, compared: 3, agreed: 2, errors: 0, dropped: 0 });
    expect(c.stableHist[2]).toBe(1);
    expect(c.shadowHist[6]).toBe(1);
    // Nothing new: nothing published.
    mirror.report();
    expect(published).toHaveLength(1);
  });

  it('mirrors only its fraction, never more than maxInflight at once (the rest dropped and counted)', async () => {
    const draws = [0.05, 0.5, 0.2, 0.01, 0.15];
    const { mirror, calls, published } = setup({ maxInflight: 2, random: () => draws.shift() ?? 0.9 });
    for (let i = 0; i < 5; i++) mirror.offer({ ...shadow, fraction: 0.25 }, 1, item, oip([0.4]), undefined);
    // Draws below 0.25: 0.05, 0.2, 0.01, 0.15 — two in flight, two dropped; 0.5 not mirrored.
    expect(calls).toHaveLength(2);
    mirror.report();
    expect(published[0]!.msg.counts[0]).toMatchObject({ compared: 0, dropped: 2 });
    for (const call of calls) call.answer({ body: oip([0.45]), batch: 1, queueRows: 0, attempts: 1 });
    await settle();
    mirror.report();
    expect(published[1]!.msg.counts[0]).toMatchObject({ compared: 2, agreed: 2, dropped: 0 });
  });

  it('a failing or mis-shaped shadow answer counts as a shadow error and never throws; binary answers are not mirrored', async () => {
    const { mirror, calls, published } = setup();
    mirror.offer(shadow, 1, item, oip([0.4, 0.6]), undefined);
    mirror.offer(shadow, 1, item, oip([0.4, 0.6]), undefined);
    mirror.offer(shadow, 1, item, oip([0.4]), 12);
    expect(calls).toHaveLength(2);
    calls[0]!.answer(new Error('SHOAL_ERR_TIMEOUT'));
    calls[1]!.answer({ body: oip([0.4]), batch: 1, queueRows: 0, attempts: 1 });
    await settle();
    mirror.report();
    expect(published[0]!.msg.counts[0]).toMatchObject({ compared: 0, errors: 2 });
  });
});
