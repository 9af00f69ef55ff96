/**
 * The one implementation of a view's transformations: raw values in, the model's float32 vector
 * out. Training (`encodeRows`, a batch of rows) and serving (`encodeOne`, one entity's online
 * values) both call the same compiled per-row encoder, so the same raw values give bit-identical
 * vectors on both paths. Arithmetic is float64; each output value is rounded to float32 once,
 * when it is stored.
 *
 * Per feature, in order: the raw value is read as its type (numeric: a finite number; boolean:
 * 0/1; timestamp: epoch seconds from an ISO string or epoch ms; categorical: a string), a missing
 * one is filled (`fill`), then the transforms run left to right. Numeric chains give one column;
 * `onehot` gives one column per vocabulary entry plus the unknown bucket (last); `ordinal` gives
 * one column, the index in the vocabulary (unknown = vocabulary length).
 *
 * Definitions of the fitted steps (chosen to match scikit-learn's defaults):
 * - standardize: (x − mean) / std, std the population standard deviation; std 0 → divide by 1.
 * - minmax: (x − min) / (max − min); max = min → 0.
 * - log1p: ln(1 + max(x, 0)) (a negative amount is not a valid input to a log).
 * - clip: min(max(x, min), max), bounds given.
 * - bucketize: the number of boundaries ≤ x (boundaries [0, 10]: x < 0 → 0, 0 ≤ x < 10 → 1,
 *   x ≥ 10 → 2); `quantiles: q` fits boundaries at the i/q quantiles (nearest rank), deduplicated.
 * - vocabulary (fitted): the most frequent values first, ties in code-unit order, at most
 *   `maxVocabulary`.
 */
import { MlErrors } from '../errors.ts';
import { resolveAggregate } from './aggregates.ts';
import type { FeatureSpec, FeatureViewDef, FittedFeature, FittedView, RawValue, Transform } from './schemas.ts';

type Raw = RawValue | undefined;
type Step = FittedFeature['steps'][number];

const isEncoder = (t: Transform) => t.op === 'onehot' || t.op === 'ordinal';

/** Checks what the schema cannot: encoders only on categorical features, and alone; fills that fit the type. */
export function checkDefinition(def: FeatureViewDef): void {
  const bad = (field: string, why: string) => MlErrors.BAD_INPUT(`feature view ${def.name}: ${field} ${why}`);
  const names = new Set<string>();
  for (const k of def.entity) {
    if (names.has(k)) throw bad(`entity column "${k}"`, 'appears twice');
    names.add(k);
  }
  def.features.forEach((f, i) => {
    const at = `features[${i}] (${f.name})`;
    if (names.has(f.name)) throw bad(at, 'repeats a name already used by an entity column or feature');
    names.add(f.name);
    const ts = f.transforms ?? [];
    if (f.useAsFeature !== undefined && !f.sensitive) throw bad(`${at}.useAsFeature`, 'applies to a sensitive feature only (set sensitive: true, or drop it)');
    if (f.sensitive && (f.type === 'numeric' || f.type === 'timestamp') && !ts.some((t) => t.op === 'bucketize')) {
      throw bad(`${at}.sensitive`, `needs groups: a ${f.type} sensitive feature must have a bucketize transform (the bucket is its group), or be declared categorical`);
    }
    if (f.type === 'categorical') {
      if (ts.length !== 1 || !isEncoder(ts[0]!)) throw bad(at, 'is categorical: it needs exactly one transform, onehot or ordinal');
      if (f.fill && ['mean', 'median', 'zero'].includes(f.fill.strategy)) throw bad(`${at}.fill`, `"${f.fill.strategy}" is for numbers; use mode, unknown or constant`);
      if (f.fill?.strategy === 'constant' && typeof f.fill.value !== 'string') throw bad(`${at}.fill.value`, 'must be a string');
    } else {
      ts.forEach((t, j) => {
        if (isEncoder(t)) throw bad(`${at}.transforms[${j}]`, `${t.op} is for categorical features`);
        if (t.op === 'bucketize' && (t.boundaries === undefined) === (t.quantiles === undefined)) throw bad(`${at}.transforms[${j}]`, 'bucketize needs boundaries or quantiles (one of them)');
        if (t.op === 'bucketize' && t.boundaries && t.boundaries.some((b, k) => k > 0 && b <= t.boundaries![k - 1]!)) throw bad(`${at}.transforms[${j}].boundaries`, 'must be strictly increasing');
        if (t.op === 'clip' && t.min !== undefined && t.max !== undefined && t.min > t.max) throw bad(`${at}.transforms[${j}]`, 'clip min is above max');
      });
      if (f.fill?.strategy === 'unknown') throw bad(`${at}.fill`, '"unknown" is for categorical features');
      if (f.fill?.strategy === 'constant' && typeof f.fill.value === 'string') throw bad(`${at}.fill.value`, 'must be a number or boolean');
    }
  });
  if (def.source.type === 'aggregate') resolveAggregate(def);
  else if (def.source.type !== 'push') throw bad('source.type', `"${def.source.type}" is not supported yet ("push" or "aggregate")`);
}

