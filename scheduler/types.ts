/**
 * The scheduler's data model: what is asked for (a {@link PlacementRequest}), where it can go
 * (a {@link NodeState} per node, grouped into {@link PoolState}s), what can be bought (the
 * {@link Catalogue} of node types and pools), and what comes back (a {@link Placement} or a
 * {@link PendingReason}). Everything here is plain data so the runtime can log it, ship it over
 * NATS and show it in `shoal status`.
 */
import type { ActorKind, Capabilities, NodeLabels, NodeView, PlacementConstraints, ResourceRequest } from '../cluster/index.ts';

export type { ActorKind, Capabilities, NodeLabels, NodeView, PlacementConstraints, ResourceRequest };

/** One actor (or one member of a gang) to place. */
export interface PlacementRequest {
  /** The actor id; unique among requests the placer holds. */
  id: string;
  kind: ActorKind;
  resources: ResourceRequest;
  constraints?: PlacementConstraints;
  /**
   * Actors that belong together: the replicas of one service (spread places them apart) or the
   * workers of one job (gang placement binds them all or none).
   */
  group?: string;
  /** The actor type: only nodes that load it (or do not say what they load) may take it. */
  actorType?: string;
}

/** Request with defaults applied, numbers only: what strategies score against. */
export interface NormalizedRequest {
  id: string;
  kind: ActorKind;
  group: string | undefined;
  actorType: string | undefined;
  cpu: number;
  memoryBytes: number;
  gpu: number;
  gpuMemoryBytes: number;
  gpuFeatures: readonly string[];
  custom: Readonly<Record<string, number>> | undefined;
  labels: Readonly<Record<string, string | number | boolean>> | undefined;
  spotOk: boolean;
  nodeId: string | undefined;
}

/** Amounts of each resource (capacity, allocation, free space). */
export interface ResourceVector {
  cpu: number;
  memoryBytes: number;
  gpu: number;
  gpuMemoryBytes: number;
  /** Custom resources by name (`license`, `tpu`…). */
  custom?: Record<string, number>;
}

export type LabelValue = string | number | boolean;

/** What the placer needs to know about a node to add it (from a NodeView or a provider). */
export interface NodeSpec {
  nodeId: string;
  pool: string;
  zone: string;
  spot: boolean;
  pricePerHour: number;
  /** All labels, including pool/zone/spot/pricePerHour, for constraint matching. */
  labels: Readonly<Record<string, LabelValue>>;
  capacity: ResourceVector;
  gpuFeatures?: readonly string[];
  /** Catalogue node type, when known (provider-launched nodes). */
  type?: string;
  /** Interruptions per hour expected for this node (spot); 0 for on-demand. @default 0 */
  interruptionRatePerHour?: number;
  /** Actor types the node loads; undefined: it does not say (any type may be sent). */
  actorTypes?: readonly string[];
}

/** The placer's live view of one node. `allocated` changes as actors are bound and released. */
export interface NodeState extends Required<Omit<NodeSpec, 'type' | 'actorTypes'>> {
  type: string | undefined;
  actorTypes: ReadonlySet<string> | undefined;
  allocated: ResourceVector;
  /** Actors bound here. */
  actors: number;
  alive: boolean;
  /** Draining or noticed for preemption: keeps its actors until moved, takes no new ones. */
  draining: boolean;
  /** Index of the pool group this node belongs to (internal to the placer). */
  readonly poolKey: string;
}

/**
 * Nodes that share every label except price: one failure domain and one node shape. Strategies
 * score the pool once and only look at a few of its nodes.
 */
export interface PoolState {
  readonly key: string;
  readonly pool: string;
  readonly zone: string;
  readonly spot: boolean;
  readonly labels: Readonly<Record<string, LabelValue>>;
  /** Price of the pool's nodes (spot prices move; the provider updates it). */
  pricePerHour: number;
  interruptionRatePerHour: number;
  /** Largest capacity of any node ever in the pool (for the impossible-request check). */
  readonly maxCapacity: ResourceVector;
  readonly gpuFeatures: ReadonlySet<string>;
  /** Free resources summed over live, non-draining nodes: an O(1) "can anything fit here" check. */
  readonly free: ResourceVector;
  nodes: number;
}

export interface Placement {
  requestId: string;
  nodeId: string;
  pool: string;
  zone: string;
  spot: boolean;
  /** The strategy's score (higher is better); for logs and tests. */
  score: number;
}

