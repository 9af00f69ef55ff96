/**
 * One inference message's life after the dispatcher has formed it: sent to the service's queue
 * group, sent again after a retryable error (no responders, an actor stopping: backing off while
 * no replica exists), and — when no answer has come within the service's hedge delay — **hedged**:
 * a copy goes straight to the replica that answered most recently (its actor subject), the next
 * to the next, each after twice the previous wait, while the service's hedge budget lasts. Every
 * copy waits until the deadline; the first answer settles every request of the message.
 *
 * Why hedge: a replica on a SIGKILLed node never answers, and NATS cannot tell the sender so
 * (a hung node even keeps its subscription for minutes). Why straight to a replica: a copy sent
 * back into the queue group may land on the silent member again.
 */
import { Errors, fromWireError, type ShoalError } from '../cluster/index.ts';
import { MlErrors, type InferJsonReply } from '../ml/index.ts';

/** Reply times remembered per service for its p95. */
const LATENCY_RING = 64;
/** How long a replica that answered counts as one that can take messages. */
const REPLICA_MEMORY_MS = 5000;

const RETRYABLE = new Set([Errors.ACTOR_NOT_FOUND.code, Errors.NO_RESPONDERS.code, Errors.ACTOR_STOPPED.code, Errors.TIMEOUT.code]);

export interface HedgePolicy {
  hedgeAfterMs: number;
  hedgeLatencyFactor: number;
  hedgeBudget: number;
}

/** What the dispatcher knows of one service's replicas from their answers. */
export class ServiceHealth {
  /** Replicas that answered lately: actor id → when (ms). */
  readonly #replicas = new Map<string, number>();
  /** Replicas answering in the last {@link REPLICA_MEMORY_MS} (at least 1), recounted on each answer. */
  replicaCount = 1;
  readonly #latencies = new Float64Array(LATENCY_RING);
  #latencyCount = 0;
  /** How long a message waits for an answer before its first hedge. */
  hedgeDelayMs: number;
  /** Hedges this service may still send (earned back by replies). */
  #tokens: number;

  constructor(private readonly p: HedgePolicy) {
    this.hedgeDelayMs = p.hedgeAfterMs;
    this.#tokens = p.hedgeBudget;
  }

