/**
 * Actors: a class with typed message handlers, private state, and `onStart` / `onStop` /
 * `onDrain` hooks. Messages are processed one at a time per actor, in arrival order. An actor
 * type is registered under a name with the TypeBox schema of its messages (a union on `type`),
 * so every message is validated before the actor sees it.
 *
 * ```ts
 * const CounterMsg = Type.Union([
 *   Type.Object({ type: Type.Literal('inc'), by: Type.Integer() }),
 *   Type.Object({ type: Type.Literal('get') }),
 * ]);
 * class Counter extends Actor<Static<typeof CounterMsg>> {
 *   #n = 0;
 *   receive(m) { if (m.type === 'inc') this.#n += m.by; return this.#n; }
 * }
 * export const actorTypes = [defineActorType({ name: 'counter', messages: CounterMsg, create: () => new Counter() })];
 * ```
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Static, TSchema } from '@sinclair/typebox';
import type { Logger } from './logger.ts';
import type { Registry } from './metrics.ts';
import type { Subjects } from './subjects.ts';
import type { ActorKind, SpawnResult, SpawnSpec, SupervisionPolicy } from './wire.ts';

/** What the runtime gives an actor. */
export interface ActorContext {
  readonly actorId: string;
  readonly nodeId: string;
  readonly log: Logger;
  /** How many times this actor has been restarted by its supervisor. */
  readonly restarts: number;
  /**
   * The directory revision at which this copy claimed the actor: a fencing token. It grows with
   * every placement of the actor id — re-placed after its node was declared dead, or stopped and
   * spawned again (the epoch starts over then, a revision does not) — so a write stamped with it
   * can be refused once a newer copy has written. 0 on a host without a directory.
   */
  readonly claim: number;
  /** Reach other actors and services from inside an actor. */
  readonly system: ActorSystemLike;
  /** Run CPU-heavy work on the node's worker pool, off the event loop. */
  runTask<R = unknown>(moduleUrl: string, fn: string, args: unknown): Promise<R>;
  /** This actor's last checkpoint (small state, in KV), kept across restarts and re-placement. */
  readonly checkpoint: Checkpoints;
  /** The node's NATS connection (node role), for actors that read KV / object store (e.g. a model registry). */
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  /**
   * The node's compute: one kernels instance per node process (one WebGPU device, one CPU
   * pool), owned by the node agent and shared by its actors. Opaque here, because cluster/
   * knows nothing of kernels/ (not even its types): an actor gets it typed, and checked, with
   * the kernels layer's `nodeKernels(ctx)`. Undefined on a host started without kernels.
   */
  readonly kernels: unknown;
  /**
   * The node process's Prometheus registry (served on `metrics.port`): an actor type adds its
   * own series once per process (`metricOf`). Undefined on a host started without one.
   */
  readonly metrics?: Registry;
}

export interface Checkpoints {
  save(state: unknown): Promise<void>;
  load<T = unknown>(): Promise<T | undefined>;
}

/** The part of ActorClient an actor sees (kept structural to avoid an import cycle). */
export interface ActorSystemLike {
  ref(actorId: string): { ask<R = unknown>(msg: unknown, opts?: { timeoutMs?: number; retry?: { attempts: number; delayMs?: number } }): Promise<R>; tell(msg: unknown): void };
  /** Actors may spawn and stop actors (through the scheduler), e.g. a job's workers. */
  spawn(spec: SpawnSpec, opts?: { replicas?: number; gang?: boolean; timeoutMs?: number }): Promise<SpawnResult>;
  stop(actorId: string, opts?: { timeoutMs?: number }): Promise<void>;
}

export interface ChildFailure {
  actorId: string;
  code: string;
  message: string;
}

export abstract class Actor<M = { type: string }> {
  /** Set by the runtime before `onStart`. */
  ctx!: ActorContext;
  onStart?(): void | Promise<void>;
  /** Called on a clean stop; not after a crash. */
  onStop?(): void | Promise<void>;
  /** The node is draining (SIGTERM, drain command, spot notice): checkpoint now. */
  onDrain?(): void | Promise<void>;
  /** A child this actor supervises has given up (exceeded its restarts). */
  onChildFailed?(failure: ChildFailure): void | Promise<void>;
  /** Handles one message; the return value is the reply to an ask. */
  abstract receive(msg: M): unknown | Promise<unknown>;
}

export interface ActorType<S extends TSchema = TSchema> {
  name: string;
  messages: S;
  create(args: unknown): Actor<Static<S>>;
  /** Defaults for spawns of this type. */
  kind?: ActorKind;
  mailboxCapacity?: number;
  supervision?: Partial<SupervisionPolicy>;
  /**
   * Messages handed to `receive` at once. Above 1 the actor gives up one-at-a-time processing
   * and must be safe under interleaving (e.g. it enqueues into a batcher and resolves each reply
   * when its batch completes); the mailbox still bounds what waits. @default 1
   */
  concurrency?: number;
  /**
   * A job entry point: jobs on `shoal.jobs.submit` may name this type (the job's actor, spawned
   * with `{ jobId }`, which drives the job and records its state). Types without it — a job's
   * workers, inference replicas — are refused as job types. @default false
   */
  job?: boolean;
}

export function defineActorType<S extends TSchema>(t: ActorType<S>): ActorType<S> {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(t.name)) throw new Error(`invalid actor type name "${t.name}"`);
  if (t.concurrency !== undefined && (!Number.isInteger(t.concurrency) || t.concurrency < 1)) throw new Error(`actor type "${t.name}": concurrency must be a positive integer`);
  return t;
}

/** Actor types known to a process, by name. */
export class ActorTypeRegistry {
  readonly #types = new Map<string, ActorType>();

  register(...types: ActorType[]): this {
    for (const t of types) {
      if (this.#types.has(t.name) && this.#types.get(t.name) !== t) throw new Error(`actor type "${t.name}" registered twice`);
      this.#types.set(t.name, t);
    }
    return this;
  }

  get(name: string): ActorType | undefined {
    return this.#types.get(name);
  }

  names(): string[] {
    return [...this.#types.keys()].sort();
  }

  /** The names of the types that are job entry points (`job: true`). */
  jobTypes(): string[] {
    return [...this.#types.values()]
      .filter((t) => t.job)
      .map((t) => t.name)
      .sort();
  }

  /** Imports modules that export `actorTypes: ActorType[]` and registers them. */
  async load(moduleUrls: string[]): Promise<this> {
    for (const url of moduleUrls) {
      const mod = (await import(url)) as { actorTypes?: ActorType[] };
      if (!Array.isArray(mod.actorTypes)) throw new Error(`${url} does not export actorTypes: ActorType[]`);
      this.register(...mod.actorTypes);
    }
    return this;
  }
}
