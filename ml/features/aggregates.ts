/**
 * Streaming aggregates (issue #14 item 4), the pure part: the window definition, the per-entity
 * state the aggregate actor keeps in the online store, and the exact arithmetic both the online
 * and the offline path use. No I/O here (aggregate-store.ts reads and writes KV,
 * aggregate-actor.ts consumes the log, aggregate-offline.ts reproduces the values in DuckDB).
 *
 * ## What a value means
 *
 * An aggregate view names a source push view, windows `w` (e.g. 10m, 1h, 24h), a tile size `g`
 * (default 60 s; every window a multiple of it) and aggregations. For an entity, a window `w` and
 * a time `t`, the value is the aggregation over the source events `e` of that entity with
 *
 *     ingestTime(e) ≤ t   AND   start(t, w) < eventTime(e) ≤ t,   start(t, w) = g · ⌊(t − w) / g⌋
 *
 * i.e. sliding over EVENT time, exact at the newest edge, the oldest edge snapped down to a tile
 * boundary (so a window spans between `w` and `w + g`): the same rule as the offline builder's
 * "as known at t" (a late event counts from its ingestion on, never before). The online store
 * answers for `t` = the reader's clock, which must be at or after the ingestion of what was
 * applied (true for a reader on real time); past times are the offline path's job.
 *
 * Functions: `count` (events; with a field, events where it is not null), `sum` and `mean` of a
 * numeric field (nulls skipped; `mean` of no value is null, i.e. missing → the feature's fill),
 * `distinct_count` of a field (distinct non-null values, compared as their JSON text). An entity
 * with no event in a window has count 0, sum 0, distinct 0, mean null.
 *
 * Sums are EXACT: the correctly rounded value of the exact sum of the float64 inputs (Shewchuk's
 * non-overlapping partials, rounded once, half-even), so they do not depend on the order events
 * were added in — which differs between tiles merged online and rows scanned offline. `mean` is
 * that sum divided by the count (one rounding).
 *
 * ## The stored state (one record per entity, the online store's value)
 *
 * Tiles `k` hold the events with eventTime in (k·g, (k+1)·g] (count, per field the non-null count,
 * sum partials, distinct values). An event dated after its own ingestion (the service allows a few
 * minutes ahead) waits raw in `f` until the record's latest ingestion time passes its event time,
 * so that every tiled event has eventTime ≤ every later reader's t. Tiles older than the largest
 * window can ever reach from the record's latest ingestion time are dropped. The record carries
 * the last stream sequence applied to it (`q`): an event at or below it was applied already,
 * which is what makes replay after a crash idempotent.
 */
import { createHash } from 'node:crypto';
import { MlErrors } from '../errors.ts';
import type { AggregateFunction, FeatureViewDef, RawValue } from './schemas.ts';

/** Tile size when the spec gives none. */
export const DEFAULT_TILE_SECONDS = 60;

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export interface ResolvedAggregation {
  fn: AggregateFunction;
  field?: string;
  /** Output prefix (`<name>_<window>`). */
  name: string;
}

/** An aggregate view's spec, checked and with defaults resolved. */
export interface ResolvedAggregate {
  view: string;
  source: string;
  /** Group-by columns (the aggregate view's entity), in key order. */
  entity: string[];
  tileMs: number;
  windows: { label: string; ms: number }[];
  maxWindowMs: number;
  aggregations: ResolvedAggregation[];
  /** Every output the spec defines, by feature name. */
  outputs: Map<string, { agg: number; window: number }>;
  /** The view's declared features (the ones read), in order, with their output. */
  features: { name: string; agg: number; window: number }[];
  /** Fields whose non-null values are counted (count(field), sum, mean). */
  countFields: string[];
  /** Fields summed (sum, mean). */
  sumFields: string[];
  /** Fields whose distinct values are kept. */
  distinctFields: string[];
  /** sha256 (hex) of what decides the values (source, keys, tile, windows, aggregations); not the transforms. */
  digest: string;
}

export function windowMs(label: string): number | undefined {
  const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(label);
  return m ? Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] : undefined;
}

const defaultName = (a: { function: AggregateFunction; field?: string }) => (a.field ? `${a.field}_${a.function}` : a.function);

/**
 * Checks what the schema cannot say about an aggregate view (windows, names, outputs, TTL) and
 * resolves it. The source view is checked separately (`checkAggregateSource`), it needs KV.
 */
