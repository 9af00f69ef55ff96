/**
 * Erasure from model monitoring (issue #20): the prediction-log records of an entity (found by
 * their hashed entity keys, `entities`), then everything keyed by those records' ids — stored
 * labels, joined rows, and the label join's index entries.
 *
 * A prediction-log message is a batch of many requests' records: a batch holding any of the
 * entity's records is deleted (erased on disk) and the others' records are published again as one
 * new batch on the same subject, so nobody else's data is lost. Consumers that already read the
 * old batch (the label join, monitors) see those records a second time; the join's index is keyed
 * by id, so it only overwrites them, but a monitor window counts them again.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { ContentType, decode, encode, resources, type NatsConnection } from '../../../cluster/index.ts';
import { indexKey } from '../../monitoring/feedback.ts';
import type { LabeledRecord, PredictionBatch, StoredLabel } from '../../monitoring/records.ts';
import { batchRecords } from '../../monitoring/columnar.ts';
import { scanStream } from './stream-scan.ts';

/** What was removed for one model. */
export interface ModelErasure {
  model: string;
  /** Prediction-log records of the entity removed. */
  records: number;
  /** Batch messages deleted (the others' records in them re-published). */
  batches: number;
  /** Stored labels and joined rows of those records removed. */
  labels: number;
  labeled: number;
}

export async function eraseFromPredictions(nc: NatsConnection, prefix: string, refs: ReadonlySet<string>): Promise<ModelErasure[]> {
  const r = resources(prefix);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const byModel = new Map<string, ModelErasure & { ids: Set<string> }>();
  const of = (model: string) => {
    let e = byModel.get(model);
    if (!e) byModel.set(model, (e = { model, records: 0, batches: 0, labels: 0, labeled: 0, ids: new Set() }));
    return e;
  };
  const hits: { seq: number; subject: string; keep: PredictionBatch['records'] }[] = [];
  await scanStream(nc, r.streams.predictions, undefined, (m) => {
    // Columnar batches (and older {records} ones) expanded to records; replica profiles have none.
    const records = batchRecords(decode(m.data, ContentType.MSGPACK));
    if (!records) return;
    const mine = records.filter((x) => x.entities?.some((ref) => refs.has(ref)));
    if (mine.length === 0) return;
    for (const x of mine) {
      const e = of(x.model);
      e.records++;
      e.ids.add(x.id);
    }
    of(mine[0]!.model).batches++;
    hits.push({ seq: m.seq, subject: m.subject, keep: records.filter((x) => !mine.includes(x)) });
  });
  for (const h of hits) {
    // Others' records first, so a failure between the two steps loses nothing (it may duplicate them).
    if (h.keep.length > 0) await js.publish(h.subject, encode({ records: h.keep } satisfies PredictionBatch, ContentType.MSGPACK));
    await jsm.streams.deleteMessage(r.streams.predictions, h.seq, true);
  }
  if (byModel.size === 0) return [];

  // Labels and joined rows of those records (one message each), then the join's index entries.
  const labelSeqs: number[] = [];
  await scanStream(nc, r.streams.feedback, undefined, (m) => {
    const l = decode(m.data, ContentType.MSGPACK) as StoredLabel;
    const e = byModel.get(l.model);
    if (e?.ids.has(l.id)) {
      labelSeqs.push(m.seq);
      e.labels++;
    }
  });
  for (const seq of labelSeqs) await jsm.streams.deleteMessage(r.streams.feedback, seq, true).catch(() => false);
  const labeledSeqs: number[] = [];
  await scanStream(nc, r.streams.labeled, undefined, (m) => {
    const l = decode(m.data, ContentType.MSGPACK) as LabeledRecord;
    const e = byModel.get(l.model);
    if (e?.ids.has(l.id)) {
      labeledSeqs.push(m.seq);
      e.labeled++;
    }
  });
  for (const seq of labeledSeqs) await jsm.streams.deleteMessage(r.streams.labeled, seq, true).catch(() => false);
  const bucket = r.buckets.predictionIndex;
  const hasIndex = await new Kvm(nc).open(bucket).then(() => true, () => false);
  if (hasIndex) {
    for (const e of byModel.values()) {
      for (const id of e.ids) await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${indexKey(e.model, id)}` }).catch(() => undefined);
    }
  }
  return [...byModel.values()].map(({ ids: _ids, ...rest }) => rest);
}
