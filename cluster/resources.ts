/**
 * The JetStream resources the cluster relies on: KV buckets (nodes, actors, models, jobs,
 * features, leases, checkpoints, datasets), the object stores (artifacts, checkpoint objects,
 * uploads), the job work-queue stream, the events stream and model monitoring's streams
 * (predictions, feedback, labeled) with the label join's index bucket. Who may use which is in
 * `roles.ts`. The scheduler (the one role allowed to create streams) ensures them at start-up;
 * creating them is idempotent.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { resources, subjects } from './subjects.ts';
import { isStreamNotFound } from './nats-errors.ts';

export interface EnsureOptions {
  prefix?: string;
  /** History kept per node key. Server 2.9 has no per-key TTL, so liveness is judged by heartbeat time. */
  nodeHistory?: number;
}

export async function ensureResources(nc: NatsConnection, opts: EnsureOptions = {}): Promise<void> {
  const prefix = opts.prefix ?? 'shoal';
  const r = resources(prefix);
  const s = subjects(prefix);
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, {
    name: r.streams.jobs,
    subjects: [s.jobsSubmit],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    // Idempotent submission: duplicates by Nats-Msg-Id within this window are dropped.
    duplicate_window: 10 * 60 * 1_000_000_000,
    discard: DiscardPolicy.New,
    max_msgs: 1_000_000,
  });
  await ensureStream(jsm, {
    name: r.streams.events,
    subjects: [s.eventsAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 7 * 24 * 3600 * 1_000_000_000,
    max_msgs: 1_000_000,
  });
  await ensureStream(jsm, {
    name: r.streams.featureEvents,
    subjects: [s.featureLogAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    // Idempotent pushes: a repeated event id (Nats-Msg-Id `<view>:<eventId>`) within this window is dropped.
    duplicate_window: FEATURE_DEDUP_WINDOW_MS * 1_000_000,
  });
  const kvm = new Kvm(nc);
  for (const [key, bucket] of Object.entries(r.buckets)) {
    // Created below with the join horizon as its TTL.
    if (key === 'predictionIndex') continue;
    await kvm.create(bucket, { history: key === 'nodes' ? (opts.nodeHistory ?? 1) : key === 'models' ? 10 : key === 'online' ? 1 : 5, storage: StorageType.File });
  }
  await ensureMonitoringResources(nc, prefix);
  const objm = new Objm(nc);
  await objm.create(r.stores.artifacts, { storage: StorageType.File });
  await objm.create(r.stores.checkpoints, { storage: StorageType.File });
  // Uploads are taken (and deleted) by the registry service at once; one left behind by a caller
  // that died before asking goes after a day.
  await objm.create(r.stores.uploads, { storage: StorageType.File, ttl: UPLOAD_TTL_MS * 1_000_000 }); // ttl in nanoseconds
}

/** Retention of model monitoring's streams and the label join's horizon (config section `monitoring`). */
export interface MonitoringLimits {
  /** A logged prediction may be joined with its label this long after it. @default 7 days */
  horizonMs?: number;
  /** Prediction log retention. @default 7 days */
  predictionsMaxAgeMs?: number;
  /** Prediction log size bound (oldest dropped first; -1: none). @default 1 GiB */
  predictionsMaxBytes?: number;
  /** Stored labels' and joined rows' retention. @default 30 days */
  labelsMaxAgeMs?: number;
  /** Joined rows' size bound (-1: none). @default 1 GiB */
  labeledMaxBytes?: number;
}

const DAY_MS = 24 * 3600 * 1000;
const NS = 1_000_000;

/**
 * Model monitoring's resources (ml/monitoring): the prediction log, the stored labels, the joined
 * rows (limits retention: oldest dropped first, never a refused publish) and the label join's
 * index bucket (TTL: the horizon plus a day, so the join itself tells "late" from "unknown").
 * Created with the defaults by {@link ensureResources}; the scheduler's monitoring module applies
 * the configured limits (an update when they exist).
 */
export async function ensureMonitoringResources(nc: NatsConnection, prefix = 'shoal', l: MonitoringLimits = {}): Promise<void> {
  const r = resources(prefix);
  const s = subjects(prefix);
  const jsm = await jetstreamManager(nc);
  const labelsAge = (l.labelsMaxAgeMs ?? 30 * DAY_MS) * NS;
  const base = { retention: RetentionPolicy.Limits, storage: StorageType.File, discard: DiscardPolicy.Old };
  await ensureStream(jsm, { ...base, name: r.streams.predictions, subjects: [s.predictionsAll], max_age: (l.predictionsMaxAgeMs ?? 7 * DAY_MS) * NS, max_bytes: l.predictionsMaxBytes ?? 1024 ** 3 });
  // A label sent again (a client's retry) within the window is stored once.
  await ensureStream(jsm, { ...base, name: r.streams.feedback, subjects: [s.feedbackLogAll], max_age: labelsAge, duplicate_window: 10 * 60 * 1000 * NS });
  await ensureStream(jsm, { ...base, name: r.streams.labeled, subjects: [s.labeledAll], max_age: labelsAge, max_bytes: l.labeledMaxBytes ?? 1024 ** 3, duplicate_window: 10 * 60 * 1000 * NS });
  const ttlMs = (l.horizonMs ?? 7 * DAY_MS) + DAY_MS;
  const bucket = r.buckets.predictionIndex;
  try {
    await jsm.streams.info(`KV_${bucket}`);
    await jsm.streams.update(`KV_${bucket}`, { max_age: ttlMs * NS });
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
    // nats.js takes the KV TTL in milliseconds (JetStream's max_age is nanoseconds).
    await new Kvm(nc).create(bucket, { history: 1, storage: StorageType.File, ttl: ttlMs });
  }
}

/** The feature events stream's de-dup window: an event id pushed again within it is applied once. */
export const FEATURE_DEDUP_WINDOW_MS = 3600 * 1000;

/** How long an upload nobody registered stays in the uploads store. */
export const UPLOAD_TTL_MS = 24 * 3600 * 1000;

type Jsm = Awaited<ReturnType<typeof jetstreamManager>>;

async function ensureStream(jsm: Jsm, cfg: Parameters<Jsm['streams']['add']>[0] & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if (isStreamNotFound(err)) await jsm.streams.add(cfg);
    else throw err;
  }
}

/** Opens a bucket that the scheduler created (binding fails if it does not exist yet). */
export async function openBucket(nc: NatsConnection, name: string): Promise<KV> {
  return new Kvm(nc).open(name);
}
