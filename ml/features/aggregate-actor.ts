/**
 * The aggregate actor (`feature-aggregator`, issue #14 item 4): one per aggregation of an
 * aggregate view, spawned by the features service when the view is applied and kept placed by the
 * scheduler (re-placed when its node dies, restarted by its supervisor when it crashes).
 *
 * It reads the source view's events from the offline log (stream `<P>_FEATURE_EVENTS`, subject
 * `<prefix>.featlog.<source>`) through its own pull consumer (one per instance, created at every
 * start from the stream sequence after its checkpoint), and applies them in batches to the entities' records in the online
 * store (aggregate-store.ts). After each batch it checkpoints `{through, digest}`: every event up
 * to `through` is in the records. Exactly once, without a transaction between the two: each
 * record carries the last sequence applied to it, so when the actor dies between writing records
 * and checkpointing, the replay from the older checkpoint skips, per entity, what is already in
 * (no double count), and applies the rest (nothing missed).
 *
 * Messages: `{type: 'status'}` → `AggregatorStatus`. A failure in the consuming loop stops the
 * loop and is handed to supervision (the actor crashes and is restarted from its checkpoint).
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type Consumer, type ConsumerMessages, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, nuid } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { Type, type Static } from '@sinclair/typebox';
import { Actor, ActorKind, ContentType, Directory, decode, defineActorType, openBucket, resources } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { applyAggregateBatch } from './aggregate-store.ts';
import { aggregatorId, resolveAggregate, type KeyFrom, type ResolvedAggregate } from './aggregates.ts';
import type { FeatureViewDef, LoggedEvent } from './schemas.ts';
import { parseViewDef } from './views.ts';

export const FEATURE_AGGREGATOR_ACTOR = 'feature-aggregator';

export const AggregatorMsg = Type.Union([
  Type.Object({ type: Type.Literal('status') }, { additionalProperties: false }),
  /** Internal: the consuming loop failed; the actor crashes so its supervisor restarts it. */
  Type.Object({ type: Type.Literal('crash'), message: Type.String() }, { additionalProperties: false }),
]);
export type AggregatorMsg = Static<typeof AggregatorMsg>;

/** Spawn arguments: the aggregate view's definition and where its group-by columns come from in a source event. */
export interface AggregatorArgs {
  definition: FeatureViewDef;
  keyFrom: KeyFrom[];
  /** Events read per batch. @default 1000 */
  batch?: number;
}

export interface AggregatorStatus {
  view: string;
  source: string;
  digest: string;
  nodeId: string;
  /** Every source event up to this stream sequence is applied. */
  through: number;
  /** Events applied by this incarnation, and those it skipped (already applied, or no group-by key). */
  applied: number;
  skipped: number;
  restarts: number;
  /** The consuming loop's failure, if it stopped. */
  failed?: string;
}

/** The spawn spec of a view's aggregate actor. */
export function aggregatorSpec(def: FeatureViewDef, keyFrom: KeyFrom[]): { type: string; id: string; args: AggregatorArgs; kind: ActorKind; supervision: { maxRestarts: number; withinMs: number; backoffMs: number } } {
  const agg = resolveAggregate(def);
  // Crashes (a lost NATS connection, a KV hiccup) restart it from its checkpoint, which costs little.
  return { type: FEATURE_AGGREGATOR_ACTOR, id: aggregatorId(agg), args: { definition: def, keyFrom }, kind: ActorKind.SERVICE, supervision: { maxRestarts: 10, withinMs: 60_000, backoffMs: 200 } };
}

interface Checkpoint {
  through: number;
  digest: string;
}

/** How often the actor checks that the directory still places it here (a fenced copy stops writing). */
const FENCE_CHECK_MS = 2000;

export class FeatureAggregator extends Actor<AggregatorMsg> {
  readonly #def: FeatureViewDef;
  readonly #agg: ResolvedAggregate;
  readonly #keyFrom: KeyFrom[];
  readonly #batch: number;
  #kv!: KV;
  #directory!: Directory;
  #consumer: Consumer | undefined;
  #consumerName: string | undefined;
  #jsm: JetStreamManager | undefined;
  #fetching: ConsumerMessages | undefined;
  #stopped = false;
  #through = 0;
  #applied = 0;
  #skipped = 0;
  #failed: string | undefined;
  #fenceCheckedAt = 0;

  constructor(args: unknown) {
    super();
    const a = args as Partial<AggregatorArgs> | undefined;
    if (!a || typeof a !== 'object' || !Array.isArray(a.keyFrom)) throw MlErrors.BAD_INPUT('feature-aggregator: args must be {definition, keyFrom}');
    this.#def = parseViewDef(a.definition);
    this.#agg = resolveAggregate(this.#def);
    this.#keyFrom = a.keyFrom;
    this.#batch = a.batch ?? 1000;
  }

