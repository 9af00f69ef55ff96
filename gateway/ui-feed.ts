/**
 * What the dashboard (`/ui`) shows, kept current in the gateway: one snapshot per **topic**
 * (`cluster`, `models`, `jobs`, `events`), each made by a {@link DashboardSource}, and pushed to
 * every open `/ui/api/events` stream (server-sent events) when it changes.
 *
 * Where the data comes from — the same reads the rest of Shoal uses, nothing new on the wire:
 * - cluster: `clusterStatus()` (what `shoal status` and `GET /v1/status` show) and the actor
 *   directory (a KV watch);
 * - models: the registry's KV (a watch: records, versions, deployments with their canary and
 *   history) and this gateway's own inference metrics, sampled every `refreshMs` into short
 *   series (req/s, errors/s, p50/p99, mean batch size): the traffic *this gateway* served;
 * - jobs: the `jobs` KV bucket (a watch) and `shoal.events.job-progress`, whose points make the
 *   loss/metric curves (a job that ran before this gateway started has its last point only);
 * - events: the cluster's events (placements, preemptions, rollbacks, …), most recent first.
 *
 * Later work adds its topic (monitoring: drift and quality; cost per tenant/model; features;
 * pipeline runs) with {@link DashboardFeed.addSource} (the gateway's feed is `app.shoal.dashboard`)
 * and a panel in `ui/src/panels.js`.
 */
import type { Subscription } from '@nats-io/transport-node';
import {
  Directory,
  JobStore,
  clusterStatus,
  decode,
  every,
  openBucket,
  resources,
  systemClock,
  type Clock,
  type JobRecord,
  type Logger,
  type NatsConnection,
  type Subjects,
} from '../cluster/index.ts';
import { ModelRegistry, isDeployment, type Deployment, type ModelRecord, type ModelVersion } from '../ml/index.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface DashboardOptions {
  /** How often the cluster is read, the metrics sampled and changed topics pushed. @default 2000 */
  refreshMs?: number;
  /** A `ping` event this often on every stream, so the page can tell a stale one (it reconnects after 3 missed). @default 5000 */
  heartbeatMs?: number;
  /** Points kept per metric series (at `refreshMs` apart: 180 × 2 s = 6 minutes). @default 180 */
  historyPoints?: number;
  /** @default systemClock */
  clock?: Clock;
}

/** One topic of the dashboard: its current snapshot (plain JSON). */
export interface DashboardSource {
  topic: string;
  /** Opens what it reads (watches, subscriptions); called once, on the dashboard's first use. */
  start?(): Promise<void>;
  /** The topic's current value; a thrown error is shown on the page as `{ error }`. */
  snapshot(): unknown;
  stop?(): void;
}

/** A stream open to one page: the feed writes `event: <topic>` messages to it. */
export type DashboardSink = (event: string, data: string) => void;

interface Deps {
  nc: NatsConnection;
  subjects: Subjects;
  metrics: GatewayMetrics;
  logger: Logger;
}

export class DashboardFeed {
  readonly #sources = new Map<string, DashboardSource>();
  readonly #last = new Map<string, string>();
  readonly #sinks = new Set<DashboardSink>();
  readonly #clock: Clock;
  readonly #refreshMs: number;
  readonly #heartbeatMs: number;
  #started: Promise<void> | undefined;
  #stops: (() => void)[] = [];
  #pushTimer: (() => void) | undefined;
  #readAt = -Infinity;

