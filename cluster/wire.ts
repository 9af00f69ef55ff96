/**
 * TypeBox schemas for the runtime's wire messages. Each schema is the single source of truth:
 * it types the TypeScript value and validates the payload on receipt.
 * Protocols are discriminated unions on `type`.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const Role = {
  NODE: 'node',
  SCHEDULER: 'scheduler',
  GATEWAY: 'gateway',
  CLIENT: 'client',
} as const;
export type Role = (typeof Role)[keyof typeof Role];
export const ROLES = Object.values(Role) as Role[];

/** The TypeBox schema of a `const X = {...} as const` object's values. */
export function literalUnion<const T extends Record<string, string>>(values: T) {
  return Type.Union(Object.values(values).map((v) => Type.Literal(v as T[keyof T])));
}

const RoleSchema = literalUnion(Role);

/**
 * The lifecycle of everything long-lived in the cluster, processes (node agent, scheduler,
 * gateway) and actors alike: starting → running → draining → stopped / failed. An actor has
 * one state before those, `pending`; a process never has it (one that can report a state has
 * started), so a process's state is a `ProcessState`.
 */
export const LifecycleState = {
  /** Actors only: wants a node (new, or its node died/drained). */
  PENDING: 'pending',
  STARTING: 'starting',
  RUNNING: 'running',
  DRAINING: 'draining',
  STOPPED: 'stopped',
  FAILED: 'failed',
} as const;
export type LifecycleState = (typeof LifecycleState)[keyof typeof LifecycleState];
export const LifecycleStateSchema = literalUnion(LifecycleState);
/** A process's state (node agent, scheduler, gateway): every `LifecycleState` but `pending`. */
export type ProcessState = Exclude<LifecycleState, typeof LifecycleState.PENDING>;
const ProcessStateSchema = Type.Exclude(LifecycleStateSchema, Type.Literal(LifecycleState.PENDING));

/** Labels a node advertises (from its profile): pool, zone, spot, price… */
export const NodeLabels = Type.Object(
  {
    pool: Type.String({ minLength: 1 }),
    zone: Type.String({ minLength: 1 }),
    spot: Type.Boolean(),
    pricePerHour: Type.Number({ minimum: 0 }),
  },
  { additionalProperties: Type.Union([Type.String(), Type.Number(), Type.Boolean()]) },
);
export type NodeLabels = Static<typeof NodeLabels>;

export const GpuInfo = Type.Object({
  vendor: Type.String(),
  architecture: Type.String(),
  device: Type.String(),
  description: Type.String(),
  /** True for software adapters (lavapipe): correct but slow. */
  software: Type.Boolean(),
  features: Type.Array(Type.String()),
  limits: Type.Record(Type.String(), Type.Number()),
});
export type GpuInfo = Static<typeof GpuInfo>;

export const Capabilities = Type.Object({
  cpus: Type.Integer({ minimum: 1 }),
  memoryBytes: Type.Number({ minimum: 0 }),
  gpu: Type.Union([GpuInfo, Type.Null()]),
  /** Why there is no GPU, when there is none. */
  gpuUnavailableReason: Type.Optional(Type.String()),
  onnxruntime: Type.Union([Type.Object({ version: Type.String(), backends: Type.Array(Type.String()) }), Type.Null()]),
  /** Actor types the node can host (from its `actors.modules`); absent from older nodes. */
  actorTypes: Type.Optional(Type.Array(Type.String())),
  /** Those of them that are job entry points (`job: true`): what `shoal.jobs.submit` may name. Absent from older nodes. */
  jobTypes: Type.Optional(Type.Array(Type.String())),
});
export type Capabilities = Static<typeof Capabilities>;

/** Load of one service's replicas on one node: running replicas, messages being handled, queued. */
export const ServiceLoad = Type.Object({
  replicas: Type.Integer({ minimum: 0 }),
  ongoing: Type.Integer({ minimum: 0 }),
  queued: Type.Integer({ minimum: 0 }),
});
export type ServiceLoad = Static<typeof ServiceLoad>;

