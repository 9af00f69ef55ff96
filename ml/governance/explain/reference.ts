/**
 * What explanations need from a model version, stored at registration inside its reference
 * profile's JSON under `explain` (next to the holdout's sketches, which hold no rows): a small
 * background sample of input rows (KernelSHAP's and the linear baseline's expectation, IG's
 * baseline) and the version's global importance (mean |attribution| on the holdout).
 */
import type { Attribution, Background, Link, Method } from './attributions.ts';

/** Rows kept as the background at registration. @default 32 */
export const BACKGROUND_ROWS = 32;

export interface ExplainBackground {
  /** The model input's columns, in order (dataset column names; `x0`, … when unnamed). */
  columns: string[];
  rows: number[][];
}

export interface GlobalImportance {
  method: Method;
  link: Link;
  /** Holdout rows averaged. */
  rows: number;
  /** Mean |attribution| per input column, highest first. */
  columns: { name: string; importance: number }[];
}

/** The `explain` field of a reference profile's JSON. */
export interface ExplainReference {
  background?: ExplainBackground;
  importance?: GlobalImportance;
}

/** The `explain` part of a stored reference profile (parsed JSON), when it has a usable one. */
export function explainReference(profile: unknown): ExplainReference | undefined {
  const e = (profile as { explain?: unknown } | undefined)?.explain;
  if (!e || typeof e !== 'object') return undefined;
  return e as ExplainReference;
}

/** Every k-th of `rows` rows of `x` (D columns), `max` at most: a deterministic, spread-out sample. */
export function sampleBackground(x: ArrayLike<number>, rows: number, d: number, columns: readonly string[], max = BACKGROUND_ROWS): ExplainBackground {
  const n = Math.min(rows, max);
  const out: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = Math.floor((i * rows) / n);
    const row: number[] = [];
    for (let j = 0; j < d; j++) row.push(Number(x[r * d + j]));
    out.push(row);
  }
  return { columns: [...columns], rows: out };
}

/** A stored background as the dense rows the algorithms take; throws a plain Error naming what is wrong. */
export function denseBackground(b: ExplainBackground, d: number, maxRows = Infinity): Background {
  const rows = b.rows.slice(0, Math.min(b.rows.length, maxRows));
  if (rows.length === 0) throw new Error('the background has no rows');
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    if (!Array.isArray(r) || r.length !== d) throw new Error(`background row ${i} has ${Array.isArray(r) ? r.length : 'no'} columns; the model takes ${d}`);
    r.forEach((v, j) => (x[i * d + j] = Number(v)));
  });
  return { x, rows: rows.length, d };
}

/** Mean |attribution| per column over explained rows, highest first. */
export function meanAbsolute(method: Method, link: Link, columns: readonly string[], a: readonly Attribution[]): GlobalImportance {
  const sum = new Float64Array(columns.length);
  for (const r of a) r.values.forEach((v, j) => (sum[j]! += Math.abs(v)));
  const n = Math.max(1, a.length);
  return { method, link, rows: a.length, columns: columns.map((name, j) => ({ name, importance: sum[j]! / n })).sort((p, q) => q.importance - p.importance) };
}
