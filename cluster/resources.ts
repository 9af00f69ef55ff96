/**
 * The JetStream resources the cluster relies on: KV buckets (nodes, actors, models, jobs,
 * features, leases, checkpoints, datasets), the object stores (artifacts, checkpoint objects,
 * uploads), the job work-queue stream, the events stream and model monitoring's streams
 * (predictions, feedback, labeled) with the label join's index bucket. Who may use which is in
 * `roles.ts`. The scheduler (the one role allowed to create streams) ensures them at start-up;
 * creating them is idempotent.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, RetentionPolicy, StorageType, DiscardPolicy } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import { resources, subjects } from './subjects.ts';
import { isJetStreamUnavailable, isStreamNotFound } from './nats-errors.ts';
import { Errors } from './errors.ts';

export interface EnsureOptions {
  prefix?: string;
  /** History kept per node key. Server 2.9 has no per-key TTL, so liveness is judged by heartbeat time. */
  nodeHistory?: number;
  /**
   * Copies of every stream, bucket and store (JetStream R1/R3/R5; config `nats.replicas`, see
   * `replicasFor`). Existing ones are scaled to it. @default 1
   */
  replicas?: number;
  /** How long to wait for JetStream to answer (a cluster electing its meta leader) before giving up. @default 30000 */
  jetstreamTimeoutMs?: number;
}

/** `nats.replicas` when set, else min(3, number of servers in the URL list): R3 on a cluster of 3 or more, R1 on one server. */
export function replicasFor(servers: string | undefined, configured?: number): number {
  if (configured !== undefined) return configured;
  const n = (servers ?? '').split(',').filter((s) => s.trim() !== '').length;
  return Math.max(1, Math.min(3, n));
}

