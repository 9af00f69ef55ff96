/**
 * Labels for logged predictions (issue #15 item 2), in two parts run by the scheduler processes
 * as control modules (ml/control.ts):
 *
 * - The **feedback service** (every scheduler, one queue group): `<prefix>.feedback.<model>` takes
 *   `{id, label[, groups]}` or a list of them (JSON or MessagePack; the gateway's
 *   `POST /v1/models/{m}/feedback` sends the same request). Each label is checked — the id a
 *   string, the label of the model's label type (deploy option `monitoring.labelType`, else from
 *   its first output: BYTES → string, otherwise a number or a boolean) — and a bad one refuses
 *   the whole request with SHOAL_ERR_BAD_INPUT naming it (`[2].label`), nothing stored. Accepted
 *   labels are stamped with this service's clock (`labelTs`) and appended to the feedback stream
 *   (`<prefix>.feedlog.<model>`, `Nats-Msg-Id` `<model>:<id>`, so a retried label is stored once).
 * - The **join** (the scheduler leader only: one process owns the pending set and the counters,
 *   and its durable consumers resume where the last leader stopped). It finds each label's
 *   prediction (prediction-lookup.ts: among the batches it read recently, else in the log by the
 *   time the id carries, else in a KV index — TTL the join horizon — that holds only the ids
 *   without their time; it reads the log's headers, and a batch whole only when it must), and
 *   joins them: a {@link LabeledRecord} on `<prefix>.labeled.<model>` (the labeled stream
 *   a monitor reads). A label whose prediction is not (yet) indexed waits in a bounded pending
 *   set — a label can arrive before its replica flushed the prediction — and is counted as
 *   orphaned once the horizon passes (or when the set is full, oldest first); a label that comes
 *   more than the horizon after its prediction is counted as late. Unknown ids are counters,
 *   never errors: a flood of them costs a map entry each, up to the bound.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { Subscription } from '@nats-io/transport-node';
import { Type } from '@sinclair/typebox';
import { ContentType, decode, encode, ensureMonitoringResources, every, resources, serve, systemClock, type Clock, type Logger, type MonitoringLimits, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { ModelRegistry } from '../registry/registry.ts';
import { ModelDeployments } from '../serving/deployments.ts';
import { LoggedBatch, RecentPredictions, idTime, locatable, locateByTime, logMetaOf, readBatch, stillStored } from './prediction-lookup.ts';
import { MAX_GROUP_VALUE } from './window-fairness.ts';
import { DatasetStore } from '../datasets/store.ts';
import { versionAttributes } from '../governance/fairness/gate.ts';
import { MAX_FEEDBACK_ITEMS, type FeedbackItem, type FeedbackReply, type Label, type LabelType, type LabeledRecord, type PredictionRecord, type StoredLabel } from './records.ts';

const DAY = 24 * 3600 * 1000;

/** Retention of the monitoring streams and the join (config section `monitoring`; cluster/resources.ts). */
export type { MonitoringLimits } from '../../cluster/index.ts';

const NS = 1_000_000;

/** Ensures the predictions, feedback and labeled streams and the join's index bucket with these limits (scheduler rights; idempotent). */
export async function startMonitoringStreams(nc: NatsConnection, prefix: string, l: MonitoringLimits = {}): Promise<void> {
  await ensureMonitoringResources(nc, prefix, l);
}

// ---- checking labels -------------------------------------------------------------------------------

const ALLOWED_DEFAULT: Record<LabelType, readonly string[]> = { number: ['number', 'boolean'], string: ['string'], boolean: ['boolean'] };
const ALLOWED_EXPLICIT: Record<LabelType, readonly string[]> = { number: ['number'], string: ['string'], boolean: ['boolean'] };

/** What the service knows of a model's labels: its type, and whether it was declared (strict) or derived. */
export interface LabelRule {
  type: LabelType;
  declared: boolean;
  /** The sensitive attributes the model declares: the only names `groups` may use. @default none */
  attributes?: readonly string[];
}

/**
 * Checks a feedback body — `{id, label}` or a list of them — against a label rule; a
 * SHOAL_ERR_BAD_INPUT naming the first wrong field otherwise.
 */