  override async onStart(): Promise<void> {
    const { nc, subjects } = this.ctx;
    const r = resources(subjects.prefix);
    this.#kv = await openBucket(nc, r.buckets.online);
    this.#directory = new Directory(await openBucket(nc, r.buckets.actors));
    const cp = await this.ctx.checkpoint.load<Checkpoint>();
    // A checkpoint of another aggregation (an id reused after a change) does not apply.
    this.#through = cp && cp.digest === this.#agg.digest ? cp.through : 0;
    // Its own pull consumer, created at the checkpoint on every start: the checkpoint, not the
    // server's delivery state, says where to resume. One per instance (named after the actor plus
    // a nonce), so a fenced copy still pulling can never take events from this one.
    const stream = r.streams.featureEvents;
    const name = `${this.ctx.actorId.slice(0, 100)}_${nuid.next().slice(-10)}`;
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    this.#consumerName = name;
    this.#jsm = jsm;
    await jsm.consumers.add(stream, {
      name,
      filter_subject: subjects.featureLog(this.#agg.source),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.#through + 1,
      ack_policy: AckPolicy.None,
      // Removed by the server when no instance has pulled for this long (the actor was stopped for good).
      inactive_threshold: nanos(10 * 60_000),
    });
    this.#consumer = await jetstream(nc).consumers.get(stream, name);
    this.ctx.log.info({ view: this.#agg.view, source: this.#agg.source, from: this.#through + 1, restarts: this.ctx.restarts }, 'aggregate actor consuming');
    void this.#run();
  }

  override async onStop(): Promise<void> {
    await this.#release();
  }

  override async onDrain(): Promise<void> {
    // Everything applied is checkpointed after each batch; the next placement resumes there.
    await this.#release();
  }

  receive(msg: AggregatorMsg): AggregatorStatus {
    if (msg.type === 'crash') throw new Error(msg.message);
    return {
      view: this.#agg.view,
      source: this.#agg.source,
      digest: this.#agg.digest,
      nodeId: this.ctx.nodeId,
      through: this.#through,
      applied: this.#applied,
      skipped: this.#skipped,
      restarts: this.ctx.restarts,
      ...(this.#failed ? { failed: this.#failed } : {}),
    };
  }

  /** Stops the loop and deletes this instance's consumer (the next instance makes its own). */
  async #release(): Promise<void> {
    this.#stopped = true;
    await this.#fetching?.close().catch(() => undefined);
    if (this.#consumerName) await this.#jsm?.consumers.delete(resources(this.ctx.subjects.prefix).streams.featureEvents, this.#consumerName).catch(() => undefined);
  }

  async #run(): Promise<void> {
    try {
      while (!this.#stopped) {
        if (await this.#fenced()) break;
        // Up to a batch, waiting at most a couple of seconds for the first event.
        this.#fetching = await this.#consumer!.fetch({ max_messages: this.#batch, expires: FENCE_CHECK_MS });
        const batch: { seq: number; event: LoggedEvent }[] = [];
        for await (const m of this.#fetching) if (m.seq > this.#through) batch.push({ seq: m.seq, event: decode(m.data, ContentType.MSGPACK) as LoggedEvent });
        this.#fetching = undefined;
        if (this.#stopped || batch.length === 0) continue;
        const r = await applyAggregateBatch(this.#kv, this.#agg, this.#keyFrom, batch);
        this.#applied += r.applied;
        this.#skipped += r.skipped;
        this.#through = batch[batch.length - 1]!.seq;
        await this.ctx.checkpoint.save({ through: this.#through, digest: this.#agg.digest } satisfies Checkpoint);
      }
    } catch (err) {
      if (this.#stopped) return;
      this.#failed = (err as Error).message;
      this.ctx.log.error({ err: this.#failed, through: this.#through }, 'aggregate actor failed; restarting from its checkpoint');
      await this.#release();
      // Supervision restarts the actor (a new instance, from the checkpoint).
      this.ctx.system.ref(this.ctx.actorId).tell({ type: 'crash', message: this.#failed } satisfies AggregatorMsg);
    }
  }

  /** True (and the loop stops) when the directory places this actor elsewhere now: this copy was fenced. */
  async #fenced(): Promise<boolean> {
    const now = Date.now();
    if (now - this.#fenceCheckedAt < FENCE_CHECK_MS) return false;
    this.#fenceCheckedAt = now;
    const at = await this.#directory.placedOn(this.ctx.actorId, this.ctx.nodeId);
    if (at.here) return false;
    this.ctx.log.warn({ owner: at.owner, state: at.state }, 'aggregate actor placed elsewhere: this copy stops');
    await this.#release();
    return true;
  }
}

export const actorTypes = [defineActorType({ name: FEATURE_AGGREGATOR_ACTOR, messages: AggregatorMsg, create: (args) => new FeatureAggregator(args), kind: ActorKind.SERVICE, supervision: { maxRestarts: 10, withinMs: 60_000, backoffMs: 200 } })];
