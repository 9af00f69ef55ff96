/**
 * The features service (issue #14 items 1–2), run in the scheduler process as a control module
 * (ml/control.ts) with the scheduler's rights, in one queue group on every scheduler process
 * (its writes are compare-and-swap, so any of them may answer):
 *
 * - `<prefix>.features.apply` — `{definition, snapshot?}` → a view version (`views.ts`). An
 *   aggregate view is first checked against its source view, and its aggregate actor is spawned
 *   through the scheduler (`aggregator` in the reply: its id and state, or why it could not be).
 * - `<prefix>.features.push.<view>` — one event `{eventId, entity, values, eventTime}` (JSON or
 *   MessagePack, by content-type) → `PushResult`. The gateway's `POST /v1/features/{view}` sends
 *   the same request.
 *
 * A push is checked against the view's latest version (unknown view, unknown or missing entity
 * column, unknown feature, wrong type, an event time more than `maxFutureMs` ahead: a
 * SHOAL_ERR_BAD_INPUT naming the field), then FIRST appended to the offline log (stream
 * `<P>_FEATURE_EVENTS`, subject `<prefix>.featlog.<view>`, with `Nats-Msg-Id` `<view>:<eventId>`
 * so JetStream drops a duplicate inside its de-dup window), and only then applied to the online
 * store. The reply comes after both: an acknowledged event is in the offline log. A duplicate
 * re-applies the *logged* original (not the retry's body): if the first attempt died between the
 * two writes, the retry completes it; otherwise it changes nothing.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import { Type } from '@sinclair/typebox';
import { ActorClient, ContentType, Errors, publishIdempotent, decode, encode, resources, serve, systemClock, type Clock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { OfflineStore } from './offline.ts';
import { buildTrainingSet, type BuildRequest } from './training-set.ts';
import { OnlineStore, entityValues } from './online.ts';
import { FeatureEvent, RawValue, type FeatureViewDef, type LoggedEvent, type PushResult } from './schemas.ts';
import { numberOf } from './transforms.ts';
import { aggregatorSpec } from './aggregate-actor.ts';
import { aggregateSourceOf } from './aggregate-store.ts';
import type { KeyFrom } from './aggregates.ts';
import { FeatureViews, parseViewDef } from './views.ts';
import { piiFeatures, shown } from '../governance/privacy/pii.ts';

export const ApplyRequest = Type.Object(
  { definition: Type.Unknown(), snapshot: Type.Optional(Type.Array(Type.Record(Type.String(), RawValue), { maxItems: 1_000_000 })) },
  { additionalProperties: false },
);

export const MaterializeRequest = Type.Object({ view: Type.String() }, { additionalProperties: false });

/** Label rows from a label view's events (offline.ts `LabelsFromView`). */
export const LabelsFromViewSchema = Type.Object(
  { view: Type.String({ minLength: 1 }), label: Type.String({ minLength: 1 }), since: Type.Optional(Type.Union([Type.String(), Type.Number()])), until: Type.Optional(Type.Union([Type.String(), Type.Number()])) },
  { additionalProperties: false },
);

export const BuildRequestSchema = Type.Object(
  {
    name: Type.String(),
    views: Type.Array(Type.String(), { minItems: 1, maxItems: 64 }),
    labels: Type.Union([
      Type.Array(Type.Object({ entity: Type.Record(Type.String(), Type.String()), time: Type.Union([Type.String(), Type.Number()]), label: Type.Union([Type.Number(), Type.Boolean()]) }, { additionalProperties: false }), {
        minItems: 1,
        maxItems: 1_000_000,
      }),
      LabelsFromViewSchema,
    ]),
  },
  { additionalProperties: false },
);

export interface FeatureServiceOptions {
  /** A connection with the scheduler's rights. */
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** Ingestion time and the future check; `now()` must be epoch ms. @default systemClock */
  clock?: Clock;
  /** An event time further ahead of the ingestion time than this is refused. @default 300000 (5 min) */
  maxFutureMs?: number;
  /** Queue group. @default `<prefix>-features` */
  queue?: string;
}

export interface FeatureService {
  stop(): Promise<void>;
}

