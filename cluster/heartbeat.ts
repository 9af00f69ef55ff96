/**
 * A node's side of membership, shared by the node agent and the virtual fleet: every heartbeat
 * is a beat on core NATS (liveness and load, no acknowledgement, no JetStream), and the full
 * record goes to the nodes KV bucket only when it says something new — the state, labels or
 * capabilities changed — or every `RECORD_EVERY_BEATS` beats, so a new scheduler leader's first
 * watch finds every node and a record never lags far behind.
 *
 * Why not a KV put per beat: a put is a JetStream write acknowledged after the stream's leader
 * stored it (and, on a cluster, after a quorum did). When that stream elects a new leader (a host
 * cut off), every node falls silent at once; and one nats-server on two cores stores ~1,900 puts/s,
 * short of 5,000 nodes beating once a second (bench/results/scale.md). A core publish is neither.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from './codec.ts';
import type { Subjects } from './subjects.ts';
import type { NodeBeat, NodeRecord } from './wire.ts';

/** A record is rewritten at least this often (in beats) even when nothing in it changed but load (the first time after up to twice as many, spread at random). */
export const RECORD_EVERY_BEATS = 30;

export class NodeHeartbeat {
  #sinceRecord = Infinity;
  #puts = 0;
  #lastShape: string | undefined;
  #putting: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: Subjects,
    private readonly bucket: KV,
    private readonly nodeId: string,
  ) {}

  /**
   * One heartbeat: publishes the beat, and puts the record when it is due. Returns what happened
   * to the record: `put` (its promise), `skipped` (due, but the previous put is still in flight:
   * an overloaded server is not piled onto) or `none`.
   */
  beat(record: NodeRecord): { record: 'none' } | { record: 'skipped' } | { record: 'put'; done: Promise<void> } {
    const beat: NodeBeat = { nodeId: record.nodeId, incarnation: record.incarnation, state: record.state, load: record.load, heartbeatAt: record.heartbeatAt };
    this.nc.publish(this.subjects.nodeBeat(this.nodeId), encode(beat));
    this.#sinceRecord++;
    if (this.#sinceRecord < RECORD_EVERY_BEATS && shapeOf(record) === this.#lastShape) return { record: 'none' };
    if (this.#putting) return { record: 'skipped' };
    return { record: 'put', done: this.put(record) };
  }

  /** Writes the record now (start, drain): the scheduler learns a state change at once. */
  put(record: NodeRecord): Promise<void> {
    // The first refresh comes 30–59 beats after the first put, at random: nodes started together
    // (a fleet, a restarted cluster) would otherwise all rewrite their records in the same second.
    this.#sinceRecord = this.#puts++ === 0 ? -Math.floor(Math.random() * RECORD_EVERY_BEATS) : 0;
    this.#lastShape = shapeOf(record);
    // A failed put is due again at the next beat. `#putting` is cleared in the put's own
    // handlers, before anyone awaiting it resumes.
    let settled: Promise<void> | undefined;
    const done = () => {
      if (this.#putting === settled) this.#putting = undefined;
    };
    const p = this.bucket.put(this.nodeId, encode(record)).then(done, (err: unknown) => {
      done();
      this.#lastShape = undefined;
      throw err;
    });
    settled = p.catch(() => undefined);
    this.#putting = settled;
    return p;
  }
}

/** What, besides load, a record says: a change makes the record due at once. */
function shapeOf(r: NodeRecord): string {
  return JSON.stringify([r.state, r.labels, r.capabilities]);
}
