/**
 * The JetStream resources the cluster relies on: KV buckets (nodes, actors, models, jobs,
 * features, leases, checkpoints, datasets), the object stores (artifacts, checkpoint objects,
 * uploads), the job work-queue stream and the events stream. Who may use which is in
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
    // Created by the feedback service (ml/monitoring/feedback.ts) with the join horizon as its TTL.
    if (key === 'predictionIndex') continue;
    await kvm.create(bucket, { history: key === 'nodes' ? (opts.nodeHistory ?? 1) : key === 'models' ? 10 : key === 'online' ? 1 : 5, storage: StorageType.File });
  }
  const objm = new Objm(nc);
  await objm.create(r.stores.artifacts, { storage: StorageType.File });
  await objm.create(r.stores.checkpoints, { storage: StorageType.File });
  // Uploads are taken (and deleted) by the registry service at once; one left behind by a caller
  // that died before asking goes after a day.
  await objm.create(r.stores.uploads, { storage: StorageType.File, ttl: UPLOAD_TTL_MS * 1_000_000 }); // ttl in nanoseconds
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