  /** Notes which replica answered, and recounts the live ones (a handful of map entries). */
  answered(actorId: string): void {
    const now = Date.now();
    this.#replicas.set(actorId, now);
    for (const [id, at] of this.#replicas) if (now - at > REPLICA_MEMORY_MS) this.#replicas.delete(id);
    this.replicaCount = Math.max(1, this.#replicas.size);
  }

  /** Records a reply's round trip, earns back budget, and recomputes the hedge delay every few replies. */
  replied(ms: number): void {
    this.#latencies[this.#latencyCount++ % LATENCY_RING] = ms;
    this.#tokens = Math.min(this.p.hedgeBudget, this.#tokens + 0.1);
    if (this.#latencyCount % 8 !== 0) return;
    const n = Math.min(this.#latencyCount, LATENCY_RING);
    const sorted = this.#latencies.slice(0, n).sort();
    const p95 = sorted[Math.min(n - 1, Math.floor(n * 0.95))]!;
    this.hedgeDelayMs = Math.max(this.p.hedgeAfterMs, this.p.hedgeLatencyFactor * p95);
  }

  /** Spends one hedge of the budget, if there is one. */
  takeHedge(): boolean {
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** The replica that answered most recently and is not in `skip`, if any. */
  freshest(skip: ReadonlySet<string>): string | undefined {
    const now = Date.now();
    let best: string | undefined;
    let bestAt = -Infinity;
    for (const [id, at] of this.#replicas) if (now - at <= REPLICA_MEMORY_MS && !skip.has(id) && at > bestAt) [best, bestAt] = [id, at];
    return best;
  }
}

/** What one send needs: where to send, and to whom the answers go. */
export interface HedgedSendOptions {
  service: string;
  health: ServiceHealth;
  /** Requests in the message: each gets its own result from the answer. */
  requests: number;
  deadline: number;
  maxAttempts: number;
  /**
   * Added to the first hedge's wait: a message whose body the replica must pull first (a large
   * one) takes longer than the service's usual p95 without anything being wrong. @default 0
   */
  hedgeExtraMs?: number;
  /** Sends one copy: to the queue group, or to one replica's actor subject. */
  /** Sends one copy; `hedge` when another copy is still out (the replica then leaves it out of the prediction log). */
  ask(direct: string | undefined, timeoutMs: number, hedge: boolean): Promise<InferJsonReply>;
  onCopy?(): void;
}

export type SendOutcome = { reply: InferJsonReply; attempts: number } | { error: ShoalError };

/** Sends a message until an answer (or a final error) comes; resolves once, never rejects. */
export function sendHedged(o: HedgedSendOptions): Promise<SendOutcome> {
  return new Promise((resolve) => new HedgedSend(o, resolve).send());
}

class HedgedSend {
  #settled = false;
  #copies = 0;
  #attempt = 0;
  #last: ShoalError | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Replicas this message went to directly, and the wait before the next hedge. */
  readonly #hedgedTo = new Set<string>();
  #hedgeWait: number;
  readonly #started = Date.now();

  constructor(
    private readonly o: HedgedSendOptions,
    private readonly done: (r: SendOutcome) => void,
  ) {
    this.#hedgeWait = o.health.hedgeDelayMs + (o.hedgeExtraMs ?? 0);
  }

  send = (direct?: string, hedge = false): void => {
    this.#timer = undefined;
    if (this.#settled) return;
    const left = this.o.deadline - Date.now();
    if (left <= 0 || this.#attempt >= this.o.maxAttempts) {
      if (this.#copies === 0) this.#giveUp();
      return;
    }
    this.#attempt++;
    this.#copies++;
    this.o.onCopy?.();
    const sentAt = performance.now();
    this.o.ask(direct, left, hedge && this.#copies > 1).then(
      (reply) => this.#onReply(reply, performance.now() - sentAt),
      (err: ShoalError) => this.#onError(err),
    );
    if (!this.#timer) this.#timer = setTimeout(this.#hedge, Math.min(this.#hedgeWait, Math.max(0, this.o.deadline - Date.now())));
  };

  #onReply(reply: InferJsonReply, ms: number): void {
    this.#copies--;
    this.o.health.replied(ms);
    if (this.#settled) return;
    this.o.health.answered(reply.actorId);
    this.#settle({ reply, attempts: this.#attempt });
  }

  #onError(err: ShoalError): void {
    this.#copies--;
    if (this.#settled) return;
    this.#last = err;
    if (!RETRYABLE.has(err.code)) return this.#settle({ error: err });
    if (err.code === Errors.TIMEOUT.code) {
      // This copy ran out of deadline: the others have too, or will answer.
      if (this.#copies === 0) this.#giveUp();
      return;
    }
    // No replica right now (re-placement, restart): back off a little and send again.
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.send, Math.min(50 * 2 ** Math.min(this.#attempt - 1, 4), 500, Math.max(0, this.o.deadline - Date.now())));
  }

  /** Unanswered after the wait: a copy to the freshest replica not tried yet, budget allowing. */
  #hedge = (): void => {
    this.#timer = undefined;
    if (this.#settled || !this.o.health.takeHedge()) return;
    const to = this.o.health.freshest(this.#hedgedTo);
    if (to) this.#hedgedTo.add(to);
    this.#hedgeWait *= 2;
    this.send(to, true);
  };

  #giveUp(): void {
    const last = this.#last;
    const error =
      last && !RETRYABLE.has(last.code)
        ? last
        : last && last.code !== Errors.TIMEOUT.code
          ? MlErrors.MODEL_NOT_READY(this.o.service, `no replica answers (${last.code})`)
          : Errors.TIMEOUT(`inference on ${this.o.service}`, Date.now() - this.#started);
    this.#settle({ error });
  }

  #settle(r: SendOutcome): void {
    this.#settled = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.done(r);
  }
}

/** One request's part of an answer: its body, or its own error. */
type JsonOk = Exclude<InferJsonReply['results'][number], { error: unknown }>;

export function resultOf(reply: InferJsonReply, i: number, requests: number): { ok: JsonOk } | { error: ShoalError } {
  const r = reply.results[i];
  if (!r) return { error: Errors.INTERNAL(`replica ${reply.actorId} returned ${reply.results.length} results for ${requests} requests`) };
  if ('error' in r) return { error: fromWireError(r.error) };
  return { ok: r };
}