export const NodeLoad = Type.Object({
  actors: Type.Integer({ minimum: 0 }),
  /** Messages waiting in all mailboxes on the node. */
  mailboxDepth: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Tells refused since start (mailbox full, bad message, unknown actor): never silent. */
  rejectedTells: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Messages processed since start. */
  processed: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Per service hosted here. */
  services: Type.Optional(Type.Record(Type.String(), ServiceLoad)),
  cpuPercent: Type.Number({ minimum: 0 }),
  eventLoopDelayMs: Type.Number({ minimum: 0 }),
  rssBytes: Type.Number({ minimum: 0 }),
  heapUsedBytes: Type.Number({ minimum: 0 }),
});
export type NodeLoad = Static<typeof NodeLoad>;

/** A node's record in the nodes KV bucket: written when it starts, when its state, labels or capabilities change, and every `RECORD_EVERY_BEATS` beats. */
export const NodeRecord = Type.Object({
  nodeId: Type.String({ minLength: 1 }),
  profile: Type.String(),
  host: Type.String(),
  pid: Type.Integer(),
  state: ProcessStateSchema,
  labels: NodeLabels,
  capabilities: Capabilities,
  load: NodeLoad,
  startedAt: Type.Number(),
  /**
   * This process's boot id. A node id is a name that outlives processes (a supervisor restarts a
   * crashed agent under the same id within seconds); the incarnation tells the scheduler that the
   * process behind the name changed, so the old one's actors are gone even though the name never
   * went silent.
   */
  incarnation: Type.String({ minLength: 1, maxLength: 64 }),
  heartbeatAt: Type.Number(),
  heartbeatMs: Type.Integer({ minimum: 1 }),
});
export type NodeRecord = Static<typeof NodeRecord>;

/**
 * A node's heartbeat on core NATS (`<prefix>.node.<id>.beat`, no acknowledgement): liveness and
 * load every `membership.heartbeatMs`. It needs no JetStream, so a stream electing a leader does
 * not silence the fleet, and a server sends thousands a second where it stores a few thousand KV
 * puts; the record in the bucket carries the rest and changes rarely.
 */
export const NodeBeat = Type.Pick(NodeRecord, ['nodeId', 'incarnation', 'state', 'load', 'heartbeatAt']);
export type NodeBeat = Static<typeof NodeBeat>;

/** What kind of work an actor does: drives cost-aware placement and interruption handling. */
export const ActorKind = {
  /** Latency-sensitive serving: prefers on-demand, or spreads across spot pools. */
  INFERENCE: 'inference',
  /** Interruptible (checkpoints): prefers spot. */
  TRAINING: 'training',
  BATCH: 'batch',
  /** Anything else (control actors, user actors). */
  SERVICE: 'service',
} as const;
export type ActorKind = (typeof ActorKind)[keyof typeof ActorKind];
export const ActorKindSchema = literalUnion(ActorKind);

/** Resources an actor asks for. Omitted fields ask for nothing of that resource. */
export const ResourceRequest = Type.Object(
  {
    /** CPU cores (fractional allowed). @default 0.1 */
    cpu: Type.Optional(Type.Number({ minimum: 0, maximum: 4096 })),
    memoryBytes: Type.Optional(Type.Number({ minimum: 0 })),
    /** Whole GPUs (WebGPU adapters). */
    gpu: Type.Optional(Type.Integer({ minimum: 0, maximum: 64 })),
    gpuMemoryBytes: Type.Optional(Type.Number({ minimum: 0 })),
    /** WebGPU features the adapter must have (e.g. `shader-f16`). */
    gpuFeatures: Type.Optional(Type.Array(Type.String())),
    /** Custom resources by name (e.g. `{ "license": 1 }`). */
    custom: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0 }))),
  },
  { additionalProperties: false },
);
export type ResourceRequest = Static<typeof ResourceRequest>;

/** Where an actor may run. */
export const PlacementConstraints = Type.Object(
  {
    /** Node labels that must match exactly (e.g. `{ pool: "gpu", zone: "a" }`). */
    labels: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()]))),
    /** May run on spot capacity. @default true for training/batch, false for inference */
    spotOk: Type.Optional(Type.Boolean()),
    /** Pin to one node (used by tests and by re-placement hints). */
    nodeId: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type PlacementConstraints = Static<typeof PlacementConstraints>;

