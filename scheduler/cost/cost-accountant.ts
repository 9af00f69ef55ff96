/**
 * The cost accountant on the scheduler leader. It keeps a `CostLedger` in step with the cluster
 * — nodes and their prices from the membership view, actors and their owners from the actor
 * directory (charged up to the instant of each change), predictions per model version from the
 * gateways' outcome reports (`<prefix>.gw.outcomes`) — and on every tick (`cost.tickMs`, on an
 * injected clock) charges the time elapsed, samples utilisation for right-sizing, persists the
 * ledger in KV (`<prefix>-cost`, CAS on its revision, so a new leader resumes the totals) and
 * publishes budget alerts on `<prefix>.events.alert`. It answers `<prefix>.sched.cost`.
 */
import { availableParallelism } from 'node:os';
import type { Subscription } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers } from '@nats-io/transport-node';
import {
  ActorClient,
  LifecycleState,
  decode,
  encode,
  every,
  isCasConflict,
  serve,
  type Clock,
  type Config,
  type Directory,
  type JobRecord,
  type Logger,
  type NatsConnection,
  type NodeView,
  type Subjects,
  type Versioned,
} from '../../cluster/index.ts';
import { Budgets, type BudgetState } from './budgets.ts';
import { CostLedger, IDLE_TENANT, type LedgerSnapshot } from './ledger.ts';
import { modelOfService, nodePrice, ownerOf } from './owner.ts';
import { reportRows } from './cost-report.ts';
import { SchedulerCostRequest, type CostAdvice, type CostReport } from './cost-wire.ts';
import { UtilisationSamples, type BatchCounters } from './utilisation.ts';

export interface CostAccountantOptions {
  nc: NatsConnection;
  subjects: Subjects;
  config: Config;
  clock: Clock;
  nodes: () => NodeView[];
  directory: Directory;
  /** The jobs bucket (a job's tenant is in its record). */
  jobs: KV;
  /** The cost bucket. */
  kv: KV;
  log: Logger;
}

const LEDGER_KEY = 'ledger';
/** The history is kept one KV key per hour (`h.<hour start>`), so no value outgrows a NATS message. */
const HOUR = 3_600_000;
const historyKey = (hourStart: number) => `h.${hourStart}`;
const LIVE: readonly string[] = [LifecycleState.STARTING, LifecycleState.RUNNING, LifecycleState.DRAINING];

interface Persisted {
  ledger: LedgerSnapshot;
  budgets: BudgetState;
}

interface OutcomeReport {
  type: 'outcomes';
  counts: { model: string; version: number; requests: number; tenants?: Record<string, number> }[];
}

export class CostAccountant {
  readonly ledger: CostLedger;
  #budgets: Budgets;
  readonly #o: CostAccountantOptions;
  readonly #entries = new Map<string, Versioned['entry']>();
  readonly #jobTenants = new Map<string, string | null>();
  readonly #samples: UtilisationSamples;
  #revision = 0;
  #chain = Promise.resolve();
  #stops: (() => void)[] = [];
  #subs: Subscription[] = [];
  /** Set once persisting hit a newer revision: another leader writes now. */
  #fenced = false;

  constructor(o: CostAccountantOptions) {
    this.#o = o;
    const c = o.config.cost;
    this.ledger = new CostLedger({ bucketMs: c.bucketMs, retentionMs: c.retentionMs });
    this.#budgets = new Budgets(c.budgets);
    this.#samples = new UtilisationSamples(c.rightSizing.samples);
  }

  async start(): Promise<void> {
    const now = this.#o.clock.now();
    const e = await this.#o.kv.get(LEDGER_KEY).catch(() => null);
    if (e && e.operation === 'PUT' && e.value.length > 0) {
      const p = decode(e.value) as Persisted;
      this.ledger.restore(p.ledger);
      this.#budgets = new Budgets(this.#o.config.cost.budgets, p.budgets);
      this.#revision = e.revision;
      await this.#loadHistory(now);
      // The gap since the last leader persisted is charged to what is placed now, within a bound.
      this.ledger.startAt(Math.max(p.ledger.at, now - this.#o.config.cost.maxGapMs));
      this.#o.log.info({ chargedTo: p.ledger.at, gapMs: now - p.ledger.at }, 'cost ledger resumed');
    } else this.ledger.startAt(now);
    this.ledger.onCharge = (row, at) => this.#budgets.charge(row, at);
    this.#syncNodes();
    for (const v of await this.#o.directory.list({ settleMs: 15_000 })) await this.#place(v.entry.actorId, v);
    this.#stops.push(await this.#o.directory.watch((id, v) => this.#serial(async () => {
      this.ledger.accrue(this.#o.clock.now());
      this.#syncNodes();
      await this.#place(id, v);
    })));
    this.#subs.push(this.#o.nc.subscribe(this.#o.subjects.gatewayOutcomes, { callback: (err, m) => void (err || this.#onOutcomes(m.data)) }));
    this.#subs.push(serve(this.#o.nc, this.#o.subjects.scheduler('cost'), SchedulerCostRequest, (req) => (req.type === 'report' ? this.#inOrder(() => this.report(req.by ?? 'owner', req.sinceMs)) : this.recommend()), { log: this.#o.log }));
    this.#stops.push(every(this.#o.clock, this.#o.config.cost.tickMs, () => void this.#serial(() => this.tick())));
  }

