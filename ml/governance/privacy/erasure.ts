/**
 * `forget(entity)` (issue #20, GDPR Art. 17): removes one entity from the online feature store,
 * the offline feature log and its Parquet files (erase-features.ts), and the prediction log with
 * the labels and joined rows of its records (erase-predictions.ts), and lists the training sets
 * and model versions built from its data (erase-lineage.ts). Runs with the scheduler's rights
 * (service.ts); an unknown entity removes nothing and is not an error.
 *
 * The entity is given as its key columns, `{customer_id: "c-17"}`: the same names the feature
 * views are keyed by and predictions by entity send.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { NatsConnection } from '../../../cluster/index.ts';
import { MlErrors } from '../../errors.ts';
import { FeatureViews } from '../../features/views.ts';
import { eraseFromView, keyMatch, type ViewErasure } from './erase-features.ts';
import { builtFrom, type BuiltFrom } from './erase-lineage.ts';
import { eraseFromPredictions, type ModelErasure } from './erase-predictions.ts';
import { entityRef } from './pii.ts';

/** Key column → value; at least one. */
export const ForgetRequest = Type.Object(
  {
    entity: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), Type.String({ minLength: 1, maxLength: 256 }), { minProperties: 1, maxProperties: 8 }),
    /** Who asked and why (kept for the audit log). */
    reason: Type.Optional(Type.String({ maxLength: 1000 })),
  },
  { additionalProperties: false },
);
export type ForgetRequest = Static<typeof ForgetRequest>;

export interface ForgetResult {
  /** The key columns named (their values are not repeated back). */
  columns: string[];
  views: ViewErasure[];
  models: ModelErasure[];
  /** Built from the entity's data before the erasure: rebuild and retrain these. */
  builtFrom: BuiltFrom;
  /** Everything removed, counted: online records + events + Parquet rows + prediction records + labels + joined rows. */
  removed: number;
}

/** Parses `customer_id=c-17[,merchant_id=m-3]` (the CLI's argument). */
export function parseEntity(arg: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of arg.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) throw MlErrors.BAD_INPUT(`entity: "${part.slice(0, Math.max(0, eq)) || '?'}=…" — give the entity as <key column>=<value>[,<key column>=<value>], e.g. customer_id=c-17`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1);
  }
  return out;
}

export async function forget(nc: NatsConnection, prefix: string, req: ForgetRequest): Promise<ForgetResult> {
  const entity = req.entity;
  const views = await FeatureViews.open(nc, prefix);
  const touched: ViewErasure[] = [];
  const firstSeq = new Map<string, number>();
  for (const head of await views.list()) {
    const v = await views.version(head.name);
    if (!v) continue;
    const match = keyMatch(v.definition, entity);
    if (match.length === 0) continue;
    const e = await eraseFromView(nc, prefix, v.definition, match);
    if (e.events.length > 0) firstSeq.set(e.view, Math.min(...e.events));
    if (e.onlineKeys + e.events.length + e.rows > 0) touched.push(e);
  }
  const refs = new Set(Object.entries(entity).map(([col, val]) => entityRef(col, val)));
  const models = await eraseFromPredictions(nc, prefix, refs);
  const lineage = await builtFrom(nc, prefix, firstSeq);
  const removed = touched.reduce((n, v) => n + v.onlineKeys + v.events.length + v.rows, 0) + models.reduce((n, m) => n + m.records + m.labels + m.labeled, 0);
  return { columns: Object.keys(entity).sort(), views: touched, models, builtFrom: lineage, removed };
}

/** The CLI's report: what was removed, and what to retrain. */
export function formatForget(r: ForgetResult): string {
  const lines: string[] = [];
  if (r.removed === 0) lines.push(`nothing removed: no record of this entity (${r.columns.join(', ')}) in the feature store or the prediction log`);
  for (const v of r.views) lines.push(`feature view ${v.view}: ${v.onlineKeys} online record(s), ${v.events.length} offline-log event(s)${v.events.length ? ` (seq ${v.events.join(', ')})` : ''}, ${v.rows} Parquet row(s) in ${v.files} file(s) rewritten`);
  for (const m of r.models) lines.push(`model ${m.model}: ${m.records} prediction-log record(s) (${m.batches} batch message(s) rewritten), ${m.labels} label(s), ${m.labeled} joined row(s)`);
  if (r.builtFrom.datasets.length + r.builtFrom.models.length > 0) lines.push('built from this entity\'s data (rebuild / retrain):');
  for (const d of r.builtFrom.datasets) lines.push(`  dataset ${d.name}@${d.digest.slice(0, 12)} (feature views ${d.views.join(', ')})`);
  for (const m of r.builtFrom.models) lines.push(`  model ${m.name} v${m.version} (via ${m.via})`);
  if (r.removed > 0) lines.push(`removed ${r.removed} record(s) in all`);
  return lines.join('\n');
}
