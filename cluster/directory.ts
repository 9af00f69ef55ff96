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
import type { DirectoryEntry } from './wire.ts';

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

  async list(): Promise<Versioned[]> {
    const out: Versioned[] = [];
    const keys: string[] = [];
    for await (const k of await this.kv.keys()) keys.push(k);
    for (const k of keys) {
      const v = await this.get(k);
      if (v) out.push(v);
    }
    return out;
  }

  /** Every current entry, then every change (deletes as `entry: undefined`). */
  async watch(onChange: (actorId: string, v: Versioned | undefined) => void): Promise<() => void> {
    const w = await this.kv.watch();
    void (async () => {
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
    })();
    return () => w.stop();
  }
}