export function checkFeedback(body: unknown, rule: LabelRule): FeedbackItem[] {
  const list = Array.isArray(body) ? body : [body];
  const at = (i: number) => (Array.isArray(body) ? `[${i}].` : '');
  if (body === null || body === undefined || (typeof body !== 'object' && !Array.isArray(body))) throw MlErrors.BAD_INPUT('feedback: send {"id": …, "label": …} or a list of them');
  if (list.length === 0) throw MlErrors.BAD_INPUT('feedback: the list is empty');
  if (list.length > MAX_FEEDBACK_ITEMS) throw MlErrors.BAD_INPUT(`feedback: ${list.length} labels in one request (at most ${MAX_FEEDBACK_ITEMS})`);
  const allowed = (rule.declared ? ALLOWED_EXPLICIT : ALLOWED_DEFAULT)[rule.type];
  return list.map((x, i) => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw MlErrors.BAD_INPUT(`feedback${Array.isArray(body) ? `[${i}]` : ''}: not an object {"id", "label"}`);
    const o = x as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'id' && k !== 'label' && k !== 'groups') throw MlErrors.BAD_INPUT(`${at(i)}${k}: unknown field (a label is {"id", "label"[, "groups"]})`);
    const { id, label } = o;
    if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw MlErrors.BAD_INPUT(`${at(i)}id: must be the request id (a string of 1 to 256 characters, the x-request-id of the prediction), got ${describe(id)}`);
    if (label === undefined) throw MlErrors.BAD_INPUT(`${at(i)}label: missing`);
    const t = typeof label;
    if (!allowed.includes(t) || (t === 'number' && !Number.isFinite(label))) {
      throw MlErrors.BAD_INPUT(`${at(i)}label: ${describe(label)} is not a ${rule.type === 'number' && !rule.declared ? 'number (or boolean)' : rule.type} label${rule.declared ? ' (the deployment\'s monitoring.labelType)' : ' (the model\'s first output is ' + (rule.type === 'string' ? 'BYTES' : 'numeric') + ')'}`);
    }
    const groups = o.groups === undefined ? undefined : checkGroups(o.groups, rule, `${at(i)}groups`);
    return { id, label: label as Label, ...(groups ? { groups } : {}) };
  });
}

/**
 * A label's `groups`: an object of the model's declared sensitive attributes to group values
 * (strings of 1 to 64 characters). A value is never echoed in an error (it is sensitive).
 */
function checkGroups(g: unknown, rule: LabelRule, at: string): Record<string, string> | undefined {
  if (typeof g !== 'object' || g === null || Array.isArray(g)) throw MlErrors.BAD_INPUT(`${at}: must be an object {"<sensitive attribute>": "<group>"}`);
  const declared = rule.attributes ?? [];
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(g)) {
    if (!declared.includes(k)) throw MlErrors.BAD_INPUT(`${at}.${k.slice(0, 128)}: unknown attribute (the model declares ${declared.length ? declared.map((a) => `"${a}"`).join(', ') : 'no sensitive attribute'})`);
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_GROUP_VALUE) throw MlErrors.BAD_INPUT(`${at}.${k}: the group must be a string of 1 to ${MAX_GROUP_VALUE} characters`);
    out[k] = v;
  }
  return Object.keys(out).length ? out : undefined;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const j = JSON.stringify(v);
  return `${typeof v === 'object' ? (Array.isArray(v) ? 'an array ' : v === null ? '' : 'an object ') : `the ${typeof v} `}${j && j.length > 60 ? `${j.slice(0, 60)}…` : j}`;
}

/** The KV key of a prediction in the join's index: `<model>.<id>`, the id base64url-encoded (`=` prefix) unless it is a plain token. */
export function indexKey(model: string, id: string): string {
  return /^[A-Za-z0-9_-]{1,200}$/.test(id) ? `${model}.${id}` : `${model}.=${Buffer.from(id).toString('base64url')}`;
}

// ---- the feedback service ---------------------------------------------------------------------------

export interface FeedbackServiceOptions {
  /** A connection with the scheduler's rights. */
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** `labelTs`; `now()` in epoch ms. @default systemClock */
  clock?: Clock;
  /** Queue group. @default `<prefix>-feedback` */
  queue?: string;
  /** How a model's labels must look (default: from its deployment and registry record). */
  labelRule?: (model: string) => Promise<LabelRule>;
}