  /** Runs `fn` after every earlier change (directory events and ticks apply in order). */
  #serial(fn: () => Promise<void> | void): Promise<void> {
    this.#chain = this.#chain.then(fn).catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, 'cost accounting step failed'));
    return this.#chain;
  }

  /** Runs `fn` in turn with the changes (a report must not charge between a change's two halves) and returns its value. */
  #inOrder<T>(fn: () => T): Promise<T> {
    const p = this.#chain.then(fn);
    this.#chain = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Charges the time elapsed, samples utilisation, persists, publishes budget alerts. */
  async tick(): Promise<void> {
    const now = this.#o.clock.now();
    this.ledger.accrue(now);
    this.#syncNodes();
    this.#samples.sample(this.#o.nodes(), this.#entries, now);
    await this.#persist();
    for (const a of this.#budgets.take()) {
      const h = headers();
      h.set('Nats-Msg-Id', a.id);
      h.set('content-type', 'application/json');
      await jetstream(this.#o.nc).publish(this.#o.subjects.event('alert'), new TextEncoder().encode(JSON.stringify(a)), { headers: h }).catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message, alert: a.id }, 'could not publish a budget alert'));
      this.#o.log.warn({ alert: a.id, severity: a.severity }, a.message);
    }
  }

  #syncNodes(): void {
    const alive = new Set<string>();
    for (const n of this.#o.nodes()) {
      if (!n.alive) continue;
      alive.add(n.nodeId);
      this.ledger.setNode(n.nodeId, nodePrice(n));
    }
    for (const id of this.#knownNodes) if (!alive.has(id)) this.ledger.removeNode(id);
    this.#knownNodes = alive;
  }
  #knownNodes = new Set<string>();

  async #place(actorId: string, v: Versioned | undefined): Promise<void> {
    const e = v?.entry;
    if (!e || !LIVE.includes(e.state) || !e.nodeId) {
      this.#entries.delete(actorId);
      this.ledger.removeActor(actorId);
      return;
    }
    this.#entries.set(actorId, e);
    const owner = ownerOf(e, (job) => this.#jobTenants.get(job) ?? undefined);
    if (owner.job && !this.#jobTenants.has(owner.job)) {
      const rec = await this.#o.jobs.get(owner.job).catch(() => null);
      const tenant = rec && rec.operation === 'PUT' && rec.value.length > 0 ? ((decode(rec.value) as JobRecord).tenant ?? null) : null;
      this.#jobTenants.set(owner.job, tenant);
      if (tenant) owner.tenant = tenant;
    }
    const r = e.spec.resources;
    this.ledger.setActor(actorId, { nodeId: e.nodeId, owner, ...(r?.cpu !== undefined ? { cpu: r.cpu } : {}), ...(r?.memoryBytes !== undefined ? { memoryBytes: r.memoryBytes } : {}), ...(r?.gpu !== undefined ? { gpu: r.gpu } : {}) });
  }

  #onOutcomes(data: Uint8Array): void {
    let r: OutcomeReport;
    try {
      r = decode(data) as OutcomeReport;
    } catch {
      return;
    }
    if (r?.type !== 'outcomes' || !Array.isArray(r.counts)) return;
    const now = this.#o.clock.now();
    for (const c of r.counts) {
      if (typeof c?.model !== 'string' || !Number.isInteger(c.version) || !(c.requests > 0)) continue;
      const model = `${c.model}@v${c.version}`;
      const tenants = c.tenants && typeof c.tenants === 'object' ? Object.entries(c.tenants).filter(([, n]) => typeof n === 'number' && n > 0) : [];
      if (tenants.length) for (const [t, n] of tenants) this.ledger.recordPredictions(model, n, now, t);
      else this.ledger.recordPredictions(model, c.requests, now);
      this.#samples.requests(model, c.requests);
    }
  }

  async #persist(): Promise<void> {
    if (this.#fenced) return;
    const value = encode({ ledger: this.ledger.snapshot({ history: false }), budgets: this.#budgets.state() } satisfies Persisted);
    try {
      this.#revision = this.#revision === 0 ? await this.#o.kv.create(LEDGER_KEY, value) : await this.#o.kv.update(LEDGER_KEY, value, this.#revision);
    } catch (err) {
      if (isCasConflict(err)) {
        // Someone else wrote it: another leader took over. This one stops writing (it is being stopped).
        this.#fenced = true;
        this.#o.log.warn('cost ledger changed under this leader: no longer persisting');
      } else this.#o.log.warn({ err: (err as Error).message }, 'could not persist the cost ledger (will retry next tick)');
      return;
    }
    // The hours charged since the last persist (usually one; two across an hour's end).
    const to = this.ledger.chargedTo ?? 0;
    const fromHour = Math.floor(Math.min(this.#persistedTo ?? to, to) / HOUR) * HOUR;
    for (let h = fromHour; h <= to; h += HOUR) {
      await this.#o.kv.put(historyKey(h), encode(this.ledger.history(h, h + HOUR))).catch((err: unknown) => this.#o.log.warn({ err: (err as Error).message }, 'could not persist cost history'));
    }
    this.#persistedTo = to;
    const oldest = to - this.#o.config.cost.retentionMs - HOUR;
    for (const h of [...this.#historyKeys].filter((k) => k < oldest)) {
      this.#historyKeys.delete(h);
      await this.#o.kv.purge(historyKey(h)).catch(() => undefined);
    }
    for (let h = fromHour; h <= to; h += HOUR) this.#historyKeys.add(h);
  }
  #persistedTo: number | undefined;
  readonly #historyKeys = new Set<number>();

  async #loadHistory(now: number): Promise<void> {
    const keys: string[] = [];
    for await (const k of await this.#o.kv.keys('h.>')) keys.push(k);
    for (const k of keys) {
      const hour = Number(k.slice(2));
      if (!Number.isFinite(hour)) continue;
      this.#historyKeys.add(hour);
      if (hour + HOUR < now - this.#o.config.cost.retentionMs) continue;
      const e = await this.#o.kv.get(k).catch(() => null);
      if (e && e.operation === 'PUT' && e.value.length > 0) this.ledger.addHistory(decode(e.value) as LedgerSnapshot['buckets']);
    }
  }

  /** Spend grouped `by`, since the ledger began or over the last `sinceMs`. */
  report(by: CostReport['by'], sinceMs?: number): CostReport {
    const now = this.#o.clock.now();
    this.ledger.accrue(now);
    const since = sinceMs === undefined ? undefined : now - sinceMs;
    const { rows, totalDollars } = reportRows(this.ledger, by, since);
    let fleet = 0;
    let idle = 0;
    const shares = this.ledger.shares();
    for (const n of this.#o.nodes().filter((x) => x.alive)) {
      fleet += n.labels.pricePerHour;
      let used = 0;
      for (const [id, e] of this.#entries) if (e.nodeId === n.nodeId) used += shares.get(id) ?? 0;
      idle += n.labels.pricePerHour * Math.max(0, 1 - used);
    }
    const from = since !== undefined ? Math.max(since, now - this.ledger.retentionMs) : null;
    return { by, from, to: now, totalDollars, fleetDollarsPerHour: fleet, idleDollarsPerHour: idle, rows: by === 'tenant' || by === 'owner' ? rows : rows.filter((r) => r.tenant !== IDLE_TENANT) };
  }

  /** Right-sizing advice from the utilisation sampled so far and the model replicas' batch counters. */
  async recommend(): Promise<CostAdvice> {
    const c = this.#o.config;
    const cpus = availableParallelism();
    const profiles = c.nodes.map((p) => ({ name: p.name, spot: p.labels.spot, pricePerHour: p.labels.pricePerHour, cpus }));
    const batches = await this.#batchStats();
    const out = this.#samples.advise(this.#o.nodes(), this.#entries, this.ledger.shares(), profiles, c.cost.rightSizing, (service) => modelOfService(service), batches);
    return { at: this.#o.clock.now(), dollarsPerHourChange: out.recommendations.reduce((s, r) => s + r.dollarsPerHourChange, 0), ...out };
  }

  /**
   * Per model service, its replicas' batching counters added up (each replica answers
   * `{type: 'stats'}` with its batches, rows, max batch size and queue delay since it started);
   * a replica that does not answer within a second is left out.
   */
  async #batchStats(): Promise<Map<string, BatchCounters>> {
    const actors = new ActorClient(this.#o.nc, this.#o.subjects);
    const out = new Map<string, BatchCounters>();
    const asks = [...this.#entries.values()]
      .filter((e) => e.spec.service && modelOfService(e.spec.service) && e.state === LifecycleState.RUNNING)
      .map(async (e) => {
        const r = await actors.ref(e.actorId).ask<Partial<BatchCounters>>({ type: 'stats' }, { timeoutMs: 1000 }).catch(() => undefined);
        if (!r || typeof r.batches !== 'number' || typeof r.rows !== 'number' || typeof r.maxBatchSize !== 'number' || typeof r.maxQueueDelayMs !== 'number') return;
        const t = out.get(e.spec.service!) ?? { batches: 0, rows: 0, maxBatchSize: r.maxBatchSize, maxQueueDelayMs: r.maxQueueDelayMs };
        t.batches += r.batches;
        t.rows += r.rows;
        out.set(e.spec.service!, t);
      });
    await Promise.all(asks);
    return out;
  }

  /** Stops the tick, the watch and the API; persists a last time. */
  async stop(): Promise<void> {
    for (const s of this.#stops.splice(0)) s();
    for (const s of this.#subs.splice(0)) s.unsubscribe();
    await this.#serial(async () => {
      this.ledger.accrue(this.#o.clock.now());
      await this.#persist();
    });
  }
}
