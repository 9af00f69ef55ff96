/**
 * Sends inference requests — HTTP bodies as they came — to a model version's replicas over NATS.
 *
 * Requests for the same service that arrive in the same event-loop turn travel as one NATS
 * message (up to the version's `maxBatchSize` requests and `maxMessageBytes`), which the
 * replica's dynamic batcher then batches with whatever else it has queued — so a burst costs one
 * message, not one per request. Each request still gets its own response body or error.
 *
 * Under load, fewer and fuller messages: while `maxInflight` messages per replica of a service
 * (replicas counted from the replies of the last few seconds) await their replies, new requests
 * wait for one of them to come back — at most `maxHoldMs`, and not at all
 * once a full message's worth is waiting — Nagle's algorithm for request batches. Profiled on
 * loopback, each NATS message costs the gateway, nats-server and the replica a few syscalls and
 * wake-ups, which dominated their CPU per request; an idle service still sends at once.
 *
 * Backpressure, never an unbounded buffer: past `maxPending` requests waiting in this gateway
 * for a service, or `maxPendingBytes` of request bodies not yet answered in all, a request is
 * refused at once (503); a replica whose mailbox or batch queue is full
 * answers SHOAL_ERR_MAILBOX_FULL, passed on as 429 without retrying. Inference is idempotent, so
 * a message whose replica is gone is sent again — another replica, or the re-placed one,
 * answers — within the request's deadline:
 * - no responders / actor stopped: at once, then backing off while no replica exists;
 * - no answer yet (a SIGKILLed node answers nothing, and NATS cannot tell us; a hung one keeps
 *   its subscription for minutes): a **hedged** copy goes after `hedgeAfterMs`, or
 *   `hedgeLatencyFactor` × the service's recent p95 reply time if that is longer, and the first
 *   answer wins ("The Tail at Scale"). A hedge goes straight to the replica that answered most
 *   recently (its actor subject) rather than back into the queue group's lottery, a later one to
 *   the next, each after twice the previous wait. The original keeps waiting, so a slow
 *   replica's answer is not thrown away. Hedges spend a budget earned by replies (`hedgeBudget`:
 *   one hedge per ten replies, capped), so an overloaded service is not sent its load twice.
 *
 * A body larger than one NATS message (over `inlineMaxBytes`) travels on its own, by reference:
 * the gateway holds it and the replica that takes the message pulls it in chunks
 * (cluster/payloads.ts) — as many replicas as the message reaches (hedges), until the message is
 * answered. A response body too large for the reply comes back the same way, pulled from the
 * replica before the request resolves.
 */
import { randomBytes } from 'node:crypto';
import {
  PayloadHost,
  Role,
  SpanKind,
  encode,
  endSpan,
  fetchPayload,
  inboxPrefix,
  injectTrace,
  inlineLimitOf,
  linkTo,
  startSpan,
  tracing,
  withSpan,
  type HeldPayload,
  type NatsConnection,
  type Span,
  type SpanLink,
  type Subjects,
  type TraceContext,
} from '../cluster/index.ts';
import type { MsgHdrs } from '@nats-io/transport-node';
import type { InferJsonReply, JsonItem } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import { ServiceHealth, resultOf, sendHedged, type SendOutcome } from './hedged-send.ts';
import { ReplyMux } from './reply-mux.ts';

export interface DispatcherOptions {
  /** Requests waiting in this gateway per service before refusing. @default 4096 */
  maxPending?: number;
  /**
   * Request body bytes sent or waiting and not yet answered, all services together, before
   * refusing: with bodies up to 64 MiB a request count alone bounds nothing. @default 1 GiB
   */
  maxPendingBytes?: number;
  /** Body bytes in one NATS message when requests are coalesced (at most `inlineMaxBytes`). @default 1 MiB */
  maxMessageBytes?: number;
  /**
   * Largest body sent inside the message; a larger one stays here and the replica pulls it.
   * @default the server's max_payload less 64 KiB
   */
  inlineMaxBytes?: number;
  /** Messages per replica awaiting replies before new requests wait for one to return. @default 2 */
  maxInflight?: number;
  /** Longest a request waits for a fuller message. @default 1 */
  maxHoldMs?: number;
  /**
   * Least time a message waits for its reply before a copy goes to the queue group again (a
   * replica on a killed node never answers). The wait is `hedgeLatencyFactor` × the service's
   * recent p95 reply time when that is longer, so a slow model is not hedged on every message.
   * @default 250
   */
  hedgeAfterMs?: number;
  /** @default 4 */
  hedgeLatencyFactor?: number;
  /** Hedges a service may spend in a burst; replies earn 0.1 each back, up to this. @default 10 */
  hedgeBudget?: number;
  /**
   * Sends per message, within the request's deadline. With no replica answering (all were on
   * a node that died, and the scheduler is re-placing them) sends back off up to 500 ms, so
   * the default keeps trying for the whole deadline rather than giving up after a few seconds.
   * @default 64
   */
  maxAttempts?: number;
  /** Called once per NATS message sent, with its request count (metrics). */
  onMessage?: (service: string, requests: number) => void;
  /** The connection's inbox prefix (replies come under it). @default the gateway role's */
  inboxPrefix?: string;
}

