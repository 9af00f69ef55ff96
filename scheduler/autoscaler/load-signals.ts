/**
 * Demand from load: how many inference replicas a service wants (from the gateway's queue
 * depth and ongoing requests per replica, with Ray-Serve-like up/down-scale delays) and how many
 * training workers the job queue wants. The runtime turns the difference into placement
 * requests (or stops replicas); pending requests then drive the node autoscaler.
 */
import { SchedulerErrors } from '../errors.ts';

export interface InferenceLoad {
  /** Replicas running now. */
  replicas: number;
  /** Requests being processed, summed over replicas. */
  ongoingRequests: number;
  /** Requests queued at the gateway / in batchers. */
  queueDepth: number;
}

export interface ReplicaPolicy {
  /** Ongoing (+ queued) requests one replica should carry. @default 2 */
  targetOngoingPerReplica?: number;
  /** @default 1 */
  minReplicas?: number;
  /** @default 100 */
  maxReplicas?: number;
  /** Demand must stay higher this long before scaling up. @default 30_000 */
  upscaleDelayMs?: number;
  /** Demand must stay lower this long before scaling down. @default 600_000 */
  downscaleDelayMs?: number;
}

/** Per-service replica target with hysteresis; one instance per service. */
export class ReplicaScaler {
  readonly #target: number;
  readonly #min: number;
  readonly #max: number;
  readonly #up: number;
  readonly #down: number;
  #upSince: number | undefined;
  #downSince: number | undefined;

  constructor(policy: ReplicaPolicy = {}) {
    this.#target = policy.targetOngoingPerReplica ?? 2;
    this.#min = policy.minReplicas ?? 1;
    this.#max = policy.maxReplicas ?? 100;
    this.#up = policy.upscaleDelayMs ?? 30_000;
    this.#down = policy.downscaleDelayMs ?? 600_000;
    if (!(this.#target > 0)) throw SchedulerErrors.BAD_OPTION('targetOngoingPerReplica', `must be > 0, got ${this.#target}`);
    if (!Number.isInteger(this.#min) || this.#min < 0 || !Number.isInteger(this.#max) || this.#max < this.#min) throw SchedulerErrors.BAD_OPTION('minReplicas/maxReplicas', `need integers 0 ≤ min ≤ max, got ${this.#min}, ${this.#max}`);
  }

  /** What the load alone asks for, clamped to [min, max]. */
  raw(load: InferenceLoad): number {
    return Math.min(this.#max, Math.max(this.#min, Math.ceil((load.ongoingRequests + load.queueDepth) / this.#target)));
  }

  /** The replica count to run now, given `load` at `now`. */
  desired(load: InferenceLoad, now: number): number {
    const want = this.raw(load);
    if (want > load.replicas) {
      this.#downSince = undefined;
      this.#upSince ??= now;
      if (now - this.#upSince < this.#up) return load.replicas;
      this.#upSince = undefined;
      return want;
    }
    if (want < load.replicas) {
      this.#upSince = undefined;
      this.#downSince ??= now;
      if (now - this.#downSince < this.#down) return load.replicas;
      this.#downSince = undefined;
      return want;
    }
    this.#upSince = this.#downSince = undefined;
    return load.replicas;
  }
}

export interface TrainingPolicy {
  /** Workers (actors) each job runs. @default 1 */
  workersPerJob?: number;
  /** Jobs run at once. @default 10 */
  maxConcurrentJobs?: number;
}

/** Training workers the job queue asks for: queued + running jobs, capped. */
export function trainingWorkers(queueDepth: number, runningJobs: number, policy: TrainingPolicy = {}): number {
  const per = policy.workersPerJob ?? 1;
  const max = policy.maxConcurrentJobs ?? 10;
  return Math.min(max, Math.max(0, queueDepth) + Math.max(0, runningJobs)) * per;
}
