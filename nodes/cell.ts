/**
 * One hosted actor as its node sees it: the instance, its bounded mailbox, its state, what it is
 * processing now, its restart history (supervision) and its subscriptions. The host (actor-host.ts)
 * drives it; the cell only holds it together.
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { LifecycleState, Mailbox, decode, type Actor, type ActorType, type SpawnSpec, type SupervisionPolicy, type TraceContext } from '../cluster/index.ts';

const DEFAULT_SUPERVISION: SupervisionPolicy = { maxRestarts: 3, withinMs: 60_000, backoffMs: 50 };
const DEFAULT_MAILBOX = 1000;

export interface Envelope {
  msg: unknown;
  /** The NATS message to reply to (asks only). */
  reply: Msg | undefined;
  /** The sender's span (its `traceparent` header), only when this process traces. */
  trace?: TraceContext;
}

const checks = new WeakMap<object, TypeCheck<never>>();
function checkerFor(t: ActorType): TypeCheck<never> {
  let c = checks.get(t);
  if (!c) {
    c = TypeCompiler.Compile(t.messages) as unknown as TypeCheck<never>;
    checks.set(t, c);
  }
  return c;
}

export class Cell {
  state: LifecycleState = LifecycleState.STARTING;
  instance!: Actor<unknown>;
  readonly mailbox: Mailbox<Envelope>;
  busy = false;
  /** Messages being handled now (concurrent types) and whether a restart is under way. */
  inFlight = 0;
  restarting = false;
  readonly concurrency: number;
  restarts: number[] = [];
  restartCount = 0;
  subs: Subscription[] = [];
  revision = 0;
  /** Resolves when the queue is empty and nothing is processing (used by drain). */
  idleWaiters: (() => void)[] = [];
  readonly supervision: SupervisionPolicy;
  readonly check: TypeCheck<never>;

  constructor(
    readonly actorId: string,
    readonly spec: SpawnSpec,
    readonly type: ActorType,
    readonly epoch: number,
  ) {
    this.mailbox = new Mailbox(spec.mailboxCapacity ?? type.mailboxCapacity ?? DEFAULT_MAILBOX);
    this.supervision = { ...DEFAULT_SUPERVISION, ...type.supervision, ...spec.supervision };
    this.check = checkerFor(type);
    this.concurrency = type.concurrency ?? 1;
  }

  get depth(): number {
    return this.mailbox.size;
  }
}

/** `p`, or undefined once `deadline` (epoch ms) has passed. */
export async function withDeadline<T>(p: Promise<T>, deadline: number): Promise<T | undefined> {
  const ms = deadline - Date.now();
  if (ms <= 0) return undefined;
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]);
  } finally {
    if (t) clearTimeout(t);
  }
}

/** A message's payload: MessagePack, or JSON when its `content-type` header says so. */
export function decodeMessage(m: Msg): unknown {
  const ct = m.headers?.get('content-type');
  return ct ? decode(m.data, ct === 'application/json' ? 'application/json' : 'application/msgpack') : decode(m.data);
}