interface Waiting {
  item: JsonItem;
  deadline: number;
  /** When it was queued (performance.now()). */
  at: number;
  resolve: (r: DispatchResult) => void;
  reject: (e: unknown) => void;
  /** The request's span context (its HTTP server span), when the gateway traces. */
  trace?: TraceContext;
}

export interface DispatchResult {
  /** The HTTP response body the replica wrote. */
  body: Uint8Array;
  /** Length of its JSON header when outputs are binary. */
  headerLength?: number;
  /** Rows in the `session.run` the request was part of. */
  batch: number;
  /** Rows waiting in the replica's batcher when it answered. */
  queueRows: number;
  attempts: number;
  /** The request id the replica logged, when it is not the gateway's (an OIP body's own `id`). */
  requestId?: string;
}

interface Lane {
  service: string;
  maxItems: number;
  queue: Waiting[];
  scheduled: boolean;
  /** Messages sent and not yet answered (or given up). */
  inflight: number;
  /** The hold timer, while requests wait for a fuller message. */
  timer: NodeJS.Timeout | undefined;
  /** What this gateway knows of the service's replicas from their answers (counts, hedging). */
  health: ServiceHealth;
}

const READY_MSG = encode({ type: 'ready' });
const EMPTY = new Uint8Array(0);
/** Held request bodies outlive their deadline by this much (a late pull gets SHOAL_ERR_PAYLOAD_GONE, not a hang). */
const HOLD_GRACE_MS = 1000;
/**
 * A large body's pull delays the answer by about its size over this rate (bytes per ms: 32 MB/s,
 * a third of what a loaded 2-core box manages end to end), so its first hedge waits that much
 * longer: otherwise a 16 MiB request on a busy replica is hedged, and pulled and run twice.
 */
const PULL_BYTES_PER_MS = 32_000;

function flushLane(d: InferenceDispatcher, lane: Lane): void {
  d.flush(lane);
}
function holdOver(d: InferenceDispatcher, lane: Lane): void {
  d.release(lane);
}

export class InferenceDispatcher {
  readonly #mux: ReplyMux;
  readonly #subjects: Subjects;
  readonly #lanes = new Map<string, Lane>();
  /** The service subject per service (not built per message). */
  readonly #serviceSubjects = new Map<string, string>();
  readonly #o: Required<Omit<DispatcherOptions, 'onMessage' | 'inboxPrefix'>> & Pick<DispatcherOptions, 'onMessage'>;
  readonly #nc: NatsConnection;
  /** Where large request bodies wait for their replica (under this gateway's own random id). */
  readonly #payloads: PayloadHost;
  /** Body bytes of requests queued or sent and not yet answered (all lanes). */
  #pendingBytes = 0;