/** Parses an event time (ISO 8601 or epoch ms) to epoch ms; a BAD_INPUT naming `eventTime` otherwise. */
export function eventTimeOf(t: string | number, field = 'eventTime'): number {
  const ms = typeof t === 'number' ? t : /^\d{4}-\d{2}-\d{2}/.test(t) ? Date.parse(t) : NaN;
  if (!Number.isFinite(ms) || ms < 0) throw MlErrors.BAD_INPUT(`${field}: ${JSON.stringify(t)} is not an ISO 8601 time or epoch milliseconds`);
  return ms;
}

/** Checks one event against a view definition and builds its offline-log record. */
export function checkEvent(def: FeatureViewDef, ev: FeatureEvent, ingestTime: number, maxFutureMs: number): LoggedEvent {
  const entity = entityValues(def, ev.entity, 'entity');
  const types = new Map(def.features.map((f) => [f.name, f.type]));
  const pii = piiFeatures(def);
  const names = Object.keys(ev.values);
  if (names.length === 0) throw MlErrors.BAD_INPUT(`values: no features (feature view ${def.name} has ${[...types.keys()].join(', ')})`);
  for (const name of names) {
    const type = types.get(name);
    const v = ev.values[name];
    if (!type) throw MlErrors.BAD_INPUT(`values.${name}: not a feature of feature view ${def.name}`);
    if (v === null) continue;
    const ok = type === 'categorical' ? typeof v === 'string' : type === 'boolean' ? typeof v === 'boolean' : type === 'timestamp' ? typeof v !== 'boolean' && numberOf(type, v) !== undefined : typeof v === 'number' && Number.isFinite(v);
    // A PII feature's value is withheld from the message (ml/governance/privacy).
    if (!ok) throw MlErrors.BAD_INPUT(`values.${name}: ${shown(v, pii.has(name))} is not a ${type} value${type === 'timestamp' ? ' (ISO 8601 or epoch ms)' : ''}`);
  }
  const eventTime = eventTimeOf(ev.eventTime);
  if (eventTime - ingestTime > maxFutureMs) throw MlErrors.BAD_INPUT(`eventTime: ${new Date(eventTime).toISOString()} is ${Math.round((eventTime - ingestTime) / 1000)} s in the future (at most ${maxFutureMs / 1000} s allowed)`);
  if (ev.knownAt !== undefined) {
    // A backfill says when the value became known; it cannot claim to be known later than now,
    // nor earlier than it happened (beyond the same allowance for clock skew).
    const knownAt = eventTimeOf(ev.knownAt, 'knownAt');
    if (knownAt > ingestTime) throw MlErrors.BAD_INPUT(`knownAt: ${new Date(knownAt).toISOString()} is after the ingestion time ${new Date(ingestTime).toISOString()} (a value cannot be known before it arrives)`);
    if (eventTime - knownAt > maxFutureMs) throw MlErrors.BAD_INPUT(`knownAt: ${new Date(knownAt).toISOString()} is before eventTime ${new Date(eventTime).toISOString()}`);
    ingestTime = knownAt;
  }
  return { view: def.name, eventId: ev.eventId, entity, values: ev.values, eventTime, ingestTime };
}

