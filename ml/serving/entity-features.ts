/**
 * Predictions by entity (issue #14 item 5): a replica of a model trained on feature views takes
 * `{"entities": [{"customer_id": "c-17"}, …], "features": {…}}` instead of tensors, reads each
 * view's online values for those entities (one batched read per view, through the online store's
 * read API), lays request-time values over them, runs the view's transformations — the *same*
 * compiled encoder the training set was built with (features/transforms.ts) — and assembles the
 * model's one input in the column order recorded at training.
 *
 * What a model records (`lineage.features`, written by the training coordinator or given at
 * register): the views as `name@version` with their digests and, in `columns`, the model input's
 * columns in order (`<view>.<column>`). The replica serves with those *pinned* versions: the
 * transformation parameters the model learnt with, whatever has been applied since.
 *
 * Compatible (checked at deploy, before any replica starts, and again by the replica at load):
 * 1. every recorded `name@version` exists with the recorded digest and is fitted;
 * 2. the recorded columns are exactly the pinned versions' columns, view after view;
 * 3. the model has one input, FP32 `[N, width]` (width fixed or dynamic), and no processor;
 * 4. each view's *current* version — the one pushes are checked against, so the one that decides
 *    which raw values keep reaching the online store — has the same entity columns and still has
 *    every feature of the pinned version, with the same type.
 * A view re-fitted with other parameters (new means, a longer vocabulary) stays compatible: the
 * pinned parameters are used. One that dropped or retyped a feature, or changed its key, is not.
 *
 * Missing values: an entity with no record in a view, a feature never set, or one older than the
 * view's TTL, and not given in the request, gets the feature's `fill` — the rule the point-in-time
 * training set applied to the same gaps, so an unknown customer is predicted as training treated
 * one. The response says, per row, which views had the entity and which features were filled.
 * `"on_missing": "error"` refuses an entity unknown to a view instead (404).
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { NatsConnection } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { FeatureViews } from '../features/views.ts';
import { OnlineStore } from '../features/online.ts';
import { numberOf, sensitiveGroups, type Encoder, type SensitiveGroups } from '../features/transforms.ts';
import type { FeatureSpec, FeatureViewVersion, RawValue } from '../features/schemas.ts';
import type { ModelVersion, Signature } from '../registry/schemas.ts';
import { binaryOutputs, checkOutputs, type Decoded } from './codecs/index.ts';
import type { JsonFormat } from './messages.ts';
import { entityRef, piiFeatures, shown } from '../governance/privacy/pii.ts';

/** `lineage.features` of a model version: what it was trained on, and its input layout. */
export const FeatureLineageSchema = Type.Object(
  {
    views: Type.Array(Type.Object({ view: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}@[1-9][0-9]{0,8}$' }), digest: Type.String({ minLength: 1 }), through: Type.Optional(Type.Integer()) }), { minItems: 1, maxItems: 64 }),
    datasetDigest: Type.Optional(Type.String()),
    /** The model input's columns in order (`<view>.<column>`, the training set's columns). */
    columns: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);
export type FeatureLineageRecord = Static<typeof FeatureLineageSchema>;

const Row = Type.Record(Type.String(), Type.Unknown());
const OnMissing = Type.Union([Type.Literal('fill'), Type.Literal('error')]);
const MAX_ENTITIES = 65_536;

/** `/v1/models/{m}/predict` by entity. */
export const EntityPredictRequest = Type.Object(
  {
    entities: Type.Array(Row, { minItems: 1, maxItems: MAX_ENTITIES }),
    /** Request-time raw values by feature (`name` or `view.name`): one object for every row, or one per entity. */
    features: Type.Optional(Type.Union([Row, Type.Array(Row)])),
    /** `fill` (default): missing values get each feature's fill; `error`: an entity unknown to a view is a 404. */
    on_missing: Type.Optional(OnMissing),
    id: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);
const checkV1 = TypeCompiler.Compile(EntityPredictRequest);

/** `/v2/models/{m}/infer` by entity: the same fields in `parameters`, no `inputs`. */
export const EntityOipRequest = Type.Object({
  id: Type.Optional(Type.String({ maxLength: 256 })),
  parameters: Type.Intersect([
    Type.Object({ entities: Type.Array(Row, { minItems: 1, maxItems: MAX_ENTITIES }), features: Type.Optional(Type.Union([Row, Type.Array(Row)])), on_missing: Type.Optional(OnMissing) }),
    Type.Record(Type.String(), Type.Unknown()),
  ]),
  inputs: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 0 })),
  outputs: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown())) }), { maxItems: 64 })),
});
const checkOip = TypeCompiler.Compile(EntityOipRequest);

