/**
 * A replica's prediction log wired to JetStream: columnar record batches and the replica's profile
 * deltas go to `<prefix>.predictions.<model>` (the predictions stream), MessagePack, split under
 * the message size limit. The profile is kept when the version has a reference profile (its
 * schema names the columns) and the spec asks for it (`replicaProfiles`: by default only when sampling).
 */
import { jetstream } from '@nats-io/jetstream';
import { ContentType, encode, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { PredictionLog } from './prediction-log.ts';
import { logHeaders } from './prediction-lookup.ts';
import { replicaProfiles, type MonitoringSpec } from './records.ts';
import { ReplicaProfiler, sliceLength } from './replica-profile.ts';
import type { ReferenceProfile } from './stats/profile.ts';
import { resolveMonitorOptions } from './monitor-core.ts';

export function replicaPredictionLog(o: { nc: NatsConnection; subjects: Subjects; model: string; version: number; spec: MonitoringSpec; log: Logger; replica?: string; reference?: ReferenceProfile | undefined }): PredictionLog {
  const js = jetstream(o.nc);
  const subject = o.subjects.predictions(o.model);
  const profiler = o.reference && replicaProfiles(o.spec) ? new ReplicaProfiler(o.model, o.version, o.replica ?? 'replica', o.reference, sliceLength(resolveMonitorOptions(o.spec).windows)) : undefined;
  return new PredictionLog({
    model: o.model,
    version: o.version,
    spec: o.spec,
    ...(profiler ? { profiler } : {}),
    encode: (m) => encode(m, ContentType.MSGPACK),
    publish: async (bytes, meta) => {
      await js.publish(subject, bytes, { headers: logHeaders(meta) });
    },
    onPublishError: (err, lost) => o.log.warn({ model: o.model, version: o.version, lost, err: err.message }, 'prediction log: a message could not be published (records counted as lost; serving goes on)'),
  });
}
