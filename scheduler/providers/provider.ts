/**
 * The provider interface: how the autoscaler buys and returns machines. One implementation per
 * place machines come from — `sim` (virtual clock and spot traces), `local` (node-agent
 * processes on this machine); a cloud (EC2 fleet, GCE MIG) or Kubernetes (node pools / pods)
 * provider implements the same five members.
 *
 * Contract:
 * - `launch()` resolves once the provider accepted the request (the node is `launching`); the
 *   node is usable when it registers in membership (and a `node-ready` event is emitted). It
 *   rejects with `SHOAL_ERR_NO_SPOT_CAPACITY` when the pool has no capacity (the autoscaler then
 *   backs off that pool and tries another) or `SHOAL_ERR_PROVIDER_FAILED` for anything else.
 * - `terminate()` is idempotent.
 * - `list()` is the provider's truth (what is billed), not membership's.
 * - A spot interruption is announced with a `preemption-notice` event `noticeMs` before the
 *   machine dies (2 min on AWS, 30 s on GCP), then a `node-terminated` event.
 * - Events are a discriminated union on `type`, delivered in order.
 */
import type { LabelValue } from '../types.ts';

export const NodePhase = {
  LAUNCHING: 'launching',
  RUNNING: 'running',
  /** Notified of preemption, or being terminated. */
  TERMINATING: 'terminating',
  TERMINATED: 'terminated',
} as const;
export type NodePhase = (typeof NodePhase)[keyof typeof NodePhase];

/** Spot interruption notice lengths by cloud. */
export const NoticePresets = {
  /** EC2: two-minute interruption notice. */
  aws: 120_000,
  /** GCE preemptible / spot VMs: 30 seconds. */
  gcp: 30_000,
  /** Azure spot VMs: at least 30 seconds (scheduled events). */
  azure: 30_000,
} as const;

export interface LaunchRequest {
  /** Catalogue pool to launch in. */
  pool: string;
  /** A node id to use (the provider picks one when absent). */
  nodeId?: string;
}

export interface ProviderNode {
  nodeId: string;
  pool: string;
  type: string;
  zone: string;
  spot: boolean;
  phase: NodePhase;
  launchedAt: number;
  /** Current price per hour (spot prices move). */
  pricePerHour: number;
  labels: Record<string, LabelValue>;
}

export type ProviderEvent =
  | { type: 'node-launching'; node: ProviderNode; at: number }
  | { type: 'node-ready'; node: ProviderNode; at: number }
  | { type: 'launch-failed'; pool: string; nodeId: string; error: { code: string; message: string }; at: number }
  /** The machine will be taken at `terminateAt`: drain, checkpoint and re-place before then. */
  | { type: 'preemption-notice'; node: ProviderNode; at: number; terminateAt: number }
  | { type: 'node-terminated'; node: ProviderNode; at: number; reason: 'requested' | 'preempted' | 'failed' };

export type ProviderEventType = ProviderEvent['type'];

export interface Provider {
  readonly name: string;
  launch(req: LaunchRequest): Promise<ProviderNode>;
  terminate(nodeId: string): Promise<void>;
  list(): Promise<ProviderNode[]>;
  /** Subscribes to events; returns the unsubscribe function. */
  onEvent(listener: (e: ProviderEvent) => void): () => void;
  /** Stops everything the provider started (tests, shutdown). */
  close(): Promise<void>;
}

/** A tiny ordered event fan-out for providers (no Node EventEmitter: typed, sync, in order). */
export class ProviderEvents {
  readonly #listeners = new Set<(e: ProviderEvent) => void>();

  on(listener: (e: ProviderEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(e: ProviderEvent): void {
    for (const l of [...this.#listeners]) l(e);
  }
}

/** Optional market view a provider may offer (the sim's traces, a cloud's spot price API). */
export interface SpotMarket {
  /** Current price per hour of a pool's nodes. */
  price(pool: string): number;
  /** Whether the pool can launch spot capacity now. */
  available(pool: string): boolean;
}