/** One pinned view of a model's input. */
interface InputView {
  ref: string;
  version: FeatureViewVersion;
  encoder: Encoder;
  /** First column of this view in the model's input. */
  offset: number;
  types: Map<string, FeatureSpec['type']>;
  /** Its PII and sensitive features (their values are withheld from error messages). */
  pii: Set<string>;
  /** Its sensitive features as groups: logged on the record's `groups`, never in `features`. */
  groups: SensitiveGroups[];
}

/** A model's feature input, resolved and checked. */
export interface FeatureInput {
  views: InputView[];
  width: number;
  columns: string[];
  /** The model input the vector feeds. */
  input: string;
}

const incompatible = (label: string, why: string) => MlErrors.FEATURES_INCOMPATIBLE(label, why);

/** The model's recorded feature lineage; undefined when it records none. */
export function featureLineage(mv: ModelVersion, label = `${mv.name} v${mv.version}`): FeatureLineageRecord | undefined {
  const f = (mv.lineage as Record<string, unknown> | undefined)?.features;
  if (f === undefined) return undefined;
  if (!Value.Check(FeatureLineageSchema, f)) {
    const e = Value.Errors(FeatureLineageSchema, f).First();
    throw incompatible(label, `its lineage.features is malformed (${e ? `${e.path || '/'}: ${e.message}` : 'invalid'})`);
  }
  return f;
}

/**
 * Resolves a model version's feature input and checks it is compatible (see the file comment);
 * undefined for a model that records no views. Throws SHOAL_ERR_FEATURES_INCOMPATIBLE with the reason.
 */
export async function resolveFeatureInput(views: FeatureViews, mv: ModelVersion): Promise<FeatureInput | undefined> {
  const label = `${mv.name} v${mv.version}`;
  const lin = featureLineage(mv, label);
  if (!lin) return undefined;
  if (mv.processor || mv.format === 'pipeline') throw incompatible(label, `a ${mv.processor ? 'version with a processor' : 'pipeline'} cannot serve by entity: the feature vector must be the model's own input`);
  const out: InputView[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const rec of lin.views) {
    const [name, n] = rec.view.split('@') as [string, string];
    if (seen.has(name)) throw incompatible(label, `feature view ${name} is recorded twice`);
    seen.add(name);
    const v = await views.version(name, Number(n));
    if (!v) throw incompatible(label, `feature view ${rec.view}, which it was trained on, does not exist`);
    if (v.digest !== rec.digest) throw incompatible(label, `feature view ${rec.view} is not the one it was trained on (digest ${rec.digest.slice(0, 12)}… recorded, ${v.digest.slice(0, 12)}… now)`);
    if (!v.fitted) throw incompatible(label, `feature view ${rec.view} has no fitted parameters`);
    const current = await views.version(name);
    if (current && current.version !== v.version) checkCurrent(label, v, current);
    const encoder = views.encoder(v);
    const sensitive = v.definition.features.filter((f) => f.sensitive).map((f) => f.name);
    const pii = piiFeatures(v.definition);
    // A feature both sensitive and PII is never logged, not even as its group.
    const groups = sensitiveGroups(v.definition, v.fitted).filter((g) => !pii.has(g.name));
    out.push({ ref: rec.view, version: v, encoder, offset, types: new Map(v.definition.features.map((f) => [f.name, f.type])), pii: new Set([...pii, ...sensitive]), groups });
    offset += encoder.width;
  }
  const columns = out.flatMap((x) => x.encoder.columns.map((c) => `${x.version.name}.${c}`));
  if (lin.columns) {
    const i = firstDifference(lin.columns, columns);
    if (i >= 0) {
      throw incompatible(
        label,
        `its recorded input layout (${lin.columns.length} columns) is not its views' columns in order (${columns.length}): column ${i} is ${JSON.stringify(lin.columns[i] ?? null)} in the record, ${JSON.stringify(columns[i] ?? null)} in ${out.map((x) => x.ref).join(', ')}`,
      );
    }
  }
  const inputs = mv.signature.inputs;
  if (inputs.length !== 1) throw incompatible(label, `it takes ${inputs.length} inputs (${inputs.map((t) => t.name).join(', ')}); a prediction by entity feeds one FP32 [N, ${offset}] tensor`);
  const x = inputs[0]!;
  if (x.datatype !== 'FP32' || x.shape.length !== 2 || (x.shape[1] !== -1 && x.shape[1] !== offset) || (x.shape[0] !== -1 && x.shape[0] !== 1)) {
    throw incompatible(label, `its input "${x.name}" is ${x.datatype} [${x.shape.join(', ')}] where its views give FP32 [N, ${offset}]`);
  }
  return { views: out, width: offset, columns, input: x.name };
}

