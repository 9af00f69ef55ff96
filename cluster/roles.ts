/**
 * Who may do what, as data: one table (`ROLE_TABLE`) saying, per role, which core subjects it
 * may publish and subscribe to, and which operations it may do on each KV bucket, object store
 * and stream. The nats-server permissions are generated from it (`permissionsFor`), and so is
 * the permission-matrix test (test/cluster/permissions.test.ts), which also fails when a
 * resource or a subject exists that the table has not classified.
 *
 * Operations and the exact JetStream API subjects they need with nats.js 3.4 on nats-server
 * 2.9.10 (found by tracing the server while the clients did each operation):
 *
 * | op | what it allows | subjects |
 * |---|---|---|
 * | KV `read` | get, keys, watch, history, status | `STREAM.INFO.<s>`, `STREAM.MSG.GET.<s>`, `DIRECT.GET.<s>[.>]`, ordered consumers: `CONSUMER.CREATE.<s>.>` (name + filter tokens), `CONSUMER.INFO.<s>.>`, `CONSUMER.DELETE.<s>.>` (a reset deletes the old one), flow control `$JS.FC.<s>.>` |
 * | KV `write` | put, create, update, delete (and purge) of any key | `$KV.<bucket>.>`, `STREAM.INFO.<s>` |
 * | KV `write-own` | the same, for the key named after the node only | `$KV.<bucket>.<nodeId>`, `STREAM.INFO.<s>` |
 * | store `read` | info, get, list, watch | as KV `read` |
 * | store `put` | put and delete objects | `$O.<store>.>`, `STREAM.INFO.<s>`, `STREAM.MSG.GET.<s>` (the old meta), **`STREAM.PURGE.<s>`**: nats.js purges a replaced or deleted object's chunks with a filtered purge, and the server cannot tell a filtered purge from a full one — so `put` is granted only on stores whose whole content the role may lose (uploads; a node's checkpoint store) |
 * | stream `publish` | publish into the stream (core subjects; JetStream acks come back to the inbox) | the stream's subjects |
 * | stream `read` | info, get, ordered consumers | as KV `read` |
 * | stream `consume` | a durable pull consumer: create, next, ack, delete; get one message | `CONSUMER.CREATE/DURABLE.CREATE/MSG.NEXT/INFO/DELETE.<s>.>`, `$JS.ACK.<s>.>`, `STREAM.MSG.GET.<s>` |
 *
 * Every role may call `$JS.API.INFO` (account info; nats.js asks it when opening an object store).
 * Only an `admin` role (the scheduler) gets the rest: stream create/update/delete, a purge of
 * anything but the stores it may `put` to, `STREAM.MSG.DELETE`, the job queue's consumer, the
 * leases bucket — all of `$JS.>`, `$KV.>` and `$O.>`.
 */
import { REGISTRY_OPS, SCHEDULER_OPS, resources, subjects, type Resources, type Subjects } from './subjects.ts';
import { Role } from './wire.ts';

export const KvOp = { READ: 'read', WRITE: 'write', WRITE_OWN: 'write-own' } as const;
export type KvOp = (typeof KvOp)[keyof typeof KvOp];
export const StoreOp = { READ: 'read', PUT: 'put' } as const;
export type StoreOp = (typeof StoreOp)[keyof typeof StoreOp];
export const StreamOp = { PUBLISH: 'publish', READ: 'read', CONSUME: 'consume' } as const;
export type StreamOp = (typeof StreamOp)[keyof typeof StreamOp];

export type BucketKey = keyof Resources['buckets'];
export type StoreKey = keyof Resources['stores'];
export type StreamKey = keyof Resources['streams'];

/**
 * A tenant's own NATS user (`tenant-<name>`, README "Tenants over NATS"): not a process role (no
 * Shoal process connects as one), so it is not in `Role`; it has a row in the table all the same.
 */
export const TENANT_ROLE = 'tenant' as const;
/** The rows of the role table: the process roles and the tenant users. */
export type GrantRole = Role | typeof TENANT_ROLE;
export const GRANT_ROLES: readonly GrantRole[] = [...Object.values(Role), TENANT_ROLE];

/**
 * What one role may do. `nodeId` is the connecting node's own id (node role only), or the
 * tenant's name (tenant role only); '' otherwise.
 */
export interface RoleGrant {
  /** No JetStream API at all, not even `$JS.API.INFO` (the tenant users). */
  noJetStream?: boolean;
  /** All of JetStream (`$JS.>`, `$KV.>`, `$O.>`) and every subject under the prefix. */
  admin?: boolean;
  /** Core subjects it may publish to (requests included; replies need no grant: `allow_responses`). */
  publish: (s: Subjects, nodeId: string) => string[];
  /** Core subjects it may subscribe to (its own inbox is added). */
  subscribe: (s: Subjects, nodeId: string) => string[];
  kv: { [K in BucketKey]?: readonly KvOp[] };
  stores: { [K in StoreKey]?: readonly StoreOp[] };
  streams: { [K in StreamKey]?: readonly StreamOp[] };
}

