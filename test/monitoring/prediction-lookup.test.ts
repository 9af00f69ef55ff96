/**
 * The label join's lookup helpers (ml/monitoring/prediction-lookup.ts): a UUIDv7's time (the
 * RFC 9562 example), which stored records count as findable by time, and the recent-batches
 * memory's eviction. The stream reads are checked on a real cluster in feedback-cluster.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { v7 } from 'uuid';
import { ContentType, encode } from '../../cluster/index.ts';
import { LOCATE_AFTER_MS, LOCATE_BEFORE_MS, LoggedBatch, RecentPredictions, idTime, locatable } from '../../ml/index.ts';

const batch = (seq: number, model: string, ids: string[]) =>
  LoggedBatch.of(seq, 0, encode({ records: ids.map((id) => ({ id, model, version: 1, ts: 0, features: { a: seq }, outputs: {}, latencyMs: 0 })) }, ContentType.MSGPACK))!;

describe('prediction lookup', () => {
  it('reads the time of a UUIDv7 (RFC 9562 appendix A.6) and of its rows; other ids have none', () => {
    expect(idTime('017f22e2-79b0-7cc3-98c4-dc0c0c07398f')).toBe(0x017f22e279b0);
    expect(new Date(idTime('017F22E2-79B0-7CC3-98C4-DC0C0C07398F')!).toISOString()).toBe('2022-02-22T19:22:22.000Z');
    expect(idTime('017f22e2-79b0-7cc3-98c4-dc0c0c07398f:3')).toBe(0x017f22e279b0);
    const ms = 1_800_000_000_000;
    expect(idTime(v7({ msecs: ms }))).toBe(ms);
    // A v4 UUID, a caller's token, a malformed v7.
    expect(idTime('9b2c1f5e-3d4a-4b6c-8d7e-1f2a3b4c5d6e')).toBeUndefined();
    expect(idTime('txn-42')).toBeUndefined();
    expect(idTime('017f22e2-79b0-7cc3-c8c4-dc0c0c07398f')).toBeUndefined();
  });

  it('a record is findable by time only when its batch was stored near its id\'s time', () => {
    const ms = 1_800_000_000_000;
    const id = v7({ msecs: ms });
    expect(locatable(id, ms + 150)).toBe(true);
    expect(locatable(id, ms - LOCATE_BEFORE_MS)).toBe(true);
    expect(locatable(id, ms - LOCATE_BEFORE_MS - 1)).toBe(false);
    expect(locatable(id, ms + LOCATE_AFTER_MS)).toBe(true);
    expect(locatable(id, ms + LOCATE_AFTER_MS + 1)).toBe(false); // republished later (erasure) or a lagging replica: indexed
    expect(locatable('client-7', ms)).toBe(false);
  });

  it('keeps the last records by model and id, evicting whole batches oldest first', () => {
    const recent = new RecentPredictions(4);
    const b1 = batch(1, 'm', ['a', 'b']);
    const b2 = batch(2, 'm', ['c', 'd']);
    recent.add(b1);
    recent.add(b2);
    expect(recent.get('m', 'a')?.batch).toBe(b1);
    expect(recent.get('other', 'a')).toBeUndefined();
    expect(recent.get('m', 'd')!.batch.record(recent.get('m', 'd')!.row)).toMatchObject({ id: 'd', features: { a: 2 } });
    recent.add(batch(3, 'm', ['e']));
    expect(recent.get('m', 'a')).toBeUndefined();
    expect(recent.get('m', 'c')).toBeDefined();
    expect(recent.size).toBe(3);
    // A batch read again (a scan by time) replaces the older copy's entries; dropping it forgets its ids.
    const again = batch(2, 'm', ['c', 'd']);
    recent.add(again);
    recent.drop(again);
    expect(recent.get('m', 'c')).toBeUndefined();
    // A replica's profile delta is not a batch; a foreign message is refused.
    expect(LoggedBatch.of(9, 0, encode({ format: 'shoal.replica-profile/v1', model: 'm' }, ContentType.MSGPACK))).toBeUndefined();
    expect(() => LoggedBatch.of(9, 0, encode({ hello: 1 }, ContentType.MSGPACK))).toThrow(/not a prediction batch/);
  });
});
