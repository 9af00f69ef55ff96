/**
 * The monitor actor (`model-monitor`, issue #15 item 4): one per deployed version with
 * `monitoring` on (and `monitor` not false), spawned beside its replicas by the deployment code,
 * placed by the scheduler like any actor (kind `service`), restarted by its supervisor, re-placed
 * when its node dies, stopped with its track.
 *
 * It reads its model's prediction log (`<P>_PREDICTIONS`, subject `<prefix>.predictions.<model>`:
 * columnar record batches and the replicas' own profile deltas, merged for the drift tests)
 * and the labeled rows (`<P>_LABELED`, `<prefix>.labeled.<model>`) through its own pull
 * consumers, created at every start from the stream sequences in its checkpoint, and runs the
 * windows and rules of monitor-core.ts on them. After each batch that changed anything it saves
 * `{predictions, labeled, core}` as one object in the checkpoint store (the windows' sketches do
 * not fit a KV value): a restart resumes from exactly that state, so nothing is counted twice or
 * missed.
 *
 * Out: each closed (or re-judged) window's report on `<prefix>.events.monitor` (the gateway keeps
 * the latest per model for `/metrics` and `GET /v1/models/{m}/monitoring`), each alert on
 * `<prefix>.events.alert` (JetStream, `Nats-Msg-Id` = the alert id, so a replay after a crash is
 * not stored twice) and to the webhooks.
 *
 * Messages: `{type: 'status'}` → `MonitorStatus` (consumed sequences, lag, counters, open
 * windows); `{type: 'report'}` → status plus the kept windows' reports; `{type: 'flush'}` closes
 * every open window now (partial) and answers the reports.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type Consumer, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { headers, nanos, nuid } from '@nats-io/transport-node';
import type { ObjectStore } from '@nats-io/obj';
import { Objm } from '@nats-io/obj';
import { Type, type Static } from '@sinclair/typebox';
import { Actor, ActorKind, ContentType, Directory, decode, defineActorType, encode, openBucket, resources, systemClock, type Clock } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { getPolicy } from '../governance/fairness/gate.ts';
import { MonitorCore, type Alert, type MonitorCoreJSON, type MonitorCounters, type WindowReport } from './monitor-core.ts';
import { MonitoringSpec, type LabeledRecord } from './records.ts';
import { batchRecords } from './columnar.ts';
import { isProfileMessage } from './replica-profile.ts';
import { Webhooks, type WebhookStats } from './webhooks.ts';

export const MONITOR_ACTOR = 'model-monitor';

export const MonitorMsg = Type.Union([
  Type.Object({ type: Type.Literal('status') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('report') }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('flush') }, { additionalProperties: false }),
  /** Internal: the consuming loop failed; the actor crashes so its supervisor restarts it. */
  Type.Object({ type: Type.Literal('crash'), message: Type.String() }, { additionalProperties: false }),
]);
export type MonitorMsg = Static<typeof MonitorMsg>;

export interface MonitorArgs {
  model: string;
  version: number;
  spec: MonitoringSpec;
  /** Records read per fetch. @default 500 */
  batch?: number;
}

export interface MonitorLag {
  /** Messages of the model's subject not consumed yet (each a replica's batch of records). */
  predictions: number;
  labeled: number;
  /** Time since the newest record consumed, when messages are pending; 0 when caught up. */
  behindMs: number;
}

export interface MonitorStatus {
  model: string;
  version: number;
  nodeId: string;
  restarts: number;
  /** Stream sequences consumed (everything up to them is in the state). */
  consumed: { predictions: number; labeled: number };
  lag: MonitorLag;
  counters: MonitorCounters;
  open: { window: string; start: number; end: number; rows: number; labeled: number }[];
  hasReference: boolean;
  webhooks: WebhookStats;
  failed?: string;
}

export interface MonitorReport extends MonitorStatus {
  /** Kept closed windows, newest first. */
  windows: WindowReport[];
}

