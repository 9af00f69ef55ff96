/**
 * The replica's prediction log (issue #15 item 1) on its own: the bounded buffer (drops counted,
 * never thrown), batched publishes, `logExclude` (the value never reaches a published byte),
 * sampling with an injected random source, failures of the stream that never reach a request,
 * and how tensors become records. Time is a VirtualClock: the flush timer runs only when the test
 * advances it.
 */
import { describe, expect, it } from 'vitest';
import { ContentType, VirtualClock, decode, encode, seededRandom } from '../../cluster/index.ts';
import { PredictionLog, checkFeedback, type LabelRule, encodeSplit, MAX_BATCH_BYTES, featureRows, indexKey, observeBegin, observeEnd, type LoggedTensor, type MonitoringSpec } from '../../ml/index.ts';
import { containsBytes, fp32, numberEncodings, recordingPublisher } from '../fixtures/monitoring.ts';

const START = Date.UTC(2026, 10, 1);

function setup(spec: MonitoringSpec, random?: () => number) {
  const clock = new VirtualClock(START);
  const pub = recordingPublisher();
  const log = new PredictionLog({ model: 'fraud', version: 2, spec, publish: pub.publish, encode: pub.encode, clock, ...(random ? { random } : {}) });
  /** One request of `rows` through the log, as a replica does: begin before the run, end after. */
  const request = (id: string, rows: number[][], tenant?: string) => {
    const p = log.begin([fp32('X', rows)], id, tenant, 10);
    if (p) log.end(p, [fp32('score', rows.map((r) => [r[0]! / 10]))], 12.5);
    return p !== undefined;
  };
  return { clock, pub, log, request };
}

