/**
 * Erasure from the feature store (issue #20): an entity's online records (the KV keys, history and
 * delete markers included: the key subjects are purged from the bucket's stream), its events in
 * the offline log (deleted by sequence, with `erase` so the server overwrites the bytes), and its
 * rows in the compacted Parquet files (each file that holds any is rewritten without them, stored
 * under its new sha256, the manifest moved to it by compare-and-swap, the old object deleted).
 *
 * Why deletion by sequence and not per-entity key shredding: the offline log and its Parquet
 * files are read by DuckDB joins and by streaming aggregate actors; encrypting each entity's
 * values would put a key lookup on every push and every point-in-time join, and a lost key store
 * would lose the whole log. Deleting by sequence is exact, needs nothing new on the hot path, and
 * is what Debian's nats-server 2.9 does well (`STREAM.MSG.DELETE` with erase). Its cost is a scan
 * of the view's log per erasure (stream-scan.ts), paid only by the rare forget.
 *
 * An entity is `{column: value, …}`; a view is touched when it is keyed by at least one of the
 * given columns, and a record matches when every given column the view has holds the given value
 * (so forgetting a customer also forgets the (customer, merchant) pairs that name them).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { DuckDBInstance } from '@duckdb/node-api';
import { ContentType, decode, encode, isCasConflict, kvKeys, resources, subjects as subjectsOf, type NatsConnection } from '../../../cluster/index.ts';
import { MlErrors } from '../../errors.ts';
import { OfflineStore, manifestKey, sqlString, type OfflineFile } from '../../features/offline.ts';
import type { FeatureViewDef, LoggedEvent } from '../../features/schemas.ts';
import { scanStream } from './stream-scan.ts';

/** A view's key columns as positions of the given entity: `[position, value]` for each given column it has. */
export function keyMatch(def: Pick<FeatureViewDef, 'entity'>, entity: Readonly<Record<string, string>>): [number, string][] {
  const out: [number, string][] = [];
  def.entity.forEach((col, i) => {
    const v = entity[col];
    if (v !== undefined) out.push([i, v]);
  });
  return out;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** What was removed from one view. */
export interface ViewErasure {
  view: string;
  /** Online records removed (one per entity key). */
  onlineKeys: number;
  /** Offline-log events deleted (their stream sequences). */
  events: number[];
  /** Parquet files rewritten, and rows dropped from them. */
  files: number;
  rows: number;
}

/** Removes the entity from one view's online store, offline log and Parquet files. */
export async function eraseFromView(nc: NatsConnection, prefix: string, def: FeatureViewDef, match: [number, string][]): Promise<ViewErasure> {
  const r = resources(prefix);
  const out: ViewErasure = { view: def.name, onlineKeys: 0, events: [], files: 0, rows: 0 };
  const jsm = await jetstreamManager(nc);

  // Online: every key of the view whose matched tokens are the entity's (keys are `<view>.<b64(k1)>…`).
  const kv = await new Kvm(nc).open(r.buckets.online);
  const keys: string[] = [];
  for (const k of await kvKeys(kv, `${def.name}.>`)) {
    // A streaming aggregate view's records carry its definition's digest first (`<view>.=<digest>.<keys…>`, aggregate-store.ts).
    let tokens = k.split('.').slice(1);
    if (tokens[0]?.startsWith('=')) tokens = tokens.slice(1);
    if (tokens.length === def.entity.length && match.every(([i, v]) => tokens[i] === b64(v))) keys.push(k);
  }
  for (const k of keys) {
    // Purging the key's subject removes its value, its history and any delete marker: nothing of it is left.
    await jsm.streams.purge(`KV_${r.buckets.online}`, { filter: `$KV.${r.buckets.online}.${k}` });
    out.onlineKeys++;
  }

  // Offline log: the view's events naming the entity, deleted by sequence (erased on disk).
  const stream = r.streams.featureEvents;
  const seqs: number[] = [];
  await scanStream(nc, stream, subjectsOf(prefix).featureLog(def.name), (m) => {
    const ev = decode(m.data, ContentType.MSGPACK) as LoggedEvent;
    if (match.every(([i, v]) => ev.entity[i] === v)) seqs.push(m.seq);
  });
  for (const seq of seqs) if (await jsm.streams.deleteMessage(stream, seq, true).catch(() => false)) out.events.push(seq);

  // Parquet files compacted before now.
  const rewritten = await rewriteFiles(nc, prefix, def.name, match);
  out.files = rewritten.files;
  out.rows = rewritten.rows;
  return out;
}

/** Rewrites every compacted file of the view that holds rows of the entity; retried on a concurrent compaction. */
async function rewriteFiles(nc: NatsConnection, prefix: string, view: string, match: [number, string][]): Promise<{ files: number; rows: number }> {
  const offline = await OfflineStore.open(nc, prefix);
  const r = resources(prefix);
  const kv = await new Kvm(nc).open(r.buckets.features);
  const store = await new Objm(nc).open(r.stores.artifacts);
  const cond = match.map(([i, v]) => `json_extract_string(entity, '$[${i}]') = ${sqlString(v)}`).join(' AND ');
  for (let attempt = 0; attempt < 5; attempt++) {
    const { manifest, revision } = await offline.manifest(view);
    if (manifest.files.length === 0) return { files: 0, rows: 0 };
    const dir = mkdtempSync(join(tmpdir(), 'shoal-erase-'));
    const db = await DuckDBInstance.create(':memory:');
    try {
      const con = await db.connect();
      const paths = await offline.fetchFiles(manifest.files, dir);
      const next: OfflineFile[] = [];
      const old: string[] = [];
      let rows = 0;
      for (let i = 0; i < manifest.files.length; i++) {
        const f = manifest.files[i]!;
        const src = sqlString(paths[i]!);
        const hit = Number((await (await con.run(`SELECT count(*) FROM read_parquet(${src}) WHERE ${cond}`)).getRows())[0]![0]);
        if (hit === 0) {
          next.push(f);
          continue;
        }
        const dst = join(dir, `r${i}.parquet`);
        await con.run(`COPY (SELECT * FROM read_parquet(${src}) WHERE NOT (${cond}) ORDER BY seq, feature) TO ${sqlString(dst)} (FORMAT parquet)`);
        const counts = (await (await con.run(`SELECT count(*), count(DISTINCT seq) FROM read_parquet(${sqlString(dst)})`)).getRows())[0]!;
        const bytes = new Uint8Array(readFileSync(dst));
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        const object = `features/${view}/${sha256}.parquet`;
        const info = await store.info(object);
        if (!info || info.deleted) await store.putBlob({ name: object, description: `feature events of ${view}, seq ${f.afterSeq + 1}-${f.throughSeq} (an entity erased)` }, bytes);
        next.push({ object, sha256, afterSeq: f.afterSeq, throughSeq: f.throughSeq, events: Number(counts[1]), rows: Number(counts[0]) });
        old.push(f.object);
        rows += hit;
      }
      con.closeSync();
      if (old.length === 0) return { files: 0, rows: 0 };
      try {
        await kv.update(manifestKey(view), encode({ ...manifest, files: next, updatedAt: new Date().toISOString() }), revision);
      } catch (err) {
        if (!isCasConflict(err)) throw err;
        continue; // a compaction moved the manifest meanwhile: read it again
      }
      // The old objects go (a stored object's chunks are deleted with it); a training set that recorded them is listed by lineage.
      for (const o of old) await store.delete(o).catch(() => undefined);
      return { files: old.length, rows };
    } finally {
      db.closeSync();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw MlErrors.REGISTRY_CONFLICT(`offline manifest of feature view ${view} (changed during the erasure; try again)`);
}