/** The monitor's actor id for a version. */
export const monitorId = (model: string, version: number) => `monitor-${model}-v${version}`;

const SUPERVISION = { maxRestarts: 10, withinMs: 60_000, backoffMs: 500 };

/** The spawn spec of a version's monitor. */
export function monitorSpec(model: string, version: number, spec: MonitoringSpec) {
  return { type: MONITOR_ACTOR, id: monitorId(model, version), args: { model, version, spec } satisfies MonitorArgs, kind: ActorKind.SERVICE, supervision: SUPERVISION };
}

interface Checkpoint {
  model: string;
  version: number;
  predictions: number;
  labeled: number;
  core: MonitorCoreJSON;
}

const FENCE_CHECK_MS = 2000;
const LAG_CHECK_MS = 1000;
const POLICY_CHECK_MS = 5000;
/** Longest between two checkpoints while records come in. */
const CHECKPOINT_MS = 5000;

const utf8 = new TextEncoder();

export class ModelMonitor extends Actor<MonitorMsg> {
  readonly #a: MonitorArgs;
  readonly #clock: Clock;
  #core!: MonitorCore;
  #store!: ObjectStore;
  #js!: JetStreamClient;
  #jsm: JetStreamManager | undefined;
  #directory!: Directory;
  #webhooks!: Webhooks;
  #consumers: { name: string; stream: string; consumer: Consumer }[] = [];
  #fetching: ConsumerMessages[] = [];
  #stopped = false;
  #seq = { predictions: 0, labeled: 0 };
  #lastTs = 0;
  #lag: MonitorLag = { predictions: 0, labeled: 0, behindMs: 0 };
  #failed: string | undefined;
  #fenceCheckedAt = 0;
  #lagCheckedAt = 0;
  #savedAt = 0;
  #dirty = false;
  #registry!: ModelRegistry;
  #policyReadAt = Number.NEGATIVE_INFINITY;

  constructor(args: unknown, clock: Clock = systemClock) {
    super();
    const a = args as Partial<MonitorArgs> | undefined;
    if (!a || typeof a !== 'object' || typeof a.model !== 'string' || !Number.isInteger(a.version)) throw MlErrors.BAD_INPUT('model-monitor: args must be {model, version, spec}');
    this.#a = { model: a.model, version: a.version!, spec: a.spec ?? {}, ...(a.batch ? { batch: a.batch } : {}) };
    this.#clock = clock;
  }

