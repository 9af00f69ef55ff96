/**
 * A replica's prediction log wired to JetStream: batches go to `<prefix>.predictions.<model>`
 * (the predictions stream), MessagePack, split under the message size limit.
 */
import { jetstream } from '@nats-io/jetstream';
import { ContentType, encode, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { PredictionLog, encodeBatches } from './prediction-log.ts';
import type { MonitoringSpec } from './records.ts';

export function replicaPredictionLog(o: { nc: NatsConnection; subjects: Subjects; model: string; version: number; spec: MonitoringSpec; log: Logger }): PredictionLog {
  const js = jetstream(o.nc);
  const subject = o.subjects.predictions(o.model);
  return new PredictionLog({
    model: o.model,
    version: o.version,
    spec: o.spec,
    publish: async (records) => {
      for (const bytes of encodeBatches(records, (b) => encode(b, ContentType.MSGPACK))) await js.publish(subject, bytes);
    },
    onPublishError: (err, lost) => o.log.warn({ model: o.model, version: o.version, lost, err: err.message }, 'prediction log: a batch could not be published (records counted as lost; serving goes on)'),
  });
}
