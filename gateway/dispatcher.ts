/**
 * Sends inference requests to a model version's replicas over NATS.
 *
 * Requests for the same service that arrive in the same event-loop turn travel as one NATS
 * message (up to the version's `maxBatchSize` rows), which the replica's dynamic batcher then
 * batches with whatever else it has queued — so a burst costs one message, not one per request.
 * Each request still gets its own result or error.
 *
 * Backpressure, never an unbounded buffer: past `maxPendingRows` waiting in this gateway for a
 * service, a request is refused at once (503); a replica whose mailbox or batch queue is full
 * answers SHOAL_ERR_MAILBOX_FULL, passed on as 429 without retrying. Inference is idempotent, so
 * a message whose replica is gone (no responders, stopped, node killed → timeout) is retried —
 * another replica, or the re-placed one, answers — within the request's deadline.
 */
import { Errors, Role, encode, fromWireError, inboxPrefix, type NatsConnection, type ShoalError, type Subjects } from '../cluster/index.ts';
import { MlErrors, type InferItem, type InferReply, type ItemOk } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import { ReplyMux } from './reply-mux.ts';

export interface DispatcherOptions {
  /** Rows waiting in this gateway per service before refusing. @default 4096 */
  maxPendingRows?: number;
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
  item: InferItem;
  rows: number;
  deadline: number;
  resolve: (r: DispatchResult) => void;
  reject: (e: unknown) => void;
}

export interface DispatchResult extends ItemOk {
  queueRows: number;
  attempts: number;
}

interface Lane {
  service: string;
  maxRows: number;
  queue: Waiting[];
  rows: number;
  scheduled: boolean;
}

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
    this.#o = { maxPendingRows: opts.maxPendingRows ?? 4096, attemptTimeoutMs: opts.attemptTimeoutMs ?? 3000, maxAttempts: opts.maxAttempts ?? 8, onMessage: opts.onMessage };
  }

  /** Stops listening for replies; requests in flight fail. */
  stop(): void {
    this.#mux.close();
  }

  /** Rows waiting in this gateway, per service. */
  pending(): Map<string, number> {
    return new Map([...this.#lanes.values()].map((l) => [l.service, l.rows]));
  }

  infer(service: string, maxBatchSize: number, item: InferItem, rows: number, deadline: number): Promise<DispatchResult> {
    let lane = this.#lanes.get(service);
    if (!lane) this.#lanes.set(service, (lane = { service, maxRows: maxBatchSize, queue: [], rows: 0, scheduled: false }));
    lane.maxRows = maxBatchSize;
    if (lane.rows + rows > this.#o.maxPendingRows && lane.queue.length > 0) return Promise.reject(GatewayErrors.OVERLOADED(service, lane.queue.length));
    return new Promise((resolve, reject) => {
      lane.queue.push({ item, rows, deadline, resolve, reject });
      lane.rows += rows;
      if (!lane.scheduled) {
        lane.scheduled = true;
        setImmediate(() => this.#flush(lane));
      }
    });
  }

  #flush(lane: Lane): void {
    lane.scheduled = false;
    while (lane.queue.length > 0) {
      const batch: Waiting[] = [];
      let rows = 0;
      while (lane.queue.length > 0 && (batch.length === 0 || rows + lane.queue[0]!.rows <= lane.maxRows)) {
        const w = lane.queue.shift()!;
        batch.push(w);
        rows += w.rows;
      }
      lane.rows -= rows;
      void this.#send(lane.service, batch);
    }
  }

  async #send(service: string, batch: Waiting[]): Promise<void> {
    let subject = this.#serviceSubjects.get(service);
    if (!subject) this.#serviceSubjects.set(service, (subject = this.#subjects.service(service)));
    const items: InferItem[] = new Array(batch.length);
    let deadline = Infinity;
    for (let i = 0; i < batch.length; i++) {
      items[i] = batch[i]!.item;
      if (batch[i]!.deadline < deadline) deadline = batch[i]!.deadline;
    }
    const data = encode({ type: 'infer', items });
    const started = Date.now();
    let last: ShoalError | undefined;
    for (let attempt = 1; attempt <= this.#o.maxAttempts; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      this.#o.onMessage?.(service, batch.length);
      try {
        const reply = await this.#mux.ask<InferReply>(subject, service, data, Math.min(this.#o.attemptTimeoutMs, left));
        for (let i = 0; i < batch.length; i++) {
          const w = batch[i]!;
          const r = reply.results[i];
          if (!r) w.reject(Errors.INTERNAL(`replica ${reply.actorId} returned ${reply.results.length} results for ${batch.length} requests`));
          else if ('error' in r) w.reject(fromWireError(r.error));
          else w.resolve({ outputs: r.outputs, batch: r.batch, queueRows: reply.queueRows, attempts: attempt });
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
