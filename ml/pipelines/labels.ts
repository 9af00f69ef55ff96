/**
 * Labeled rows for pipelines (issue #16 item 1): how many rows the label join
 * (ml/monitoring/feedback.ts) wrote for a model since a time — the `triggers.newLabels` count the
 * leader's runner checks every tick.
 *
 * Counted by the server, not by reading rows: a consumer on the labeled stream filtered to
 * `<prefix>.labeled.<model>`, starting at the time, is created and its `num_pending` read (the
 * server answers from its per-subject index), then deleted. Two requests per pipeline per tick,
 * however many rows the stream holds. Times are the stream's (the server stamps each row when the
 * join publishes it).
 */
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { isStreamNotFound, resources, subjects, type NatsConnection } from '../../cluster/index.ts';

/** A `labelsSince` for the runner: labeled rows of `model` joined at or after `sinceMs` (epoch ms). */
export function labeledRowsSince(nc: NatsConnection, prefix = 'shoal'): (model: string, sinceMs: number) => Promise<number> {
  const stream = resources(prefix).streams.labeled;
  const s = subjects(prefix);
  return async (model, sinceMs) => {
    const jsm = await jetstreamManager(nc);
    let ci;
    try {
      ci = await jsm.consumers.add(stream, {
        filter_subject: s.labeled(model),
        deliver_policy: DeliverPolicy.StartTime,
        opt_start_time: new Date(sinceMs).toISOString(),
        ack_policy: AckPolicy.None,
        mem_storage: true,
        // Deleted below; should that fail, the server drops it after this long.
        inactive_threshold: 30_000_000_000,
      });
    } catch (err) {
      if (isStreamNotFound(err)) return 0; // no labeled stream (monitoring never set up): no labels
      throw err;
    }
    void jsm.consumers.delete(stream, ci.name).catch(() => undefined);
    return ci.num_pending;
  };
}