const { READ, WRITE, WRITE_OWN } = KvOp;

/**
 * The role table. Changing what a role may do means changing this, and nothing else: the server
 * config and the permission-matrix test follow.
 */
export const ROLE_TABLE: Readonly<Record<GrantRole, RoleGrant>> = {
  // The controller: places actors, owns every stream, runs the registry/control service.
  [Role.SCHEDULER]: {
    admin: true,
    publish: (s) => [s.all],
    subscribe: (s) => [s.all],
    kv: {},
    stores: {},
    streams: {},
  },
  // A node hosts actors (any actor, any service: placement decides), obeys its own control
  // subject only, heartbeats on its own beat subject and writes its own record, claims actors in the directory by CAS, keeps
  // checkpoints, and — as the training coordinator — records job progress, uploads a trained
  // model and asks the registry to register it (and to start it as a canary) — as a batch
  // scoring job, its scores as a dataset (register-dataset: the bytes go through the uploads
  // store like a model's, and the registry service writes the datasets bucket); a job whose dataset
  // is a feature training set asks the features service to build it. As a streaming feature
  // aggregate actor it reads the feature log (its own pull consumer, from its checkpointed
  // sequence; it never appends) and writes the aggregates into the online store.
  [Role.NODE]: {
    // Large bodies (cluster/payloads.ts): it pulls request bodies from gateways, and serves its
    // replicas' large replies under its own payload subject only.
    // Its heartbeat goes out on its own beat subject only (no node can beat for another).
    publish: (s, nodeId) => [s.nodeBeat(nodeId), s.actorAll, s.serviceAll, s.sysPing, s.scheduler('actors'), s.scheduler('status'), s.registry('register'), s.registry('register-dataset'), s.registry('canary'), s.featuresBuild, s.payloadGateways],
    subscribe: (s, nodeId) => [s.nodeOwn(nodeId), s.actorAll, s.serviceAll, s.sysAll, `${s.payloadNode(nodeId)}.>`],
    // Replicas of a model trained on feature views read the views and the online store (predictions by entity);
    // streaming-aggregate actors (ml/features/aggregate-actor.ts) consume the feature log and write the online store.
    kv: { nodes: [WRITE_OWN], actors: [READ, WRITE], checkpoints: [READ, WRITE], jobs: [READ, WRITE], models: [READ], datasets: [READ], features: [READ], online: [READ, WRITE] },
    stores: { artifacts: [StoreOp.READ], checkpoints: [StoreOp.READ, StoreOp.PUT], uploads: [StoreOp.PUT] },
    // Replicas append their sampled prediction records to the prediction log (ml/monitoring); a
    // model monitor (ml/monitoring/monitor-actor.ts) consumes the log and the joined labeled rows
    // with its own pull consumers (it never appends to either), reads the version and its
    // reference profile (models KV, artifacts store), checkpoints to the checkpoint store and
    // publishes its window reports and alerts on the events stream.
    streams: { events: [StreamOp.PUBLISH], predictions: [StreamOp.PUBLISH, StreamOp.CONSUME], featureEvents: [StreamOp.CONSUME], labeled: [StreamOp.CONSUME] },
  },
  // The HTTP edge: routes inference to replicas (and hedges to one replica's own subject),
  // follows the registry and deployments (a KV watch), queues and reads jobs, and reports its
  // outcome tallies to the rollout controller — which, not the gateway, rolls canaries back;
  // its dashboard reads the actor directory too.
  [Role.GATEWAY]: {
    // Large bodies: it serves request bodies under `payload.gw.<its random id>` (gateways have
    // no identity of their own to narrow this to) and pulls large replies from nodes.
    // Feature pushes (POST /v1/features/{view}) go to the features service, which checks and logs them.
    // Labels (POST /v1/models/{m}/feedback) go to the feedback service, which checks and stores them.
    // Model cards and the audit log (GET /v1/.../card, /v1/audit) are reads answered by the registry service.
    publish: (s) => [s.serviceAll, s.actorAll, s.sysPing, s.scheduler('status'), s.scheduler('jobs'), s.scheduler('cost'), s.gatewayAll, s.payloadNodes, s.featurePushAll, s.feedbackAll, s.registry('card'), s.registry('audit'), s.registry('owner'), s.privacyForget],
    // Tenants' job and inference requests over NATS (gateway/tenant-nats.ts, tenant-infer.ts; queue groups): the tenant is the subject's.
    subscribe: (s) => [s.eventsAll, s.sysAll, s.payloadGateways, s.tenantJobsAny, s.tenantInferAny],
    // The dashboard (/ui) lists actors: a read of the directory.
    // Tenants: the cluster-wide rate-limit windows and training spend (CAS counters), and owners recorded at job submit.
    kv: { models: [READ], jobs: [READ], actors: [READ], rateWindows: [READ, WRITE], tenantSpend: [READ, WRITE], owners: [READ, WRITE], pipelines: [READ] },
    stores: {},
    streams: { jobs: [StreamOp.PUBLISH] },
  },
  // Outside callers (CLI, product code): call actors and services, spawn/stop actors and drain
  // nodes through the scheduler, submit and follow jobs, and change models, deployments and
  // datasets through the registry service (bytes go through the uploads store) — never by
  // writing KV.
  [Role.CLIENT]: {
    // Feature views are applied, events pushed, logs compacted and training sets built through the features service; views and online rows are read from KV.
    // Labels go to the feedback service (and the join's counters may be asked for).
    publish: (s) => [s.serviceAll, s.actorAll, s.sysPing, ...SCHEDULER_OPS.map((op) => s.scheduler(op)), ...REGISTRY_OPS.map((op) => s.registry(op)), s.featuresApply, s.featuresMaterialize, s.featuresBuild, s.featurePushAll, s.feedbackAll, s.feedbackJoinStats, s.privacyForget, s.pipelinesAll],
    subscribe: (s) => [s.eventsAll],
    kv: { models: [READ], jobs: [READ], datasets: [READ], actors: [READ], features: [READ], online: [READ], owners: [READ], pipelines: [READ] },
    stores: { artifacts: [StoreOp.READ], uploads: [StoreOp.PUT] },
    streams: { jobs: [StreamOp.PUBLISH] },
  },
  // A tenant's own user (user `tenant-<name>`; credentials: an NKey, auth.ts): publishes its
  // requests under its own subjects only, gets replies on its own inbox (`_INBOX_tenant-<name>`),
  // and has no JetStream, KV or object-store access at all — what it may do to jobs, models and
  // quotas the gateway decides for it (gateway/tenant-nats.ts).
  [TENANT_ROLE]: {
    noJetStream: true,
    publish: (s, tenant) => [s.tenantOwn(tenant)],
    subscribe: () => [],
    kv: {},
    stores: {},
    streams: {},
  },
};