/** The label rule of a model: the deployment's `monitoring.labelType`, else from its serving (else latest) version's first output. */
async function defaultLabelRule(nc: NatsConnection, s: Subjects): Promise<(model: string) => Promise<LabelRule>> {
  const registry = await ModelRegistry.open(nc, s.prefix);
  const deployments = await ModelDeployments.open(nc, s);
  const datasets = await DatasetStore.open(nc, s.prefix).catch(() => undefined);
  return async (model) => {
    const rec = await registry.get(model); // MODEL_NOT_FOUND (404) for a model never registered
    const dep = await deployments.get(model);
    const declared = dep?.stable.monitoring?.labelType ?? dep?.canary?.monitoring?.labelType;
    const version = dep?.stable.version ?? (rec.versions.length > 0 ? Math.max(...rec.versions) : undefined);
    // The sensitive attributes `groups` may name: those the deployed versions (else the latest) declare.
    const versions = [...new Set([dep?.stable.version, dep?.canary?.version, version].filter((v): v is number => v !== undefined))];
    const attributes = [...new Set((await Promise.all(versions.map((v) => versionAttributes(registry, datasets, model, v).catch(() => [])))).flat())].filter((a) => !a.includes(' & '));
    if (declared) return { type: declared, declared: true, attributes };
    const first = version === undefined ? undefined : (await registry.version(model, version)).signature.outputs[0];
    return { type: first?.datatype === 'BYTES' ? 'string' : first?.datatype === 'BOOL' ? 'boolean' : 'number', declared: false, attributes };
  };
}

export async function startFeedbackService(o: FeedbackServiceOptions): Promise<{ stop(): Promise<void> }> {
  const s = o.subjects;
  const clock = o.clock ?? systemClock;
  const js = jetstream(o.nc);
  const rule = o.labelRule ?? (await defaultLabelRule(o.nc, s));
  // Rules are read at most once per 5 s per model (a flood of feedback costs no registry reads).
  const cache = new Map<string, { at: number; rule: Promise<LabelRule> }>();
  const ruleOf = (model: string): Promise<LabelRule> => {
    const c = cache.get(model);
    const now = Date.now();
    if (c && now - c.at < 5000) return c.rule;
    const p = rule(model);
    cache.set(model, { at: now, rule: p });
    p.catch(() => cache.delete(model));
    if (cache.size > 10_000) cache.delete(cache.keys().next().value!);
    return p;
  };
  const prefix = s.feedback('x').slice(0, -1);
  const sub: Subscription = serve(
    o.nc,
    `${prefix}*`,
    Type.Unknown(),
    async (body, m): Promise<FeedbackReply> => {
      const model = m.subject.slice(prefix.length);
      const items = checkFeedback(body, await ruleOf(model));
      const labelTs = clock.now();
      const acks = await Promise.all(
        items.map((it) => {
          const stored: StoredLabel = { model, id: it.id, label: it.label, labelTs, ...(it.groups ? { groups: it.groups } : {}) };
          return js.publish(s.feedbackLog(model), encode(stored, ContentType.MSGPACK), { msgID: `${model}:${it.id}` });
        }),
      );
      const duplicates = acks.filter((a) => a.duplicate).length;
      return { model, accepted: items.length - duplicates, duplicates };
    },
    { queue: o.queue ?? `${s.prefix}-feedback`, log: o.log },
  );
  o.log.info({ subject: `${prefix}*` }, 'feedback service serving');
  return {
    async stop() {
      sub.unsubscribe();
    },
  };
}

// ---- the join -------------------------------------------------------------------------------------

export interface FeedbackJoinOptions {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** Horizon and pending expiry; `now()` in epoch ms. @default systemClock */
  clock?: Clock;
  /** A label joins a prediction at most this long after it. @default 7 days */
  horizonMs?: number;
  /** Labels waiting for their prediction, at most. @default 100000 */
  maxPending?: number;
  /** How often pending labels past the horizon are counted as orphaned. @default 60000 */
  sweepMs?: number;
  /** Durable consumer names' stem. @default `<prefix>-feedback-join` */
  durable?: string;
  /** Records of the last batches read kept in memory for labels that come soon. @default 100000 */
  recentRecords?: number;
}

export interface FeedbackJoinStats {
  /** Predictions the join has seen logged (each can be joined until the horizon). */
  indexed: number;
  /** Prediction-log batches read whole (to index ids, for waiting labels, or without headers). */
  batchesRead: number;
  /** Batches seen by their headers only: every id locatable by its time and no label waiting. */
  batchesSkipped: number;
  /** Of those, written to the index bucket: ids that do not carry their time (prediction-lookup.ts). */
  indexWrites: number;
  /** Labels whose prediction was found by reading the log around the id's time. */
  locatedByTime: number;
  /** Labels read from the feedback stream. */
  labels: number;
  /** Labeled records published. */
  joined: number;
  /** Labels whose prediction never came within the horizon (or pushed out of a full pending set). */
  orphaned: number;
  /** Labels that came more than the horizon after their prediction (not joined). */
  late: number;
  /** Labels waiting for their prediction now. */
  pending: number;
  /** Of `orphaned`: pushed out because the pending set was full. */
  evicted: number;
  /** Messages that could not be decoded or joined (logged once each). */
  failed: number;
}