export function resolveAggregate(def: FeatureViewDef): ResolvedAggregate {
  if (def.source.type !== 'aggregate') throw MlErrors.BAD_INPUT(`feature view ${def.name}: source.type is "${def.source.type}", not "aggregate"`);
  const spec = def.source.spec;
  const bad = (field: string, why: string) => MlErrors.BAD_INPUT(`feature view ${def.name}: ${field} ${why}`);
  if (spec.view === def.name) throw bad('source.spec.view', 'names the view itself; an aggregate reads another (push) view');
  if (def.ttlSeconds !== 0) throw bad('ttlSeconds', 'must be 0 for an aggregate view: its windows already say which events count');
  const tileMs = (spec.tileSeconds ?? DEFAULT_TILE_SECONDS) * 1000;
  const windows = spec.windows.map((label, i) => {
    const ms = windowMs(label);
    if (ms === undefined) throw bad(`source.spec.windows[${i}]`, `"${label}" is not a window (a whole number and s, m, h or d)`);
    if (ms % tileMs !== 0) throw bad(`source.spec.windows[${i}]`, `${label} is not a multiple of the tile (${tileMs / 1000} s)`);
    return { label, ms };
  });
  const labels = new Set<string>();
  const lengths = new Set<number>();
  windows.forEach((w, i) => {
    if (labels.has(w.label) || lengths.has(w.ms)) throw bad(`source.spec.windows[${i}]`, `${w.label} repeats a window`);
    labels.add(w.label);
    lengths.add(w.ms);
  });
  const aggregations: ResolvedAggregation[] = spec.aggregations.map((a, i) => {
    if (a.function !== 'count' && !a.field) throw bad(`source.spec.aggregations[${i}]`, `${a.function} needs a field`);
    return { fn: a.function, ...(a.field ? { field: a.field } : {}), name: a.name ?? defaultName(a) };
  });
  const outputs = new Map<string, { agg: number; window: number }>();
  aggregations.forEach((a, i) =>
    windows.forEach((w, j) => {
      const name = `${a.name}_${w.label}`;
      if (name.length > 64) throw bad(`source.spec.aggregations[${i}]`, `gives the feature name "${name}", longer than 64 characters`);
      if (outputs.has(name)) throw bad(`source.spec.aggregations[${i}]`, `gives "${name}" twice (give the aggregations distinct names)`);
      outputs.set(name, { agg: i, window: j });
    }),
  );
  const features = def.features.map((f, i) => {
    const o = outputs.get(f.name);
    if (!o) throw bad(`features[${i}] (${f.name})`, `is not an output of the aggregations (they are: ${[...outputs.keys()].join(', ')})`);
    if (f.type !== 'numeric') throw bad(`features[${i}] (${f.name})`, `must be numeric (aggregates are numbers), not ${f.type}`);
    return { name: f.name, ...o };
  });
  for (const col of def.entity) if (aggregations.some((a) => a.field === col)) throw bad('source.spec.aggregations', `aggregates the group-by column "${col}"`);
  const uniq = (xs: (string | undefined)[]) => [...new Set(xs.filter((x): x is string => x !== undefined))].sort();
  const countFields = uniq(aggregations.filter((a) => a.fn !== 'distinct_count').map((a) => a.field));
  const sumFields = uniq(aggregations.filter((a) => a.fn === 'sum' || a.fn === 'mean').map((a) => a.field));
  const distinctFields = uniq(aggregations.filter((a) => a.fn === 'distinct_count').map((a) => a.field));
  // Fixed key order: JSON.stringify is canonical here.
  const decides = { source: spec.view, entity: def.entity, tileMs, windows: windows.map((w) => [w.label, w.ms]), aggregations: aggregations.map((a) => [a.fn, a.field ?? null, a.name]) };
  const digest = createHash('sha256').update(JSON.stringify(decides)).digest('hex');
  return { view: def.name, source: spec.view, entity: [...def.entity], tileMs, windows, maxWindowMs: Math.max(...windows.map((w) => w.ms)), aggregations, outputs, features, countFields, sumFields, distinctFields, digest };
}

/** The source view as the aggregate needs it: a push view, with the fields and group-by columns it names. */
export interface SourceShape {
  name: string;
  sourceType: string;
  entity: string[];
  features: { name: string; type: string }[];
}

