/**
 * PII declarations (issue #20 item 4) and what follows from them. A field is PII when it is
 * declared so on a feature view (`features[].pii: true`), on a model signature (`signature.pii`:
 * input, `<input>_<i>` column or output names) or, for a model trained on feature views, when the
 * model column comes from a PII feature of one of its views. PII implies `logExclude`: the
 * prediction log never copies the value, and error messages name the field but withhold its value.
 *
 * Entity keys are not values here: they are the handle erasure works by (erasure.ts), and the
 * prediction log holds them only hashed (`entityRef`).
 */
import { createHash } from 'node:crypto';
import type { FeatureViewDef } from '../../features/schemas.ts';
import type { MonitoringSpec } from '../../monitoring/records.ts';
import type { ModelVersion } from '../../registry/schemas.ts';

/** What an error message says instead of a PII value. */
export const WITHHELD = '(value withheld: PII)';

/** The names of a view's PII features. */
export function piiFeatures(def: Pick<FeatureViewDef, 'features'>): Set<string> {
  return new Set(def.features.filter((f) => f.pii === true).map((f) => f.name));
}

/** A value as an error message may show it: JSON for an ordinary field, {@link WITHHELD} for a PII one. */
export function shown(value: unknown, pii: boolean): string {
  return pii ? WITHHELD : JSON.stringify(value);
}

/** Minimal view of what `piiLogFields` reads of a model's feature views (the pinned versions' definitions). */
export interface PinnedView {
  name: string;
  definition: Pick<FeatureViewDef, 'features'>;
  /** The view's columns in the model input, in order (`txn_count`, `country=FR`, …). */
  columns: readonly string[];
}

/**
 * Fields a replica's prediction log must never copy: the signature's `pii` names, and for a model
 * fed by feature views (`views` in input order, one model input `input`) the `<input>_<i>`
 * columns a PII feature produced (a one-hot feature produces several).
 */
export function piiLogFields(mv: Pick<ModelVersion, 'signature'> & { lineage?: ModelVersion['lineage'] }, views: readonly PinnedView[] = [], input?: string): string[] {
  // A training job records its dataset's PII columns as `lineage.pii` (model input columns).
  const fromData = (mv.lineage as { pii?: unknown } | undefined)?.pii;
  const out = new Set<string>([...(mv.signature.pii ?? []), ...(Array.isArray(fromData) ? fromData.filter((x): x is string => typeof x === 'string') : [])]);
  if (input !== undefined) {
    let offset = 0;
    for (const v of views) {
      const pii = piiFeatures(v.definition);
      v.columns.forEach((col, k) => {
        const feature = col.includes('=') ? col.slice(0, col.indexOf('=')) : col;
        if (pii.has(feature)) out.add(`${input}_${offset + k}`);
      });
      offset += v.columns.length;
    }
  }
  return [...out].sort();
}

/** The deployment's monitoring options with the PII fields added to `logExclude` (PII implies excluded). */
export function withPiiExcluded(spec: MonitoringSpec, fields: readonly string[]): MonitoringSpec {
  if (fields.length === 0) return spec;
  return { ...spec, logExclude: [...new Set([...(spec.logExclude ?? []), ...fields])] };
}

/**
 * The pseudonymous reference to an entity key the prediction log keeps instead of the key itself:
 * sha256 of `<column>\0<value>`, 32 hex digits. Erasure computes the same to find the records.
 * Unsalted: whoever can read the stream and guess a key can confirm it (see the README).
 */
export function entityRef(column: string, value: string): string {
  return createHash('sha256').update(`${column}\u0000${value}`).digest('hex').slice(0, 32);
}

/** What a replica knows of its feature input (ml/serving/entity-features.ts `FeatureInput`). */
interface ReplicaFeatureInput {
  input: string;
  views: readonly { version: { name: string; definition: Pick<FeatureViewDef, 'features'> }; encoder: { columns: readonly string[] } }[];
}

/** {@link piiLogFields} of a loaded replica: its version, and its feature input when it serves by entity. */
export function replicaPiiFields(mv: Pick<ModelVersion, 'signature' | 'lineage'>, fi: ReplicaFeatureInput | undefined): string[] {
  if (!fi) return piiLogFields(mv);
  return piiLogFields(mv, fi.views.map((v) => ({ name: v.version.name, definition: v.version.definition, columns: v.encoder.columns })), fi.input);
}

/**
 * A JSON parser's message without the quoted input V8 puts in it (`Unexpected token 'p',
 * "{"email":pii…"... is not valid JSON`): a malformed body may carry personal data, and a 400
 * echoes its error. The position-style messages (`… at position 24`) carry no input and stay.
 */
export function jsonErrorMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.replace(/,?\s*"[\s\S]*"(\.\.\.)? is not valid JSON\s*$/, ' (the body is not shown)');
}