/** Each process's answer to a presence ping. */
export const ProcessInfo = Type.Object({
  role: RoleSchema,
  id: Type.String(),
  pid: Type.Integer(),
  host: Type.String(),
  state: ProcessStateSchema,
  startedAt: Type.Number(),
  version: Type.String(),
  /** Role-specific facts (the gateway's URL, a node's profile…). */
  details: Type.Record(Type.String(), Type.Unknown()),
});
export type ProcessInfo = Static<typeof ProcessInfo>;

export const Ping = Type.Object({ type: Type.Literal('ping') });
export type Ping = Static<typeof Ping>;

/** Restart policy of an actor (Akka/Erlang style): restart on failure up to a budget. */
export const SupervisionPolicy = Type.Object(
  {
    /** Restarts allowed within `withinMs`; one more and the actor is failed. @default 3 */
    maxRestarts: Type.Integer({ minimum: 0, maximum: 1000, default: 3 }),
    /** @default 60000 */
    withinMs: Type.Integer({ minimum: 1, default: 60_000 }),
    /** First restart delay, doubled on each restart in the window, capped at 5 s. @default 50 */
    backoffMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 50 }),
  },
  { additionalProperties: false },
);
export type SupervisionPolicy = Static<typeof SupervisionPolicy>;

/**
 * Replica autoscaling of a service on its load signals: ongoing + queued requests per replica
 * (Ray Serve's `target_ongoing_requests`), with delays so a blip does not scale.
 */
