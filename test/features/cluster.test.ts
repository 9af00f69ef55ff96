/**
 * The features service as the scheduler runs it (a control module in a real scheduler process):
 * a view applied and an event pushed by a client connection, read back as a vector. The logic is
 * tested in store.test.ts; this checks the wiring (resources created, module started, rights).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects } from '../../cluster/index.ts';
import { FeatureClient } from '../../ml/index.ts';
import { startCluster, type TestCluster } from '../harness/cluster.ts';

describe('feature store in a real scheduler process', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('applies a view and serves a pushed value back as its vector', async () => {
    const fc = await FeatureClient.open(cluster.client, subjects());
    const def = { name: 'acct', entity: ['account_id'], source: { type: 'push' }, ttlSeconds: 0, features: [{ name: 'plan', type: 'categorical', transforms: [{ op: 'ordinal', vocabulary: ['free', 'pro'] }] }] };
    expect((await fc.apply(def)).version).toMatchObject({ version: 1, fitted: { columns: ['plan'] } });
    expect(await fc.push('acct', { eventId: 'a-1', entity: { account_id: 'a1' }, values: { plan: 'pro' }, eventTime: Date.now() - 1000 })).toMatchObject({ duplicate: false, applied: ['plan'] });
    const [v] = await fc.vectors('acct', [{ account_id: 'a1' }, { account_id: 'a2' }]);
    expect(Array.from(v!.vector)).toEqual([1]);
  });
});
