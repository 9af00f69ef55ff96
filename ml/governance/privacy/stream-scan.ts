/**
 * Reads every message of a stream (optionally one subject filter) once, through an ephemeral
 * pull consumer that is deleted afterwards: what erasure uses to find an entity's messages. A
 * full scan, linear in the stream's size (see the README's privacy notes for what that costs).
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '../../../cluster/index.ts';

export interface ScannedMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
}

/** Calls `fn` for each message with sequence ≤ the stream's last at the start, in order. */
export async function scanStream(nc: NatsConnection, stream: string, filter: string | undefined, fn: (m: ScannedMessage) => void | Promise<void>): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return 0;
  const last = info.state.last_seq;
  const ci = await jsm.consumers.add(stream, {
    ...(filter ? { filter_subject: filter } : {}),
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.None,
    inactive_threshold: 60_000_000_000,
  });
  let seen = 0;
  try {
    if (ci.num_pending > 0) {
      const c = await jetstream(nc).consumers.get(stream, ci.name);
      const msgs = await c.consume({ max_messages: 1000 });
      for await (const m of msgs) {
        if (m.seq <= last) {
          seen++;
          await fn({ seq: m.seq, subject: m.subject, data: m.data });
        }
        if (m.seq >= last || m.info.pending === 0) break;
      }
      await msgs.close();
    }
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
  return seen;
}