/**
 * Resources no role but the scheduler may touch, each with the reason. Every bucket, store and
 * stream of `resources()` is either granted to some other role in `ROLE_TABLE` or listed here
 * (the permission-matrix test fails otherwise), so a new one needs a decision.
 */
export const SCHEDULER_ONLY: Readonly<Record<string, string>> = {
  'kv:leases': 'the leader lease: a forged one would split the brain',
  'stream:feedback': 'accepted labels: only the feedback service appends (after checking each label) and only the join reads them',
  'kv:predictionIndex': "the label join's own index of logged predictions",
  'stream:audit': 'the audit log: appended by the registry service only (append-only, so nobody may rewrite it); read through the service (admin)',
  'kv:cost': 'the cost ledger: written by the leader alone; read through `shoal.sched.cost`',
};

export type ResourceKind = 'kv' | 'store' | 'stream';

export interface ResourceRef {
  kind: ResourceKind;
  /** Key in `resources()` (`buckets.<key>`, `stores.<key>`, `streams.<key>`). */
  key: string;
  /** Bucket, store or stream name. */
  name: string;
  /** The JetStream stream behind it. */
  stream: string;
}

/** Every KV bucket, object store and stream in `resources(prefix)`. */
export function resourceList(prefix = 'shoal'): ResourceRef[] {
  const r = resources(prefix);
  return [
    ...Object.entries(r.buckets).map(([key, name]) => ({ kind: 'kv' as const, key, name, stream: `KV_${name}` })),
    ...Object.entries(r.stores).map(([key, name]) => ({ kind: 'store' as const, key, name, stream: `OBJ_${name}` })),
    ...Object.entries(r.streams).map(([key, name]) => ({ kind: 'stream' as const, key, name, stream: name })),
  ];
}

/** The core subjects a stream captures. */
export function streamSubjects(key: StreamKey, s: Subjects): string[] {
  switch (key) {
    case 'jobs':
      return [s.jobsSubmit];
    case 'events':
      return [s.eventsAll];
    case 'featureEvents':
      return [s.featureLogAll];
    case 'predictions':
      return [s.predictionsAll];
    case 'feedback':
      return [s.feedbackLogAll];
    case 'labeled':
      return [s.labeledAll];
    case 'audit':
      return [s.auditAll];
  }
}

