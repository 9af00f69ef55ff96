/**
 * Replica autoscaling of services on their load signals. Service replicas report, through
 * their node's heartbeat, how many requests they are handling and how many wait in their
 * mailboxes; for every service whose spec carries an `autoscale` policy the leader sums that
 * over the fleet, asks a `ReplicaScaler` (target ongoing requests per replica, with up/down
 * delays) for the count to run, and spawns or stops replicas. New replicas that fit no node stay
 * pending, which is what makes the node autoscaler buy capacity.
 */
import { LifecycleState, encode, type Logger, type NatsConnection, type ServiceAutoscale, type SpawnSpec, type Subjects, type Versioned } from '../cluster/index.ts';
import { ReplicaScaler } from './autoscaler/load-signals.ts';
import type { MembershipView } from './membership-view.ts';

export interface ServiceScalerHost {
  /** Current directory entries. */
  entries(): Iterable<Versioned>;
  spawnReplica(actorId: string, spec: SpawnSpec): Promise<unknown>;
  stopActor(actorId: string): Promise<void>;
}

export interface ServiceScalerOptions {
  host: ServiceScalerHost;
  membership: MembershipView;
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** @default 1000 */
  intervalMs?: number;
  now?: () => number;
}

const ALIVE: readonly string[] = [LifecycleState.PENDING, LifecycleState.STARTING, LifecycleState.RUNNING];

/** `<service>-<n>` → n (replica ids the runtime gives), or undefined. */
function replicaIndex(service: string, actorId: string): number | undefined {
  if (!actorId.startsWith(`${service}-`)) return undefined;
  const n = Number(actorId.slice(service.length + 1));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export class ServiceScaler {
  readonly #o: ServiceScalerOptions;
  readonly #scalers = new Map<string, { policy: string; scaler: ReplicaScaler }>();
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(opts: ServiceScalerOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#busy) return;
      this.#busy = true;
      this.tick()
        .catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, 'service scaling failed'))
        .finally(() => (this.#busy = false));
    }, this.#o.intervalMs ?? 1000);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  #scaler(service: string, policy: ServiceAutoscale): ReplicaScaler {
    const key = JSON.stringify(policy);
    let s = this.#scalers.get(service);
    if (!s || s.policy !== key) {
      s = { policy: key, scaler: new ReplicaScaler(policy) };
      this.#scalers.set(service, s);
    }
    return s.scaler;
  }

  /** One pass over every autoscaled service. */
  async tick(): Promise<void> {
    const now = (this.#o.now ?? Date.now)();
    const byService = new Map<string, Versioned[]>();
    for (const v of this.#o.host.entries()) {
      const svc = v.entry.spec.service;
      if (!svc || !v.entry.spec.autoscale || !ALIVE.includes(v.entry.state)) continue;
      (byService.get(svc) ?? byService.set(svc, []).get(svc)!).push(v);
    }
    const nodes = this.#o.membership.view().filter((n) => n.alive);
    for (const [service, replicas] of byService) {
      const policy = replicas[0]!.entry.spec.autoscale!;
      let ongoing = 0;
      let queued = 0;
      for (const n of nodes) {
        const l = n.load.services?.[service];
        if (l) {
          ongoing += l.ongoing;
          queued += l.queued;
        }
      }
      const current = replicas.length;
      const want = this.#scaler(service, policy).desired({ replicas: current, ongoingRequests: ongoing, queueDepth: queued }, now);
      if (want === current) continue;
      this.#o.log.info({ service, from: current, to: want, ongoing, queued }, 'scaling service');
      this.#o.nc.publish(this.#o.subjects.event('service-scaled'), encode({ service, from: current, to: want, ongoing, queued, at: Date.now() }));
      if (want > current) {
        const used = new Set(replicas.map((r) => replicaIndex(service, r.entry.actorId)));
        const template = replicas[0]!.entry.spec;
        for (let k = 1, added = 0; added < want - current; k++) {
          if (used.has(k)) continue;
          const actorId = `${service}-${k}`;
          await this.#o.host.spawnReplica(actorId, { ...template, id: actorId }).catch((err: unknown) => this.#o.log.warn({ actorId, err: (err as Error).message }, 'replica spawn failed'));
          added++;
        }
      } else {
        // Stop the newest replicas first (highest index), pending ones before running ones.
        const order = [...replicas].sort((a, b) => Number(b.entry.state === LifecycleState.PENDING) - Number(a.entry.state === LifecycleState.PENDING) || (replicaIndex(service, b.entry.actorId) ?? 0) - (replicaIndex(service, a.entry.actorId) ?? 0));
        for (const r of order.slice(0, current - want)) await this.#o.host.stopActor(r.entry.actorId).catch(() => undefined);
      }
    }
  }
}