/** Why a request waits. Data, so `shoal status` can show it and tests can assert it. */
export const PendingCode = {
  /** It needs a GPU and no live node has one. */
  NO_GPU_NODE: 'no-gpu-node',
  /** No live node has the GPU features asked for. */
  NO_GPU_FEATURES: 'no-gpu-features',
  /** No live node carries the labels asked for. */
  NO_MATCHING_LABELS: 'no-matching-labels',
  /** Only spot nodes match and the request may not run on spot. */
  NO_ON_DEMAND_NODE: 'no-on-demand-node',
  /** Matching nodes exist, but none is big enough even when empty. */
  NO_NODE_LARGE_ENOUGH: 'no-node-large-enough',
  /** The pinned node is unknown, dead or draining. */
  NODE_UNAVAILABLE: 'node-unavailable',
  /** Matching nodes exist but are full: the autoscaler should add some. */
  WAITING_FOR_CAPACITY: 'waiting-for-capacity',
  /** Some members of a gang fit, not all: none is bound. */
  GANG_INCOMPLETE: 'gang-incomplete',
} as const;
export type PendingCode = (typeof PendingCode)[keyof typeof PendingCode];

export interface PendingReason {
  code: PendingCode;
  message: string;
}

export type PlaceResult = { ok: true; placement: Placement } | { ok: false; reason: PendingReason };

/** Why a request can never be placed (carried in `SHOAL_ERR_UNSCHEDULABLE` details). */
export const ImpossibleCode = {
  TOO_MANY_GPUS: 'too-many-gpus',
  TOO_MUCH_CPU: 'too-much-cpu',
  TOO_MUCH_MEMORY: 'too-much-memory',
  TOO_MUCH_GPU_MEMORY: 'too-much-gpu-memory',
  NO_GPU_FEATURES: 'no-gpu-features',
  NO_CUSTOM_RESOURCE: 'no-custom-resource',
  NO_POOL_WITH_LABELS: 'no-pool-with-labels',
  NO_ON_DEMAND_POOL: 'no-on-demand-pool',
  NO_TYPE_FITS: 'no-type-fits',
  GANG_TOO_LARGE: 'gang-too-large',
} as const;
export type ImpossibleCode = (typeof ImpossibleCode)[keyof typeof ImpossibleCode];

export interface ImpossibleReason {
  code: ImpossibleCode;
  message: string;
}

// ---- catalogue ---------------------------------------------------------------------------------

/** What one machine of a type offers. */
export interface NodeTypeResources {
  cpu: number;
  memoryBytes: number;
  /** @default 0 */
  gpu?: number;
  /** Per node (all GPUs together). @default 0 */
  gpuMemoryBytes?: number;
  /** @default [] */
  gpuFeatures?: string[];
  custom?: Record<string, number>;
}

/** A machine type one can buy (an instance type, a Kubernetes node class, a local profile). */
export interface NodeType {
  name: string;
  resources: NodeTypeResources;
  onDemandPricePerHour: number;
  /** Typical spot price; a pool's current price comes from its provider or trace. */
  spotPricePerHour: number;
  /** Expected spot interruptions per node-hour (e.g. 0.05 = one every 20 h). */
  interruptionRatePerHour: number;
  /** Time from launch to a registered node. */
  startupLatencyMs: number;
}

/** Where a type can be bought: one pool = one failure domain (type × zone × market). */
export interface PoolSpec {
  name: string;
  type: string;
  zone: string;
  spot: boolean;
  /** Nodes kept even when idle. @default 0 */
  min?: number;
  /** Most nodes this pool may hold. */
  max: number;
  /** Extra labels its nodes carry (besides pool, zone, spot, pricePerHour). */
  labels?: Record<string, LabelValue>;
}

export interface Catalogue {
  types: NodeType[];
  pools: PoolSpec[];
}

/** A catalogue after validation: lookups by name, defaults applied. */
export interface ResolvedPool extends Required<Omit<PoolSpec, 'labels'>> {
  labels: Record<string, LabelValue>;
  nodeType: NodeType;
  /** Price when nothing better is known: the type's spot or on-demand price. */
  listPricePerHour: number;
}

export interface ResolvedCatalogue {
  types: ReadonlyMap<string, NodeType>;
  pools: ReadonlyMap<string, ResolvedPool>;
}