/** Where each group-by column comes from in a source event: its entity key (by index), or one of its categorical features. */
export type KeyFrom = { entity: number } | { feature: string };

/** Checks the aggregate against its source view and says where each group-by column comes from. */
export function checkAggregateSource(agg: ResolvedAggregate, source: SourceShape | undefined): KeyFrom[] {
  const bad = (field: string, why: string) => MlErrors.BAD_INPUT(`feature view ${agg.view}: ${field} ${why}`);
  if (!source) throw bad('source.spec.view', `names "${agg.source}", which is not a feature view (apply it first)`);
  if (source.sourceType !== 'push') throw bad('source.spec.view', `names "${agg.source}", a ${source.sourceType} view; an aggregate reads the events of a push view`);
  const types = new Map(source.features.map((f) => [f.name, f.type]));
  agg.aggregations.forEach((a, i) => {
    if (!a.field) return;
    const t = types.get(a.field);
    if (!t) throw bad(`source.spec.aggregations[${i}].field`, `"${a.field}" is not a feature of ${source.name} (it has ${[...types.keys()].join(', ')})`);
    if ((a.fn === 'sum' || a.fn === 'mean') && t !== 'numeric') throw bad(`source.spec.aggregations[${i}].field`, `"${a.field}" is ${t}; ${a.fn} needs a numeric feature`);
  });
  return agg.entity.map((col) => {
    const i = source.entity.indexOf(col);
    if (i >= 0) return { entity: i };
    if (types.get(col) === 'categorical') return { feature: col };
    throw bad('entity', `column "${col}" is neither an entity column nor a categorical feature of ${source.name}`);
  });
}

// ---- time ------------------------------------------------------------------------------------

/** The oldest (excluded) edge of window `w` at time `t`: g · ⌊(t − w) / g⌋. */
export const windowStart = (t: number, w: number, g: number): number => g * Math.floor((t - w) / g);

/** The tile of an event time: tile k holds (k·g, (k+1)·g]. */
export const tileOf = (eventTime: number, g: number): number => Math.ceil(eventTime / g) - 1;

// ---- exact sums ------------------------------------------------------------------------------

/**
 * Adds `x` to `p`, a list of non-overlapping partials in increasing magnitude whose exact sum is
 * the running total, keeping it exact (each step splits a float addition into its rounded result
 * and the exact error). A non-finite value makes the total that value (as float addition would).
 */
export function addExact(p: number[], x: number): void {
  if (!Number.isFinite(x) || (p.length === 1 && !Number.isFinite(p[0]!))) {
    const cur = p.length === 1 && !Number.isFinite(p[0]!) ? p[0]! : 0;
    p.length = 0;
    p.push(cur + x);
    return;
  }
  let n = 0;
  for (let j = 0; j < p.length; j++) {
    let y = p[j]!;
    if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
    const hi = x + y;
    const lo = y - (hi - x);
    if (lo !== 0) p[n++] = lo;
    x = hi;
  }
  p.length = n;
  p.push(x);
}

