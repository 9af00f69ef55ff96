/**
 * The cost ledger: integrates each node's price over time and attributes every actor's share of
 * it to the actor's owner (a training job, a model version, a tenant). Pure and clock-driven:
 * the caller says what is placed where and calls `accrue(now)`; nothing here reads the wall
 * clock, so a test drives an hour in one call.
 *
 * An actor's share of its node is its dominant resource share (the largest of cpu, memory and
 * gpu asked, each over the node's capacity), scaled down when the node is oversubscribed; what no
 * actor asked for is the node's idle cost, charged to the `_idle` tenant (so totals add up to the
 * nodes' bill). A model version's charge is split between tenants by their requests in the same
 * interval (shared replicas); with no requests then, by the version's requests so far; with none
 * at all, to the tenant its owner names.
 */
import { DEFAULT_CPU } from '../request.ts';

/** Tenant charged for capacity no actor asked for. */
export const IDLE_TENANT = '_idle';
/** Tenant charged for actors with no owner (control actors, user actors). */
export const SYSTEM_TENANT = '_system';
/** Tenant of a job or model that names none. */
export const DEFAULT_TENANT = 'default';

export interface NodePrice {
  pricePerHour: number;
  cpus: number;
  memoryBytes: number;
  gpus: number;
  spot?: boolean;
  pool?: string;
}

export interface Owner {
  job?: string;
  /** A model version, `name@v<version>`. */
  model?: string;
  tenant?: string;
}

export interface ChargedActor {
  nodeId: string;
  owner: Owner;
  cpu?: number;
  memoryBytes?: number;
  gpu?: number;
}

/** One owner's spend: the label set of `shoal_cost_dollars_total`. */
export interface CostRow {
  tenant: string;
  model: string;
  job: string;
  dollars: number;
}

export interface LedgerSnapshot {
  v: 1;
  /** Charged up to this time. */
  at: number;
  totals: [string, number][];
  predictions: [string, number][];
  buckets: [number, [string, number][], [string, number][]][];
}

const SEP = '\u0001';
const key = (tenant: string, model: string, job: string) => `${tenant}${SEP}${model}${SEP}${job}`;
export const splitKey = (k: string): { tenant: string; model: string; job: string } => {
  const [tenant = '', model = '', job = ''] = k.split(SEP);
  return { tenant, model, job };
};

interface Bucket {
  dollars: Map<string, number>;
  predictions: Map<string, number>;
}

const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

export interface LedgerOptions {
  /** History resolution. @default 60000 */
  bucketMs?: number;
  /** History kept. @default 86400000 */
  retentionMs?: number;
}

export class CostLedger {
  readonly #nodes = new Map<string, NodePrice>();
  readonly #actors = new Map<string, ChargedActor>();
  readonly #totals = new Map<string, number>();
  /** Predictions per model version, since the ledger began. */
  readonly #predictions = new Map<string, number>();
  /** Predictions per model version by tenant, since the ledger began / since the last accrual. */
  readonly #byTenant = new Map<string, Map<string, number>>();
  readonly #window = new Map<string, Map<string, number>>();
  readonly #buckets = new Map<number, Bucket>();
  readonly #bucketMs: number;
  readonly #retentionMs: number;
  #at: number | undefined;
  /** Called with each charge as it is made (budgets watch it). */
  onCharge: ((row: CostRow, at: number) => void) | undefined;

  constructor(o: LedgerOptions = {}) {
    this.#bucketMs = o.bucketMs ?? 60_000;
    this.#retentionMs = o.retentionMs ?? 86_400_000;
  }

  /** Time charged up to (undefined before the first accrual). */
  get chargedTo(): number | undefined {
    return this.#at;
  }

  get retentionMs(): number {
    return this.#retentionMs;
  }

  /** Starts (or resumes) charging at `at`; what happened before is not charged. */
  startAt(at: number): void {
    this.#at = at;
  }

