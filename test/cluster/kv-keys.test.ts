/**
 * kvKeys against a real nats-server: a bucket listed while its keys are being rewritten yields
 * every key once. `KV.keys()` alone delivers a key again when it is written during the listing
 * (a pipeline's run listed twice read as two runs in flight).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kvm, type KV } from '@nats-io/kv';
import { ensureResources, kvKeys, resources, Role, type NatsConnection } from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('kvKeys (real nats-server)', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let kv: KV;
  const N = 400;
  const key = (i: number) => `run.p.${String(i).padStart(8, '0')}`;

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
    kv = await new Kvm(nc).open(resources('shoal').buckets.pipelines);
    await Promise.all(Array.from({ length: N }, (_, i) => kv.put(key(i), 'v0')));
  }, 60_000);

  afterAll(async () => {
    await nats?.stop();
  });

  /** Lists with `list` while the last keys are rewritten, until the listing ends. */
  async function listWhileWriting(list: () => Promise<string[]>): Promise<string[]> {
    let writing = true;
    const writer = (async () => {
      for (let n = 0; writing; n++) await kv.put(key(N - 1 - (n % 20)), `v${n}`);
    })();
    try {
      return await list();
    } finally {
      writing = false;
      await writer;
    }
  }

  it('yields each key once, sorted, while keys are rewritten during the listing', async () => {
    const expected = Array.from({ length: N }, (_, i) => key(i));
    for (let round = 0; round < 5; round++) expect(await listWhileWriting(() => kvKeys(kv, 'run.p.*'))).toEqual(expected);
  }, 60_000);

  it('the raw listing it guards against can repeat a key under the same writes', async () => {
    let repeated = 0;
    for (let round = 0; round < 20 && repeated === 0; round++) {
      const raw = await listWhileWriting(async () => {
        const out: string[] = [];
        for await (const k of await kv.keys('run.p.*')) out.push(k);
        return out;
      });
      expect(new Set(raw).size).toBe(N);
      repeated = raw.length - N;
    }
    expect(repeated).toBeGreaterThan(0);
  }, 60_000);
});
