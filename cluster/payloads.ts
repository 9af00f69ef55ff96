/**
 * Bodies larger than one NATS message (the server's `max_payload`: 8 MB for the embedded one,
 * 1 MB by default elsewhere), carried between two processes. The sender **holds** the bytes and
 * names them in an ordinary message with a {@link PayloadRef}; the receiver **pulls** them, one
 * request per chunk on `<ref.subject>.<k>`, a few requests in flight (the window bounds what is
 * on the wire, so a 64 MB body never sits whole in the server's or a client's buffers).
 *
 * Why chunks over core NATS rather than the JetStream object store: for a 16 MiB body between
 * two processes on the same nats-server, pulling 1 MiB chunks four at a time moved 1.5–1.9× the
 * MB/s of an object-store put + get at its best chunk size, in three runs on a loaded 2-core box
 * (bench/lib/payload-transports.ts: e.g. 265 vs 151 MB/s, p99 76 vs 140 ms) — the store writes
 * every byte into a stream (memory storage, even), acks each chunk and reads it back through a
 * consumer, where a pull moves it once through the server. 1 MiB chunks rather than 4 MiB (no
 * faster): a chunk holds up the other messages on its connection — small inference requests —
 * for about a millisecond, not four. Why pull rather than push: the process that needs the body is chosen late (a queue
 * group picks the replica, a hedge may send the same message to a second one), and any number of
 * them may pull the same held bytes; nothing needs to know the receiver in advance.
 *
 * A holder answers a chunk of a body it no longer holds with SHOAL_ERR_PAYLOAD_GONE. Bodies are
 * held until released (the sender knows when the message is answered) or, for `once` bodies,
 * until every chunk was served; always at most `ttlMs`, so a receiver that never comes cannot
 * pin memory.
 */
import { randomBytes } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { Errors } from './errors.ts';
import { errorHeaders, mapRequestError, throwIfError } from './rpc.ts';