  constructor(
    private readonly deps: Deps,
    opts: DashboardOptions = {},
  ) {
    this.#clock = opts.clock ?? systemClock;
    this.#refreshMs = opts.refreshMs ?? 2000;
    this.#heartbeatMs = opts.heartbeatMs ?? 5000;
    const history = opts.historyPoints ?? 180;
    const soon = () => this.#soon();
    this.addSource(new ClusterSource(deps, this.#refreshMs, soon, () => this.watched()));
    this.addSource(new ModelsSource(deps, this.#clock, this.#refreshMs, history, soon));
    this.addSource(new JobsSource(deps, soon));
    this.addSource(new EventsSource(deps, soon));
  }

  get heartbeatMs(): number {
    return this.#heartbeatMs;
  }

  /** The feed's clock, for sources that poll on their own (gateway/ui-panels.ts). */
  get clock(): Clock {
    return this.#clock;
  }

  /** A page is open (a stream), or the state was read in the last minute: worth polling the cluster for. */
  watched(): boolean {
    return this.#sinks.size > 0 || this.#clock.now() - this.#readAt < 60_000;
  }

  get topics(): string[] {
    return [...this.#sources.keys()];
  }

  /** Adds a topic (before the first use; a later one starts at once). */
  addSource(src: DashboardSource): void {
    this.#sources.set(src.topic, src);
    if (this.#started) void this.#started.then(() => src.start?.());
  }

  /**
   * Opens the sources and starts the refresh loop, once. The gateway calls it when it starts, so
   * the series and job curves cover the time before anyone opened the page; the cluster is
   * polled only while a page is open.
   */
  start(): Promise<void> {
    this.#started ??= (async () => {
      await Promise.all([...this.#sources.values()].map((s) => s.start?.().catch((err: unknown) => this.deps.logger.warn({ topic: s.topic, err: (err as Error).message }, 'dashboard source did not start'))));
      this.#stops.push(every(this.#clock, this.#refreshMs, () => this.refresh()));
      this.#stops.push(every(this.#clock, this.#heartbeatMs, () => this.#send('ping', JSON.stringify({ at: this.#clock.now() }))));
      this.refresh();
    })();
    return this.#started;
  }

  stop(): void {
    for (const s of this.#stops) s();
    this.#stops = [];
    this.#pushTimer?.();
    for (const s of this.#sources.values()) s.stop?.();
    this.#sinks.clear();
  }

  /** Every topic's current value (for `GET /ui/api/state` and a new stream). */
  state(): Record<string, unknown> {
    this.#readAt = this.#clock.now();
    const out: Record<string, unknown> = {};
    for (const t of this.#sources.keys()) out[t] = JSON.parse(this.#json(t));
    return out;
  }

  /** A new stream: it gets every topic now, then each change. Returns its unsubscribe. */
  subscribe(sink: DashboardSink): () => void {
    for (const t of this.#sources.keys()) sink(t, this.#json(t));
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }

  /** Recomputes every topic and pushes those that changed. */
  refresh(): void {
    if (this.#sinks.size === 0) return;
    for (const t of this.#sources.keys()) {
      const before = this.#last.get(t);
      const now = this.#json(t);
      if (now !== before) this.#send(t, now);
    }
  }

  #json(topic: string): string {
    let v: unknown;
    try {
      v = this.#sources.get(topic)!.snapshot();
    } catch (err) {
      v = { error: `${topic}: ${(err as Error).message}` };
    }
    const s = JSON.stringify(v ?? null);
    this.#last.set(topic, s);
    return s;
  }

  /** A change seen by a watch: pushed within ~50 ms (changes close together go out once). */
  #soon(): void {
    if (this.#pushTimer) return;
    this.#pushTimer = this.#clock.after(50, () => {
      this.#pushTimer = undefined;
      this.refresh();
    });
  }

  #send(event: string, data: string): void {
    for (const sink of this.#sinks) {
      try {
        sink(event, data);
      } catch {
        this.#sinks.delete(sink);
      }
    }
  }
}

// ---- cluster ------------------------------------------------------------------------------------

interface ActorRow {
  actorId: string;
  type: string;
  service?: string;
  nodeId: string;
  state: string;
  reason?: string;
}

/** Nodes, processes, pending actors (the scheduler's status) and the actor directory. */
class ClusterSource implements DashboardSource {
  readonly topic = 'cluster';
  #status: unknown = { loading: true };
  #actors = new Map<string, ActorRow>();
  #actorsError: string | undefined;
  #stopWatch: (() => void) | undefined;
  #stopLoop: (() => void) | undefined;
  #busy = false;

  constructor(
    private readonly deps: Deps,
    private readonly refreshMs: number,
    private readonly changed: () => void,
    private readonly watched: () => boolean,
  ) {}

  async start(): Promise<void> {
    const poll = async () => {
      if (this.#busy || !this.watched()) return;
      this.#busy = true;
      try {
        this.#status = await clusterStatus(this.deps.nc, this.deps.subjects, 300);
      } catch (err) {
        this.#status = { error: `cluster status: ${(err as Error).message}` };
      } finally {
        this.#busy = false;
      }
      this.changed();
    };
    this.#stopLoop = every(systemClock, this.refreshMs, () => void poll());
    try {
      const dir = new Directory(await openBucket(this.deps.nc, resources(this.deps.subjects.prefix).buckets.actors));
      this.#stopWatch = await dir.watch((id, v) => {
        if (!v) this.#actors.delete(id);
        else {
          const e = v.entry;
          this.#actors.set(id, { actorId: id, type: e.spec.type, ...(e.spec.service ? { service: e.spec.service } : {}), nodeId: e.nodeId, state: e.state, ...(e.reason ? { reason: e.reason } : {}) });
        }
        this.changed();
      });
    } catch (err) {
      this.#actorsError = `actor directory: ${(err as Error).message}`;
    }
  }

  snapshot(): unknown {
    const actors = [...this.#actors.values()].sort((a, b) => a.actorId.localeCompare(b.actorId));
    return { status: this.#status, actors: actors.slice(0, 500), actorCount: actors.length, ...(this.#actorsError ? { actorsError: this.#actorsError } : {}) };
  }

  stop(): void {
    this.#stopLoop?.();
    this.#stopWatch?.();
  }
}

// ---- models -------------------------------------------------------------------------------------

/** A model's traffic as this gateway served it, one point per sample (null: no request then). */
interface Series {
  t: number[];
  rps: number[];
  canaryRps: number[];
  errorsPerSec: number[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  batch: (number | null)[];
}

interface Sample {
  requests: number;
  canary: number;
  errors: number;
  /** Latency histogram: cumulative count per upper bound (seconds), over every version and route. */
  buckets: Map<number, number>;
  batchSum: number;
  batchCount: number;
}

/** The request counts, latency buckets and batch sizes of each model, read from this gateway's metrics. */
async function sampleMetrics(m: GatewayMetrics): Promise<Map<string, Sample>> {
  const out = new Map<string, Sample>();
  const of = (model: string) => {
    let s = out.get(model);
    if (!s) out.set(model, (s = { requests: 0, canary: 0, errors: 0, buckets: new Map(), batchSum: 0, batchCount: 0 }));
    return s;
  };
  for (const v of (await m.inferRequests.get()).values) {
    const s = of(String(v.labels.model));
    s.requests += v.value;
    if (v.labels.route === 'canary') s.canary += v.value;
    if (v.labels.code !== 'ok') s.errors += v.value;
  }
  for (const v of (await m.inferDuration.get()).values) {
    if (v.metricName !== `${m.inferDuration.name}_bucket`) continue;
    const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
    const b = of(String(v.labels.model)).buckets;
    b.set(le, (b.get(le) ?? 0) + v.value);
  }
  for (const v of (await m.batchSize.get()).values) {
    const s = of(String(v.labels.model));
    if (v.metricName === `${m.batchSize.name}_sum`) s.batchSum += v.value;
    else if (v.metricName === `${m.batchSize.name}_count`) s.batchCount += v.value;
  }
  return out;
}

/** The q-quantile (ms) of the requests between two cumulative histograms: the upper bound of its bucket. */
function quantileMs(now: Map<number, number>, before: Map<number, number> | undefined, q: number): number | null {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const total = (now.get(Infinity) ?? 0) - (before?.get(Infinity) ?? 0);
  if (total <= 0) return null;
  for (const le of bounds) {
    const c = (now.get(le) ?? 0) - (before?.get(le) ?? 0);
    if (c >= q * total) return Number.isFinite(le) ? le * 1000 : (bounds.at(-2) ?? 0) * 1000;
  }
  return null;
}

const pick = (v: ModelVersion) => ({ version: v.version, format: v.format, sizeBytes: v.sizeBytes, createdAt: v.createdAt, metrics: v.metrics, ...(v.description ? { description: v.description } : {}) });

/** Models, versions, aliases and deployments (registry KV watch) and their traffic (this gateway's metrics). */
class ModelsSource implements DashboardSource {
  readonly topic = 'models';
  readonly #records = new Map<string, ModelRecord>();
  readonly #versions = new Map<string, Map<number, ReturnType<typeof pick>>>();
  readonly #deployments = new Map<string, Deployment>();
  readonly #series = new Map<string, Series>();
  #prev: { at: number; samples: Map<string, Sample> } | undefined;
  #error: string | undefined;
  #stops: (() => void)[] = [];

  constructor(
    private readonly deps: Deps,
    private readonly clock: Clock,
    private readonly sampleMs: number,
    private readonly history: number,
    private readonly changed: () => void,
  ) {}

  async start(): Promise<void> {
    try {
      const reg = await ModelRegistry.open(this.deps.nc, this.deps.subjects.prefix);
      this.#stops.push(
        await reg.watch((key, value) => {
          this.#apply(key, value);
          this.changed();
        }),
      );
    } catch (err) {
      this.#error = `model registry: ${(err as Error).message}`;
    }
    this.#stops.push(every(this.clock, this.sampleMs, () => void this.#sample()));
    await this.#sample();
  }

  #apply(key: string, value: unknown): void {
    const dot = key.indexOf('.');
    const kind = key.slice(0, dot);
    const rest = key.slice(dot + 1);
    if (kind === 'model') {
      if (value === undefined) this.#records.delete(rest);
      else this.#records.set(rest, value as ModelRecord);
    } else if (kind === 'deploy') {
      if (value !== undefined && isDeployment.Check(value)) this.#deployments.set(rest, value);
      else this.#deployments.delete(rest);
    } else if (kind === 'version') {
      const at = rest.lastIndexOf('.');
      const name = rest.slice(0, at);
      const v = Number(rest.slice(at + 1));
      let m = this.#versions.get(name);
      if (!m) this.#versions.set(name, (m = new Map()));
      if (value === undefined) m.delete(v);
      else m.set(v, pick(value as ModelVersion));
    }
  }

  async #sample(): Promise<void> {
    const samples = await sampleMetrics(this.deps.metrics);
    const at = this.clock.now();
    const prev = this.#prev;
    this.#prev = { at, samples };
    if (!prev) return;
    const dt = Math.max(0.001, (at - prev.at) / 1000);
    for (const [model, s] of samples) {
      const p = prev.samples.get(model);
      let ser = this.#series.get(model);
      if (!ser) this.#series.set(model, (ser = { t: [], rps: [], canaryRps: [], errorsPerSec: [], p50Ms: [], p99Ms: [], batch: [] }));
      const n = s.requests - (p?.requests ?? 0);
      const bc = s.batchCount - (p?.batchCount ?? 0);
      const round = (x: number) => Math.round(x * 100) / 100;
      ser.t.push(Math.round(at) / 1000);
      ser.rps.push(round(n / dt));
      ser.canaryRps.push(round((s.canary - (p?.canary ?? 0)) / dt));
      ser.errorsPerSec.push(round((s.errors - (p?.errors ?? 0)) / dt));
      ser.p50Ms.push(quantileMs(s.buckets, p?.buckets, 0.5));
      ser.p99Ms.push(quantileMs(s.buckets, p?.buckets, 0.99));
      ser.batch.push(bc > 0 ? round((s.batchSum - (p?.batchSum ?? 0)) / bc) : null);
      if (ser.t.length > this.history) for (const k of Object.keys(ser) as (keyof Series)[]) ser[k].shift();
    }
  }

  snapshot(): unknown {
    if (this.#error && this.#records.size === 0) return { error: this.#error };
    const names = [...new Set([...this.#records.keys(), ...this.#deployments.keys()])].sort();
    const models = names.map((name) => {
      const rec = this.#records.get(name);
      const d = this.#deployments.get(name);
      const versions = [...(this.#versions.get(name)?.values() ?? [])].sort((a, b) => b.version - a.version);
      const weight = d?.canary && d.canary.state === 'ready' ? d.canary.weight : 0;
      return {
        name,
        latest: rec?.latest ?? 0,
        aliases: rec?.aliases ?? {},
        versions,
        deployment: d ? { stable: d.stable, ...(d.canary ? { canary: d.canary } : {}), policy: d.policy, history: d.history.slice(-20).reverse(), updatedAt: d.updatedAt } : null,
        traffic: d ? { stable: Math.round((1 - weight) * 1000) / 1000, canary: Math.round(weight * 1000) / 1000 } : null,
        series: this.#series.get(name) ?? null,
      };
    });
    return { models, servedBy: 'this gateway', sampleMs: this.sampleMs };
  }

  stop(): void {
    for (const s of this.#stops) s();
  }
}

// ---- jobs ---------------------------------------------------------------------------------------

interface CurvePoint {
  step: number;
  loss?: number;
  valAuc?: number;
}

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** Jobs (the `jobs` KV bucket) and their loss/metric curves (`shoal.events.job-progress`). */
class JobsSource implements DashboardSource {
  readonly topic = 'jobs';
  readonly #jobs = new Map<string, JobRecord>();
  readonly #curves = new Map<string, CurvePoint[]>();
  #error: string | undefined = 'the jobs bucket is not open yet';
  #stops: (() => void)[] = [];
  #sub: Subscription | undefined;
  #stopped = false;

  constructor(
    private readonly deps: Deps,
    private readonly changed: () => void,
  ) {}

  async start(): Promise<void> {
    this.#sub = this.deps.nc.subscribe(this.deps.subjects.event('job-progress'), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const p = decode(msg.data) as Record<string, unknown>;
          if (typeof p.jobId === 'string') this.#point(p.jobId, p);
        } catch {
          /* not ours */
        }
      },
    });
    await this.#open();
  }

  /** The jobs bucket exists once a scheduler has started: retried on each snapshot until then. */
  async #open(): Promise<void> {
    try {
      const store = await JobStore.open(this.deps.nc, this.deps.subjects.prefix);
      if (this.#stopped) return;
      this.#stops.push(
        await store.watchAll((id, rec) => {
          if (!rec) this.#jobs.delete(id);
          else {
            this.#jobs.set(id, rec);
            if (rec.progress) this.#point(id, rec.progress, false);
          }
          this.changed();
        }),
      );
      this.#error = undefined;
    } catch (err) {
      this.#error = `jobs: ${(err as Error).message}`;
      if (!this.#stopped) this.#stops.push(systemClock.after(5000, () => void this.#open()));
    }
  }

  #point(jobId: string, p: Record<string, unknown>, notify = true): void {
    const step = num(p.step);
    if (step === undefined) return;
    let c = this.#curves.get(jobId);
    if (!c) this.#curves.set(jobId, (c = []));
    const last = c.at(-1);
    const loss = num(p.loss);
    const valAuc = num(p.valAuc);
    // A point has a value: the job's `placing` record (step 0) and its closing event have none.
    if (loss === undefined && valAuc === undefined) return;
    const pt: CurvePoint = { step, ...(loss !== undefined ? { loss } : {}), ...(valAuc !== undefined ? { valAuc } : {}) };
    if (last && last.step === step) Object.assign(last, pt);
    else if (!last || last.step < step) c.push(pt);
    if (c.length > 2000) c.splice(0, c.length - 2000);
    if (notify) this.changed();
  }

  snapshot(): unknown {
    const jobs = [...this.#jobs.values()]
      .sort((a, b) => b.submittedAt - a.submittedAt)
      .slice(0, 100)
      .map((j) => {
        const p = j.progress ?? {};
        const r = j.result ?? {};
        const cost = num(r.cost) ?? num(p.costSoFar);
        return {
          id: j.id,
          state: j.state,
          actorType: j.actorType,
          submittedAt: j.submittedAt,
          updatedAt: j.updatedAt,
          ...(j.reason ? { reason: j.reason } : {}),
          ...(j.restarts ? { restarts: j.restarts } : {}),
          step: num(p.step),
          steps: num(p.steps),
          loss: num(p.loss),
          valAuc: num(p.valAuc),
          samplesPerSec: num(p.samplesPerSec),
          workers: num(p.workers),
          ...(cost !== undefined ? { cost } : {}),
          ...(j.result ? { result: j.result } : {}),
          curve: this.#curves.get(j.id) ?? [],
        };
      });
    return { jobs, ...(this.#error ? { error: this.#error } : {}) };
  }

  stop(): void {
    this.#stopped = true;
    for (const s of this.#stops) s();
    this.#sub?.unsubscribe();
  }
}

// ---- events -------------------------------------------------------------------------------------

/** The cluster's recent events (placements, preemption notices, rollbacks, scaling), newest first; job progress is the jobs topic's. */
class EventsSource implements DashboardSource {
  readonly topic = 'events';
  readonly #events: { kind: string; at: number; data: Record<string, unknown> }[] = [];
  #sub: Subscription | undefined;

  constructor(
    private readonly deps: Deps,
    private readonly changed: () => void,
  ) {}

  async start(): Promise<void> {
    const prefix = this.deps.subjects.event('x').slice(0, -1);
    this.#sub = this.deps.nc.subscribe(this.deps.subjects.eventsAll, {
      callback: (err, msg) => {
        if (err || !msg.subject.startsWith(prefix)) return;
        const kind = msg.subject.slice(prefix.length);
        // Monitors' window reports are data (gauges, the monitoring API), not events; their alerts are.
        if (kind === 'job-progress' || kind === 'monitor') return;
        let data: Record<string, unknown> = {};
        try {
          const d = decode(msg.data);
          if (d && typeof d === 'object') data = d as Record<string, unknown>;
        } catch {
          /* an event without a body */
        }
        this.#events.unshift({ kind, at: num(data.at) ?? Date.now(), data });
        if (this.#events.length > 50) this.#events.pop();
        this.changed();
      },
    });
  }

  snapshot(): unknown {
    return { events: this.#events };
  }

  stop(): void {
    this.#sub?.unsubscribe();
  }
}