  get #checkpointName(): string {
    return `checkpoints/${this.ctx.actorId}`;
  }

  override async onStart(): Promise<void> {
    const { nc, subjects } = this.ctx;
    const r = resources(subjects.prefix);
    const { model, version, spec } = this.#a;
    const registry = (this.#registry = await ModelRegistry.open(nc, subjects.prefix));
    const reference = await registry.loadReference(await registry.version(model, version));
    this.#core = new MonitorCore(model, version, reference, spec);
    await this.#readPolicy(0);
    this.#webhooks = new Webhooks(spec.webhooks ?? []);
    this.#store = await new Objm(nc).open(r.stores.checkpoints);
    this.#directory = new Directory(await openBucket(nc, r.buckets.actors));
    this.#js = jetstream(nc);
    const blob = await this.#store.getBlob(this.#checkpointName).catch(() => null);
    const cp = blob ? (decode(blob, ContentType.MSGPACK) as Checkpoint) : undefined;
    if (cp && cp.model === model && cp.version === version) {
      this.#core.restore(cp.core);
      this.#seq = { predictions: cp.predictions, labeled: cp.labeled };
    }
    // Its own pull consumers, created at the checkpoint on every start (one per instance, so a
    // fenced copy still pulling never takes records from this one).
    this.#jsm = await jetstreamManager(nc, { checkAPI: false });
    for (const [key, stream, subject] of [
      ['predictions', r.streams.predictions, subjects.predictions(model)],
      ['labeled', r.streams.labeled, subjects.labeled(model)],
    ] as const) {
      const name = `${this.ctx.actorId.slice(0, 90)}_${key.slice(0, 4)}_${nuid.next().slice(-10)}`;
      await this.#jsm.consumers.add(stream, {
        name,
        filter_subject: subject,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: this.#seq[key] + 1,
        ack_policy: AckPolicy.None,
        inactive_threshold: nanos(10 * 60_000),
      });
      this.#consumers.push({ name, stream, consumer: await this.#js.consumers.get(stream, name) });
    }
    this.ctx.log.info({ model, version, from: this.#seq, reference: Boolean(reference), restarts: this.ctx.restarts }, 'model monitor consuming');
    void this.#run();
  }

  override async onStop(): Promise<void> {
    await this.#save().catch(() => undefined);
    await this.#release();
  }

  override async onDrain(): Promise<void> {
    await this.#save().catch(() => undefined);
    await this.#release();
  }

  async receive(msg: MonitorMsg): Promise<MonitorStatus | MonitorReport | WindowReport[]> {
    switch (msg.type) {
      case 'crash':
        throw new Error(msg.message);
      case 'status':
        return this.#status();
      case 'report':
        return { ...this.#status(), windows: this.#core.reports() };
      case 'flush': {
        const closed = this.#core.close(this.#clock.now(), true);
        await this.#emit(closed);
        await this.#save();
        return closed;
      }
    }
  }

  #status(): MonitorStatus {
    return {
      model: this.#a.model,
      version: this.#a.version,
      nodeId: this.ctx.nodeId,
      restarts: this.ctx.restarts,
      consumed: { ...this.#seq },
      lag: this.#lag,
      counters: { ...this.#core.counters },
      open: this.#core.openWindows(),
      hasReference: this.#core.reference !== undefined,
      webhooks: { ...this.#webhooks.stats },
      ...(this.#failed ? { failed: this.#failed } : {}),
    };
  }

  async #release(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#fetching.map((f) => f.close().catch(() => undefined)));
    await Promise.all(this.#consumers.map((c) => this.#jsm?.consumers.delete(c.stream, c.name).catch(() => undefined)));
  }

  async #run(): Promise<void> {
    const batch = this.#a.batch ?? 500;
    try {
      while (!this.#stopped) {
        if (await this.#fenced()) break;
        const [preds, labeled] = await Promise.all(
          this.#consumers.map(async (c) => {
            const it = await c.consumer.fetch({ max_messages: batch, expires: 1000 });
            this.#fetching.push(it);
            const got: { seq: number; data: Uint8Array }[] = [];
            for await (const m of it) got.push({ seq: m.seq, data: m.data });
            this.#fetching.splice(this.#fetching.indexOf(it), 1);
            return got;
          }),
        );
        if (this.#stopped) break;
        const now = this.#clock.now();
        await this.#readPolicy(now);
        for (const m of preds!) {
          if (m.seq <= this.#seq.predictions) continue;
          const msg = decode(m.data, ContentType.MSGPACK);
          if (isProfileMessage(msg)) this.#core.addProfile(msg);
          for (const rec of batchRecords(msg) ?? []) {
            this.#core.addPrediction(rec);
            if (rec.ts > this.#lastTs) this.#lastTs = rec.ts;
          }
          this.#seq.predictions = m.seq;
          this.#dirty = true;
        }
        for (const m of labeled!) {
          if (m.seq <= this.#seq.labeled) continue;
          this.#core.addLabeled(decode(m.data, ContentType.MSGPACK) as LabeledRecord);
          this.#seq.labeled = m.seq;
          this.#dirty = true;
        }
        const changed = this.#core.rejudge(now);
        const closed = this.#core.close(now);
        await this.#emit([...closed, ...changed]);
        await this.#checkLag(now);
        if (closed.length || changed.length || (this.#dirty && now - this.#savedAt >= CHECKPOINT_MS)) await this.#save();
      }
    } catch (err) {
      if (this.#stopped) return;
      this.#failed = (err as Error).message;
      this.ctx.log.error({ err: this.#failed, consumed: this.#seq }, 'model monitor failed; restarting from its checkpoint');
      await this.#release();
      this.ctx.system.ref(this.ctx.actorId).tell({ type: 'crash', message: this.#failed } satisfies MonitorMsg);
    }
  }

  /** Publishes window reports and the alerts raised with them. */
  async #emit(reports: WindowReport[]): Promise<void> {
    const { subjects } = this.ctx;
    for (const rep of reports) this.ctx.nc.publish(subjects.event('monitor'), utf8.encode(JSON.stringify(rep)));
    for (const alert of this.#core.takeAlerts()) await this.#publishAlert(alert);
  }

  async #publishAlert(alert: Alert): Promise<void> {
    const h = headers();
    h.set('Nats-Msg-Id', alert.id);
    h.set('content-type', 'application/json');
    await this.#js.publish(this.ctx.subjects.event('alert'), utf8.encode(JSON.stringify(alert)), { headers: h });
    // A fairness alert's message names group values (sensitive): the log gets the metric and attribute only.
    this.ctx.log.warn({ alert: alert.id, severity: alert.severity }, alert.rule === 'fairness' ? `fairness: ${alert.statistic} on ${alert.attribute} beyond the policy in the ${alert.window} window` : alert.message);
    this.#webhooks.send(alert);
  }

  async #save(): Promise<void> {
    if (!this.#core) return;
    const cp: Checkpoint = { model: this.#a.model, version: this.#a.version, predictions: this.#seq.predictions, labeled: this.#seq.labeled, core: this.#core.toJSON() };
    await this.#store.putBlob({ name: this.#checkpointName, description: `model monitor ${this.#a.model} v${this.#a.version}` }, encode(cp, ContentType.MSGPACK));
    this.#savedAt = this.#clock.now();
    this.#dirty = false;
  }

  /** The model's fairness policy (live fairness alerts), read again at most every POLICY_CHECK_MS. */
  async #readPolicy(now: number): Promise<void> {
    if (now - this.#policyReadAt < POLICY_CHECK_MS) return;
    this.#policyReadAt = now;
    try {
      this.#core.fairnessPolicy = (await getPolicy(this.#registry, this.#a.model))?.policy;
    } catch {
      // Read again next time; the last policy stands meanwhile.
    }
  }

  async #checkLag(now: number): Promise<void> {
    if (now - this.#lagCheckedAt < LAG_CHECK_MS) return;
    this.#lagCheckedAt = now;
    const [p, l] = await Promise.all(this.#consumers.map((c) => c.consumer.info().then((i) => i.num_pending).catch(() => 0)));
    const pending = (p ?? 0) + (l ?? 0);
    this.#lag = { predictions: p ?? 0, labeled: l ?? 0, behindMs: pending > 0 && this.#lastTs ? Math.max(0, now - this.#lastTs) : 0 };
  }

  /** True (and the loop stops) when the directory places this actor elsewhere now. */
  async #fenced(): Promise<boolean> {
    const now = Date.now();
    if (now - this.#fenceCheckedAt < FENCE_CHECK_MS) return false;
    this.#fenceCheckedAt = now;
    const at = await this.#directory.placedOn(this.ctx.actorId, this.ctx.nodeId);
    if (at.here) return false;
    this.ctx.log.warn({ owner: at.owner, state: at.state }, 'model monitor placed elsewhere: this copy stops');
    await this.#release();
    return true;
  }
}

export const actorTypes = [defineActorType({ name: MONITOR_ACTOR, messages: MonitorMsg, create: (args) => new ModelMonitor(args), kind: ActorKind.SERVICE, supervision: SUPERVISION })];
