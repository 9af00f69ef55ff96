/**
 * The scheduler's view of the fleet: watches the nodes KV bucket for each node's record (state,
 * labels, capabilities: written when they change) and listens to the nodes' beats on core NATS
 * (liveness and load, every heartbeat: cluster/heartbeat.ts), and judges liveness by the time a
 * node was last heard as seen here (server 2.9 has no per-key TTL, and local receive time is
 * immune to clock skew between machines). A sweep declares silent nodes dead
 * once, publishes `shoal.events.node-dead`, and tells the listeners (re-placement).
 *
 * A node id outlives its processes: a supervisor restarts a crashed agent under the same id in
 * a second or two, long before the heartbeat timeout. Each record carries the process's
 * incarnation (boot id); a record with a new incarnation is the death of the old process, told
 * to the dead-listeners at once, and the old incarnation's late records (a process that was not
 * dead after all, still heartbeating) are ignored from then on.
 *
 * Should every node still fall quiet at once (this process's own connection, core NATS, or — for
 * records — a stalled nodes stream), the view asks the bucket whether it holds records the watch
 * has not delivered, and calls the roll over presence pings: a node that answers is alive, one
 * that does not is judged by when it was last heard as usual (see blind()).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { Errors, NodeBeat, decode, retrySettling, validate, type Logger, type NodeRecord, type NodeView } from '../cluster/index.ts';

/** A node's answer to a roll call over core NATS (its presence reply). */
export interface NodeAnswer {
  nodeId: string;
  /** Its process's boot id, when the answer carries one: an answer from another incarnation does not vouch for the known one. */
  incarnation?: string;
}

export class MembershipView {
  readonly #nodes = new Map<string, { record: NodeRecord; seenAt: number; dead: boolean }>();
  /** Incarnations replaced by a newer one, per node id (their records are stale). */
  readonly #retired = new Map<string, Set<string>>();
  #stop: (() => void) | undefined;
  #sweep: NodeJS.Timeout | undefined;
  /** When the last record from any node arrived (undefined before the first). */
  #lastHeard: number | undefined;
  /** Whether the current quiet spell was already reported. */
  #blindSaid = false;
  readonly #deadListeners: ((nodeId: string, why: 'silent' | 'restarted') => void)[] = [];
  readonly #changeListeners: ((nodeId: string, view: NodeView | undefined) => void)[] = [];

  /** The highest revision the watch has delivered. */
  #lastRevision = 0;
  /** The latest answer to "has the bucket records the watch has not delivered?" (see blind()). */
  #channel: { ok: boolean; at: number } | undefined;
  #probing = false;
  readonly #probe: () => Promise<number>;
  /** The latest roll call over core NATS during a quiet spell: when it was sent and how many known nodes answered. */
  #roll: { at: number; answered: number } | undefined;
  #calling = false;
  readonly #askNodes: (() => Promise<NodeAnswer[]>) | undefined;
  readonly #beats: ((onBeat: (nodeId: string, data: Uint8Array) => void) => () => void) | undefined;
  #unbeat: (() => void) | undefined;
  /** Unreadable beats (counted; logged once a minute at most, so a broken sender cannot flood the log). */
  #badBeats = 0;
  #badBeatSaidAt = -Infinity;
  private readonly now: () => number;

  /**
   * @param opts.now the clock (tests of the policy inject one)
   * @param opts.lastSeq the nodes stream's last sequence, asked when every node falls quiet at once
   * (default: the bucket's status)
   * @param opts.askNodes a roll call over core NATS (the scheduler: a presence ping); without it a
   * quiet fleet whose bucket lags is only ever "blind"
   * @param opts.beats subscribes to the nodes' beats (the scheduler: `<prefix>.node.*.beat`),
   * calling back with the node id of the subject (a node may publish only its own) and the body;
   * returns the unsubscribe
   */
  constructor(
    private readonly bucket: KV,
    readonly deadAfterMs: number,
    private readonly log: Logger,
    opts: { now?: () => number; lastSeq?: () => Promise<number>; askNodes?: () => Promise<NodeAnswer[]>; beats?: (onBeat: (nodeId: string, data: Uint8Array) => void) => () => void } = {},
  ) {
    this.#beats = opts.beats;
    this.now = opts.now ?? Date.now;
    this.#probe = opts.lastSeq ?? (async () => (await this.bucket.status()).streamInfo.state.last_seq);
    this.#askNodes = opts.askNodes;
  }

