/**
 * The audit log: one entry per governed action — register, alias move, deploy, canary, promote,
 * rollback, fairness override, fairness policy change, erasure, key change — saying who did what,
 * to what, when and why, appended to the JetStream audit stream (`<prefix>.audit.<action>`,
 * created by the scheduler with the cluster's replicas). Append-only: no role may delete from it.
 *
 * Today the registry service appends (it serves every registry change, with the scheduler's
 * rights); `appendAudit` is the one call other services use (erasure, key changes) from a
 * process allowed to publish on `<prefix>.audit.>`. Reading goes through the registry service's
 * `audit` operation (admin callers only at the gateway).
 *
 * An entry never carries request bodies, only names, versions and the caller's own reason: no
 * sensitive field reaches the stream.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Type, type Static } from '@sinclair/typebox';
import { ContentType, decode, encode, resources, type NatsConnection, type Subjects } from '../../../cluster/index.ts';

export const AUDIT_ACTIONS = ['register', 'register-dataset', 'alias', 'rollback-alias', 'deploy', 'canary', 'promote', 'rollback', 'undeploy', 'override', 'fairness-policy', 'erasure', 'key-change', 'owner'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AuditEntry = Type.Object({
  /** Stream sequence (set when read back). */
  seq: Type.Optional(Type.Integer({ minimum: 1 })),
  /** Epoch ms. */
  at: Type.Number(),
  /** Who asked: `tenant:<t>` from the gateway, `cli:<user>` from the CLI, `job:<id>` for a training job, `system:<part>`; `unknown` when the caller did not say. */
  who: Type.String({ maxLength: 256 }),
  action: Type.Union(AUDIT_ACTIONS.map((a) => Type.Literal(a))),
  /** The model, dataset, entity or key acted on (a name, never a value). */
  target: Type.String({ maxLength: 256 }),
  version: Type.Optional(Type.Integer({ minimum: 1 })),
  /** The caller's reason (required for an override). */
  why: Type.Optional(Type.String({ maxLength: 2048 })),
  /** Small facts: the alias, the previous version, the blocked metrics. */
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AuditEntry = Static<typeof AuditEntry>;

/** Appends one entry (its time from `now`), returning its stream sequence. */
export async function appendAudit(nc: NatsConnection, subjects: Subjects, e: Omit<AuditEntry, 'at' | 'seq'> & { at?: number }, now: () => number = Date.now): Promise<number> {
  const entry: AuditEntry = { ...e, at: e.at ?? now(), who: e.who.slice(0, 256) };
  const ack = await jetstream(nc).publish(subjects.audit(e.action), encode(entry, ContentType.MSGPACK));
  return ack.seq;
}

export interface AuditQuery {
  /** Entries at or after this time (epoch ms). */
  since?: number;
  /** Only entries about this target (a model name). */
  target?: string;
  /** Only this version of the target. */
  version?: number;
  /** The most entries returned (the latest ones). @default 1000 */
  limit?: number;
}

/** Entries in append order (oldest first), read with a short-lived consumer from `since`. */
export async function readAudit(nc: NatsConnection, prefix: string, q: AuditQuery = {}): Promise<AuditEntry[]> {
  const stream = resources(prefix).streams.audit;
  const jsm = await jetstreamManager(nc);
  const last = (await jsm.streams.info(stream)).state.last_seq;
  if (last === 0) return [];
  const ci = await jsm.consumers.add(stream, {
    ...(q.since !== undefined ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(q.since).toISOString() } : { deliver_policy: DeliverPolicy.All }),
    ack_policy: AckPolicy.None,
    inactive_threshold: 60_000_000_000,
  });
  const limit = q.limit ?? 1000;
  const out: AuditEntry[] = [];
  try {
    if (ci.num_pending > 0) {
      const c = await jetstream(nc).consumers.get(stream, ci.name);
      const msgs = await c.consume({ max_messages: 1000 });
      for await (const m of msgs) {
        if (m.seq <= last) {
          const e = decode(m.data, ContentType.MSGPACK) as AuditEntry;
          if ((q.target === undefined || e.target === q.target) && (q.version === undefined || e.version === q.version)) {
            out.push({ ...e, seq: m.seq });
            if (out.length > limit) out.shift();
          }
        }
        if (m.seq >= last || m.info.pending === 0) break;
      }
      await msgs.close();
    }
  } finally {
    await jsm.consumers.delete(stream, ci.name).catch(() => undefined);
  }
  return out;
}

/** The header a caller names itself by on a registry request (`who` in the audit log). */
export const ACTOR_HEADER = 'Shoal-Actor';