export async function ensureResources(nc: NatsConnection, opts: EnsureOptions = {}): Promise<void> {
  const prefix = opts.prefix ?? 'shoal';
  const r = resources(prefix);
  const s = subjects(prefix);
  const num_replicas = opts.replicas ?? 1;
  // Every step may meet a cluster that is still settling: retry those answers, within one bound.
  const settle = settling(opts.jetstreamTimeoutMs ?? 30_000);
  const jsm = await settle(() => jetstreamManager(nc));
  const ensureStream = (cfg: StreamConfig) => settle(() => ensureStreamOnce(jsm, { ...cfg, num_replicas }));
  await ensureStream({
    name: r.streams.jobs,
    subjects: [s.jobsSubmit],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    // Idempotent submission: duplicates by Nats-Msg-Id within this window are dropped.
    duplicate_window: 10 * 60 * 1_000_000_000,
    discard: DiscardPolicy.New,
    max_msgs: 1_000_000,
  });
  await ensureStream({
    name: r.streams.events,
    subjects: [s.eventsAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: 7 * 24 * 3600 * 1_000_000_000,
    max_msgs: 1_000_000,
  });
  // The audit log: kept (limits by size only, oldest first past 1 GiB), never by age.
  await ensureStream({
    name: r.streams.audit,
    subjects: [s.auditAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_bytes: 1024 ** 3,
  });
  await ensureStream({
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
    // Counters per window keep one value per key and age out with the bucket's TTL (2.9 has no per-key TTL): twice their window.
    const ttl = key === 'rateWindows' ? 2 * 60_000 : key === 'tenantSpend' ? 2 * 86_400_000 : undefined;
    const history = key === 'nodes' ? (opts.nodeHistory ?? 1) : key === 'models' ? 10 : key === 'online' || ttl !== undefined ? 1 : 5;
    await settle(() => kvm.create(bucket, { history, storage: StorageType.File, replicas: num_replicas, ...(ttl !== undefined ? { ttl } : {}) }));
    // Creating binds to an existing bucket as it is: scale it here.
    await settle(() => ensureReplicas(jsm, `KV_${bucket}`, num_replicas));
  }
  await ensureMonitoringResources(nc, prefix, { replicas: num_replicas });
  const objm = new Objm(nc);
  const stores: [string, { ttl?: number }][] = [
    [r.stores.artifacts, {}],
    [r.stores.checkpoints, {}],
    // Uploads are taken (and deleted) by the registry service at once; one left behind by a caller
    // that died before asking goes after a day.
    [r.stores.uploads, { ttl: UPLOAD_TTL_MS * 1_000_000 }], // ttl in nanoseconds
  ];
  for (const [store, extra] of stores) {
    await settle(() => objm.create(store, { storage: StorageType.File, replicas: num_replicas, ...extra }));
    await settle(() => ensureReplicas(jsm, `OBJ_${store}`, num_replicas));
  }
}

/**
 * Runs one step, asked again with back-off while JetStream answers "not ready yet" or times out,
 * for up to `timeoutMs`. For start-up steps after a failover: a consumer created while the
 * cluster still counts a cut-off peer can time out, and the next try usually goes through.
 */
export function retrySettling<T>(step: () => Promise<T>, timeoutMs: number): Promise<T> {
  return settling(timeoutMs)(step);
}

/** Runs steps, retrying the answers of a JetStream that is not ready yet until `timeoutMs` (from the first step) has passed. */
function settling(timeoutMs: number): <T>(step: () => Promise<T>) => Promise<T> {
  let deadline: number | undefined;
  return async (step) => {
    deadline ??= Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (!isJetStreamUnavailable(err)) throw err;
        if (Date.now() >= deadline) throw Errors.JETSTREAM_UNAVAILABLE(timeoutMs, err instanceof Error ? err.message : String(err));
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  };
}

async function ensureReplicas(jsm: Jsm, stream: string, replicas: number): Promise<void> {
  const info = await jsm.streams.info(stream);
  if (info.config.num_replicas !== replicas) await jsm.streams.update(stream, { ...info.config, num_replicas: replicas });
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
  /** Copies of each (see `EnsureOptions.replicas`). @default 1 */
  replicas?: number;
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
  const num_replicas = l.replicas ?? 1;
  const settle = settling(30_000);
  const jsm = await settle(() => jetstreamManager(nc));
  const ensureStream = (_: Jsm, cfg: StreamConfig) => settle(() => ensureStreamOnce(jsm, { ...cfg, num_replicas }));
  const labelsAge = (l.labelsMaxAgeMs ?? 30 * DAY_MS) * NS;
  const base = { retention: RetentionPolicy.Limits, storage: StorageType.File, discard: DiscardPolicy.Old };
  await ensureStream(jsm, { ...base, name: r.streams.predictions, subjects: [s.predictionsAll], max_age: (l.predictionsMaxAgeMs ?? 7 * DAY_MS) * NS, max_bytes: l.predictionsMaxBytes ?? 1024 ** 3 });
  // A label sent again (a client's retry) within the window is stored once.
  await ensureStream(jsm, { ...base, name: r.streams.feedback, subjects: [s.feedbackLogAll], max_age: labelsAge, duplicate_window: 10 * 60 * 1000 * NS });
  await ensureStream(jsm, { ...base, name: r.streams.labeled, subjects: [s.labeledAll], max_age: labelsAge, max_bytes: l.labeledMaxBytes ?? 1024 ** 3, duplicate_window: 10 * 60 * 1000 * NS });
  const ttlMs = (l.horizonMs ?? 7 * DAY_MS) + DAY_MS;
  const bucket = r.buckets.predictionIndex;
  // Inside the same bound as the streams: a restarted cluster may time out the first asks (CI saw it).
  await settle(async () => {
    try {
      await jsm.streams.info(`KV_${bucket}`);
      await jsm.streams.update(`KV_${bucket}`, { max_age: ttlMs * NS, num_replicas });
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      // nats.js takes the KV TTL in milliseconds (JetStream's max_age is nanoseconds).
      await new Kvm(nc).create(bucket, { history: 1, storage: StorageType.File, ttl: ttlMs, replicas: num_replicas });
    }
  });
}

/** The feature events stream's de-dup window: an event id pushed again within it is applied once. */
export const FEATURE_DEDUP_WINDOW_MS = 3600 * 1000;

/** How long an upload nobody registered stays in the uploads store. */
export const UPLOAD_TTL_MS = 24 * 3600 * 1000;

type Jsm = Awaited<ReturnType<typeof jetstreamManager>>;
type StreamConfig = Parameters<Jsm['streams']['add']>[0] & { name: string };

async function ensureStreamOnce(jsm: Jsm, cfg: StreamConfig): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (err) {
    if (isStreamNotFound(err)) await jsm.streams.add(cfg);
    else throw err;
  }
}

/** Opens a bucket that the scheduler created (binding fails if it does not exist yet). */
export async function openBucket(nc: NatsConnection, name: string, opts: { timeoutMs?: number } = {}): Promise<KV> {
  // With its own answer timeout (every get and write through it), else JetStream's default 5 s.
  const kvm = new Kvm(opts.timeoutMs !== undefined ? jetstream(nc, { timeout: opts.timeoutMs }) : nc);
  // Binding asks JetStream for the stream's info: retried while a (re)started cluster settles.
  return settling(30_000)(() => kvm.open(name));
}

/**
 * The keys of a bucket under `filter`, each once, sorted. `KV.keys()` reads the last value per
 * subject through a consumer and can yield a key twice when it is written while the listing runs
 * (the update is delivered too); callers that count or list records need each key once.
 */
export async function kvKeys(kv: KV, filter = '>'): Promise<string[]> {
  const seen = new Set<string>();
  for await (const k of await kv.keys(filter)) seen.add(k);
  return [...seen].sort();
}