/** A raw value as a number for a non-categorical feature; undefined when missing or unreadable. */
export function numberOf(type: FeatureSpec['type'], v: Raw): number | undefined {
  if (v === null || v === undefined) return undefined;
  if (type === 'boolean') return typeof v === 'boolean' ? (v ? 1 : 0) : undefined;
  if (type === 'timestamp') {
    const ms = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN;
    return Number.isFinite(ms) ? ms / 1000 : undefined;
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function stringOf(v: Raw): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

const defaultFill = (f: FeatureSpec) => f.fill ?? (f.type === 'categorical' ? { strategy: 'unknown' as const } : f.type === 'boolean' ? { strategy: 'constant' as const, value: false } : { strategy: 'mean' as const });

function applyStep(t: Transform, p: Step, x: number): number {
  switch (t.op) {
    case 'standardize': {
      const { mean, std } = p as { mean: number; std: number };
      return (x - mean) / (std === 0 ? 1 : std);
    }
    case 'minmax': {
      const { min, max } = p as { min: number; max: number };
      return max === min ? 0 : (x - min) / (max - min);
    }
    case 'log1p':
      return Math.log1p(Math.max(x, 0));
    case 'clip':
      return Math.min(Math.max(x, t.min ?? -Infinity), t.max ?? Infinity);
    case 'bucketize': {
      const b = (p as { boundaries: number[] }).boundaries;
      let lo = 0;
      let hi = b.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (b[mid]! <= x) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }
    default:
      throw new Error(`not a numeric step: ${t.op}`);
  }
}

function mostFrequent<T extends string | number>(xs: T[]): T[] {
  const counts = new Map<T, number>();
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([k]) => k);
}

function fitFeature(view: string, f: FeatureSpec, rows: readonly Record<string, Raw>[]): FittedFeature {
  const need = (what: string) => MlErrors.BAD_INPUT(`feature view ${view}: cannot fit ${what} of feature "${f.name}": the snapshot has no values for it`);
  const fill = defaultFill(f);
  const ts = f.transforms ?? [];
  if (f.type === 'categorical') {
    const present = rows.map((r) => stringOf(r[f.name])).filter((v): v is string => v !== undefined);
    let fv: string | null;
    if (fill.strategy === 'unknown') fv = null;
    else if (fill.strategy === 'constant') fv = String(fill.value);
    else {
      const m = mostFrequent(present)[0];
      if (m === undefined) throw need('the mode fill');
      fv = m;
    }
    const enc = ts[0] as Extract<Transform, { op: 'onehot' | 'ordinal' }>;
    let vocabulary = enc.vocabulary;
    if (!vocabulary) {
      const filled = rows.map((r) => stringOf(r[f.name]) ?? fv).filter((v): v is string => v !== null);
      vocabulary = mostFrequent(filled).slice(0, enc.maxVocabulary ?? Infinity);
      if (vocabulary.length === 0) throw need('the vocabulary');
    }
    return { fill: fv, steps: [{ vocabulary }] };
  }
  const present = rows.map((r) => numberOf(f.type, r[f.name])).filter((v): v is number => v !== undefined);
  let fv: number;
  switch (fill.strategy) {
    case 'zero':
      fv = 0;
      break;
    case 'constant':
      fv = typeof fill.value === 'boolean' ? (fill.value ? 1 : 0) : Number(fill.value);
      break;
    case 'mean':
      if (present.length === 0) throw need('the mean fill');
      fv = sum(present) / present.length;
      break;
    case 'median': {
      if (present.length === 0) throw need('the median fill');
      const s = [...present].sort((a, b) => a - b);
      const h = s.length >> 1;
      fv = s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
      break;
    }
    default: {
      const m = mostFrequent(present)[0];
      if (m === undefined) throw need('the mode fill');
      fv = m;
    }
  }
  let xs = rows.map((r) => numberOf(f.type, r[f.name]) ?? fv);
  const steps: Step[] = [];
  for (const t of ts) {
    let p: Step = null;
    if (t.op === 'standardize') {
      if (xs.length === 0) throw need('standardize');
      const mean = sum(xs) / xs.length;
      p = { mean, std: Math.sqrt(sum(xs.map((x) => (x - mean) * (x - mean))) / xs.length) };
    } else if (t.op === 'minmax') {
      if (xs.length === 0) throw need('minmax');
      p = { min: xs.reduce((a, b) => Math.min(a, b)), max: xs.reduce((a, b) => Math.max(a, b)) };
    } else if (t.op === 'bucketize') {
      if (t.boundaries) p = { boundaries: t.boundaries };
      else {
        if (xs.length === 0) throw need('bucketize quantiles');
        const s = [...xs].sort((a, b) => a - b);
        const q = t.quantiles!;
        const b: number[] = [];
        for (let i = 1; i < q; i++) {
          const v = s[Math.min(s.length - 1, Math.floor((i * s.length) / q))]!;
          if (b.length === 0 || v > b[b.length - 1]!) b.push(v);
        }
        p = { boundaries: b };
      }
    }
    steps.push(p);
    xs = xs.map((x) => applyStep(t, p, x));
  }
  return { fill: fv, steps };
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}

/** Fits every feature's parameters on a snapshot (rows of raw values keyed by feature name). */
export function fitView(def: FeatureViewDef, rows: readonly Record<string, Raw>[]): FittedView {
  checkDefinition(def);
  const features: Record<string, FittedFeature> = {};
  const columns: string[] = [];
  for (const f of def.features) {
    const fit = fitFeature(def.name, f, rows);
    features[f.name] = fit;
    if (f.sensitive) {
      const groups = groupLevels(f, fit).length;
      if (groups > MAX_SENSITIVE_GROUPS) throw MlErrors.BAD_INPUT(`feature view ${def.name}: sensitive feature "${f.name}" has ${groups} groups (at most ${MAX_SENSITIVE_GROUPS}: fewer buckets or a shorter vocabulary)`);
    }
    if (!encoded(f)) continue;
    const enc = f.transforms?.[0];
    if (f.type === 'categorical' && enc?.op === 'onehot') {
      for (const v of (fit.steps[0] as { vocabulary: string[] }).vocabulary) columns.push(`${f.name}=${v}`);
      columns.push(`${f.name}=<unknown>`);
    } else columns.push(f.name);
  }
  return { rows: rows.length, features, width: columns.length, columns };
}

/** A view version's per-row encoder: writes one entity's vector into `out` at `offset`. */
export interface Encoder {
  readonly width: number;
  readonly columns: readonly string[];
  encodeInto(raw: Readonly<Record<string, Raw>>, out: Float32Array, offset: number): void;
}

type ColumnFn = (raw: Readonly<Record<string, Raw>>, out: Float32Array, offset: number) => void;

/** Compiles a definition and its fitted parameters into the one per-row encoder both paths use. */
export function compileEncoder(def: FeatureViewDef, fitted: FittedView | null): Encoder {
  if (!fitted) throw MlErrors.BAD_INPUT(`feature view ${def.name} has no fitted parameters: apply it with a snapshot (rows) to fit its transformations`);
  const fns: { at: number; fn: ColumnFn }[] = [];
  let at = 0;
  for (const f of def.features) {
    if (!encoded(f)) continue;
    const fit = fitted.features[f.name];
    if (!fit) throw MlErrors.BAD_INPUT(`feature view ${def.name}: no fitted parameters for feature "${f.name}"`);
    const ts = f.transforms ?? [];
    const name = f.name;
    if (f.type === 'categorical') {
      const vocab = (fit.steps[0] as { vocabulary: string[] }).vocabulary;
      const index = new Map(vocab.map((v, i) => [v, i]));
      const fill = fit.fill as string | null;
      const idx = (raw: Readonly<Record<string, Raw>>) => {
        const s = stringOf(raw[name]) ?? fill;
        return s === null ? vocab.length : (index.get(s) ?? vocab.length);
      };
      if (ts[0]!.op === 'onehot') {
        fns.push({ at, fn: (raw, out, off) => void (out[off + idx(raw)] = 1) });
        at += vocab.length + 1;
      } else {
        fns.push({ at, fn: (raw, out, off) => void (out[off] = idx(raw)) });
        at += 1;
      }
      continue;
    }
    const fill = fit.fill as number;
    const type = f.type;
    const steps = ts.map((t, j) => ({ t, p: fit.steps[j] ?? null }));
    fns.push({
      at,
      fn: (raw, out, off) => {
        let x = numberOf(type, raw[name]) ?? fill;
        for (const s of steps) x = applyStep(s.t, s.p, x);
        out[off] = x;
      },
    });
    at += 1;
  }
  if (at !== fitted.width) throw MlErrors.BAD_INPUT(`feature view ${def.name}: fitted width ${fitted.width} does not match the definition's ${at}`);
  return {
    width: at,
    columns: fitted.columns,
    encodeInto(raw, out, offset) {
      out.fill(0, offset, offset + at);
      for (const c of fns) c.fn(raw, out, offset + c.at);
    },
  };
}

/** Training path: many rows → one row-major `rows × width` Float32Array. */
export function encodeRows(enc: Encoder, rows: readonly Readonly<Record<string, Raw>>[]): Float32Array {
  const out = new Float32Array(rows.length * enc.width);
  rows.forEach((r, i) => enc.encodeInto(r, out, i * enc.width));
  return out;
}

/** Serving path: one entity's values (from the online store) → its vector. */
export function encodeOne(enc: Encoder, values: Readonly<Record<string, Raw>>): Float32Array {
  const out = new Float32Array(enc.width);
  enc.encodeInto(values, out, 0);
  return out;
}

/** Most groups of a sensitive feature (a dataset keeps a group id per row in a byte). */
export const MAX_SENSITIVE_GROUPS = 255;

/** Whether a feature enters the model's vector: every feature but a sensitive one not also `useAsFeature`. */
export const encoded = (f: FeatureSpec): boolean => !f.sensitive || f.useAsFeature === true;

/** A sensitive feature as groups: its name, the label of each group id, and a raw row's group id. */
export interface SensitiveGroups {
  name: string;
  levels: string[];
  groupOf(raw: Readonly<Record<string, Raw>>): number;
}

/** The labels of a sensitive feature's groups: vocabulary then `<unknown>`; `false`/`true`; buckets as ranges. */
function groupLevels(f: FeatureSpec, fit: FittedFeature): string[] {
  if (f.type === 'categorical') return [...(fit.steps[0] as { vocabulary: string[] }).vocabulary, '<unknown>'];
  if (f.type === 'boolean' && !(f.transforms ?? []).some((t) => t.op === 'bucketize')) return ['false', 'true'];
  const last = (f.transforms ?? []).map((t) => t.op).lastIndexOf('bucketize');
  const b = (fit.steps[last] as { boundaries: number[] }).boundaries;
  return [`< ${b[0]}`, ...b.slice(1).map((x, i) => `[${b[i]}, ${x})`), `≥ ${b[b.length - 1]}`];
}

/**
 * The view's sensitive features as group functions, from the same fitted parameters as the
 * encoder: a categorical feature's group is its vocabulary index (unknown last), a boolean's 0/1,
 * a numeric or timestamp feature's the bucket of its last `bucketize` (steps before it applied).
 * A missing value takes the feature's fill first, as in the encoder.
 */
export function sensitiveGroups(def: FeatureViewDef, fitted: FittedView | null): SensitiveGroups[] {
  const out: SensitiveGroups[] = [];
  for (const f of def.features) {
    if (!f.sensitive) continue;
    const fit = fitted?.features[f.name];
    if (!fit) throw MlErrors.BAD_INPUT(`feature view ${def.name}: no fitted parameters for sensitive feature "${f.name}"`);
    const levels = groupLevels(f, fit);
    const name = f.name;
    if (f.type === 'categorical') {
      const vocab = (fit.steps[0] as { vocabulary: string[] }).vocabulary;
      const index = new Map(vocab.map((v, i) => [v, i]));
      const fill = fit.fill as string | null;
      const groupOf = (raw: Readonly<Record<string, Raw>>) => {
        const v = stringOf(raw[name]) ?? fill;
        return v === null ? vocab.length : (index.get(v) ?? vocab.length);
      };
      out.push({ name, levels, groupOf });
      continue;
    }
    const ts = f.transforms ?? [];
    const last = ts.map((t) => t.op).lastIndexOf('bucketize');
    const type = f.type;
    const fill = fit.fill as number;
    if (last < 0) {
      out.push({ name, levels, groupOf: (raw) => ((numberOf(type, raw[name]) ?? fill) ? 1 : 0) });
      continue;
    }
    const steps = ts.slice(0, last + 1).map((t, j) => ({ t, p: fit.steps[j] ?? null }));
    const groupOf = (raw: Readonly<Record<string, Raw>>) => {
      let x = numberOf(type, raw[name]) ?? fill;
      for (const st of steps) x = applyStep(st.t, st.p, x);
      return x;
    };
    out.push({ name, levels, groupOf });
  }
  return out;
}