export const ServiceAutoscale = Type.Object(
  {
    minReplicas: Type.Integer({ minimum: 0, maximum: 1000 }),
    maxReplicas: Type.Integer({ minimum: 1, maximum: 1000 }),
    /** @default 2 */
    targetOngoingPerReplica: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    /** Demand must stay higher this long before adding replicas. @default 30000 */
    upscaleDelayMs: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Demand must stay lower this long before removing replicas. @default 600000 */
    downscaleDelayMs: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type ServiceAutoscale = Static<typeof ServiceAutoscale>;

/** What to create: kept in the directory so the actor can be re-created elsewhere. */
export const SpawnSpec = Type.Object(
  {
    /** Registered actor type name. */
    type: Type.String({ minLength: 1, maxLength: 128 }),
    /** Actor id; a named actor's id is its name. Default: generated. */
    id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' })),
    /** Constructor arguments (plain data). */
    args: Type.Optional(Type.Unknown()),
    /** Serve as one replica of this service (queue group on `shoal.svc.<service>`). */
    service: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' })),
    /**
     * Anti-affinity group: actors of one group are spread over different nodes (then zones and
     * pools) whenever capacity allows. @default the service name, if any (a training job's
     * coordinator and workers share `job-<id>`)
     */
    group: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' })),
    kind: Type.Optional(ActorKindSchema),
    resources: Type.Optional(ResourceRequest),
    constraints: Type.Optional(PlacementConstraints),
    /** Bounded mailbox size. @default 1000 */
    mailboxCapacity: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    supervision: Type.Optional(Type.Partial(SupervisionPolicy)),
    /** Actor id told `{ type: 'child-failed' }` (system message) when this actor gives up. */
    supervisor: Type.Optional(Type.String()),
    /** For service replicas: the scheduler keeps the replica count between min and max by load. */
    autoscale: Type.Optional(ServiceAutoscale),
  },
  { additionalProperties: false },
);
export type SpawnSpec = Static<typeof SpawnSpec>;

/** The directory entry of an actor (KV bucket `actors`, key = actor id), updated with CAS. */
export const DirectoryEntry = Type.Object({
  actorId: Type.String(),
  spec: SpawnSpec,
  state: LifecycleStateSchema,
  /** Node hosting it; empty while pending. */
  nodeId: Type.String(),
  /** The incarnation of that node's process that claimed it (see NodeRecord.incarnation). */
  incarnation: Type.Optional(Type.String()),
  /** Incremented on every (re)placement: a node holding an older epoch must stop its copy. */
  epoch: Type.Integer({ minimum: 0 }),
  updatedAt: Type.Number(),
  /** Why it is pending or failed. */
  reason: Type.Optional(Type.String()),
});
export type DirectoryEntry = Static<typeof DirectoryEntry>;

/**
 * System messages to an actor (`shoal.actor.<id>.sys`, beside its mailbox): from the runtime,
 * not the actor's own protocol. `child-failed`: an actor this one supervises gave up.
 */
export const ActorSysMessage = Type.Union([
  Type.Object({ type: Type.Literal('child-failed'), actorId: Type.String({ minLength: 1 }), code: Type.String(), message: Type.String() }, { additionalProperties: false }),
]);
export type ActorSysMessage = Static<typeof ActorSysMessage>;

/** Node control protocol (request/reply on `shoal.node.<id>.ctl`). */
export const NodeCtl = Type.Union([
  Type.Object({ type: Type.Literal('describe') }),
  Type.Object({ type: Type.Literal('drain'), deadlineMs: Type.Optional(Type.Integer({ minimum: 0 })) }),
  Type.Object({
    type: Type.Literal('spawn'),
    actorId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' }),
    spec: SpawnSpec,
    /** Directory revision the placement was decided on (CAS); 0 = the entry must not exist. */
    revision: Type.Integer({ minimum: 0 }),
    epoch: Type.Integer({ minimum: 0 }),
  }),
  Type.Object({ type: Type.Literal('stop'), actorId: Type.String() }),
  Type.Object({ type: Type.Literal('list') }),
]);
export type NodeCtl = Static<typeof NodeCtl>;

/** Scheduler API (`shoal.sched.<op>`). */
export const SchedulerStatusRequest = Type.Object({ type: Type.Literal('status') });
export type SchedulerStatusRequest = Static<typeof SchedulerStatusRequest>;

export const SchedulerActorRequest = Type.Union([
  Type.Object({
    type: Type.Literal('spawn'),
    spec: SpawnSpec,
    replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    /** All-or-nothing: if any replica cannot be placed now, none is started (and none left pending). */
    gang: Type.Optional(Type.Boolean()),
  }),
  Type.Object({ type: Type.Literal('stop'), actorId: Type.String({ minLength: 1 }) }),
]);
export type SchedulerActorRequest = Static<typeof SchedulerActorRequest>;

/** Node operations through the scheduler (`shoal.sched.nodes`): an operator's or a cloud's notice. */
export const SchedulerNodeRequest = Type.Union([
  /** Drain the node: no new actors, finish and hand off the rest, then exit. */
  Type.Object({ type: Type.Literal('drain'), nodeId: Type.String({ minLength: 1 }), deadlineMs: Type.Optional(Type.Integer({ minimum: 0 })) }),
  /** A spot preemption notice: drain within the notice, mark the node's pool risky. */
  Type.Object({ type: Type.Literal('preempt'), nodeId: Type.String({ minLength: 1 }), noticeMs: Type.Optional(Type.Integer({ minimum: 0 })) }),
]);
export type SchedulerNodeRequest = Static<typeof SchedulerNodeRequest>;

export const SpawnResult = Type.Object({
  actors: Type.Array(Type.Object({ actorId: Type.String(), nodeId: Type.String(), state: LifecycleStateSchema })),
});
export type SpawnResult = Static<typeof SpawnResult>;

export const NodeView = Type.Object({
  nodeId: Type.String(),
  /** The node process's boot id (changes when the agent restarts under the same id). */
  incarnation: Type.String(),
  profile: Type.String(),
  state: Type.String(),
  alive: Type.Boolean(),
  lastSeenMsAgo: Type.Number(),
  labels: NodeLabels,
  capabilities: Capabilities,
  load: NodeLoad,
});
export type NodeView = Static<typeof NodeView>;

export const SchedulerStatus = Type.Object({
  schedulerId: Type.String(),
  nodes: Type.Array(NodeView),
  /** Actors waiting for a node, with the reason. */
  pending: Type.Optional(Type.Array(Type.Object({ actorId: Type.String(), reason: Type.String() }))),
  actors: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type SchedulerStatus = Static<typeof SchedulerStatus>;

export type { Static, TSchema };
