/**
 * A tabular dataset in memory: row-major f32 features, 0/1 labels, an optional sensitive
 * attribute (for fairness checks), and its column names. Serialised as standard MessagePack with
 * the arrays as binary, so its sha256 digest is its version (as with DVC).
 */
import { createHash } from 'node:crypto';
import { decode, encode, seededRandom } from '../../cluster/index.ts';

export interface Dataset {
  columns: string[];
  rows: number;
  /** rows × columns.length, row-major. */
  features: Float32Array;
  labels: Uint8Array;
  /** One group id per row (e.g. an age band), or undefined. */
  sensitive?: Uint8Array;
  sensitiveName?: string;
  /** More sensitive attributes (one group id per row each), audited with `sensitive` and pairwise intersections. */
  extraSensitive?: { name: string; values: Uint8Array; levels?: string[] }[];
  /** Columns that are personal data (issue #20): a model trained on them never logs them. */
  pii?: string[];
}

export interface Splits {
  seed: number;
  train: number[];
  validation: number[];
  holdout: number[];
}

export function serialize(d: Dataset): Uint8Array {
  return encode({
    v: 1,
    columns: d.columns,
    rows: d.rows,
    features: new Uint8Array(d.features.buffer, d.features.byteOffset, d.features.byteLength),
    labels: d.labels,
    ...(d.sensitive ? { sensitive: d.sensitive, sensitiveName: d.sensitiveName ?? 'sensitive' } : {}),
    // Only when present, so a dataset without it keeps its digest.
    ...(d.extraSensitive?.length ? { extraSensitive: d.extraSensitive } : {}),
    ...(d.pii?.length ? { pii: d.pii } : {}),
  });
}

export function deserialize(bytes: Uint8Array): Dataset {
  const o = decode(bytes) as { columns: string[]; rows: number; features: Uint8Array; labels: Uint8Array; sensitive?: Uint8Array; sensitiveName?: string; extraSensitive?: { name: string; values: Uint8Array; levels?: string[] }[]; pii?: string[] };
  const f = new Float32Array(o.features.byteLength / 4);
  new Uint8Array(f.buffer).set(o.features);
  return { columns: o.columns, rows: o.rows, features: f, labels: Uint8Array.from(o.labels), ...(o.sensitive ? { sensitive: Uint8Array.from(o.sensitive), sensitiveName: o.sensitiveName ?? 'sensitive' } : {}), ...(Array.isArray(o.extraSensitive) ? { extraSensitive: o.extraSensitive.map((e) => ({ name: String(e.name), values: Uint8Array.from(e.values), ...(Array.isArray(e.levels) ? { levels: e.levels.map(String) } : {}) })) } : {}), ...(o.pii?.length ? { pii: o.pii } : {}) };
}

export const sha256hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Deterministic train / validation / holdout split of row indices. */
export function split(rows: number, seed: number, fractions = { train: 0.7, validation: 0.15 }): Splits {
  const idx = Array.from({ length: rows }, (_, i) => i);
  const r = seededRandom(seed);
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const nTrain = Math.round(rows * fractions.train);
  const nVal = Math.round(rows * fractions.validation);
  return { seed, train: idx.slice(0, nTrain), validation: idx.slice(nTrain, nTrain + nVal), holdout: idx.slice(nTrain + nVal) };
}

/** The rows `idx` of `d` as a dense block. */
export function take(d: Dataset, idx: readonly number[]): { x: Float32Array; y: Float32Array; d: number } {
  const D = d.columns.length;
  const x = new Float32Array(idx.length * D);
  const y = new Float32Array(idx.length);
  idx.forEach((r, i) => {
    x.set(d.features.subarray(r * D, r * D + D), i * D);
    y[i] = d.labels[r]!;
  });
  return { x, y, d: D };
}