interface Waiting {
  label: StoredLabel;
  /** The join's clock when it started waiting. */
  since: number;
}

export class FeedbackJoin {
  readonly #o: FeedbackJoinOptions;
  readonly #clock: Clock;
  readonly #horizon: number;
  readonly #maxPending: number;
  readonly #pending = new Map<string, Waiting>();
  readonly #stats: FeedbackJoinStats = { indexed: 0, batchesRead: 0, batchesSkipped: 0, indexWrites: 0, locatedByTime: 0, labels: 0, joined: 0, orphaned: 0, late: 0, pending: 0, evicted: 0, failed: 0 };
  readonly #recent: RecentPredictions;
  #kv!: KV;
  #stops: (() => void | Promise<void>)[] = [];
  readonly #js;

  private constructor(o: FeedbackJoinOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#horizon = o.horizonMs ?? 7 * DAY;
    this.#maxPending = o.maxPending ?? 100_000;
    this.#recent = new RecentPredictions(o.recentRecords ?? 100_000);
    this.#js = jetstream(o.nc);
  }

  /** Starts the join (the monitoring streams must exist: {@link startMonitoringStreams}). */
  static async start(o: FeedbackJoinOptions): Promise<FeedbackJoin> {
    const j = new FeedbackJoin(o);
    await j.#start();
    return j;
  }

  stats(): FeedbackJoinStats {
    return { ...this.#stats, pending: this.#pending.size };
  }

  async stop(): Promise<void> {
    for (const stop of this.#stops.splice(0)) await stop();
  }

  async #start(): Promise<void> {
    const s = this.#o.subjects;
    const r = resources(s.prefix);
    this.#kv = await new Kvm(this.#o.nc).open(r.buckets.predictionIndex);
    const durable = this.#o.durable ?? `${s.prefix}-feedback-join`;
    // Predictions first: a label in the same start-up backlog then finds its prediction indexed.
    // Headers only (prediction-lookup.ts); the consumer that read whole batches is retired.
    await this.#retire(r.streams.predictions, `${durable}-predictions`);
    await this.#consume(r.streams.predictions, `${durable}-prediction-heads`, (m) => this.#onPredictions(m), true);
    await this.#consume(r.streams.feedback, `${durable}-labels`, (m) => this.#onLabel(m));
    this.#stops.push(every(this.#clock, this.#o.sweepMs ?? 60_000, () => this.sweep()));
    const sub = serve(this.#o.nc, s.feedbackJoinStats, Type.Unknown(), () => this.stats());
    this.#stops.push(() => sub.unsubscribe());
    this.#o.log.info({ horizonMs: this.#horizon, maxPending: this.#maxPending }, 'label join started');
  }

  /** Deletes a durable consumer an earlier version used, if it is there. */
  async #retire(stream: string, name: string): Promise<void> {
    const jsm = await jetstreamManager(this.#o.nc);
    await jsm.consumers.delete(stream, name).catch(() => undefined);
  }

  /** A durable pull consumer, one message at a time, acked after it is handled. */
  async #consume(stream: string, name: string, handle: (m: JsMsg) => Promise<void>, headersOnly = false): Promise<void> {
    const jsm = await jetstreamManager(this.#o.nc);
    try {
      await jsm.consumers.info(stream, name);
    } catch {
      await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: 1000, ack_wait: 60_000 * NS, ...(headersOnly ? { headers_only: true } : {}) });
    }
    const consumer = await this.#js.consumers.get(stream, name);
    const messages = await consumer.consume({ max_messages: 256 });
    this.#stops.push(() => void messages.stop());
    void (async () => {
      for await (const m of messages) {
        try {
          await handle(m);
          m.ack();
        } catch (err) {
          this.#stats.failed++;
          this.#o.log.warn({ stream, seq: m.seq, err: (err as Error).message }, 'label join: a message could not be handled (retried after the ack wait)');
          m.nak(5000);
        }
      }
    })();
  }