/** The current version must keep feeding what the pinned one reads: same key, same features and types. */
function checkCurrent(label: string, pinned: FeatureViewVersion, current: FeatureViewVersion): void {
  const at = `feature view ${pinned.name}'s current version ${current.version}`;
  const key = (v: FeatureViewVersion) => v.definition.entity.join(', ');
  if (key(current) !== key(pinned)) throw incompatible(label, `${at} is keyed by (${key(current)}), ${pinned.name}@${pinned.version} it was trained on by (${key(pinned)})`);
  const now = new Map(current.definition.features.map((f) => [f.name, f.type]));
  for (const f of pinned.definition.features) {
    const t = now.get(f.name);
    if (t === undefined) throw incompatible(label, `${at} no longer has feature "${f.name}" (trained on ${pinned.name}@${pinned.version}), so its online value would no longer be updated`);
    if (t !== f.type) throw incompatible(label, `${at} changed feature "${f.name}" from ${f.type} to ${t} (trained on ${pinned.name}@${pinned.version})`);
  }
}

function firstDifference(a: readonly string[], b: readonly string[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Checks a version at deploy; a model without recorded views passes. */
export async function checkFeatureInput(nc: NatsConnection, prefix: string, mv: ModelVersion): Promise<void> {
  if (featureLineage(mv) === undefined) return;
  await resolveFeatureInput(await FeatureViews.open(nc, prefix), mv);
}

/** Whether a raw request-time value fits a feature's type (null: not given). */
function rawFits(type: FeatureSpec['type'], v: unknown): v is RawValue {
  if (v === null) return true;
  switch (type) {
    case 'categorical':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'timestamp':
      return (typeof v === 'number' || typeof v === 'string') && numberOf(type, v) !== undefined;
    default:
      return typeof v === 'number' && Number.isFinite(v);
  }
}

type OnMissing = Static<typeof OnMissing>;

/** Per row of a prediction by entity: which views knew the entity, which features got their fill. */
export interface EntityStatus {
  found: Record<string, boolean>;
  filled: string[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const MARK = Buffer.from('"entities"');

/** A replica's side of predictions by entity. */
export class EntityFeatures {
  readonly #in: FeatureInput;
  readonly #online: OnlineStore;
  /** Request-time feature names (`name` and `view.name`) → the views that have them. */
  readonly #names = new Map<string, number[]>();
  readonly #entityColumns: string[];

  private constructor(input: FeatureInput, online: OnlineStore) {
    this.#in = input;
    this.#online = online;
    input.views.forEach((v, i) => {
      for (const f of v.version.definition.features) {
        this.#names.set(`${v.version.name}.${f.name}`, [i]);
        this.#names.set(f.name, [...(this.#names.get(f.name) ?? []), i]);
      }
    });
    this.#entityColumns = [...new Set(input.views.flatMap((v) => v.version.definition.entity))];
  }

  /** For a version that records feature views: resolved and checked (FEATURES_INCOMPATIBLE otherwise); else undefined. */
  static async open(nc: NatsConnection, prefix: string, mv: ModelVersion): Promise<EntityFeatures | undefined> {
    if (featureLineage(mv) === undefined) return undefined;
    const input = await resolveFeatureInput(await FeatureViews.open(nc, prefix), mv);
    return input && new EntityFeatures(input, await OnlineStore.open(nc, prefix));
  }

  get input(): FeatureInput {
    return this.#in;
  }

  /** `decode` bound to a replica's signature and label: what serve-requests.ts calls per body. */
  decoder(sig: Signature, label: string): (format: JsonFormat, body: Uint8Array, headerLength: number | undefined) => Promise<Decoded | undefined> {
    return (format, body, headerLength) => this.decode(sig, label, format, body, headerLength);
  }

  /**
   * A forwarded body as a prediction by entity, or undefined when it is not one (then it is an
   * ordinary tensor request). Only bodies that mention `"entities"` are parsed here.
   */
  async decode(sig: Signature, label: string, format: JsonFormat, body: Uint8Array, headerLength?: number): Promise<Decoded | undefined> {
    const json = headerLength === undefined ? body : body.subarray(0, headerLength);
    if (Buffer.from(json.buffer, json.byteOffset, json.byteLength).indexOf(MARK) < 0) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(utf8.decode(json));
    } catch {
      return undefined; // the tensor codec says what is wrong with it
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
    const obj = value as Record<string, unknown>;
    if (format === 'v1') {
      if (!('entities' in obj)) return undefined;
      if ('instances' in obj) throw MlErrors.BAD_INPUT('body: send either "instances" (tensor rows) or "entities", not both');
      if (!checkV1.Check(obj)) throw schemaError(checkV1.Errors(obj).First());
      const req = obj as Static<typeof EntityPredictRequest>;
      return this.#assemble(req.entities, req.features, req.on_missing ?? 'fill', 'entities', 'features', req.id, undefined, undefined);
    }
    const params = obj.parameters as Record<string, unknown> | undefined;
    if (!params || typeof params !== 'object' || !('entities' in params)) return undefined;
    if (Array.isArray(obj.inputs) && obj.inputs.length > 0) throw MlErrors.BAD_INPUT('body: send either "inputs" or "parameters.entities", not both');
    if (headerLength !== undefined && headerLength !== body.length) throw MlErrors.BAD_INPUT('a request by entity carries no binary input data (Inference-Header-Content-Length must be the whole body)');
    if (!checkOip.Check(obj)) throw schemaError(checkOip.Errors(obj).First());
    const req = obj as Static<typeof EntityOipRequest>;
    const outputs = req.outputs?.map((o) => o.name);
    checkOutputs(sig, label, outputs);
    const p = req.parameters;
    return this.#assemble(p.entities, p.features, p.on_missing ?? 'fill', 'parameters.entities', 'parameters.features', req.id, outputs, binaryOutputs(sig, req));
  }

  async #assemble(entities: Record<string, unknown>[], features: unknown, onMissing: OnMissing, at: string, fat: string, id: string | undefined, outputs: string[] | undefined, binary: Set<string> | undefined): Promise<Decoded> {
    const views = this.#in.views;
    const n = entities.length;
    // Key columns: each one some view's, each present and a string.
    const keys: Record<string, string>[][] = views.map(() => new Array<Record<string, string>>(n));
    entities.forEach((e, i) => {
      for (const k of Object.keys(e)) if (!this.#entityColumns.includes(k)) throw MlErrors.BAD_INPUT(`${at}[${i}].${k}: not an entity column of the model's feature views (${this.#entityColumns.join(', ')})`);
      views.forEach((v, j) => {
        const key: Record<string, string> = {};
        for (const col of v.version.definition.entity) {
          const val = e[col];
          if (val === undefined || val === null) throw MlErrors.BAD_INPUT(`${at}[${i}].${col}: missing (feature view ${v.version.name} is keyed by ${v.version.definition.entity.join(', ')})`);
          if (typeof val !== 'string' || val.length === 0 || val.length > 256) throw MlErrors.BAD_INPUT(`${at}[${i}].${col}: must be a non-empty string of at most 256 characters, got ${JSON.stringify(val)}`);
          key[col] = val;
        }
        keys[j]![i] = key;
      });
    });
    const given = this.#requestValues(features, n, fat);
    // One batched read per view, all views at once.
    const rows = await Promise.all(views.map((v, j) => this.#online.read(v.version.definition, keys[j]!)));
    const width = this.#in.width;
    const x = new Float32Array(n * width);
    const status: EntityStatus[] = new Array(n);
    // Per row, the group of each sensitive feature (its bucket or vocabulary label), for live fairness.
    const withGroups = views.some((v) => v.groups.length > 0);
    const groups: (Record<string, string> | null)[] = withGroups ? new Array(n) : [];
    for (let i = 0; i < n; i++) {
      const st: EntityStatus = { found: {}, filled: [] };
      views.forEach((v, j) => {
        const row = rows[j]![i]!;
        if (!row.found && onMissing === 'error') throw MlErrors.ENTITY_NOT_FOUND(`${at}[${i}]`, v.ref);
        st.found[v.version.name] = row.found;
        const extra = given[j]?.(i);
        const values = extra ? { ...row.values, ...extra } : row.values;
        for (const f of v.version.definition.features) if (values[f.name] === undefined || values[f.name] === null) st.filled.push(`${v.version.name}.${f.name}`);
        v.encoder.encodeInto(values, x, i * width + v.offset);
        for (const g of v.groups) (groups[i] ??= {})[g.name] = g.levels[g.groupOf(values)] ?? String(g.groupOf(values));
      });
      status[i] = st;
    }
    const d: Decoded = { inputs: [x], shapes: [[n, width]], outputs, id, extra: { entities: status } };
    // Per row, the entity keys hashed: what the prediction log keeps so erasure can find the row.
    d.entityRefs = entities.map((e) => this.#entityColumns.filter((col) => typeof e[col] === 'string').map((col) => entityRef(col, e[col] as string)));
    if (withGroups) d.groups = groups;
    if (binary) d.binaryOutputs = binary;
    return d;
  }

  /**
   * Request-time values, checked (a name of one of the views — `view.name` where two views share
   * it — and of the feature's type), as per view functions from row index to the values given.
   */
  #requestValues(features: unknown, n: number, at: string): (((i: number) => Record<string, RawValue> | undefined) | undefined)[] {
    const views = this.#in.views;
    const out: (((i: number) => Record<string, RawValue> | undefined) | undefined)[] = views.map(() => undefined);
    if (features === undefined) return out;
    const split = (row: Record<string, unknown>, where: string): (Record<string, RawValue> | undefined)[] => {
      const per: (Record<string, RawValue> | undefined)[] = views.map(() => undefined);
      for (const [k, v] of Object.entries(row)) {
        const hits = this.#names.get(k);
        if (!hits) throw MlErrors.BAD_INPUT(`${where}.${k}: not a feature of the model's views (${views.map((x) => `${x.ref}: ${[...x.types.keys()].join(', ')}`).join('; ')})`);
        if (hits.length > 1) throw MlErrors.BAD_INPUT(`${where}.${k}: in several of the model's views (${hits.map((j) => views[j]!.version.name).join(', ')}); name it <view>.${k}`);
        const j = hits[0]!;
        const name = k.includes('.') ? k.slice(k.indexOf('.') + 1) : k;
        const type = views[j]!.types.get(name)!;
        // A PII feature's value is withheld from the message (ml/governance/privacy).
        if (!rawFits(type, v)) throw MlErrors.BAD_INPUT(`${where}.${k}: ${shown(v, views[j]!.pii.has(name))} is not a ${type} value${type === 'timestamp' ? ' (ISO 8601 or epoch ms)' : ''}`);
        if (v === null) continue; // null: not given (the online value, or the fill, stands)
        (per[j] ??= {})[name] = v;
      }
      return per;
    };
    if (Array.isArray(features)) {
      if (features.length !== n) throw MlErrors.BAD_INPUT(`${at}: has ${features.length} rows where entities has ${n} (send one object per entity, or one object for all)`);
      const per = features.map((row, i) => split(row as Record<string, unknown>, `${at}[${i}]`));
      return views.map((_, j) => (per.some((p) => p[j]) ? (i: number) => per[i]![j] : undefined));
    }
    const shared = split(features as Record<string, unknown>, at);
    return views.map((_, j) => (shared[j] ? () => shared[j] : undefined));
  }
}

function schemaError(e: { path: string; message: string } | undefined): Error {
  return MlErrors.BAD_INPUT(`body${e?.path ?? ''}: ${e?.message ?? 'does not match the schema'}`);
}