/** The largest body a reference may name (a receiver allocates it whole). */
export const MAX_PAYLOAD_REF_BYTES = 1024 * 1024 * 1024;
/** Chunk size (see above: no slower than 4 MiB, and a quarter of the wait for messages behind it). */
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/** Room left in a message for everything but the bodies (envelope, other fields, headers). */
const ENVELOPE_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/** Where a held body is and how to pull it. */
export const PayloadRef = Type.Object(
  {
    /** The holder's subject for this body; chunk `k` is requested on `<subject>.<k>`. */
    subject: Type.String({ pattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*$', maxLength: 256 }),
    size: Type.Integer({ minimum: 1, maximum: MAX_PAYLOAD_REF_BYTES }),
    chunkBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
  },
  { additionalProperties: false },
);
export type PayloadRef = Static<typeof PayloadRef>;

/** The server's largest message (what a connection may publish in one go). */
export function maxPayloadOf(nc: NatsConnection): number {
  return nc.info?.max_payload ?? DEFAULT_CHUNK_BYTES;
}

/** Body bytes one message may carry inline; larger bodies travel by reference. */
export function inlineLimitOf(nc: NatsConnection): number {
  return Math.max(1024, maxPayloadOf(nc) - ENVELOPE_BYTES);
}

export interface HeldPayload {
  ref: PayloadRef;
  /** Stops holding it (idempotent); later pulls get SHOAL_ERR_PAYLOAD_GONE. */
  release(): void;
}

export interface HoldOptions {
  /** Longest it is held. */
  ttlMs: number;
  /** Released once every chunk has been served (a reply pulled by one receiver). @default false */
  once?: boolean;
}

interface Held {
  bytes: Uint8Array;
  chunkBytes: number;
  timer: NodeJS.Timeout;
  /** Chunks served so far, for `once` bodies (undefined otherwise). */
  served: Uint8Array | undefined;
  left: number;
}

/** Holds bodies for pulling under `base` (one wildcard subscription for all of them). */
export class PayloadHost {
  readonly #base: string;
  readonly #sub: Subscription;
  readonly #held = new Map<string, Held>();
  readonly #chunkBytes: number;
  #bytes = 0;

  constructor(nc: NatsConnection, base: string, opts: { chunkBytes?: number } = {}) {
    this.#base = base;
    this.#chunkBytes = Math.min(opts.chunkBytes ?? DEFAULT_CHUNK_BYTES, maxPayloadOf(nc));
    this.#sub = nc.subscribe(`${base}.*.*`, { callback: (err, m) => (err ? undefined : this.#serve(m)) });
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.#bytes;
  }

  hold(bytes: Uint8Array, opts: HoldOptions): HeldPayload {
    const token = randomBytes(12).toString('base64url');
    const chunkBytes = this.#chunkBytes;
    const chunks = Math.ceil(bytes.length / chunkBytes);
    const release = () => this.#release(token);
    const timer = setTimeout(release, opts.ttlMs);
    timer.unref();
    this.#held.set(token, { bytes, chunkBytes, timer, served: opts.once ? new Uint8Array(chunks) : undefined, left: chunks });
    this.#bytes += bytes.length;
    return { ref: { subject: `${this.#base}.${token}`, size: bytes.length, chunkBytes }, release };
  }

  close(): void {
    this.#sub.unsubscribe();
    for (const token of [...this.#held.keys()]) this.#release(token);
  }

  #release(token: string): void {
    const h = this.#held.get(token);
    if (!h) return;
    clearTimeout(h.timer);
    this.#held.delete(token);
    this.#bytes -= h.bytes.length;
  }

  #serve(m: Msg): void {
    if (!m.reply) return;
    const rest = m.subject.slice(this.#base.length + 1);
    const dot = rest.indexOf('.');
    const token = rest.slice(0, dot);
    const k = Number(rest.slice(dot + 1));
    const h = this.#held.get(token);
    const start = k * (h?.chunkBytes ?? 0);
    if (!h || !Number.isInteger(k) || k < 0 || start >= h.bytes.length) {
      m.respond(EMPTY, { headers: errorHeaders(Errors.PAYLOAD_GONE(m.subject)) });
      return;
    }
    try {
      m.respond(h.bytes.subarray(start, Math.min(h.bytes.length, start + h.chunkBytes)));
    } catch {
      return; // the connection is closing: the puller times out
    }
    if (h.served && h.served[k] === 0) {
      h.served[k] = 1;
      if (--h.left === 0) this.#release(token);
    }
  }
}

export interface FetchOptions {
  /** For the whole body. */
  timeoutMs: number;
  /** Chunk requests in flight. @default 4 */
  window?: number;
}

/** Pulls a held body whole. Errors: SHOAL_ERR_PAYLOAD_GONE (the holder has it no more, or is gone), SHOAL_ERR_TIMEOUT. */
export async function fetchPayload(nc: NatsConnection, ref: PayloadRef, opts: FetchOptions): Promise<Uint8Array> {
  const n = Math.ceil(ref.size / ref.chunkBytes);
  // Allocated when the first chunk has come, so a reference to nothing (a forged one, a holder
  // gone) costs no memory; every byte is written before anyone reads it: no need to zero it.
  let out: Buffer | undefined;
  const deadline = Date.now() + opts.timeoutMs;
  let next = 0;
  let failed = false;
  const pullOne = async (k: number): Promise<void> => {
    const subject = `${ref.subject}.${k}`;
    const timeout = Math.max(1, deadline - Date.now());
    let m: Msg;
    try {
      m = await nc.request(subject, EMPTY, { timeout });
    } catch (err) {
      const e = mapRequestError(subject, timeout, err);
      throw e.code === Errors.NO_RESPONDERS.code ? Errors.PAYLOAD_GONE(ref.subject) : e;
    }
    throwIfError(m);
    const want = Math.min(ref.chunkBytes, ref.size - k * ref.chunkBytes);
    if (m.data.length !== want) throw Errors.INTERNAL(`chunk ${k} of ${ref.subject} has ${m.data.length} bytes, expected ${want}`);
    (out ??= Buffer.allocUnsafe(ref.size)).set(m.data, k * ref.chunkBytes);
  };
  // `window` pullers take the next chunk as each finishes; the first failure stops them all.
  const pull = async (): Promise<void> => {
    while (next < n && !failed) {
      try {
        await pullOne(next++);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.window ?? 4, n) }, pull));
  return out!;
}
