/**
 * Where each actor lives: one entry per actor in the `actors` KV bucket, key = actor id, with
 * the spec needed to re-create it. Every change is a compare-and-swap on the entry's revision,
 * so two nodes (or two schedulers) can never both claim an actor; the entry's `epoch` grows on
 * every placement so a node holding a stale copy knows to stop it.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { decode, encode } from './codec.ts';
import { Errors } from './errors.ts';
import { isCasConflict } from './nats-errors.ts';
import { kvKeys, retrySettling } from './resources.ts';
import { LifecycleState, type DirectoryEntry } from './wire.ts';

export interface Versioned {
  entry: DirectoryEntry;
  revision: number;
}

export class Directory {
  constructor(readonly kv: KV) {}

  async get(actorId: string): Promise<Versioned | undefined> {
    const e = await this.kv.get(actorId);
    if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
    return { entry: decode(e.value) as DirectoryEntry, revision: e.revision };
  }

  /**
   * Whether the directory still places `actorId` on `nodeId`, alive (starting, running or
   * draining): a long-running actor that writes shared state checks it now and then and stops
   * when it was fenced (re-placed elsewhere after its node was declared dead). `owner`/`state`
   * say where it is instead.
   */
  async placedOn(actorId: string, nodeId: string): Promise<{ here: boolean; owner?: string; state?: string }> {
    const v = await this.get(actorId);
    const live: readonly string[] = [LifecycleState.STARTING, LifecycleState.RUNNING, LifecycleState.DRAINING];
    return { here: !!v && v.entry.nodeId === nodeId && live.includes(v.entry.state), ...(v ? { owner: v.entry.nodeId, state: v.entry.state } : {}) };
  }

  /** Creates the entry; fails with PLACEMENT_CONFLICT if it exists. */
  async create(entry: DirectoryEntry): Promise<number> {
    try {
      return await this.kv.create(entry.actorId, encode(entry));
    } catch (err) {
      if (isCasConflict(err)) throw Errors.PLACEMENT_CONFLICT(entry.actorId);
      throw err;
    }
  }

  /** Replaces the entry only if it is still at `revision`; else PLACEMENT_CONFLICT. */
  async update(entry: DirectoryEntry, revision: number): Promise<number> {
    try {
      return await this.kv.update(entry.actorId, encode(entry), revision);
    } catch (err) {
      if (isCasConflict(err)) throw Errors.PLACEMENT_CONFLICT(entry.actorId);
      throw err;
    }
  }

  /** create() for revision 0, update() otherwise. */
  async put(entry: DirectoryEntry, revision: number): Promise<number> {
    return revision === 0 ? this.create(entry) : this.update(entry, revision);
  }

  async remove(actorId: string): Promise<void> {
    await this.kv.delete(actorId);
  }

  /** Every entry. With `settleMs`, a listing that JetStream times out is tried again for that long (a leader's start after a failover). */
  async list(opts: { settleMs?: number } = {}): Promise<Versioned[]> {
    if (opts.settleMs) return retrySettling(() => this.list(), opts.settleMs);
    const out: Versioned[] = [];
    for (const k of await kvKeys(this.kv)) {
      const v = await this.get(k);
      if (v) out.push(v);
    }
    return out;
  }

  /**
   * Every current entry, then every change (deletes as `entry: undefined`). A watch that ends
   * without being stopped (its consumer gave up while the stream was out of reach) is opened
   * again after `retryMs`, from every current entry again.
   */
  async watch(onChange: (actorId: string, v: Versioned | undefined) => void, retryMs = 2000): Promise<() => void> {
    let stopped = false;
    // The first watch is asked again while JetStream settles (the loop below re-opens later ones).
    let w = await retrySettling(() => this.kv.watch(), 15_000);
    let wake: (() => void) | undefined;
    void (async () => {
      while (!stopped) {
        for await (const e of w as AsyncIterable<KvEntry>) {
          if (e.operation !== 'PUT' || e.value.length === 0) onChange(e.key, undefined);
          else {
            try {
              onChange(e.key, { entry: decode(e.value) as DirectoryEntry, revision: e.revision });
            } catch {
              /* unreadable entry: ignored, logged by whoever wrote it */
            }
          }
        }
        while (!stopped) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, retryMs).unref();
          });
          if (stopped) break;
          try {
            w = await this.kv.watch();
            break;
          } catch {
            /* still out of reach: try again */
          }
        }
      }
    })();
    return () => {
      stopped = true;
      w.stop();
      wake?.();
    };
  }
}
