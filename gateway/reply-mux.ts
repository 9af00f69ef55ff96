/**
 * Request/reply for the dispatcher's inference messages: one wildcard inbox subscription, a
 * counter for reply tokens, one timer per message.
 *
 * Why not `nc.request()`: profiled under load, nats.js 3.4 builds `Error` objects per request —
 * a RequestError and a TimeoutError with captured stacks (unless the connection has
 * `noAsyncTraces`, which `runProcess` does not set), and, even then, a `RequestError("cancelled")`
 * on every *successful* reply (`RequestOne.cancel` rejects its already-resolved deferred) — about
 * 8 µs each on this box, ~5% of the gateway's CPU. This is what the dispatcher needs and no more.
 *
 * Errors are the ones `ActorRef.ask` gives: no responders → ACTOR_NOT_FOUND, no answer in time →
 * TIMEOUT, an error reply (headers) → its ShoalError.
 */
import { createInbox, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { Errors, decodeReply, mapRequestError } from '../cluster/index.ts';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  subject: string;
  /** What ACTOR_NOT_FOUND names when nobody listens. */
  target: string;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
}

function onTimeout(mux: ReplyMux, token: string): void {
  mux.expire(token);
}

export class ReplyMux {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  #seq = 0;

  /** `inboxPrefix`: the connection's inbox prefix (its role may subscribe only under it). */
  constructor(nc: NatsConnection, inboxPrefix: string) {
    this.#nc = nc;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, {
      callback: (err, m) => {
        if (err) this.#failAll(mapRequestError(this.#prefix, 0, err));
        else this.#onReply(m);
      },
    });
  }

  /** Publishes `data` on `subject` (with `headers`: a traced message's `traceparent`) and resolves with the decoded reply. */
  ask<R>(subject: string, target: string, data: Uint8Array, timeoutMs: number, headers?: MsgHdrs): Promise<R> {
    const token = (++this.#seq).toString(36);
    return new Promise<R>((resolve, reject) => {
      const p: Pending = { resolve: resolve as (v: unknown) => void, reject, subject, target, timeoutMs, timer: undefined };
      this.#pending.set(token, p);
      p.timer = setTimeout(onTimeout, timeoutMs, this, token);
      try {
        this.#nc.publish(subject, data, headers ? { reply: this.#prefix + token, headers } : { reply: this.#prefix + token });
      } catch (err) {
        this.#settle(token);
        reject(mapRequestError(subject, timeoutMs, err));
      }
    });
  }

  /** Timer fired: the request fails with TIMEOUT (a late reply is then dropped). */
  expire(token: string): void {
    const p = this.#settle(token);
    if (p) p.reject(Errors.TIMEOUT(`request on ${p.subject}`, p.timeoutMs));
  }

  close(): void {
    this.#sub.unsubscribe();
    this.#failAll(Errors.TIMEOUT('inference request (gateway stopping)', 0));
  }

  #settle(token: string): Pending | undefined {
    const p = this.#pending.get(token);
    if (!p) return undefined;
    this.#pending.delete(token);
    if (p.timer) clearTimeout(p.timer);
    return p;
  }

  #onReply(m: Msg): void {
    const p = this.#settle(m.subject.slice(this.#prefix.length));
    if (!p) return;
    // The server's no-responders status: a header-only message with code 503.
    if (m.headers && m.data.length === 0 && m.headers.code === 503) {
      p.reject(Errors.ACTOR_NOT_FOUND(p.target));
      return;
    }
    try {
      p.resolve(decodeReply(m));
    } catch (err) {
      p.reject(err);
    }
  }

  #failAll(err: unknown): void {
    for (const token of [...this.#pending.keys()]) this.#settle(token)?.reject(err);
  }
}
