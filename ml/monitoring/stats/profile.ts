/**
 * Profiles of monitored rows (`{ features, outputs, label? }`, the prediction log's record shape):
 * one mergeable `ColumnSketch` per feature and per output plus the moments of the prediction
 * confidence — what each replica summarises of its own traffic and the monitor merges — and the
 * reference profile stored with a model version: the sketches of its holdout (or a reference
 * dataset), the prediction distribution, the holdout metrics with intervals, and the calibration
 * map CBPE needs.
 */
import { columnDrifts, correctAcross, resolveDriftOptions, summarize, type DriftOptions, type DriftReport } from './drift.ts';
import { IsotonicCalibrator, estimatePerformance, type EstimatedPerformance, type IsotonicJSON } from './estimate.ts';
import { binaryLabel, binaryQuality, type QualityOptions, type QualityReport } from './quality.ts';
import { confidenceOf } from './confidence.ts';
import { ColumnSketch, Moments, type ColumnKind, type ColumnSketchJSON, type MomentsJSON, type Scalar, type SketchOptions } from './sketch.ts';

export type FeatureValue = number | string | boolean | null;
export type OutputValue = number | number[] | string;

/** One monitored prediction (a prediction-log record, with its label once joined). */
export interface MonitoredRow {
  features: Record<string, FeatureValue>;
  outputs: Record<string, OutputValue>;
  label?: number | string | boolean;
}

export interface ProfileSchema {
  features: Record<string, ColumnKind>;
  outputs: Record<string, ColumnKind>;
  /**
   * The output that is the probability of the positive class (a binary classifier): quality
   * metrics, CBPE and the prediction confidence use it. Inferred when there is exactly one
   * numeric output.
   */
  score?: string;
}

export interface InferOptions {
  /**
   * A numeric column with at most this many distinct values in the reference is treated as
   * categorical (Evidently's rule: a 0/1 flag or a one-hot column is a category, not a number).
   * @default 5
   */
  maxCategoricalDistinct?: number;
}

/**
 * The value an output contributes to its column: a number as is; a one-element vector its
 * element; a two-element vector (probabilities of [negative, positive]) the positive class's; a
 * longer vector the index of its largest entry (a class, categorical); a string as is.
 */
export function outputValue(v: OutputValue | undefined): Scalar {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return v;
  if (v.length === 1) return v[0]!;
  if (v.length === 2) return v[1]!;
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return String(best);
}

/** A schema from rows: strings and booleans categorical, numbers numeric unless they take few distinct values. */
export function inferSchema(rows: readonly MonitoredRow[], o: InferOptions = {}): ProfileSchema {
  const maxDistinct = o.maxCategoricalDistinct ?? 5;
  const kinds = (get: (r: MonitoredRow) => Record<string, Scalar>): Record<string, ColumnKind> => {
    const seen = new Map<string, { cat: boolean; distinct: Set<number> }>();
    for (const r of rows) {
      for (const [k, v] of Object.entries(get(r))) {
        let s = seen.get(k);
        if (!s) seen.set(k, (s = { cat: false, distinct: new Set() }));
        if (typeof v === 'string' || typeof v === 'boolean') s.cat = true;
        else if (typeof v === 'number' && Number.isFinite(v) && s.distinct.size <= maxDistinct) s.distinct.add(v);
      }
    }
    return Object.fromEntries([...seen].map(([k, s]) => [k, s.cat || s.distinct.size <= maxDistinct ? 'categorical' : 'numeric']));
  };
  const features = kinds((r) => r.features);
  const outputs = kinds((r) => Object.fromEntries(Object.entries(r.outputs).map(([k, v]) => [k, outputValue(v)])));
  // A score column is a probability: numeric even when the reference has few distinct values.
  const numericOutputs = Object.keys(outputs).filter((k) => rows.some((r) => typeof outputValue(r.outputs[k]) === 'number'));
  const score = numericOutputs.length === 1 ? numericOutputs[0] : undefined;
  if (score) outputs[score] = 'numeric';
  return { features, outputs, ...(score ? { score } : {}) };
}

export interface RecordProfileJSON {
  rows: number;
  features: Record<string, ColumnSketchJSON>;
  outputs: Record<string, ColumnSketchJSON>;
  confidence: MomentsJSON;
}

