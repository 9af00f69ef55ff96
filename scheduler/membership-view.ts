/**
 * The scheduler's view of the fleet: watches the nodes KV bucket and judges liveness by the
 * time of each node's last heartbeat as seen here (server 2.9 has no per-key TTL, and local
 * receive time is immune to clock skew between machines). A sweep declares silent nodes dead
 * once, publishes `shoal.events.node-dead`, and tells the listeners (re-placement).
 *
 * A node id outlives its processes: a supervisor restarts a crashed agent under the same id in
 * a second or two, long before the heartbeat timeout. Each record carries the process's
 * incarnation (boot id); a record with a new incarnation is the death of the old process, told
 * to the dead-listeners at once, and the old incarnation's late records (a process that was not
 * dead after all, still heartbeating) are ignored from then on.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { decode, type Logger, type NodeRecord, type NodeView } from '../cluster/index.ts';

export class MembershipView {
  readonly #nodes = new Map<string, { record: NodeRecord; seenAt: number; dead: boolean }>();
  /** Incarnations replaced by a newer one, per node id (their records are stale). */
  readonly #retired = new Map<string, Set<string>>();
  #stop: (() => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;
  readonly #deadListeners: ((nodeId: string, why: 'silent' | 'restarted') => void)[] = [];
  readonly #changeListeners: ((nodeId: string, view: NodeView | undefined) => void)[] = [];

  constructor(
    private readonly bucket: KV,
    readonly deadAfterMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async start(): Promise<void> {
    // Default watch: the last value of every key, then every update.
    const watch = await this.bucket.watch();
    this.#stop = () => watch.stop();
    this.#sweep = setInterval(() => this.sweep(), Math.max(50, Math.floor(this.deadAfterMs / 4)));
    void (async () => {
      for await (const e of watch) this.#apply(e);
    })();
  }

  #apply(e: KvEntry): void {
    if (e.operation === 'DEL' || e.operation === 'PURGE') {
      if (this.#nodes.delete(e.key)) {
        this.log.info({ nodeId: e.key }, 'node left');
        this.#changed(e.key);
      }
      return;
    }
    try {
      const record = decode(e.value) as NodeRecord;
      if (this.#retired.get(e.key)?.has(record.incarnation)) return;
      const prev = this.#nodes.get(e.key);
      const restarted = prev !== undefined && prev.record.incarnation !== record.incarnation;
      if (restarted) {
        let retired = this.#retired.get(e.key);
        if (!retired) this.#retired.set(e.key, (retired = new Set()));
        retired.add(prev.record.incarnation);
        if (retired.size > 64) retired.delete(retired.values().next().value!);
        this.log.warn({ nodeId: e.key, was: prev.record.incarnation, now: record.incarnation, pid: record.pid }, 'node restarted: its previous process is gone');
        // The old process's actors died with it, whether or not it was declared dead yet.
        if (!prev.dead) for (const l of this.#deadListeners) l(e.key, 'restarted');
      } else if (!prev || prev.dead) this.log.info({ nodeId: e.key, profile: record.profile, labels: record.labels }, prev ? 'node back' : 'node joined');
      this.#nodes.set(e.key, { record, seenAt: this.now(), dead: false });
      if (!prev || prev.dead || restarted || prev.record.state !== record.state) this.#changed(e.key);
    } catch (err) {
      this.log.warn({ key: e.key, err: (err as Error).message }, 'unreadable node record');
    }
  }

  /** Called once per node when it is declared dead. */
  onDead(fn: (nodeId: string, why: 'silent' | 'restarted') => void): void {
    this.#deadListeners.push(fn);
  }

  /**
   * Called with the node's view when a node joins, comes back, restarts, changes state or is
   * declared dead, and with `undefined` when it leaves — not on every heartbeat. Listeners keep
   * their own state in step one node at a time (the placer), or react to capacity that may have
   * appeared (pending actors).
   */
  onChange(fn: (nodeId: string, view: NodeView | undefined) => void): void {
    this.#changeListeners.push(fn);
  }

  #changed(nodeId: string): void {
    const v = this.#viewOf(nodeId);
    for (const l of this.#changeListeners) l(nodeId, v);
  }

  /** Declares nodes silent for longer than deadAfterMs dead (each once). */
  sweep(): void {
    const now = this.now();
    for (const [nodeId, n] of this.#nodes) {
      if (!n.dead && now - n.seenAt > this.deadAfterMs) {
        n.dead = true;
        this.log.warn({ nodeId, silentMs: now - n.seenAt }, 'node declared dead');
        for (const l of this.#deadListeners) l(nodeId, 'silent');
        this.#changed(nodeId);
      }
    }
  }

  isKnown(nodeId: string): boolean {
    return this.#nodes.has(nodeId);
  }

  /** The incarnation (boot id) of the node's current process, if it is known. */
  incarnation(nodeId: string): string | undefined {
    return this.#nodes.get(nodeId)?.record.incarnation;
  }

  /**
   * Whether a claim made by `incarnation` of `nodeId` at `claimedAt` (its process's clock) belongs
   * to a process that is gone: one replaced under our eyes, or — for a scheduler that came up
   * after the restart and never saw the old process — one older than the current process's start.
   * A claim by an incarnation we have not heard from yet (a new process answering before its
   * first heartbeat reached us) is not stale.
   */
  isStaleClaim(nodeId: string, incarnation: string, claimedAt: number): boolean {
    if (this.#retired.get(nodeId)?.has(incarnation)) return true;
    const n = this.#nodes.get(nodeId);
    return n !== undefined && n.record.incarnation !== incarnation && claimedAt < n.record.startedAt;
  }

  isAlive(nodeId: string): boolean {
    const n = this.#nodes.get(nodeId);
    return n !== undefined && !n.dead && this.now() - n.seenAt <= this.deadAfterMs;
  }

  view(): NodeView[] {
    return [...this.#nodes.keys()].map((id) => this.#viewOf(id)!).sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  #viewOf(nodeId: string): NodeView | undefined {
    const n = this.#nodes.get(nodeId);
    if (!n) return undefined;
    const { record, seenAt } = n;
    const ago = this.now() - seenAt;
    return {
      nodeId: record.nodeId,
      incarnation: record.incarnation,
      profile: record.profile,
      state: record.state,
      alive: !n.dead && ago <= this.deadAfterMs,
      lastSeenMsAgo: ago,
      labels: record.labels,
      capabilities: record.capabilities,
      load: record.load,
    };
  }

  stop(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    this.#stop?.();
  }
}
