/**
 * The online store: one KV bucket (`<prefix>-online-features`) for every view, one key per
 * entity and view — `<view>.<key1>[.<key2>…]`, each key value base64url-encoded so any string is
 * a valid KV token — holding one MessagePack record: the entity's latest raw value per feature
 * with that value's event time. Raw values, not transformed vectors: the transformation belongs to
 * the view *version* a model was trained on, and applying it at read (transforms.ts) lets
 * several versions (and models) share one stored row.
 *
 * Why one bucket and not one per view: the role table (cluster/roles.ts) grants rights per
 * resource, statically; a bucket per view would be a resource created at run time that no role
 * could be granted narrowly in advance. A view's keys are still one subject filter
 * (`$KV.<bucket>.<view>.>`), so a per-view watch or purge stays cheap.
 *
 * Writes go through `apply` only (the features service, after the event is in the offline log):
 * per feature, an event older than the stored value does not overwrite it (equal times: the later
 * arrival wins), by compare-and-swap on the key's revision. TTL is enforced on read: a value whose
 * event time is older than the view's TTL, against the reader's clock, reads as missing (and
 * then gets the feature's fill when transformed).
 *
 * An aggregate view's entities are records of its aggregate actor instead (aggregate-store.ts):
 * `read` computes their windows at the reader's clock; `apply` is never used for them.
 */
import type { KV } from '@nats-io/kv';
import { ContentType, decode, encode, isCasConflict, openBucket, resources, systemClock, type Clock, type NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { readAggregateRows } from './aggregate-store.ts';
import type { FeatureViewDef, LoggedEvent, RawValue } from './schemas.ts';

/** The stored record of one entity (MessagePack). */
export interface OnlineRecord {
  /** Entity key values, in the view's key order. */
  e: string[];
  /** Latest raw value per feature. */
  v: Record<string, RawValue>;
  /** Event time (epoch ms) of each value in `v`. */
  t: Record<string, number>;
  /** Ingestion time (epoch ms) of the last event applied. */
  u: number;
}

/** One entity as read: values within the TTL (expired or never-set features are absent). */
export interface OnlineRow {
  entity: Record<string, string>;
  found: boolean;
  values: Record<string, RawValue>;
  /** Event time per present value (epoch ms). */
  eventTimes: Record<string, number>;
  /** Features that had a value older than the TTL. */
  expired: string[];
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

/** The KV key of an entity in a view; each key column must be present and non-empty. */
export function onlineKey(def: Pick<FeatureViewDef, 'name' | 'entity'>, entity: Readonly<Record<string, string>>): string {
  return [def.name, ...entityValues(def, entity).map(b64)].join('.');
}

/** The entity's key values in key order; a missing or unknown key column is a BAD_INPUT naming it. */
export function entityValues(def: Pick<FeatureViewDef, 'name' | 'entity'>, entity: Readonly<Record<string, unknown>>, field = 'entity'): string[] {
  for (const k of Object.keys(entity)) if (!def.entity.includes(k)) throw MlErrors.BAD_INPUT(`${field}.${k}: not an entity column of feature view ${def.name} (its columns: ${def.entity.join(', ')})`);
  return def.entity.map((k) => {
    const v = entity[k];
    if (v === undefined || v === null) throw MlErrors.BAD_INPUT(`${field}.${k}: missing (feature view ${def.name} is keyed by ${def.entity.join(', ')})`);
    if (typeof v !== 'string' || v.length === 0 || v.length > 256) throw MlErrors.BAD_INPUT(`${field}.${k}: must be a non-empty string of at most 256 characters`);
    return v;
  });
}

export class OnlineStore {
  readonly #kv: KV;
  readonly #clock: Clock;

  private constructor(kv: KV, clock: Clock) {
    this.#kv = kv;
    this.#clock = clock;
  }

  /** `clock.now()` must be epoch ms (the TTL is judged against event times). @default systemClock */
  static async open(nc: NatsConnection, prefix = 'shoal', clock: Clock = systemClock): Promise<OnlineStore> {
    return new OnlineStore(await openBucket(nc, resources(prefix).buckets.online), clock);
  }

  /** Applies one logged event; returns the features it set (none when every value was older). */
  async apply(def: FeatureViewDef, ev: LoggedEvent): Promise<string[]> {
    const key = [def.name, ...ev.entity.map(b64)].join('.');
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.#kv.get(key);
      const rec: OnlineRecord = cur && cur.operation === 'PUT' ? (decode(cur.value, ContentType.MSGPACK) as OnlineRecord) : { e: ev.entity, v: {}, t: {}, u: 0 };
      const applied: string[] = [];
      for (const [f, val] of Object.entries(ev.values)) {
        const old = rec.t[f];
        if (old !== undefined && old > ev.eventTime) continue;
        rec.v[f] = val;
        rec.t[f] = ev.eventTime;
        applied.push(f);
      }
      if (applied.length === 0) return applied;
      rec.u = Math.max(rec.u, ev.ingestTime);
      const bytes = encode(rec, ContentType.MSGPACK);
      try {
        if (cur) await this.#kv.update(key, bytes, cur.revision);
        else await this.#kv.create(key, bytes);
        return applied;
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    throw MlErrors.REGISTRY_CONFLICT(`online features ${key}`);
  }

  /** Reads many entities of one view at once (one KV get each, all in flight together), TTL applied. */
  async read(def: FeatureViewDef, entities: readonly Readonly<Record<string, string>>[]): Promise<OnlineRow[]> {
    const now = this.#clock.now();
    // A streaming aggregate view: its windows computed at `now` (aggregate-store.ts).
    if (def.source.type === 'aggregate') return readAggregateRows(this.#kv, def, entities.map((entity, i) => entityValues(def, entity, `entities[${i}]`)), entities, now);
    const ttlMs = def.ttlSeconds * 1000;
    return Promise.all(
      entities.map(async (entity, i) => {
        const key = [def.name, ...entityValues(def, entity, `entities[${i}]`).map(b64)].join('.');
        const e = await this.#kv.get(key);
        const row: OnlineRow = { entity: { ...entity }, found: false, values: {}, eventTimes: {}, expired: [] };
        if (!e || e.operation !== 'PUT') return row;
        const rec = decode(e.value, ContentType.MSGPACK) as OnlineRecord;
        row.found = true;
        for (const [f, v] of Object.entries(rec.v)) {
          const t = rec.t[f]!;
          if (ttlMs > 0 && now - t > ttlMs) {
            row.expired.push(f);
            continue;
          }
          row.values[f] = v;
          row.eventTimes[f] = t;
        }
        return row;
      }),
    );
  }
}
