/**
 * The privacy service (issue #20): `<prefix>.privacy.forget` — `{entity, reason?}` → the
 * {@link ForgetResult}. A control module of the scheduler (ml/control.ts), so it runs with the
 * rights erasure needs (every stream, the online bucket, the artifacts store). One queue group;
 * erasures run one at a time per process (each is a scan of the logs, and two at once would
 * rewrite the same Parquet manifest). The log line names the key columns and the counts, never
 * the entity's values.
 */
import type { Subscription } from '@nats-io/transport-node';
import { serve, type Logger, type NatsConnection, type Subjects } from '../../../cluster/index.ts';
import { ForgetRequest, forget, type ForgetResult } from './erasure.ts';
import { ACTOR_HEADER, appendAudit } from '../audit/log.ts';

export interface PrivacyServiceOptions {
  /** A connection with the scheduler's rights. */
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  /** @default `<prefix>-privacy` */
  queue?: string;
}

export async function startPrivacyService(o: PrivacyServiceOptions): Promise<{ stop(): Promise<void> }> {
  const queue = o.queue ?? `${o.subjects.prefix}-privacy`;
  let chain: Promise<unknown> = Promise.resolve();
  const sub: Subscription = serve(
    o.nc,
    o.subjects.privacyForget,
    ForgetRequest,
    (req, m) => {
      const run = chain.then(async (): Promise<ForgetResult> => {
        const r = await forget(o.nc, o.subjects.prefix, req);
        // Audited by key columns and counts only: the entity's values never reach the audit log.
        await appendAudit(o.nc, o.subjects, {
          who: m.headers?.get(ACTOR_HEADER) || 'unknown',
          action: 'erasure',
          target: `entity:${r.columns.join(',')}`,
          ...(req.reason ? { why: req.reason } : {}),
          details: { removed: r.removed, views: r.views.map((v) => v.view), models: r.models.map((x) => x.model), retrain: r.builtFrom.models.map((x) => `${x.name}@${x.version}`) },
        }).catch((err: unknown) => o.log.error({ err: (err as Error).message }, 'erasure done but its audit entry was not written'));
        o.log.info(
          { columns: r.columns, removed: r.removed, views: r.views.map((v) => v.view), models: r.models.map((m) => m.model), retrain: r.builtFrom.models.map((m) => `${m.name}@${m.version}`) },
          'entity erased',
        );
        return r;
      });
      chain = run.catch(() => undefined);
      return run;
    },
    { queue, log: o.log },
  );
  return {
    async stop() {
      sub.unsubscribe();
    },
  };
}