export async function startFeatureService(o: FeatureServiceOptions): Promise<FeatureService> {
  const s = o.subjects;
  const clock = o.clock ?? systemClock;
  const maxFutureMs = o.maxFutureMs ?? 300_000;
  const views = await FeatureViews.open(o.nc, s.prefix);
  const online = await OnlineStore.open(o.nc, s.prefix, clock);
  const offline = await OfflineStore.open(o.nc, s.prefix);
  const js = jetstream(o.nc);
  const jsm = await jetstreamManager(o.nc);
  const stream = resources(s.prefix).streams.featureEvents;
  const queue = o.queue ?? `${s.prefix}-features`;
  const pushPrefix = s.featurePush('x').slice(0, -1);
  const actors = new ActorClient(o.nc, s);

  const subs: Subscription[] = [
    serve(
      o.nc,
      s.featuresApply,
      ApplyRequest,
      async (req) => {
        // An aggregate view is checked against its source view before it is stored.
        const def = parseViewDef(req.definition);
        const keyFrom = def.source.type === 'aggregate' ? await aggregateSourceOf(views, def) : undefined;
        const r = await views.apply(def, req.snapshot);
        o.log.info({ view: r.version.name, version: r.version.version, created: r.created, fitted: r.version.fitted !== null }, 'feature view applied');
        if (!keyFrom) return r;
        // Its actor is spawned now (or found running): an apply of an unchanged view repairs a missing one.
        return { ...r, aggregator: await ensureAggregator(actors, def, keyFrom, o.log) };
      },
      { queue, log: o.log },
    ),
    serve(
      o.nc,
      `${pushPrefix}*`,
      FeatureEvent,
      async (ev, m): Promise<PushResult> => {
        const name = m.subject.slice(pushPrefix.length);
        const version = await views.version(name);
        if (!version) throw MlErrors.BAD_INPUT(`view: unknown feature view "${name}"`);
        const src = version.definition.source;
        if (src.type === 'aggregate') throw MlErrors.BAD_INPUT(`view: feature view "${name}" is a streaming aggregate of "${src.spec.view}"; push events to ${src.spec.view}`);
        const logged = checkEvent(version.definition, ev, clock.now(), maxFutureMs);
        // Through a stream leader election (a server died): retried, within the pusher's patience.
        const ack = await publishIdempotent(js, s.featureLog(name), encode(logged, ContentType.MSGPACK), { msgID: `${name}:${ev.eventId}` }, 10_000);
        let applyWhat = logged;
        if (ack.duplicate) {
          const orig = await jsm.streams.getMessage(stream, { seq: ack.seq });
          // The original is gone only if the stream lost it (limits); then this retry's body stands in.
          if (orig) applyWhat = decode(orig.data, ContentType.MSGPACK) as LoggedEvent;
        }
        const applied = await online.apply(version.definition, applyWhat);
        return { view: name, eventId: ev.eventId, seq: ack.seq, duplicate: ack.duplicate, applied: ack.duplicate ? [] : applied };
      },
      { queue, log: o.log },
    ),
    serve(
      o.nc,
      s.featuresMaterialize,
      MaterializeRequest,
      async (req) => {
        await views.get(req.view);
        const r = await offline.materialize(req.view);
        o.log.info({ view: req.view, through: r.manifest.through, events: r.file?.events ?? 0 }, 'feature events compacted');
        return r;
      },
      { queue, log: o.log },
    ),
    serve(
      o.nc,
      s.featuresBuild,
      BuildRequestSchema,
      async (req) => {
        const r = await buildTrainingSet(o.nc, s.prefix, views, offline, req as BuildRequest);
        o.log.info({ name: r.dataset.name, digest: r.dataset.digest, rows: r.dataset.rows, views: r.lineage.views.map((v) => `${v.name}@${v.version}`) }, 'training set built');
        return r;
      },
      { queue, log: o.log },
    ),
  ];
  o.log.info({ queue }, 'features service serving');
  return {
    async stop() {
      for (const sub of subs) sub.unsubscribe();
    },
  };
}

/** What an apply of an aggregate view says about its actor. */
export interface AggregatorPlacement {
  actorId: string;
  /** `running`, `pending` (waiting for a node), `existing` (spawned by an earlier apply); `error` when the spawn was refused. */
  state: string;
  nodeId?: string;
  error?: string;
}

async function ensureAggregator(actors: ActorClient, def: FeatureViewDef, keyFrom: KeyFrom[], log: Logger): Promise<AggregatorPlacement> {
  const spec = aggregatorSpec(def, keyFrom);
  try {
    const r = await actors.spawn(spec, { timeoutMs: 30_000 });
    const a = r.actors[0]!;
    log.info({ actorId: a.actorId, nodeId: a.nodeId, state: a.state }, 'aggregate actor spawned');
    return { actorId: a.actorId, state: a.state, ...(a.nodeId ? { nodeId: a.nodeId } : {}) };
  } catch (err) {
    if (Errors.ACTOR_ALREADY_RUNNING.is(err)) return { actorId: spec.id, state: 'existing' };
    // The view is stored either way; applying it again retries the spawn.
    log.warn({ actorId: spec.id, err: (err as Error).message }, 'aggregate actor not spawned');
    return { actorId: spec.id, state: 'error', error: (err as Error).message };
  }
}