  constructor(nc: NatsConnection, subjects: Subjects, opts: DispatcherOptions = {}) {
    this.#mux = new ReplyMux(nc, opts.inboxPrefix ?? inboxPrefix(Role.GATEWAY));
    this.#subjects = subjects;
    this.#nc = nc;
    this.#payloads = new PayloadHost(nc, subjects.payloadGateway(randomBytes(9).toString('base64url')));
    const inlineMaxBytes = Math.min(opts.inlineMaxBytes ?? Infinity, inlineLimitOf(nc));
    this.#o = {
      maxPending: opts.maxPending ?? 4096,
      maxPendingBytes: opts.maxPendingBytes ?? 1024 * 1024 * 1024,
      inlineMaxBytes,
      maxMessageBytes: Math.min(opts.maxMessageBytes ?? 1024 * 1024, inlineMaxBytes),
      maxInflight: opts.maxInflight ?? 2,
      maxHoldMs: opts.maxHoldMs ?? 1,
      hedgeAfterMs: opts.hedgeAfterMs ?? 250,
      hedgeLatencyFactor: opts.hedgeLatencyFactor ?? 4,
      hedgeBudget: opts.hedgeBudget ?? 10,
      maxAttempts: opts.maxAttempts ?? 64,
      onMessage: opts.onMessage,
    };
  }

  /** Stops listening for replies; requests in flight fail. */
  stop(): void {
    this.#mux.close();
    this.#payloads.close();
  }

  /** Whether a replica of `service` answers a `ready` message within `timeoutMs` (any one of them: queue group). */
  async probe(service: string, timeoutMs: number): Promise<boolean> {
    try {
      await this.#mux.ask(this.#subjects.service(service), service, READY_MSG, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** Requests waiting in this gateway, per service. */
  pending(): Map<string, number> {
    return new Map([...this.#lanes.values()].map((l) => [l.service, l.queue.length]));
  }

  /** Sends one request (coalesced with others for the same service); `maxItems`: requests per message. */
  infer(service: string, maxItems: number, item: JsonItem, deadline: number, trace?: TraceContext): Promise<DispatchResult> {
    let lane = this.#lanes.get(service);
    if (!lane) {
      lane = { service, maxItems, queue: [], scheduled: false, inflight: 0, timer: undefined, health: new ServiceHealth(this.#o) };
      this.#lanes.set(service, lane);
    }
    lane.maxItems = maxItems;
    if (lane.queue.length >= this.#o.maxPending) return Promise.reject(GatewayErrors.OVERLOADED(service, lane.queue.length));
    if (this.#pendingBytes > 0 && this.#pendingBytes + item.body.length > this.#o.maxPendingBytes) {
      return Promise.reject(GatewayErrors.OVERLOADED(`${service} (${Math.round(this.#pendingBytes / 1048576)} MiB of request bodies unanswered in this gateway)`, lane.queue.length));
    }
    this.#pendingBytes += item.body.length;
    return new Promise((resolve, reject) => {
      const w: Waiting = { item, deadline, at: performance.now(), resolve, reject };
      if (trace) w.trace = trace;
      lane.queue.push(w);
      this.#schedule(lane);
    });
  }

  /** Flushes after this I/O turn (so that its requests share a message). */
  #schedule(lane: Lane): void {
    if (lane.scheduled || lane.queue.length === 0) return;
    lane.scheduled = true;
    setImmediate(flushLane, this, lane);
  }

  /**
   * Sends what is queued, unless it should wait for a fuller message (see the class comment);
   * `force`: the hold is over. @internal (called from the loop's callbacks)
   */
  flush(lane: Lane, force = false): void {
    if (!force) lane.scheduled = false;
    const q = lane.queue;
    if (q.length === 0) return;
    // Holding: full messages go now, a partial one waits for a reply or the end of the hold.
    let hold = false;
    if (!force && lane.inflight >= this.#o.maxInflight * lane.health.replicaCount) {
      const wait = q[0]!.at + this.#o.maxHoldMs - performance.now();
      if (wait > 0) {
        hold = true;
        lane.timer ??= setTimeout(holdOver, Math.max(1, Math.ceil(wait)), this, lane);
      }
    }
    if (!hold && lane.timer) {
      clearTimeout(lane.timer);
      lane.timer = undefined;
    }
    let i = 0;
    while (i < q.length) {
      let bytes = q[i]!.item.body.length;
      let end = i + 1;
      while (end < q.length && end - i < lane.maxItems && bytes + q[end]!.item.body.length <= this.#o.maxMessageBytes) bytes += q[end++]!.item.body.length;
      if (hold && end === q.length && end - i < lane.maxItems) break; // the partial tail waits
      lane.inflight++;
      void this.#send(lane, i === 0 && end === q.length ? q : q.slice(i, end));
      i = end;
    }
    lane.queue = i === 0 ? q : q.slice(i);
  }

  /** The hold timer fired: send what waits, whatever is in flight. @internal */
  release(lane: Lane): void {
    lane.timer = undefined;
    this.flush(lane, true);
  }

  async #send(lane: Lane, batch: Waiting[]): Promise<void> {
    try {
      await this.#attempts(lane, batch);
    } finally {
      lane.inflight = Math.max(0, lane.inflight - 1);
      for (const w of batch) this.#pendingBytes -= w.item.body.length;
      // A reply came back: what waited for it goes now, as one message.
      if (lane.queue.length > 0) this.#schedule(lane);
    }
  }

  /** Sends one message (hedged, see hedged-send.ts) and settles each of its requests with its own result. */
  async #attempts(lane: Lane, batch: Waiting[]): Promise<void> {
    const service = lane.service;
    let subject = this.#serviceSubjects.get(service);
    if (!subject) this.#serviceSubjects.set(service, (subject = this.#subjects.service(service)));
    const items: JsonItem[] = new Array(batch.length);
    let deadline = Infinity;
    for (let i = 0; i < batch.length; i++) {
      items[i] = batch[i]!.item;
      if (batch[i]!.deadline < deadline) deadline = batch[i]!.deadline;
    }
    const held = this.#holdLarge(items, deadline);
    let heldBytes = 0;
    for (const h of held) heldBytes += h.ref.size;
    const data = encode({ type: 'infer-json', items });
    let hedgeData: Uint8Array | undefined;
    const traced = tracing.on ? this.#publishSpan(subject, service, batch) : undefined;
    let out: SendOutcome;
    try {
      out = await sendHedged({
        service,
        health: lane.health,
        requests: batch.length,
        deadline,
        maxAttempts: this.#o.maxAttempts,
        hedgeExtraMs: heldBytes / PULL_BYTES_PER_MS,
        ask: (direct, timeoutMs, hedge) =>
          this.#mux.ask<InferJsonReply>(direct ? this.#subjects.actor(direct) : subject, service, hedge ? (hedgeData ??= encode({ type: 'infer-json', items, hedge: true })) : data, timeoutMs, traced?.headers),
        onCopy: () => this.#o.onMessage?.(service, batch.length),
      });
    } finally {
      // Answered (or given up): a hedged copy still pulling gets SHOAL_ERR_PAYLOAD_GONE, and its answer is not wanted.
      for (const h of held) h.release();
    }
    if (traced) {
      if ('reply' in out) traced.span.setAttributes({ 'shoal.actor.id': out.reply.actorId, 'shoal.attempts': out.attempts });
      endSpan(traced.span, 'error' in out ? out.error : undefined);
    }
    if ('error' in out) {
      for (const w of batch) w.reject(out.error);
      return;
    }
    const { reply, attempts } = out;
    for (let i = 0; i < batch.length; i++) {
      const w = batch[i]!;
      const r = resultOf(reply, i, batch.length);
      if ('error' in r) {
        w.reject(r.error);
        continue;
      }
      const result: DispatchResult = { body: r.ok.body, ...(r.ok.headerLength !== undefined ? { headerLength: r.ok.headerLength } : {}), batch: r.ok.batch, queueRows: reply.queueRows, attempts, ...(r.ok.requestId !== undefined ? { requestId: r.ok.requestId } : {}) };
      if (!r.ok.ref) w.resolve(result);
      else {
        // The response body stayed with the replica: pull it before answering.
        fetchPayload(this.#nc, r.ok.ref, { timeoutMs: Math.max(1, w.deadline - Date.now()) }).then((body) => w.resolve({ ...result, body }), w.reject);
      }
    }
  }

  /**
   * The message's producer span — the child of its first traced request, linked to the others
   * that share the message — and the headers that carry it (`traceparent`) to the replica.
   */
  #publishSpan(subject: string, service: string, batch: Waiting[]): { span: Span; headers: MsgHdrs } | undefined {
    let parent: TraceContext | undefined;
    const links: SpanLink[] = [];
    // Requests of one message share its receive span: link each other span once, never the parent.
    const seen = new Set<string>();
    for (const w of batch) {
      if (!w.trace) continue;
      const l = linkTo(w.trace);
      if (!l || seen.has(l.context.spanId)) continue;
      seen.add(l.context.spanId);
      if (!parent) parent = w.trace;
      else links.push(l);
    }
    if (!parent) return undefined;
    const span = startSpan(`${subject} publish`, {
      kind: SpanKind.PRODUCER,
      parent,
      attributes: { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'messaging.batch.message_count': batch.length, 'shoal.service': service },
      ...(links.length ? { links } : {}),
    });
    return { span, headers: injectTrace(withSpan(span, parent)) };
  }

  /** Replaces bodies too large for one message by references to them, held here until the message is answered. */
  #holdLarge(items: JsonItem[], deadline: number): HeldPayload[] {
    const held: HeldPayload[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (it.body.length <= this.#o.inlineMaxBytes) continue;
      const h = this.#payloads.hold(it.body, { ttlMs: Math.max(0, deadline - Date.now()) + HOLD_GRACE_MS });
      held.push(h);
      items[i] = { ...it, body: EMPTY, ref: h.ref };
    }
    return held;
  }
}
