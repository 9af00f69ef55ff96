/**
 * Aggregate records in the online store (bucket `<prefix>-online-features`, shared with the push
 * views): key `<view>.=<digest16>.<key1>[.<key2>…]` (entity values base64url, as for push views;
 * the `=<digest>` token names the aggregation, so two versions of a view that aggregate
 * differently never share records while versions that differ only in their transformations do).
 * The value is one MessagePack `AggregateRecord` (aggregates.ts).
 *
 * Writes come from the aggregate actor only, one entity at a time by compare-and-swap on the
 * key's revision, and are idempotent by stream sequence: an event at or below the record's last
 * applied sequence changes nothing. Reads compute the windows at the reader's clock.
 */
import type { KV } from '@nats-io/kv';
import { ContentType, decode, encode, isCasConflict } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { aggregateKeyToken, aggregateValues, applyEvent, checkAggregateSource, emptyRecord, groupKey, resolveAggregate, type AggregateRecord, type KeyFrom, type ResolvedAggregate } from './aggregates.ts';
import type { OnlineRow } from './online.ts';
import type { FeatureViewDef, LoggedEvent } from './schemas.ts';
import type { FeatureViews } from './views.ts';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

export const aggregateKey = (agg: Pick<ResolvedAggregate, 'view' | 'digest'>, entity: readonly string[]): string => [agg.view, aggregateKeyToken(agg), ...entity.map(b64)].join('.');

const resolved = new WeakMap<FeatureViewDef, ResolvedAggregate>();

/** The resolved aggregate of a definition (cached per definition object). */
export function aggregateOf(def: FeatureViewDef): ResolvedAggregate {
  let agg = resolved.get(def);
  if (!agg) resolved.set(def, (agg = resolveAggregate(def)));
  return agg;
}

/**
 * The source view of an aggregate view (its latest version), checked; where each group-by column
 * comes from in its events. The features service resolves it at apply (for the actor), the
 * offline builder at build time.
 */
export async function aggregateSourceOf(views: FeatureViews, def: FeatureViewDef): Promise<KeyFrom[]> {
  const agg = aggregateOf(def);
  const src = await views.version(agg.source);
  return checkAggregateSource(agg, src && { name: src.name, sourceType: src.definition.source.type, entity: src.definition.entity, features: src.definition.features });
}

export async function getAggregateRecord(kv: KV, agg: ResolvedAggregate, entity: readonly string[]): Promise<AggregateRecord | undefined> {
  const e = await kv.get(aggregateKey(agg, entity));
  return e && e.operation === 'PUT' ? (decode(e.value, ContentType.MSGPACK) as AggregateRecord) : undefined;
}

/**
 * Online rows of an aggregate view at time `now` (the OnlineStore's read for aggregate views):
 * every declared feature present (no events: counts 0, mean null); `found` says whether the
 * entity ever had a record; `eventTimes` gives `now`, the time the values are as of.
 */
export async function readAggregateRows(kv: KV, def: FeatureViewDef, keys: readonly string[][], entities: readonly Readonly<Record<string, string>>[], now: number): Promise<OnlineRow[]> {
  const agg = aggregateOf(def);
  return Promise.all(
    keys.map(async (key, i) => {
      const rec = await getAggregateRecord(kv, agg, key);
      const values = aggregateValues(agg, rec, now);
      const eventTimes: Record<string, number> = {};
      for (const f of Object.keys(values)) if (values[f] !== null) eventTimes[f] = now;
      return { entity: { ...entities[i]! }, found: rec !== undefined, values: Object.fromEntries(Object.entries(values).filter(([, v]) => v !== null)), eventTimes, expired: [] };
    }),
  );
}

export interface BatchResult {
  /** Events applied now. */
  applied: number;
  /** Events already applied before (a replay) or without a usable group-by key. */
  skipped: number;
  /** Entity records written. */
  entities: number;
}

/** Records written at once. */
const WRITE_CONCURRENCY = 32;

/**
 * Applies a batch of source events (ascending stream sequence) to their entities' records: per
 * entity one read, every event of the batch in order, one compare-and-swap write (retried from a
 * fresh read on conflict).
 */
export async function applyAggregateBatch(kv: KV, agg: ResolvedAggregate, keyFrom: readonly KeyFrom[], events: readonly { seq: number; event: LoggedEvent }[]): Promise<BatchResult> {
  const groups = new Map<string, { key: string[]; events: { seq: number; event: LoggedEvent }[] }>();
  let skipped = 0;
  for (const e of events) {
    const key = groupKey(keyFrom, e.event.entity, e.event.values);
    if (!key) {
      skipped++;
      continue;
    }
    const id = JSON.stringify(key);
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { key, events: [] }));
    g.events.push(e);
  }
  let applied = 0;
  let entities = 0;
  const list = [...groups.values()];
  for (let i = 0; i < list.length; i += WRITE_CONCURRENCY) {
    await Promise.all(
      list.slice(i, i + WRITE_CONCURRENCY).map(async (g) => {
        const n = await applyToEntity(kv, agg, g.key, g.events);
        applied += n;
        skipped += g.events.length - n;
        if (n > 0) entities++;
      }),
    );
  }
  return { applied, skipped, entities };
}

async function applyToEntity(kv: KV, agg: ResolvedAggregate, key: string[], events: readonly { seq: number; event: LoggedEvent }[]): Promise<number> {
  const k = aggregateKey(agg, key);
  for (let attempt = 0; attempt < 20; attempt++) {
    const cur = await kv.get(k);
    const rec = cur && cur.operation === 'PUT' ? (decode(cur.value, ContentType.MSGPACK) as AggregateRecord) : emptyRecord(key);
    let n = 0;
    for (const { seq, event } of events) if (applyEvent(agg, rec, { seq, eventTime: event.eventTime, ingestTime: event.ingestTime, values: event.values })) n++;
    if (n === 0) return 0;
    const bytes = encode(rec, ContentType.MSGPACK);
    try {
      if (cur) await kv.update(k, bytes, cur.revision);
      else await kv.create(k, bytes);
      return n;
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
  }
  throw MlErrors.REGISTRY_CONFLICT(`aggregate record ${k}`);
}
