/**
 * Sends inference requests — HTTP bodies as they came — to a model version's replicas over NATS.
 *
 * Requests for the same service that arrive in the same event-loop turn travel as one NATS
 * message (up to the version's `maxBatchSize` requests and `maxMessageBytes`), which the
 * replica's dynamic batcher then batches with whatever else it has queued — so a burst costs one
 * message, not one per request. Each request still gets its own response body or error.
 *
 * Backpressure, never an unbounded buffer: past `maxPending` requests waiting in this gateway
 * for a service, a request is refused at once (503); a replica whose mailbox or batch queue is full
 * answers SHOAL_ERR_MAILBOX_FULL, passed on as 429 without retrying. Inference is idempotent, so
 * a message whose replica is gone (no responders, stopped, node killed → timeout) is retried —
 * another replica, or the re-placed one, answers — within the request's deadline.
 */
import { Errors, Role, encode, fromWireError, inboxPrefix, type NatsConnection, type ShoalError, type Subjects } from '../cluster/index.ts';
import { MlErrors, type InferJsonReply, type JsonItem } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import { ReplyMux } from './reply-mux.ts';

export interface DispatcherOptions {
  /** Requests waiting in this gateway per service before refusing. @default 4096 */
  maxPending?: number;
  /** Body bytes in one NATS message (the server's max_payload is 8 MiB). @default 1 MiB */
  maxMessageBytes?: number;
  /** Timeout of one attempt (a killed replica's requests are retried after it). @default 3000 */
  attemptTimeoutMs?: number;
  /** @default 8 */
  maxAttempts?: number;
  /** Called once per NATS message sent, with its request count (metrics). */
  onMessage?: (service: string, requests: number) => void;
  /** The connection's inbox prefix (replies come under it). @default the gateway role's */
  inboxPrefix?: string;
}

interface Waiting {
  item: JsonItem;
  deadline: number;
  resolve: (r: DispatchResult) => void;
  reject: (e: unknown) => void;
}

export interface DispatchResult {
  /** The HTTP response body the replica wrote. */
  body: Uint8Array;
  /** Rows in the `session.run` the request was part of. */
  batch: number;
  /** Rows waiting in the replica's batcher when it answered. */
  queueRows: number;
  attempts: number;
}

interface Lane {
  service: string;
  maxItems: number;
  queue: Waiting[];
  scheduled: boolean;
}

const READY_MSG = encode({ type: 'ready' });

const RETRYABLE = new Set([Errors.ACTOR_NOT_FOUND.code, Errors.NO_RESPONDERS.code, Errors.ACTOR_STOPPED.code, Errors.TIMEOUT.code]);

export class InferenceDispatcher {
  readonly #mux: ReplyMux;
  readonly #subjects: Subjects;
  readonly #lanes = new Map<string, Lane>();
  /** The service subject per service (not built per message). */
  readonly #serviceSubjects = new Map<string, string>();
  readonly #o: Required<Omit<DispatcherOptions, 'onMessage' | 'inboxPrefix'>> & Pick<DispatcherOptions, 'onMessage'>;

  constructor(nc: NatsConnection, subjects: Subjects, opts: DispatcherOptions = {}) {
    this.#mux = new ReplyMux(nc, opts.inboxPrefix ?? inboxPrefix(Role.GATEWAY));
    this.#subjects = subjects;
    this.#o = { maxPending: opts.maxPending ?? 4096, maxMessageBytes: opts.maxMessageBytes ?? 1024 * 1024, attemptTimeoutMs: opts.attemptTimeoutMs ?? 3000, maxAttempts: opts.maxAttempts ?? 8, onMessage: opts.onMessage };
  }

  /** Stops listening for replies; requests in flight fail. */
  stop(): void {
    this.#mux.close();
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
  infer(service: string, maxItems: number, item: JsonItem, deadline: number): Promise<DispatchResult> {
    let lane = this.#lanes.get(service);
    if (!lane) this.#lanes.set(service, (lane = { service, maxItems, queue: [], scheduled: false }));
    lane.maxItems = maxItems;
    if (lane.queue.length >= this.#o.maxPending) return Promise.reject(GatewayErrors.OVERLOADED(service, lane.queue.length));
    return new Promise((resolve, reject) => {
      lane.queue.push({ item, deadline, resolve, reject });
      if (!lane.scheduled) {
        lane.scheduled = true;
        setImmediate(() => this.#flush(lane));
      }
    });
  }

  #flush(lane: Lane): void {
    lane.scheduled = false;
    const q = lane.queue;
    let i = 0;
    while (i < q.length) {
      let bytes = q[i]!.item.body.length;
      let end = i + 1;
      while (end < q.length && end - i < lane.maxItems && bytes + q[end]!.item.body.length <= this.#o.maxMessageBytes) bytes += q[end++]!.item.body.length;
      void this.#send(lane.service, i === 0 && end === q.length ? q : q.slice(i, end));
      i = end;
    }
    lane.queue = [];
  }

  async #send(service: string, batch: Waiting[]): Promise<void> {
    let subject = this.#serviceSubjects.get(service);
    if (!subject) this.#serviceSubjects.set(service, (subject = this.#subjects.service(service)));
    const items: JsonItem[] = new Array(batch.length);
    let deadline = Infinity;
    for (let i = 0; i < batch.length; i++) {
      items[i] = batch[i]!.item;
      if (batch[i]!.deadline < deadline) deadline = batch[i]!.deadline;
    }
    const data = encode({ type: 'infer-json', items });
    const started = Date.now();
    let last: ShoalError | undefined;
    for (let attempt = 1; attempt <= this.#o.maxAttempts; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      this.#o.onMessage?.(service, batch.length);
      try {
        const reply = await this.#mux.ask<InferJsonReply>(subject, service, data, Math.min(this.#o.attemptTimeoutMs, left));
        for (let i = 0; i < batch.length; i++) {
          const w = batch[i]!;
          const r = reply.results[i];
          if (!r) w.reject(Errors.INTERNAL(`replica ${reply.actorId} returned ${reply.results.length} results for ${batch.length} requests`));
          else if ('error' in r) w.reject(fromWireError(r.error));
          else w.resolve({ body: r.body, batch: r.batch, queueRows: reply.queueRows, attempts: attempt });
        }
        return;
      } catch (err) {
        last = err as ShoalError;
        if (!RETRYABLE.has(last.code)) break;
        // No replica right now (re-placement, restart): back off a little and try again.
        if (last.code !== Errors.TIMEOUT.code) await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** (attempt - 1), 500, Math.max(0, deadline - Date.now()))));
      }
    }
    const err =
      last && !RETRYABLE.has(last.code)
        ? last
        : last && last.code !== Errors.TIMEOUT.code
          ? MlErrors.MODEL_NOT_READY(service, `no replica answers (${last.code})`)
          : Errors.TIMEOUT(`inference on ${service}`, Date.now() - started);
    for (const w of batch) w.reject(err);
  }
}