  /** A prediction-log message's headers: the batch is read whole only when it must be (prediction-lookup.ts). */
  async #onPredictions(m: JsMsg): Promise<void> {
    const meta = logMetaOf(m.headers);
    // A replica's profile delta shares the subject: nothing to index.
    if (meta.kind === 'profile') return;
    if (meta.kind === 'records' && meta.unlocatable === 0 && this.#pending.size === 0) {
      this.#stats.indexed += meta.records;
      this.#stats.batchesSkipped++;
      return;
    }
    let b: LoggedBatch | undefined;
    try {
      b = await readBatch(this.#o.nc, resources(this.#o.subjects.prefix).streams.predictions, m.seq);
    } catch (err) {
      this.#stats.failed++;
      this.#o.log.warn({ seq: m.seq, err: (err as Error).message }, 'label join: a prediction-log message is not a batch of records; skipped');
      return;
    }
    // Gone (erased since) or a profile delta from a writer without headers.
    if (!b) return;
    this.#stats.batchesRead++;
    this.#recent.add(b);
    // Only records that cannot be found again by their id's time get an index entry (written at once: one round trip's wait).
    const puts: Promise<unknown>[] = [];
    for (let i = 0; i < b.ids.length; i++) {
      if (!locatable(b.ids[i]!, b.storedMs)) puts.push(this.#kv.put(indexKey(b.model, b.ids[i]!), encode(b.record(i), ContentType.MSGPACK)));
    }
    await Promise.all(puts);
    this.#stats.indexed += b.ids.length;
    this.#stats.indexWrites += puts.length;
    if (this.#pending.size === 0) return;
    for (let i = 0; i < b.ids.length; i++) {
      const key = indexKey(b.model, b.ids[i]!);
      const w = this.#pending.get(key);
      if (!w) continue;
      this.#pending.delete(key);
      await this.#join(b.record(i), w.label);
    }
  }

  async #onLabel(m: JsMsg): Promise<void> {
    const label = decode(m.data, ContentType.MSGPACK) as StoredLabel;
    this.#stats.labels++;
    const key = indexKey(label.model, label.id);
    const rec = await this.#lookup(label);
    if (rec) return this.#join(rec, label);
    if (this.#pending.has(key)) this.#pending.delete(key);
    this.#pending.set(key, { label, since: this.#clock.now() });
    while (this.#pending.size > this.#maxPending) {
      this.#pending.delete(this.#pending.keys().next().value!);
      this.#stats.orphaned++;
      this.#stats.evicted++;
    }
    // The prediction may have been logged while we looked: look once more now that the label waits.
    // A batch whose headers came before the label waited was skipped (not read): a time-carrying
    // id is looked for in the log again; any batch stored after this point is read whole.
    const again = await this.#lookup(label, idTime(label.id) !== undefined);
    if (again && this.#pending.get(key)?.label === label) {
      this.#pending.delete(key);
      await this.#join(again, label);
    }
  }

  /** The label's prediction: among the recent batches (still stored), else (`deep`) by the id's time, else in the index. */
  async #lookup(label: StoredLabel, deep = true): Promise<PredictionRecord | undefined> {
    const streams = resources(this.#o.subjects.prefix).streams;
    const hit = this.#recent.get(label.model, label.id);
    if (hit) {
      if (await stillStored(this.#o.nc, streams.predictions, hit.batch.seq)) return hit.batch.record(hit.row);
      this.#recent.drop(hit.batch);
    }
    if (!deep) return undefined;
    if (idTime(label.id) !== undefined) {
      const rec = await locateByTime(this.#o.nc, streams.predictions, this.#o.subjects.predictions(label.model), label.id, this.#recent);
      if (rec) {
        this.#stats.locatedByTime++;
        return rec;
      }
    }
    const e = await this.#kv.get(indexKey(label.model, label.id));
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return decode(e.value, ContentType.MSGPACK) as PredictionRecord;
  }

  async #join(rec: PredictionRecord, label: StoredLabel): Promise<void> {
    if (label.labelTs - rec.ts > this.#horizon) {
      this.#stats.late++;
      return;
    }
    // Groups: the replica's (from the views' sensitive features), overlaid by those sent with the label.
    const groups = rec.groups || label.groups ? { ...rec.groups, ...label.groups } : undefined;
    const row: LabeledRecord = { ...rec, label: label.label, labelTs: label.labelTs, ...(groups ? { groups } : {}) };
    await this.#js.publish(this.#o.subjects.labeled(rec.model), encode(row, ContentType.MSGPACK), { msgID: `${rec.model}:${rec.id}:${label.labelTs}` });
    this.#stats.joined++;
  }

  /** Counts pending labels older than the horizon as orphaned (runs every `sweepMs`; exposed for tests). */
  sweep(): void {
    const now = this.#clock.now();
    for (const [key, w] of this.#pending) {
      if (now - w.since <= this.#horizon) continue;
      this.#pending.delete(key);
      this.#stats.orphaned++;
    }
  }
}
