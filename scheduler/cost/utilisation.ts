/**
 * Utilisation as the leader sees it, sampled once per cost tick into bounded rings: per service,
 * requests in flight + queued over its replicas (the nodes' heartbeats, `load.services`); per
 * node, CPU and hosted actors; per model version, requests served (gateway outcome reports).
 * `advise()` turns the rings into the pure right-sizing policy's input.
 */
import { ActorKind, type DirectoryEntry, type NodeView } from '../../cluster/index.ts';
import { rightSize, type NodeObservation, type ProfileOption, type RightSizeOutput, type ServiceObservation } from './right-size.ts';

/** A model service's replicas' batching counters, added up. */
export interface BatchCounters {
  batches: number;
  rows: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
}

class Ring {
  readonly xs: number[] = [];
  constructor(readonly cap: number) {}
  push(x: number): void {
    this.xs.push(x);
    if (this.xs.length > this.cap) this.xs.shift();
  }
}

export class UtilisationSamples {
  readonly #services = new Map<string, Ring>();
  readonly #nodes = new Map<string, Ring>();
  /** Requests per model version since the last sample, and the rate seen over the samples. */
  readonly #requests = new Map<string, number>();
  readonly #rates = new Map<string, { requests: number; ms: number }>();
  #lastAt: number | undefined;

  constructor(readonly cap: number) {}

  requests(model: string, n: number): void {
    this.#requests.set(model, (this.#requests.get(model) ?? 0) + n);
  }

  sample(nodes: readonly NodeView[], entries: ReadonlyMap<string, DirectoryEntry>, now: number): void {
    const services = new Set<string>();
    for (const e of entries.values()) if (e.spec.service) services.add(e.spec.service);
    for (const s of services) {
      let ongoing = 0;
      for (const n of nodes) {
        const l = n.alive ? n.load.services?.[s] : undefined;
        if (l) ongoing += l.ongoing + l.queued;
      }
      this.#ring(this.#services, s).push(ongoing);
    }
    for (const s of this.#services.keys()) if (!services.has(s)) this.#services.delete(s);
    const alive = new Set<string>();
    for (const n of nodes) {
      if (!n.alive) continue;
      alive.add(n.nodeId);
      this.#ring(this.#nodes, n.nodeId).push(n.load.cpuPercent);
    }
    for (const id of this.#nodes.keys()) if (!alive.has(id)) this.#nodes.delete(id);
    if (this.#lastAt !== undefined) {
      const ms = now - this.#lastAt;
      const models = new Set([...this.#rates.keys(), ...this.#requests.keys()]);
      for (const m of models) {
        const r = this.#rates.get(m) ?? { requests: 0, ms: 0 };
        r.requests += this.#requests.get(m) ?? 0;
        r.ms += ms;
        this.#rates.set(m, r);
      }
    }
    this.#requests.clear();
    this.#lastAt = now;
  }

  #ring(m: Map<string, Ring>, k: string): Ring {
    let r = m.get(k);
    if (!r) m.set(k, (r = new Ring(this.cap)));
    return r;
  }

  advise(
    nodes: readonly NodeView[],
    entries: ReadonlyMap<string, DirectoryEntry>,
    shares: ReadonlyMap<string, number>,
    profiles: readonly ProfileOption[],
    o: { minSamples: number; targetUtilisation: number },
    modelOf: (service: string) => string | undefined,
    batches: ReadonlyMap<string, BatchCounters> = new Map(),
  ): RightSizeOutput {
    const price = new Map(nodes.filter((n) => n.alive).map((n) => [n.nodeId, n.labels.pricePerHour]));
    const byService = new Map<string, DirectoryEntry[]>();
    for (const [id, e] of entries) {
      if (!e.spec.service || !shares.has(id)) continue;
      const l = byService.get(e.spec.service) ?? [];
      l.push(e);
      byService.set(e.spec.service, l);
    }
    const services: ServiceObservation[] = [];
    for (const [service, replicas] of byService) {
      const perReplica = replicas.reduce((s, e) => s + (shares.get(e.actorId) ?? 0) * (price.get(e.nodeId) ?? 0), 0) / replicas.length;
      const a = replicas[0]!.spec.autoscale;
      const model = modelOf(service);
      const rate = model ? this.#rates.get(model) : undefined;
      const b = batches.get(service);
      services.push({
        service,
        ...(model ? { model } : {}),
        replicas: replicas.length,
        minReplicas: a?.minReplicas ?? 1,
        dollarsPerHourPerReplica: perReplica,
        ongoing: this.#services.get(service)?.xs ?? [],
        ...(rate && rate.ms > 0 ? { requestsPerSecond: rate.requests / (rate.ms / 1000) } : model ? { requestsPerSecond: 0 } : {}),
        ...(a?.targetOngoingPerReplica !== undefined ? { targetOngoingPerReplica: a.targetOngoingPerReplica } : {}),
        ...(b && b.batches > 0 ? { batch: { maxBatchSize: b.maxBatchSize, maxQueueDelayMs: b.maxQueueDelayMs, meanBatchRows: b.rows / b.batches } } : {}),
      });
    }
    const observed: NodeObservation[] = nodes
      .filter((n) => n.alive)
      .map((n) => {
        const mine = [...entries.values()].filter((e) => e.nodeId === n.nodeId);
        return {
          nodeId: n.nodeId,
          profile: n.profile,
          pool: n.labels.pool,
          spot: n.labels.spot,
          pricePerHour: n.labels.pricePerHour,
          cpus: n.capabilities.cpus,
          cpuPercent: this.#nodes.get(n.nodeId)?.xs ?? [],
          actors: mine.length,
          interruptibleOnly: mine.length > 0 && mine.every((e) => (e.spec.kind === ActorKind.TRAINING || e.spec.kind === ActorKind.BATCH) && e.spec.constraints?.spotOk !== false),
        };
      });
    return rightSize({ services, nodes: observed, profiles, targetUtilisation: o.targetUtilisation, minSamples: o.minSamples });
  }
}