  setNode(nodeId: string, price: NodePrice): void {
    this.#nodes.set(nodeId, price);
  }

  removeNode(nodeId: string): void {
    this.#nodes.delete(nodeId);
  }

  setActor(actorId: string, a: ChargedActor): void {
    this.#actors.set(actorId, a);
  }

  removeActor(actorId: string): void {
    this.#actors.delete(actorId);
  }

  hasActor(actorId: string): boolean {
    return this.#actors.has(actorId);
  }

  actorIds(): string[] {
    return [...this.#actors.keys()];
  }

  /** Predictions a model version served (by tenant when known), at `at`. */
  recordPredictions(model: string, n: number, at: number, tenant?: string): void {
    if (!(n > 0)) return;
    add(this.#predictions, model, n);
    add(this.#bucket(at).predictions, model, n);
    const t = tenant ?? DEFAULT_TENANT;
    let w = this.#window.get(model);
    if (!w) this.#window.set(model, (w = new Map()));
    add(w, t, n);
    let c = this.#byTenant.get(model);
    if (!c) this.#byTenant.set(model, (c = new Map()));
    add(c, t, n);
  }

  /** Each actor's share of its node (0..1), for the node's current actors. */
  shares(): Map<string, number> {
    const byNode = new Map<string, [string, number][]>();
    for (const [id, a] of this.#actors) {
      const n = this.#nodes.get(a.nodeId);
      if (!n) continue;
      const w = dominantShare(a, n);
      let l = byNode.get(a.nodeId);
      if (!l) byNode.set(a.nodeId, (l = []));
      l.push([id, w]);
    }
    const out = new Map<string, number>();
    for (const l of byNode.values()) {
      const sum = l.reduce((s, [, w]) => s + w, 0);
      const scale = sum > 1 ? 1 / sum : 1;
      for (const [id, w] of l) out.set(id, w * scale);
    }
    return out;
  }

  /** Charges the time from the last accrual to `now` to the current placements. */
  accrue(now: number): void {
    if (this.#at === undefined) {
      this.#at = now;
      return;
    }
    // Split at history bucket edges so `--since` sees each charge in the bucket it belongs to.
    while (this.#at < now) {
      const edge = Math.min(now, (Math.floor(this.#at / this.#bucketMs) + 1) * this.#bucketMs);
      this.#charge(this.#at, edge - this.#at);
      this.#at = edge;
    }
    this.#window.clear();
    this.#prune(now);
  }

  #charge(at: number, ms: number): void {
    const hours = ms / 3_600_000;
    const shares = this.shares();
    const used = new Map<string, number>();
    const charge = (tenant: string, model: string, job: string, dollars: number) => {
      if (dollars <= 0) return;
      const k = key(tenant, model, job);
      add(this.#totals, k, dollars);
      add(this.#bucket(at).dollars, k, dollars);
      this.onCharge?.({ tenant, model, job, dollars }, at);
    };
    for (const [id, a] of this.#actors) {
      const n = this.#nodes.get(a.nodeId);
      const share = shares.get(id);
      if (!n || share === undefined) continue;
      add(used, a.nodeId, share);
      const dollars = n.pricePerHour * hours * share;
      const o = a.owner;
      if (o.model) {
        for (const [tenant, part] of this.#split(o.model, o.tenant)) charge(tenant, o.model, o.job ?? '', dollars * part);
      } else charge(o.tenant ?? (o.job ? DEFAULT_TENANT : SYSTEM_TENANT), '', o.job ?? '', dollars);
    }
    for (const [nodeId, n] of this.#nodes) charge(IDLE_TENANT, '', '', n.pricePerHour * hours * Math.max(0, 1 - (used.get(nodeId) ?? 0)));
  }

  /** How a model version's charge splits between tenants now (fractions summing to 1). */
  #split(model: string, ownerTenant: string | undefined): [string, number][] {
    const by = this.#window.get(model) ?? this.#byTenant.get(model);
    const total = by ? [...by.values()].reduce((s, v) => s + v, 0) : 0;
    if (!by || total === 0) return [[ownerTenant ?? DEFAULT_TENANT, 1]];
    return [...by].map(([t, n]) => [t, n / total]);
  }

  #bucket(at: number): Bucket {
    const start = Math.floor(at / this.#bucketMs) * this.#bucketMs;
    let b = this.#buckets.get(start);
    if (!b) this.#buckets.set(start, (b = { dollars: new Map(), predictions: new Map() }));
    return b;
  }

  #prune(now: number): void {
    for (const start of this.#buckets.keys()) if (start + this.#bucketMs < now - this.#retentionMs) this.#buckets.delete(start);
  }

  /** Spend per owner: since the ledger began, or over the history from `since` (bucket resolution). */
  rows(since?: number): CostRow[] {
    const m = since === undefined ? this.#totals : this.#sum(since, (b) => b.dollars);
    return [...m].map(([k, dollars]) => ({ ...splitKey(k), dollars }));
  }

  /** Predictions per model version, like `rows`. */
  predictions(since?: number): Map<string, number> {
    return since === undefined ? new Map(this.#predictions) : this.#sum(since, (b) => b.predictions);
  }

  /** Whether `since` lies within the kept history. */
  covers(since: number, now: number): boolean {
    return since >= now - this.#retentionMs;
  }

  #sum(since: number, pick: (b: Bucket) => Map<string, number>): Map<string, number> {
    const out = new Map<string, number>();
    const from = Math.floor(since / this.#bucketMs) * this.#bucketMs;
    for (const [start, b] of this.#buckets) if (start >= from) for (const [k, v] of pick(b)) add(out, k, v);
    return out;
  }

  /** Everything, or (`history: false`) all but the history buckets, which `history()` gives in pieces. */
  snapshot(o: { history?: boolean } = {}): LedgerSnapshot {
    return { v: 1, at: this.#at ?? 0, totals: [...this.#totals], predictions: [...this.#predictions], buckets: o.history === false ? [] : this.history(-Infinity, Infinity) };
  }

  /** The history buckets that start in [from, to). */
  history(from: number, to: number): LedgerSnapshot['buckets'] {
    return [...this.#buckets].filter(([s]) => s >= from && s < to).map(([s, b]) => [s, [...b.dollars], [...b.predictions]]);
  }

  /** Adds persisted history buckets (after `restore` of a snapshot without them). */
  addHistory(buckets: LedgerSnapshot['buckets']): void {
    for (const [start, d, p] of buckets) this.#buckets.set(start, { dollars: new Map(d), predictions: new Map(p) });
  }

  /** Loads a persisted ledger (a new leader's start); placements are the caller's to set. */
  restore(s: LedgerSnapshot): void {
    this.#totals.clear();
    this.#predictions.clear();
    this.#buckets.clear();
    for (const [k, v] of s.totals) this.#totals.set(k, v);
    for (const [k, v] of s.predictions) this.#predictions.set(k, v);
    for (const [start, d, p] of s.buckets) this.#buckets.set(start, { dollars: new Map(d), predictions: new Map(p) });
    this.#at = s.at;
  }
}

/** The largest of the actor's cpu, memory and gpu requests, each over the node's capacity (at most 1). */
export function dominantShare(a: Pick<ChargedActor, 'cpu' | 'memoryBytes' | 'gpu'>, n: NodePrice): number {
  const cpu = (a.cpu ?? DEFAULT_CPU) / Math.max(n.cpus, 1e-9);
  const mem = n.memoryBytes > 0 ? (a.memoryBytes ?? 0) / n.memoryBytes : 0;
  const gpu = n.gpus > 0 ? (a.gpu ?? 0) / n.gpus : 0;
  return Math.min(1, Math.max(cpu, mem, gpu));
}
