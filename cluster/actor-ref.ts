/**
 * Addressing actors from anywhere (gateway, CLI, other actors): `ActorRef.ask()` is a NATS
 * request on the actor's subject, `tell()` a publish. Refs are plain data (`{ actorId }`), so
 * they travel inside messages. An ask to an actor that is not running fails at once (NATS
 * no-responders → SHOAL_ERR_ACTOR_NOT_FOUND), not after the timeout.
 *
 * The hot path sends MessagePack with no headers (absent content-type means MessagePack) and
 * reads error replies from headers only when present. When the process traces and the caller is
 * inside a span, the message carries its `traceparent` (the receiving actor's span is its child).
 */
import type { Msg, NatsConnection } from '@nats-io/transport-node';
import { decode, encode, parseContentType } from './codec.ts';
import { Errors, type ShoalError } from './errors.ts';
import { mapRequestError, request, throwIfError } from './rpc.ts';
import type { Subjects } from './subjects.ts';
import { Headers } from './subjects.ts';
import type { SchedulerActorRequest, SpawnResult, SpawnSpec } from './wire.ts';
import { Directory } from './directory.ts';
import { activeTrace, injectTrace, tracing } from './tracing.ts';

export interface AskOptions {
  /** @default 5000 */
  timeoutMs?: number;
  /**
   * Retry when the actor is not reachable right now (not running, being re-placed, mailbox
   * full, timed out). Only for messages that are safe to repeat. @default no retry
   */
  retry?: { attempts: number; delayMs?: number };
}

const RETRYABLE = new Set([Errors.ACTOR_NOT_FOUND.code, Errors.ACTOR_STOPPED.code, Errors.MAILBOX_FULL.code, Errors.TIMEOUT.code]);

export function decodeReply<R>(m: Msg): R {
  if (m.headers) {
    throwIfError(m);
    return decode(m.data, parseContentType(m.headers.get(Headers.CONTENT_TYPE))) as R;
  }
  return decode(m.data) as R;
}

export class ActorRef {
  constructor(
    private readonly nc: NatsConnection,
    readonly actorId: string,
    readonly subject: string,
  ) {}

  async ask<R = unknown>(msg: unknown, opts: AskOptions = {}): Promise<R> {
    const timeout = opts.timeoutMs ?? 5000;
    const attempts = Math.max(1, opts.retry?.attempts ?? 1);
    const data = encode(msg);
    const trace = tracing.on ? activeTrace() : undefined;
    const headers = trace ? injectTrace(trace) : undefined;
    let last: ShoalError | undefined;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, (opts.retry?.delayMs ?? 200) * Math.min(8, 2 ** (i - 1))));
      try {
        const m = await this.nc.request(this.subject, data, headers ? { timeout, headers } : { timeout });
        return decodeReply<R>(m);
      } catch (err) {
        last = this.#mapError(timeout, err);
        if (!RETRYABLE.has(last.code)) throw last;
      }
    }
    throw last!;
  }

  tell(msg: unknown): void {
    const trace = tracing.on ? activeTrace() : undefined;
    if (trace) this.nc.publish(this.subject, encode(msg), { headers: injectTrace(trace) });
    else this.nc.publish(this.subject, encode(msg));
  }

  toJSON(): { actorId: string; subject: string } {
    return { actorId: this.actorId, subject: this.subject };
  }

  #mapError(timeout: number, err: unknown): ShoalError {
    const e = mapRequestError(this.subject, timeout, err);
    return Errors.NO_RESPONDERS.is(e) ? Errors.ACTOR_NOT_FOUND(this.actorId) : e;
  }
}

/** Spawning, stopping and addressing actors from any process. */
export class ActorClient {
  #directory: Directory | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly subjects: Subjects,
    directory?: Directory,
  ) {
    this.#directory = directory;
  }

  ref(actorId: string): ActorRef {
    return new ActorRef(this.nc, actorId, this.subjects.actor(actorId));
  }

  /** The replicas of a service, load-balanced by a NATS queue group. */
  service(name: string): ActorRef {
    return new ActorRef(this.nc, name, this.subjects.service(name));
  }

  fromJSON(j: { actorId: string; subject?: string }): ActorRef {
    return new ActorRef(this.nc, j.actorId, j.subject ?? this.subjects.actor(j.actorId));
  }

  /** A named actor's ref, after checking the directory knows it (ACTOR_NOT_FOUND if not). */
  async lookup(name: string): Promise<ActorRef> {
    if (!this.#directory) return this.ref(name);
    const v = await this.#directory.get(name);
    if (!v) throw Errors.ACTOR_NOT_FOUND(name);
    return this.ref(name);
  }

  /** Asks the scheduler to place and start the actor (or `replicas` of a service). */
  async spawn(spec: SpawnSpec, opts: { replicas?: number; gang?: boolean; timeoutMs?: number } = {}): Promise<SpawnResult> {
    const req: SchedulerActorRequest = { type: 'spawn', spec, ...(opts.replicas ? { replicas: opts.replicas } : {}), ...(opts.gang ? { gang: true } : {}) };
    return request<SpawnResult>(this.nc, this.subjects.scheduler('actors'), req, { timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  async stop(actorId: string, opts: { timeoutMs?: number } = {}): Promise<void> {
    const req: SchedulerActorRequest = { type: 'stop', actorId };
    await request(this.nc, this.subjects.scheduler('actors'), req, { timeoutMs: opts.timeoutMs ?? 10_000 });
  }
}
