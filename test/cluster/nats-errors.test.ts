/**
 * Which failures are JetStream settling (asked again, bounded) and which are real refusals: by
 * type and code, and a service's typed JETSTREAM_UNAVAILABLE reply counts as settling too.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { Errors, isCasConflict, isJetStreamUnavailable, retrySettling } from '../../cluster/index.ts';

const apiError = (err_code: number, description = 'x') => new JetStreamApiError({ err_code, code: 503, description });

describe('isJetStreamUnavailable', () => {
  it('is true for a timeout, a settling cluster\'s codes and a service\'s JETSTREAM_UNAVAILABLE reply', () => {
    expect(isJetStreamUnavailable(new errors.TimeoutError())).toBe(true);
    expect(isJetStreamUnavailable(apiError(10008, 'JetStream system temporarily unavailable'))).toBe(true);
    expect(isJetStreamUnavailable(apiError(10009))).toBe(true);
    expect(isJetStreamUnavailable(Errors.JETSTREAM_UNAVAILABLE(30_000, 'timeout'))).toBe(true);
    // The same code as it arrives in a decoded error reply (a plain object with the stable code).
    expect(isJetStreamUnavailable({ code: 'SHOAL_ERR_JETSTREAM_UNAVAILABLE', message: 'x' })).toBe(true);
  });

  it('is false for real refusals and for words that only look like a timeout', () => {
    expect(isJetStreamUnavailable(apiError(10071))).toBe(false); // wrong last sequence: a lost CAS
    expect(isCasConflict(apiError(10071))).toBe(true);
    expect(isJetStreamUnavailable(Errors.TIMEOUT('request on shoal.x', 5000))).toBe(false);
    expect(isJetStreamUnavailable(new Error('timeout'))).toBe(false);
    expect(isJetStreamUnavailable(undefined)).toBe(false);
  });
});

describe('retrySettling', () => {
  it('asks again while JetStream settles and returns the answer', async () => {
    let calls = 0;
    const v = await retrySettling(async () => {
      calls++;
      if (calls < 3) throw new errors.TimeoutError();
      return 'ok';
    }, 30_000);
    expect(v).toBe('ok');
    expect(calls).toBe(3);
  });

  it('passes a real refusal through at once', async () => {
    let calls = 0;
    await expect(
      retrySettling(async () => {
        calls++;
        throw apiError(10071, 'wrong last sequence');
      }, 30_000),
    ).rejects.toThrow(/wrong last sequence/);
    expect(calls).toBe(1);
  });

  it('gives up with JETSTREAM_UNAVAILABLE, naming the last error, once its time is spent', async () => {
    await expect(retrySettling(() => Promise.reject(new errors.TimeoutError()), 0)).rejects.toMatchObject({ code: 'SHOAL_ERR_JETSTREAM_UNAVAILABLE', message: expect.stringMatching(/timeout/) });
  });
});