/** The mergeable summary of a set of rows under one schema. */
export class RecordProfile {
  rows = 0;
  features: Record<string, ColumnSketch> = {};
  outputs: Record<string, ColumnSketch> = {};
  confidence = new Moments();

  constructor(
    readonly schema: ProfileSchema,
    readonly options: SketchOptions = {},
  ) {
    for (const [k, kind] of Object.entries(schema.features)) this.features[k] = new ColumnSketch(kind, options);
    for (const [k, kind] of Object.entries(schema.outputs)) this.outputs[k] = new ColumnSketch(kind, options);
  }

  update(row: MonitoredRow): void {
    this.rows++;
    for (const [k, c] of Object.entries(this.features)) c.update(row.features[k]);
    for (const [k, c] of Object.entries(this.outputs)) c.update(outputValue(row.outputs[k]));
    const conf = this.#confidence(row);
    if (conf !== undefined) this.confidence.update(conf);
  }

  /**
   * The columnar update (a replica's profile, replica-profile.ts): `n` more rows whose features
   * the caller feeds column by column into `features[...]` and whose outputs come here, one
   * row's map per call — the same result as `update` on each row.
   */
  addRows(n: number): void {
    this.rows += n;
  }

  /** One row's outputs (and its confidence); with `addRows` and the feature columns, what `update` does. */
  updateOutputs(outputs: MonitoredRow['outputs']): void {
    for (const [k, c] of Object.entries(this.outputs)) c.update(outputValue(outputs[k]));
    const conf = this.#confidence({ features: {}, outputs });
    if (conf !== undefined) this.confidence.update(conf);
  }

  merge(o: RecordProfile): this {
    this.rows += o.rows;
    for (const [k, c] of Object.entries(o.features)) this.features[k] ? this.features[k].merge(c) : (this.features[k] = ColumnSketch.fromJSON(c.toJSON()));
    for (const [k, c] of Object.entries(o.outputs)) this.outputs[k] ? this.outputs[k].merge(c) : (this.outputs[k] = ColumnSketch.fromJSON(c.toJSON()));
    this.confidence.merge(o.confidence);
    return this;
  }

  #confidence(row: MonitoredRow): number | undefined {
    const key = this.schema.score;
    const v = key ? row.outputs[key] : undefined;
    if (v === undefined || typeof v === 'string') return undefined;
    const c = confidenceOf(v);
    return Number.isFinite(c) ? c : undefined;
  }

  toJSON(): RecordProfileJSON {
    const map = (r: Record<string, ColumnSketch>) => Object.fromEntries(Object.entries(r).map(([k, c]) => [k, c.toJSON()]));
    return { rows: this.rows, features: map(this.features), outputs: map(this.outputs), confidence: this.confidence.toJSON() };
  }

  static fromJSON(j: RecordProfileJSON, schema: ProfileSchema, options: SketchOptions = {}): RecordProfile {
    const p = new RecordProfile(schema, options);
    p.rows = j.rows;
    p.features = Object.fromEntries(Object.entries(j.features).map(([k, c]) => [k, ColumnSketch.fromJSON(c)]));
    p.outputs = Object.fromEntries(Object.entries(j.outputs).map(([k, c]) => [k, ColumnSketch.fromJSON(c)]));
    p.confidence = Moments.fromJSON(j.confidence);
    return p;
  }
}

/** Profiles `rows` under `schema`. */
export function profileRows(rows: Iterable<MonitoredRow>, schema: ProfileSchema, options: SketchOptions = {}): RecordProfile {
  const p = new RecordProfile(schema, options);
  for (const r of rows) p.update(r);
  return p;
}

export const REFERENCE_PROFILE_FORMAT = 'shoal.reference-profile/v1';

export interface ReferenceProfile {
  format: typeof REFERENCE_PROFILE_FORMAT;
  createdAt: number;
  rows: number;
  schema: ProfileSchema;
  /** Feature sketches, the prediction distribution (output sketches) and the confidence moments. */
  profile: RecordProfileJSON;
  /** Quality on the labeled reference rows (a training job's holdout), each metric with its interval. */
  metrics?: QualityReport;
  /** The decision threshold the metrics (and CBPE) use. */
  threshold?: number;
  /** Score → calibrated probability, fitted on the labeled reference rows (for CBPE). */
  calibration?: IsotonicJSON;
  /** CBPE on the reference itself: the baseline an estimate on live traffic compares with. */
  estimated?: EstimatedPerformance;
  /** Where the reference rows came from (a dataset digest, a training job). */
  source?: Record<string, string>;
}