  async start(): Promise<void> {
    // Default watch: the last value of every key, then every update.
    const watch = await retrySettling(() => this.bucket.watch(), 15_000);
    this.#stop = () => watch.stop();
    this.#sweep = setInterval(() => this.sweep(), Math.max(50, Math.floor(this.deadAfterMs / 4)));
    void (async () => {
      for await (const e of watch) this.#apply(e);
    })();
    this.#unbeat = this.#beats?.((nodeId, data) => {
      try {
        this.beat(nodeId, decode(data));
      } catch (err) {
        this.#badBeat(nodeId, err);
      }
    });
  }

  /**
   * A beat from `fromNodeId` (the subject's node id). It refreshes a node whose record is known
   * and whose incarnation it names — a process whose record has not come through yet, or one
   * retired, is not vouched for by its beats — and carries its state and load (unless the record
   * already holds newer ones: beats and records take different paths).
   */
  beat(fromNodeId: string, body: unknown): void {
    const b = validate(NodeBeat, body, 'node beat');
    if (b.nodeId !== fromNodeId) throw Errors.BAD_MESSAGE(`${fromNodeId}'s beat subject`, `the beat names node ${b.nodeId}`);
    const n = this.#nodes.get(b.nodeId);
    if (!n || n.record.incarnation !== b.incarnation) return;
    const now = this.now();
    this.#heard(now);
    const wasDead = n.dead;
    const stateWas = n.record.state;
    if (b.heartbeatAt >= n.record.heartbeatAt) n.record = { ...n.record, state: b.state, load: b.load, heartbeatAt: b.heartbeatAt };
    n.seenAt = now;
    n.dead = false;
    if (wasDead) this.log.info({ nodeId: b.nodeId }, 'node back');
    if (wasDead || stateWas !== n.record.state) this.#changed(b.nodeId);
  }

  #badBeat(nodeId: string, err: unknown): void {
    this.#badBeats++;
    const now = this.now();
    if (now - this.#badBeatSaidAt < 60_000) return;
    this.#badBeatSaidAt = now;
    this.log.warn({ nodeId, err: (err as Error).message, unreadable: this.#badBeats }, 'unreadable node beat ignored');
  }

  /** Something was heard from a node: after a spell in which nothing came from anyone, each node gets a full period. */
  #heard(now: number): void {
    // Records flow again after a spell in which none came from anyone: the silence was the
    // channel's (the bucket's stream electing a leader, this process's connection), not the nodes'.
    // Each gets a whole deadAfterMs from now to be heard, so the ones still up are not declared
    // dead before their beat lands.
    // Not when a roll call during the spell was answered: then the view did hear, the nodes that
    // answered are already refreshed, and a node that did not answer keeps its count (else a
    // bucket delivering in bursts would hand the cut-off host a new period with each burst).
    const r = this.#roll;
    const rollHeard = r !== undefined && this.#lastHeard !== undefined && r.at > this.#lastHeard && r.answered > 0;
    if (this.#lastHeard !== undefined && now - this.#lastHeard > this.#quietMs() && !rollHeard) {
      this.log.info({ quietMs: now - this.#lastHeard }, 'nodes heard again after a quiet spell; every node gets a full dead-after period to be heard');
      for (const n of this.#nodes.values()) if (!n.dead) n.seenAt = Math.max(n.seenAt, now);
    }
    this.#lastHeard = now;
    this.#blindSaid = false;
  }

  #apply(e: KvEntry): void {
    this.#lastRevision = Math.max(this.#lastRevision, e.revision);
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
      const now = this.now();
      this.#heard(now);
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
      // A record that took longer than the beats after it (same process) keeps their state and load.
      const kept = prev && !restarted && prev.record.heartbeatAt > record.heartbeatAt ? { state: prev.record.state, load: prev.record.load, heartbeatAt: prev.record.heartbeatAt } : {};
      this.#nodes.set(e.key, { record: { ...record, ...kept }, seenAt: now, dead: false });
      if (!prev || prev.dead || restarted || prev.record.state !== this.#nodes.get(e.key)!.record.state) this.#changed(e.key);
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

  /** Silence from every node at once longer than this makes the view suspect itself, not them. */
  #quietMs(): number {
    return this.deadAfterMs / 2;
  }

  /**
   * Whether the view cannot tell: no beat or record from any of two or more live nodes for half
   * the dead-after period, and nothing else shows them silent. Every node going quiet in the same
   * instant is what a broken channel looks like (this process cut off; before beats, a nodes
   * stream whose leader's host was cut off: the netns test saw all three nodes "die" when one host
   * was partitioned); a real death is one node quiet while others are heard. So two questions go out in the background:
   *  - the bucket's last sequence: equal to what the watch delivered means the nodes really wrote
   *    nothing, and they are judged by their records as usual;
   *  - a roll call over core NATS, which does not wait on JetStream: each node that answers counts
   *    as heard at the call's time, and when at least one answered the rest are judged as usual
   *    (so the host that is cut off dies on time while its stream is still electing).
   * No answer to either (this process itself cut off, or JetStream and the nodes all unreachable),
   * and the view is blind: no one is declared dead.
   */
  blind(now = this.now()): boolean {
    if (this.#lastHeard === undefined || now - this.#lastHeard <= this.#quietMs()) return false;
    let live = 0;
    for (const n of this.#nodes.values()) if (!n.dead) live++;
    if (live < 2) return false;
    this.#askBucket(now);
    this.#callRoll(now);
    const c = this.#channel;
    if (c && c.at > this.#lastHeard && c.ok) return false;
    const r = this.#roll;
    return !(r && r.at > this.#lastHeard && r.answered > 0);
  }

  #askBucket(now: number): void {
    if (this.#probing || (this.#channel && this.#channel.at > (this.#lastHeard ?? 0) && now - this.#channel.at < this.deadAfterMs / 4)) return;
    this.#probing = true;
    const delivered = this.#lastRevision;
    void this.#probe()
      .then(
        (lastSeq) => (this.#channel = { ok: lastSeq <= Math.max(delivered, this.#lastRevision), at: this.now() }),
        () => (this.#channel = { ok: false, at: this.now() }),
      )
      .finally(() => (this.#probing = false));
  }

  /** Asks the nodes over core NATS, at most every quarter period; answers refresh the nodes that gave them. */
  #callRoll(now: number): void {
    const ask = this.#askNodes;
    if (!ask || this.#calling || (this.#roll && this.#roll.at > (this.#lastHeard ?? 0) && now - this.#roll.at < this.deadAfterMs / 4)) return;
    this.#calling = true;
    const at = now;
    void ask()
      .then(
        (answers) => {
          let answered = 0;
          for (const a of answers) {
            const n = this.#nodes.get(a.nodeId);
            if (!n || n.dead || (a.incarnation !== undefined && a.incarnation !== n.record.incarnation)) continue;
            n.seenAt = Math.max(n.seenAt, at);
            answered++;
          }
          const was = this.#roll;
          this.#roll = { at, answered };
          if (answered > 0 && !(was && was.at > (this.#lastHeard ?? 0) && was.answered > 0)) {
            this.log.warn({ answered, known: [...this.#nodes.values()].filter((n) => !n.dead).length }, 'no beat or record from any node; judging liveness by the nodes\' answers to a roll call over core NATS until they are heard again');
          }
        },
        () => (this.#roll = { at, answered: 0 }),
      )
      .finally(() => (this.#calling = false));
  }

  /** Declares nodes silent for longer than deadAfterMs dead (each once). */
  sweep(): void {
    const now = this.now();
    if (this.blind(now)) {
      if (!this.#blindSaid) this.log.warn({ quietMs: now - this.#lastHeard! }, 'no beat or record from any node and no answer to a roll call (this process cut off?); no node is declared dead until nodes are heard again or answer');
      this.#blindSaid = true;
      return;
    }
    for (const [nodeId, n] of this.#nodes) {
      if (!n.dead && now - n.seenAt > this.deadAfterMs) {
        n.dead = true;
        this.log.warn({ nodeId, silentMs: now - n.seenAt }, 'node declared dead');
        for (const l of this.#deadListeners) l(nodeId, 'silent');
        this.#changed(nodeId);
      }
    }
  }

  /** Whether any node record has been heard since start (the watch has delivered at all). */
  heardAny(): boolean {
    return this.#lastHeard !== undefined;
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
    if (n === undefined || n.dead) return false;
    const now = this.now();
    return now - n.seenAt <= this.deadAfterMs || this.blind(now);
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
      alive: !n.dead && (ago <= this.deadAfterMs || this.blind()),
      lastSeenMsAgo: ago,
      labels: record.labels,
      capabilities: record.capabilities,
      load: record.load,
    };
  }

  stop(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    this.#unbeat?.();
    this.#stop?.();
  }
}