/** Lets queued microtasks and resolved publishes run. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

describe('prediction log: buffer, batches, exclusion, sampling', () => {
  it('holds at most bufferRecords; a request whose rows do not fit is dropped and counted, and nothing throws', async () => {
    const { log, pub, clock, request } = setup({ bufferRecords: 3, batchRecords: 100, flushMs: 1000 });
    for (let i = 0; i < 5; i++) expect(() => request(`r${i}`, [[i, 1, 2, 3]])).not.toThrow();
    expect(log.stats()).toMatchObject({ sampled: 5, buffered: 3, dropped: 2, pending: 3, published: 0 });
    expect(pub.messages).toHaveLength(0);
    clock.advance(1000);
    await settle();
    expect(log.stats()).toMatchObject({ published: 3, pending: 0, batches: 1 });
    expect(pub.records().map((r) => r.id)).toEqual(['r0', 'r1', 'r2']);
    request('big', [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3], [4, 4, 4, 4]]);
    expect(log.stats()).toMatchObject({ buffered: 3, dropped: 6, pending: 0 });
    request('two', [[1, 1, 1, 1], [2, 2, 2, 2]]);
    expect(log.stats()).toMatchObject({ buffered: 5, dropped: 6, pending: 2 });
  });

  it('a batch holds requests of one shape: a request of another width starts a new batch, and the order is kept', async () => {
    const { pub, clock, request } = setup({ batchRecords: 10, flushMs: 500 });
    request('a', [[1, 0, 0, 0]]);
    request('b', [[2, 0, 0, 0]]);
    request('wide', [[3, 0, 0, 0, 9, 9]]);
    request('c', [[4, 0, 0, 0]]);
    clock.advance(500);
    await settle();
    expect(pub.batches().map((b) => b.map((r) => r.id))).toEqual([['a', 'b'], ['wide'], ['c']]);
    expect(pub.batches()[1]![0]!.features).toMatchObject({ X_4: 9, X_5: 9 });
  });

  it('publishes in batches of at most batchRecords, at once when a batch is full, else on the flush timer', async () => {
    const { log, pub, clock, request } = setup({ batchRecords: 4, flushMs: 500 });
    for (let i = 0; i < 9; i++) request(`r${i}`, [[i, 0, 0, 0]]);
    await settle();
    // Two full batches went without waiting for the timer; the ninth record waits for it.
    expect(pub.batches().map((b) => b.length)).toEqual([4, 4]);
    expect(log.stats().pending).toBe(1);
    clock.advance(500);
    await settle();
    expect(pub.batches().map((b) => b.length)).toEqual([4, 4, 1]);
    expect(pub.records().map((r) => r.id)).toEqual(Array.from({ length: 9 }, (_, i) => `r${i}`));
    expect(log.stats()).toMatchObject({ published: 9, batches: 3, dropped: 0 });
  });

  it('a failed publish loses its batch, counted, and the next requests are logged as before', async () => {
    const { log, pub, clock, request } = setup({ batchRecords: 10, flushMs: 100 });
    pub.failWith(new Error('no responders'));
    request('a', [[1, 2, 3, 4]]);
    request('b', [[1, 2, 3, 4]]);
    clock.advance(100);
    await settle();
    expect(log.stats()).toMatchObject({ publishFailed: 2, published: 0 });
    pub.failWith(undefined);
    request('c', [[1, 2, 3, 4]]);
    clock.advance(100);
    await settle();
    expect(log.stats()).toMatchObject({ publishFailed: 2, published: 1 });
    expect(pub.records().map((r) => r.id)).toEqual(['c']);
  });

  it('logExclude: an excluded input or column is never copied, and its value appears in no published byte', async () => {
    const { log, pub } = setup({ logExclude: ['ssn', 'X_2'], batchRecords: 1 });
    const secret = 987654.321;
    const card = '4111-1111-1111-1111';
    const inputs: LoggedTensor[] = [
      fp32('X', [[1.5, 2.5, secret, 4.5]]),
      { name: 'ssn', datatype: 'BYTES', data: [card], dims: [1] },
      { name: 'country', datatype: 'BYTES', data: ['NZ'], dims: [1] },
    ];
    const p = log.begin(inputs, 'req-1', 'acme', 0)!;
    log.end(p, [fp32('score', [[0.25]])], 1);
    await settle();
    const [rec] = pub.records();
    expect(rec!.features).toEqual({ X_0: 1.5, X_1: 2.5, X_3: 4.5, country: 'NZ' });
    const bytes = pub.messages[0]!;
    for (const enc of [...numberEncodings(secret), ...numberEncodings(Math.fround(secret))]) expect(containsBytes(bytes, enc)).toBe(false);
    expect(containsBytes(bytes, new TextEncoder().encode(card))).toBe(false);
    // The check itself can see a value that is there.
    expect(containsBytes(bytes, new TextEncoder().encode('NZ'))).toBe(true);
  });

  it('samples each request with the injected random source at sampleRate (all rows of a request or none)', async () => {
    const draws = seededRandom(42);
    const seen: number[] = [];
    const random = () => {
      const v = draws();
      seen.push(v);
      return v;
    };
    const { log, pub, clock, request } = setup({ sampleRate: 0.3, batchRecords: 10_000, flushMs: 10 }, random);
    const kept: string[] = [];
    for (let i = 0; i < 400; i++) if (request(`r${i}`, [[i, 0, 0, 0], [i, 1, 1, 1]])) kept.push(`r${i}`);
    clock.advance(10);
    await settle();
    const expected = seen.map((v, i) => (v < 0.3 ? `r${i}` : undefined)).filter((x) => x !== undefined);
    expect(seen).toHaveLength(400);
    expect(kept).toEqual(expected);
    expect(log.stats().sampled).toBe(expected.length);
    expect(pub.records().map((r) => r.id)).toEqual(expected.flatMap((id) => [`${id}:0`, `${id}:1`]));
    // Rate 1 draws nothing; rate 0 logs nothing.
    const all = setup({ sampleRate: 1 }, () => {
      throw new Error('no draw at rate 1');
    });
    expect(all.request('x', [[1, 2, 3, 4]])).toBe(true);
    const none = setup({ sampleRate: 0 });
    expect(none.request('x', [[1, 2, 3, 4]])).toBe(false);
  });

  it('records: one per row (ids <id>:<row>), named columns, BYTES and BOOL values, outputs per row, tenant, latency, the clock', async () => {
    const { pub, clock, log } = setup({ batchRecords: 100, flushMs: 5 });
    const sig = {
      inputs: [
        { name: 'X', datatype: 'FP32' as const },
        { name: 'merchant', datatype: 'BYTES' as const },
        { name: 'weekend', datatype: 'BOOL' as const },
      ],
      outputs: [
        { name: 'probs', datatype: 'FP32' as const },
        { name: 'label', datatype: 'BYTES' as const },
      ],
    };
    const d = { inputs: [Float32Array.of(1, 2, 3, 4, 5, 6), ['acme', 'globex'], Uint8Array.of(1, 0)], shapes: [[2, 3], [2], [2, 1]] };
    const p = observeBegin(log, sig, d, 'req-9', 'tenant-a', 100);
    // The run takes the input buffers: the record was copied before.
    (d.inputs[0] as Float32Array).fill(0);
    observeEnd(log, p, sig, new Map([
      ['probs', { data: Float32Array.of(0.25, 0.75, 0.5, 0.5), dims: [2, 2] }],
      ['label', { data: ['legit', 'fraud'], dims: [2] }],
    ]));
    clock.advance(5);
    await settle();
    const recs = pub.records();
    expect(recs).toHaveLength(2);
    expect(recs[0]).toMatchObject({ id: 'req-9:0', model: 'fraud', version: 2, tenant: 'tenant-a', ts: START, features: { X_0: 1, X_1: 2, X_2: 3, merchant: 'acme', weekend: true }, outputs: { probs: [0.25, 0.75], label: 'legit' } });
    expect(recs[1]).toMatchObject({ id: 'req-9:1', features: { X_0: 4, X_1: 5, X_2: 6, merchant: 'globex', weekend: false }, outputs: { probs: [0.5, 0.5], label: 'fraud' } });
    expect(recs[0]!.latencyMs).toBeGreaterThanOrEqual(0);
    // A log that breaks on a record never breaks the request: observe* swallow it.
    expect(() => observeEnd(log, { id: 'x', tenant: undefined, rows: 1, inputs: null as never, sampled: true, t0: 0 }, sig, new Map())).not.toThrow();
    expect(observeBegin(undefined, sig, d, 'x', undefined, 0)).toBeUndefined();
  });

  it('inputs wider than 256 elements per row (images) are left out; a single-element row is one column named after the input', () => {
    const rows = featureRows(
      [
        { name: 'image', datatype: 'FP32', data: new Float32Array(2 * 3 * 16 * 16), dims: [2, 3, 16, 16] },
        { name: 'amount', datatype: 'FP32', data: Float32Array.of(10, 20), dims: [2, 1] },
        { name: 'count', datatype: 'INT64', data: BigInt64Array.of(3n, 4n), dims: [2] },
      ],
      new Set(),
    );
    expect(rows).toEqual([{ amount: 10, count: 3 }, { amount: 20, count: 4 }]);
  });

  it('splits a batch whose message would be too large into several under the limit', () => {
    const big = Array.from({ length: 64 }, (_, i) => ({ id: `r${i}`, text: 'x'.repeat(40_000) }));
    const parts = encodeSplit(big, (b) => encode({ records: b }, ContentType.MSGPACK));
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    expect(parts.flatMap((p) => (decode(p, ContentType.MSGPACK) as { records: { id: string }[] }).records.map((r) => r.id))).toEqual(big.map((r) => r.id));
  });
});

describe('feedback: label checks and the join index key', () => {
  const numeric: LabelRule = { type: 'number', declared: false };
  it('accepts one label or a list; a numeric model takes numbers and booleans', () => {
    expect(checkFeedback({ id: 'a', label: 1 }, numeric)).toEqual([{ id: 'a', label: 1 }]);
    expect(checkFeedback([{ id: 'a', label: true }, { id: 'b', label: 0.5 }], numeric)).toHaveLength(2);
  });

  it('a label of the wrong type, a missing id, an unknown field: SHOAL_ERR_BAD_INPUT naming it', () => {
    const bad = (body: unknown, rule: LabelRule = numeric) => {
      try {
        checkFeedback(body, rule);
      } catch (err) {
        return { code: (err as { code?: string }).code, message: (err as Error).message };
      }
      return undefined;
    };
    expect(bad({ id: 'a', label: 'fraud' })).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/^label: the string "fraud" is not a number/) });
    expect(bad([{ id: 'a', label: 1 }, { id: 'b', label: 1 }, { id: 'c', label: [1] }])?.message).toMatch(/^\[2\]\.label: an array \[1\]/);
    expect(bad({ label: 1 })?.message).toMatch(/^id: must be the request id/);
    expect(bad({ id: 'a', label: 1, score: 2 })?.message).toMatch(/^score: unknown field/);
    expect(bad({ id: 'a' })?.message).toMatch(/^label: missing/);
    expect(bad([])?.message).toMatch(/empty/);
    expect(bad('x')?.message).toMatch(/send \{"id"/);
    // A declared type is strict: a boolean is not a number label then.
    expect(bad({ id: 'a', label: true }, { type: 'number', declared: true })?.message).toMatch(/monitoring\.labelType/);
    expect(bad({ id: 'a', label: 3 }, { type: 'string', declared: false })?.message).toMatch(/BYTES/);
  });

  it('index keys: plain ids as they are, others base64url behind "=" (no two ids share a key)', () => {
    expect(indexKey('fraud', 'b5e0-1_x')).toBe('fraud.b5e0-1_x');
    const odd = ['req:1', 'a.b', 'a b', 'é', '=x'];
    const keys = odd.map((id) => indexKey('fraud', id));
    expect(new Set(keys).size).toBe(odd.length);
    for (const k of keys) expect(k).toMatch(/^fraud\.=[A-Za-z0-9_-]+$/);
  });
});