export interface ReferenceOptions extends InferOptions {
  /** @default 0.5 */
  threshold?: number;
  sketch?: SketchOptions;
  quality?: Omit<QualityOptions, 'threshold'>;
  /** @default Date.now() */
  createdAt?: number;
  source?: Record<string, string>;
  /** Which label value is positive (see `binaryLabel`). */
  positive?: number | string | boolean;
}

/**
 * The reference profile of a model version: sketches of `rows` under `schema` (inferred from the
 * rows where not given), and — when rows carry labels and the schema has a score output — the
 * holdout metrics with intervals, the calibration map and CBPE's baseline.
 */
export function buildReferenceProfile(rows: readonly MonitoredRow[], schema?: Partial<ProfileSchema>, o: ReferenceOptions = {}): ReferenceProfile {
  const inferred = inferSchema(rows, o);
  const s: ProfileSchema = {
    features: schema?.features ?? inferred.features,
    outputs: schema?.outputs ?? inferred.outputs,
    ...((schema?.score ?? inferred.score) ? { score: (schema?.score ?? inferred.score)! } : {}),
  };
  const profile = profileRows(rows, s, o.sketch);
  const threshold = o.threshold ?? 0.5;
  const out: ReferenceProfile = { format: REFERENCE_PROFILE_FORMAT, createdAt: o.createdAt ?? Date.now(), rows: profile.rows, schema: s, profile: profile.toJSON(), ...(o.source ? { source: o.source } : {}) };
  const labeled = s.score ? rows.filter((r) => r.label !== undefined && typeof outputValue(r.outputs[s.score!]) === 'number') : [];
  if (labeled.length) {
    const scores = Float64Array.from(labeled, (r) => outputValue(r.outputs[s.score!]) as number);
    const labels = Float64Array.from(labeled, (r) => binaryLabel(r.label!, o.positive));
    const cal = IsotonicCalibrator.fit(scores, labels);
    out.metrics = binaryQuality(scores, labels, { ...o.quality, threshold });
    out.threshold = threshold;
    out.calibration = cal.toJSON();
    out.estimated = estimatePerformance(
      scores.map((p) => cal.apply(p)),
      { predicted: Array.from(scores, (p) => p >= threshold) },
    );
  }
  return out;
}

/**
 * CBPE on a window's raw scores: each calibrated by the reference's map, each decision taken on
 * the raw score at the reference's threshold (what the model does). Undefined when the reference
 * had no labels (no calibration map).
 */
export function estimateWindow(reference: ReferenceProfile, scores: ArrayLike<number>, confidence = 0.95): EstimatedPerformance | undefined {
  if (!reference.calibration) return undefined;
  const cal = IsotonicCalibrator.fromJSON(reference.calibration);
  const t = reference.threshold ?? 0.5;
  return estimatePerformance(
    Float64Array.from(scores, (p) => cal.apply(p)),
    { threshold: t, predicted: Array.from(scores, (p) => p >= t), confidence },
  );
}

/**
 * Feature drift and prediction (output) drift of a window against a reference profile. The
 * p-values of both are corrected as ONE family: a window raises an alarm when any of its tests
 * does, so the correction must cover every test the window ran, or the window's false-alarm rate
 * would grow with the number of outputs tested besides the features.
 */
export function driftAgainstReference(reference: ReferenceProfile, current: RecordProfile, options: DriftOptions = {}): { features: DriftReport; predictions: DriftReport } {
  const o = resolveDriftOptions(options);
  const ref = RecordProfile.fromJSON(reference.profile, reference.schema);
  const features = columnDrifts({ rows: ref.rows, columns: ref.features }, { rows: current.rows, columns: current.features }, o);
  const predictions = columnDrifts({ rows: ref.rows, columns: ref.outputs }, { rows: current.rows, columns: current.outputs }, o);
  correctAcross([...features, ...predictions], o);
  return { features: summarize(features, ref.rows, current.rows, o), predictions: summarize(predictions, ref.rows, current.rows, o) };
}
