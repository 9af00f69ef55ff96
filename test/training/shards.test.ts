/**
 * Training shards in the checkpoint object store, against a real nats-server with a node's
 * rights (the coordinator writes and removes them, a worker reads its own): each shard is
 * exactly the rows a worker used to cut from the whole dataset, written once per job and world
 * size, checked against the data it was cut from, and removed with the job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '@nats-io/obj';
import { Role, ensureResources } from '../../cluster/index.ts';
import { generateFraud, split, take } from '../../ml/index.ts';
import { openCheckpointStore } from '../../ml/training/checkpoints.ts';
import { loadShard, removeShards, shardName, shardRows, writeShards } from '../../ml/training/shards.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

describe('training shards', () => {
  let nats: TestNats;
  let store: ObjectStore;
  const data = generateFraud({ rows: 3000, seed: 3 });
  const splits = split(data.rows, 8);
  const src = { datasetDigest: 'a'.repeat(64), splitSeed: 8 };

  beforeAll(async () => {
    nats = await startTestNats({ nodeIds: ['shard-node'] });
    await ensureResources(await nats.connect(Role.SCHEDULER));
    store = await openCheckpointStore(await nats.connect(Role.NODE, { nodeId: 'shard-node' }), 'shoal');
  }, 30_000);

  afterAll(async () => {
    await nats?.stop();
  });

  it('each worker gets exactly its rows of the train split, and nothing else', async () => {
    const bytes = await writeShards(store, 'j1', 3, data, splits.train, src);
    // Features (float32) and one byte per label, plus a little framing.
    const trainBytes = splits.train.length * (data.columns.length * 4 + 1);
    expect(bytes).toBeGreaterThanOrEqual(trainBytes);
    expect(bytes).toBeLessThan(trainBytes + 3 * 1024);
    const seen: number[] = [];
    for (let rank = 0; rank < 3; rank++) {
      const shard = await loadShard(store, { jobId: 'j1', world: 3, rank }, src);
      const rows = shardRows(splits.train, 3, rank);
      const ref = take(data, rows);
      expect(shard.rows).toBe(rows.length);
      expect(shard.features).toBe(data.columns.length);
      expect(Buffer.from(shard.x.buffer, shard.x.byteOffset, shard.x.byteLength).equals(Buffer.from(ref.x.buffer))).toBe(true);
      expect(Array.from(shard.y)).toEqual(Array.from(ref.y));
      seen.push(...rows);
    }
    expect(seen.sort((a, b) => a - b)).toEqual([...splits.train].sort((a, b) => a - b));
  });

  it('is written once per job and world size (a re-placed coordinator writes nothing), and refuses other data', async () => {
    const before = (await store.info(shardName({ jobId: 'j1', world: 3, rank: 0 })))!.nuid;
    expect(await writeShards(store, 'j1', 3, data, splits.train, src)).toBe(0);
    expect((await store.info(shardName({ jobId: 'j1', world: 3, rank: 0 })))!.nuid).toBe(before);
    await expect(loadShard(store, { jobId: 'j1', world: 3, rank: 1 }, { ...src, splitSeed: 9 })).rejects.toThrow(/training shard .* split seed 8, not .* split seed 9/);
    // Another world size is another set of shards.
    expect(await writeShards(store, 'j1', 2, data, splits.train, src)).toBeGreaterThan(0);
    expect((await loadShard(store, { jobId: 'j1', world: 2, rank: 1 }, src)).rows).toBe(shardRows(splits.train, 2, 1).length);
  });

  it('is removed with the job', async () => {
    await removeShards(store, 'j1', 3);
    await removeShards(store, 'j1', 3); // twice is fine
    for (let rank = 0; rank < 3; rank++) await expect(loadShard(store, { jobId: 'j1', world: 3, rank }, src)).rejects.toMatchObject({ code: 'SHOAL_ERR_JOB_FAILED' });
    expect((await loadShard(store, { jobId: 'j1', world: 2, rank: 0 }, src)).rows).toBeGreaterThan(0);
  });
});
