/**
 * Labeled rows for pipelines (issue #16 item 1): how many rows the label join
 * (ml/monitoring/feedback.ts) wrote for a model since a time — the `triggers.newLabels` count the
 * leader's runner checks every tick — and, for `data.labeled`, those rows appended to the
 * pipeline's dataset (the run's snapshot is then a new dataset version, pinned by digest).
 *
 * Counted by the server, not by reading rows: a consumer on the labeled stream filtered to
 * `<prefix>.labeled.<model>`, starting at the time, is created and its `num_pending` read (the
 * server answers from its per-subject index), then deleted. Two requests per pipeline per tick,
 * however many rows the stream holds. Times are the stream's (the server stamps each row when the
 * join publishes it).
 *
 * Appending: a logged row's features meet the dataset's columns by name, or by position when the
 * model's one input was logged as `<input>_0…<input>_<k-1>` for k columns (monitoring's own rule,
 * ml/monitoring/columns.ts); a row whose features do not all map to finite numbers, or whose
 * label is not 0/1 (or a boolean), is counted and skipped. A prediction labeled twice counts once,
 * with its latest label.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ContentType, decode, isStreamNotFound, resources, subjects, type NatsConnection } from '../../cluster/index.ts';
import type { Dataset } from '../datasets/dataset.ts';
import { mapColumns } from '../monitoring/columns.ts';
import type { LabeledRecord } from '../monitoring/records.ts';

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

/** Every labeled row of `model` the labeled stream holds now, oldest first. */
export async function readLabeled(nc: NatsConnection, prefix: string, model: string): Promise<LabeledRecord[]> {
  const stream = resources(prefix).streams.labeled;
  const jsm = await jetstreamManager(nc);
  let ci;
  try {
    ci = await jsm.consumers.add(stream, { filter_subject: subjects(prefix).labeled(model), deliver_policy: DeliverPolicy.All, ack_policy: AckPolicy.None, inactive_threshold: 60_000_000_000 });
  } catch (err) {
    if (isStreamNotFound(err)) return [];
    throw err;
  }
  const out: LabeledRecord[] = [];
  try {
    // What is there now; rows joined meanwhile belong to the next run.
    const want = ci.num_pending;
    if (want > 0) {
      const msgs = await (await jetstream(nc).consumers.get(stream, ci.name)).consume({ max_messages: 1000 });
      for await (const m of msgs) {
        out.push(decode(m.data, ContentType.MSGPACK) as LabeledRecord);
        if (out.length >= want || m.info.pending === 0) break;
      }
      await msgs.close();
    }
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
  return out;
}

/** Group id given to appended rows for each sensitive attribute: they carry none. */
export const UNKNOWN_GROUP = 255;

/**
 * `d` with the labeled rows appended (the latest label per prediction id); `skipped` counts the
 * rows whose features or label did not fit the dataset.
 */
export function appendLabeled(d: Dataset, rows: readonly LabeledRecord[]): { dataset: Dataset; appended: number; skipped: number } {
  const latest = new Map<string, LabeledRecord>();
  for (const r of rows) {
    const prev = latest.get(r.id);
    if (!prev || r.labelTs >= prev.labelTs) latest.set(r.id, r);
  }
  const k = d.columns.length;
  const x: number[] = [];
  const y: number[] = [];
  let skipped = 0;
  for (const r of latest.values()) {
    const label = r.label === true ? 1 : r.label === false ? 0 : r.label;
    const byPosition = mapColumns(d.columns, Object.keys(r.features));
    const named = byPosition ? Object.fromEntries(Object.entries(r.features).map(([c, v]) => [byPosition[c] ?? c, v])) : r.features;
    const row = d.columns.map((c) => named[c]);
    if ((label !== 0 && label !== 1) || !row.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      skipped++;
      continue;
    }
    x.push(...(row as number[]));
    y.push(label);
  }
  const n = y.length;
  if (n === 0) return { dataset: d, appended: 0, skipped };
  const features = new Float32Array((d.rows + n) * k);
  features.set(d.features.subarray(0, d.rows * k));
  features.set(x, d.rows * k);
  const labels = new Uint8Array(d.rows + n);
  labels.set(d.labels.subarray(0, d.rows));
  labels.set(y, d.rows);
  const pad = (v: Uint8Array) => {
    const out = new Uint8Array(d.rows + n).fill(UNKNOWN_GROUP);
    out.set(v.subarray(0, d.rows));
    return out;
  };
  const dataset: Dataset = {
    ...d,
    rows: d.rows + n,
    features,
    labels,
    ...(d.sensitive ? { sensitive: pad(d.sensitive) } : {}),
    ...(d.extraSensitive ? { extraSensitive: d.extraSensitive.map((e) => ({ name: e.name, values: pad(e.values) })) } : {}),
  };
  return { dataset, appended: n, skipped };
}