/** The operations `role` has on a resource (every operation for an admin). */
export function opsOf(role: GrantRole, ref: Pick<ResourceRef, 'kind' | 'key'>): readonly string[] {
  const g = ROLE_TABLE[role];
  if (g.admin) return ref.kind === 'kv' ? Object.values(KvOp) : ref.kind === 'store' ? Object.values(StoreOp) : Object.values(StreamOp);
  const table: Record<string, readonly string[] | undefined> = ref.kind === 'kv' ? g.kv : ref.kind === 'store' ? g.stores : g.streams;
  return table[ref.key] ?? [];
}

/** The NATS user a role (or one node, or one tenant: `id`) connects as. */
export const userOf = (role: GrantRole, id?: string): string => (role === Role.NODE ? `node-${requireNodeId(id)}` : role === TENANT_ROLE ? `tenant-${requireTenant(id)}` : role);

/** A connection's inbox prefix: its own, so it can subscribe to its own replies only. */
export const inboxOf = (role: GrantRole, id?: string): string => `_INBOX_${userOf(role, id)}`;

/** A tenant name that can be a subject token (tenant names may also hold `.`, which NATS subjects cannot). */
export function requireTenant(tenant: string | undefined): string {
  if (!tenant) throw new Error('the tenant role is per tenant: a tenant name is required');
  subjects().tenantOwn(tenant); // validates the token
  return tenant;
}

function requireNodeId(nodeId: string | undefined): string {
  if (!nodeId) throw new Error('the node role is per node: a node id is required');
  subjects().nodeCtl(nodeId); // validates the token
  return nodeId;
}

const API = '$JS.API';

function readApi(stream: string): string[] {
  return [
    `${API}.STREAM.INFO.${stream}`,
    `${API}.STREAM.MSG.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}`,
    `${API}.DIRECT.GET.${stream}.>`,
    `${API}.CONSUMER.CREATE.${stream}.>`,
    `${API}.CONSUMER.INFO.${stream}.>`,
    `${API}.CONSUMER.DELETE.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

export interface Permissions {
  publish: string[];
  subscribe: string[];
}

/** nats-server permissions of `role` (of node `nodeId` for the node role, of tenant `tenant` for the tenant role), generated from the table. */
export function permissionsFor(role: GrantRole, opts: { prefix?: string; nodeId?: string; tenant?: string } = {}): Permissions {
  const prefix = opts.prefix ?? 'shoal';
  const s = subjects(prefix);
  const g = ROLE_TABLE[role];
  const nodeId = role === Role.NODE ? requireNodeId(opts.nodeId) : role === TENANT_ROLE ? requireTenant(opts.tenant) : '';
  const inbox = `${inboxOf(role, nodeId || undefined)}.>`;
  if (g.admin) {
    return { publish: uniq([...g.publish(s, nodeId), '$JS.>', '$KV.>', '$O.>']), subscribe: uniq([...g.subscribe(s, nodeId), inbox, '$JS.>']) };
  }
  if (g.noJetStream) return { publish: uniq(g.publish(s, nodeId)), subscribe: uniq([...g.subscribe(s, nodeId), inbox]) };
  const publish = [...g.publish(s, nodeId), `${API}.INFO`];
  for (const ref of resourceList(prefix)) {
    const ops = opsOf(role, ref);
    if (ops.length === 0) continue;
    publish.push(`${API}.STREAM.INFO.${ref.stream}`);
    if (ops.includes('read')) publish.push(...readApi(ref.stream));
    if (ref.kind === 'kv') {
      if (ops.includes(KvOp.WRITE)) publish.push(`$KV.${ref.name}.>`);
      else if (ops.includes(KvOp.WRITE_OWN)) publish.push(`$KV.${ref.name}.${nodeId || requireNodeId(undefined)}`);
    } else if (ref.kind === 'store') {
      if (ops.includes(StoreOp.PUT)) publish.push(`$O.${ref.name}.>`, `${API}.STREAM.MSG.GET.${ref.stream}`, `${API}.STREAM.PURGE.${ref.stream}`);
    } else {
      if (ops.includes(StreamOp.PUBLISH)) publish.push(...streamSubjects(ref.key as StreamKey, s));
      if (ops.includes(StreamOp.CONSUME)) {
        for (const v of ['CREATE', 'DURABLE.CREATE', 'MSG.NEXT', 'INFO', 'DELETE']) publish.push(`${API}.CONSUMER.${v}.${ref.stream}.>`);
        publish.push(`${API}.STREAM.MSG.GET.${ref.stream}`);
        publish.push(`$JS.ACK.${ref.stream}.>`);
      }
    }
  }
  return { publish: uniq(publish), subscribe: uniq([...g.subscribe(s, nodeId), inbox]) };
}

const uniq = (xs: string[]) => [...new Set(xs)];