/** The exact sum of the partials, correctly rounded to float64 (ties to even); 0 for none, never −0. */
export function roundExact(p: readonly number[]): number {
  let n = p.length;
  if (n === 0) return 0;
  let hi = p[--n]!;
  if (!Number.isFinite(hi)) return hi;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = p[--n]!;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  // hi + lo is exact; when lo is exactly half an ulp and the rest of the partials push the same
  // way, round away from hi (the partials below lo break the tie).
  if (n > 0 && ((lo < 0 && p[n - 1]! < 0) || (lo > 0 && p[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi === 0 ? 0 : hi;
}

/** The correctly rounded sum of values (order does not matter). */
export function exactSum(values: Iterable<number>): number {
  const p: number[] = [];
  for (const v of values) addExact(p, v);
  return roundExact(p);
}

// ---- per-entity state ------------------------------------------------------------------------

/** One tile's measures (MessagePack in the record). */
export interface Tile {
  /** Tile index. */
  k: number;
  /** Events. */
  n: number;
  /** Per field: events where it is not null. */
  c: Record<string, number>;
  /** Per summed field: exact partials. */
  s: Record<string, number[]>;
  /** Per distinct field: the distinct values' JSON text. */
  d: Record<string, string[]>;
}

/** An event dated after its ingestion, kept raw until the record's ingestion time reaches its event time. */
export interface PendingEvent {
  t: number;
  v: Record<string, RawValue>;
}

/** The online store's value for one entity of an aggregate view. */
export interface AggregateRecord {
  /** Entity key values, in the view's key order. */
  e: string[];
  /** Last stream sequence applied. */
  q: number;
  /** Latest ingestion time applied (epoch ms). */
  u: number;
  /** Tiles, ascending. */
  k: Tile[];
  /** Events dated ahead of the record's ingestion time. */
  f: PendingEvent[];
}

/** What the aggregate needs of one logged source event. */
export interface SourceEvent {
  seq: number;
  eventTime: number;
  ingestTime: number;
  values: Readonly<Record<string, RawValue>>;
}

export const emptyRecord = (entity: string[]): AggregateRecord => ({ e: entity, q: 0, u: 0, k: [], f: [] });

/** The group-by key of a source event (undefined: the event has no usable key and is not aggregated). */
export function groupKey(keyFrom: readonly KeyFrom[], entity: readonly string[], values: Readonly<Record<string, RawValue>>): string[] | undefined {
  const out: string[] = [];
  for (const k of keyFrom) {
    const v = 'entity' in k ? entity[k.entity] : values[k.feature];
    if (typeof v !== 'string' || v === '') return undefined;
    out.push(v);
  }
  return out;
}

const present = (v: RawValue | undefined): v is Exclude<RawValue, null> => v !== null && v !== undefined;

function addToTile(agg: ResolvedAggregate, tile: Tile, values: Readonly<Record<string, RawValue>>): void {
  tile.n++;
  for (const f of agg.countFields) if (present(values[f])) tile.c[f] = (tile.c[f] ?? 0) + 1;
  for (const f of agg.sumFields) {
    const v = values[f];
    if (typeof v === 'number') addExact((tile.s[f] ??= []), v);
  }
  for (const f of agg.distinctFields) {
    const v = values[f];
    if (!present(v)) continue;
    const text = JSON.stringify(v);
    const set = (tile.d[f] ??= []);
    if (!set.includes(text)) set.push(text);
  }
}

function tileFor(rec: AggregateRecord, k: number): Tile {
  // Tiles are ascending and the newest are touched most: search from the end.
  let i = rec.k.length;
  while (i > 0 && rec.k[i - 1]!.k > k) i--;
  if (i > 0 && rec.k[i - 1]!.k === k) return rec.k[i - 1]!;
  const t: Tile = { k, n: 0, c: {}, s: {}, d: {} };
  rec.k.splice(i, 0, t);
  return t;
}

/** Keeps only the fields the aggregate reads (pending events are stored raw). */
function neededValues(agg: ResolvedAggregate, values: Readonly<Record<string, RawValue>>): Record<string, RawValue> {
  const out: Record<string, RawValue> = {};
  for (const f of new Set([...agg.countFields, ...agg.sumFields, ...agg.distinctFields])) if (f in values) out[f] = values[f]!;
  return out;
}

/**
 * Applies one source event to an entity's record, in stream order. Returns false (and changes
 * nothing) when the record has applied this sequence already — a replay after a crash.
 */
export function applyEvent(agg: ResolvedAggregate, rec: AggregateRecord, ev: SourceEvent): boolean {
  if (ev.seq <= rec.q) return false;
  rec.q = ev.seq;
  rec.u = Math.max(rec.u, ev.ingestTime);
  const g = agg.tileMs;
  // Nothing at or before this edge can count for any t ≥ the record's ingestion time.
  const horizon = windowStart(rec.u, agg.maxWindowMs, g);
  if (ev.eventTime > ev.ingestTime) rec.f.push({ t: ev.eventTime, v: neededValues(agg, ev.values) });
  else if (ev.eventTime > horizon) addToTile(agg, tileFor(rec, tileOf(ev.eventTime, g)), ev.values);
  // Pending events whose time has come (for every reader from now on) join their tiles.
  if (rec.f.length > 0) {
    const keep: PendingEvent[] = [];
    for (const p of rec.f) {
      if (p.t > rec.u) keep.push(p);
      else if (p.t > horizon) addToTile(agg, tileFor(rec, tileOf(p.t, g)), p.v);
    }
    rec.f = keep;
  }
  const firstKept = horizon / g; // tile k holds (k·g, (k+1)·g]: tiles below this are at or before the horizon
  let drop = 0;
  while (drop < rec.k.length && rec.k[drop]!.k < firstKept) drop++;
  if (drop > 0) rec.k.splice(0, drop);
  return true;
}

interface Acc {
  n: number;
  c: Map<string, number>;
  s: Map<string, number[]>;
  /** Distinct values seen (online), or just how many (offline, counted by DuckDB). */
  d: Map<string, Set<string> | { size: number }>;
}

const newAcc = (): Acc => ({ n: 0, c: new Map(), s: new Map(), d: new Map() });

function accTile(acc: Acc, t: Tile): void {
  acc.n += t.n;
  for (const [f, c] of Object.entries(t.c)) acc.c.set(f, (acc.c.get(f) ?? 0) + c);
  for (const [f, ps] of Object.entries(t.s)) {
    let p = acc.s.get(f);
    if (!p) acc.s.set(f, (p = []));
    for (const x of ps) addExact(p, x);
  }
  for (const [f, vs] of Object.entries(t.d)) {
    let set = acc.d.get(f) as Set<string> | undefined;
    if (!set) acc.d.set(f, (set = new Set()));
    for (const v of vs) set.add(v);
  }
}

function finish(agg: ResolvedAggregation, acc: Acc): RawValue {
  switch (agg.fn) {
    case 'count':
      return agg.field ? (acc.c.get(agg.field) ?? 0) : acc.n;
    case 'sum':
      return roundExact(acc.s.get(agg.field!) ?? []);
    case 'mean': {
      const c = acc.c.get(agg.field!) ?? 0;
      return c === 0 ? null : roundExact(acc.s.get(agg.field!) ?? []) / c;
    }
    case 'distinct_count':
      return acc.d.get(agg.field!)?.size ?? 0;
  }
}

/**
 * The view's features for one entity as known at `t` (`t` at or after the record's ingestion
 * time): every declared feature is present; a missing record reads as no events.
 */
export function aggregateValues(agg: ResolvedAggregate, rec: AggregateRecord | undefined, t: number): Record<string, RawValue> {
  const g = agg.tileMs;
  const accs = agg.windows.map((w) => {
    const acc = newAcc();
    if (!rec) return acc;
    const start = windowStart(t, w.ms, g);
    const first = start / g;
    for (const tile of rec.k) if (tile.k >= first && tile.k * g < t) accTile(acc, tile);
    const pending: Tile = { k: 0, n: 0, c: {}, s: {}, d: {} };
    for (const p of rec.f) if (p.t > start && p.t <= t) addToTile(agg, pending, p.v);
    accTile(acc, pending);
    return acc;
  });
  const out: Record<string, RawValue> = {};
  for (const f of agg.features) out[f.name] = finish(agg.aggregations[f.agg]!, accs[f.window]!);
  return out;
}

/**
 * The same values from measures computed elsewhere (the offline path: counts and distinct counts
 * from DuckDB, the summed values as a list) — the one `finish` both paths end in.
 */
export function valuesFromMeasures(
  agg: ResolvedAggregate,
  perWindow: readonly { n: number; c: Record<string, number>; sums: Record<string, readonly number[]>; distinct: Record<string, number> }[],
): Record<string, RawValue> {
  const accs = perWindow.map((m) => {
    const acc = newAcc();
    acc.n = m.n;
    for (const [f, c] of Object.entries(m.c)) acc.c.set(f, c);
    for (const [f, vs] of Object.entries(m.sums)) {
      const p: number[] = [];
      for (const v of vs) addExact(p, v);
      acc.s.set(f, p);
    }
    for (const [f, n] of Object.entries(m.distinct)) acc.d.set(f, { size: n });
    return acc;
  });
  const out: Record<string, RawValue> = {};
  for (const f of agg.features) out[f.name] = finish(agg.aggregations[f.agg]!, accs[f.window]!);
  return out;
}

// ---- names -----------------------------------------------------------------------------------

/** The aggregate actor of a view's aggregation (one per distinct aggregation; versions that differ only in transforms share it). */
export const aggregatorId = (agg: Pick<ResolvedAggregate, 'view' | 'digest'>): string => `feat-agg-${agg.view}-${agg.digest.slice(0, 12)}`;

/**
 * The online store key token of an aggregation: `=<digest>` (`=` never appears in a base64url
 * entity token, so it cannot collide with a push view's keys).
 */
export const aggregateKeyToken = (agg: Pick<ResolvedAggregate, 'digest'>): string => `=${agg.digest.slice(0, 16)}`;
