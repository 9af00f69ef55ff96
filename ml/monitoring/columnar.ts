/**
 * The prediction log's columnar batch (the wire form of `<prefix>.predictions.<model>` messages
 * since the logging-overhead fix): one message carries the rows of many requests as columns — one
 * id, time and latency list, and per input (and output) one block of raw little-endian numbers
 * (`bin`, 4 bytes a value for FP32 tensors, 8 otherwise) or strings (BYTES). A replica copies a
 * request's tensors as they are and builds the blocks once per publish batch, off the request
 * path; readers expand a batch back into {@link PredictionRecord}s (`batchRecords`), so the
 * record schema in records.ts stays what the label join and the monitor see.
 *
 * Excluded columns (`logExclude`) are left out when a block is built: their values are never
 * copied into a message. Still standard MessagePack (maps, arrays, strings, bin).
 */
import type { Datatype, TensorData } from '../tensor.ts';
import { fromHalf } from '../tensor.ts';
import { columnNames } from './columns.ts';
import type { FeatureValue, OutputValue, PredictionBatch, PredictionRecord } from './records.ts';

export const COLUMNAR_FORMAT = 'shoal.prediction-columns/v1';

/** One input's (or output's) values for every row of the batch. */
export interface ColumnBlock {
  name: string;
  datatype: Datatype;
  /** Elements per row in the tensor. */
  per: number;
  /** The kept element indices when some were excluded (absent: all `per`). */
  cols?: number[];
  /** `f4` / `f8`: raw little-endian floats (`rows × width`), `s`: strings. */
  enc: 'f4' | 'f8' | 's';
  data: Uint8Array | string[];
}

export interface ColumnarBatch {
  format: typeof COLUMNAR_FORMAT;
  model: string;
  version: number;
  ids: string[];
  ts: number[];
  latencyMs: number[];
  /** Per row, when any row has a tenant. */
  tenants?: (string | null)[];
  /** Per row, the hashed entity keys (ml/governance/privacy), when any row has some. */
  entities?: (string[] | null)[];
  /** Per row, its groups (sensitive attribute → group, for live fairness), when any row has some. */
  groups?: (Record<string, string> | null)[];
  features: ColumnBlock[];
  outputs: ColumnBlock[];
}

/** A tensor as a request hands it to the log (copied: the run takes the request's buffers). */
export interface CapturedTensor {
  name: string;
  datatype: Datatype;
  data: TensorData;
  /** Elements per row. */
  per: number;
  /** Kept element indices (some excluded), else undefined. */
  cols: number[] | undefined;
  /** Whether the row's values are the whole tensor (an output not split by rows): repeated for every row. */
  whole: boolean;
}

/** One request as the log keeps it until the next publish. */
export interface CapturedRequest {
  id: string;
  tenant: string | undefined;
  rows: number;
  ts: number;
  latencyMs: number;
  inputs: CapturedTensor[];
  outputs: CapturedTensor[];
  /** In the sample: published as records. */
  sampled: boolean;
  /** Summarised into the replica's profile. */
  profiled: boolean;
  /** Per row, the hashed entity keys of a prediction by entity (erasure finds records by them). */
  entityRefs?: string[][];
  /** Per row, the groups of a prediction by entity (the views' sensitive features). */
  groups?: (Record<string, string> | null)[];
}

/** The logged value of element `i` (a number, a string, a boolean, or null), as records carry it. */
export function elementValue(datatype: Datatype, data: TensorData, i: number): FeatureValue {
  const v = data[i];
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v === undefined) return null;
  if (datatype === 'BOOL') return v !== 0;
  if (datatype === 'FP16') return fromHalf(v);
  return Number.isFinite(v) ? v : null;
}

/** The numeric value of element `i` (NaN for a null), what sketches and float blocks take. */
export function elementNumber(datatype: Datatype, data: TensorData, i: number): number {
  const v = data[i];
  if (typeof v === 'number') return datatype === 'FP16' ? fromHalf(v) : v;
  if (typeof v === 'bigint') return Number(v);
  return NaN;
}

/** Whether two requests have one shape — the same tensors, elements per row and kept columns (batches hold requests of one shape). Compared in place: it runs per request. */
export function sameShape(a: CapturedRequest, b: CapturedRequest): boolean {
  return sameTensors(a.inputs, b.inputs) && sameTensors(a.outputs, b.outputs);
}

function sameTensors(a: readonly CapturedTensor[], b: readonly CapturedTensor[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name || x.per !== y.per || x.cols !== y.cols) {
      if (x.name !== y.name || x.per !== y.per || !x.cols || !y.cols || x.cols.length !== y.cols.length || x.cols.some((c, j) => c !== y.cols![j])) return false;
    }
  }
  return true;
}

function block(reqs: readonly CapturedRequest[], pick: (r: CapturedRequest) => CapturedTensor, rows: number): ColumnBlock {
  const first = pick(reqs[0]!);
  const width = first.cols?.length ?? first.per;
  const head = { name: first.name, datatype: first.datatype, per: first.per, ...(first.cols ? { cols: first.cols } : {}) };
  if (first.datatype === 'BYTES') {
    const out: string[] = [];
    for (const r of reqs) {
      const t = pick(r);
      for (let row = 0; row < r.rows; row++) {
        const off = t.whole ? 0 : row * t.per;
        for (let j = 0; j < width; j++) out.push(String(t.data[off + (t.cols ? t.cols[j]! : j)] ?? ''));
      }
    }
    return { ...head, enc: 's', data: out };
  }
  const f4 = first.datatype === 'FP32';
  const arr = f4 ? new Float32Array(rows * width) : new Float64Array(rows * width);
  let at = 0;
  for (const r of reqs) {
    const t = pick(r);
    if (f4 && !t.cols && !t.whole) {
      arr.set(t.data as Float32Array, at);
      at += r.rows * width;
      continue;
    }
    for (let row = 0; row < r.rows; row++) {
      const off = t.whole ? 0 : row * t.per;
      for (let j = 0; j < width; j++) arr[at++] = elementNumber(t.datatype, t.data, off + (t.cols ? t.cols[j]! : j));
    }
  }
  return { ...head, enc: f4 ? 'f4' : 'f8', data: new Uint8Array(arr.buffer, 0, arr.byteLength) };
}

/** Builds one columnar batch from requests of one shape (see `sameShape`). */
export function buildBatch(model: string, version: number, reqs: readonly CapturedRequest[]): ColumnarBatch {
  const ids: string[] = [];
  const ts: number[] = [];
  const latencyMs: number[] = [];
  const tenants: (string | null)[] = [];
  const entities: (string[] | null)[] = [];
  let anyTenant = false;
  let anyEntity = false;
  const groups: (Record<string, string> | null)[] = [];
  let anyGroups = false;
  for (const r of reqs) {
    for (let i = 0; i < r.rows; i++) {
      ids.push(r.rows === 1 ? r.id : `${r.id}:${i}`);
      ts.push(r.ts);
      latencyMs.push(r.latencyMs);
      tenants.push(r.tenant ?? null);
      const refs = r.entityRefs?.[i];
      entities.push(refs && refs.length > 0 ? refs : null);
      if (refs && refs.length > 0) anyEntity = true;
      const g = r.groups?.[i] ?? null;
      groups.push(g);
      if (g) anyGroups = true;
    }
    if (r.tenant !== undefined) anyTenant = true;
  }
  const rows = ids.length;
  const first = reqs[0]!;
  return {
    format: COLUMNAR_FORMAT,
    model,
    version,
    ids,
    ts,
    latencyMs,
    ...(anyTenant ? { tenants } : {}),
    ...(anyEntity ? { entities } : {}),
    ...(anyGroups ? { groups } : {}),
    features: first.inputs.map((_, k) => block(reqs, (r) => r.inputs[k]!, rows)),
    outputs: first.outputs.map((_, k) => block(reqs, (r) => r.outputs[k]!, rows)),
  };
}

/** A block's values as numbers (float blocks) or strings. */
function blockValues(b: ColumnBlock): Float32Array | Float64Array | string[] {
  if (b.enc === 's') return b.data as string[];
  const bytes = b.data as Uint8Array;
  const size = b.enc === 'f4' ? 4 : 8;
  // A decoded `bin` may sit at any offset of its message: copy when it is not aligned.
  const buf = bytes.byteOffset % size === 0 ? bytes : new Uint8Array(bytes); // (a Buffer's slice() is a view, not a copy)
  return size === 4 ? new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4) : new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
}

function logged(datatype: Datatype, v: number | string): FeatureValue {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return null;
  return datatype === 'BOOL' ? v !== 0 : v;
}

/** Whether a decoded prediction-log message is a columnar batch. */
export function isColumnar(m: unknown): m is ColumnarBatch {
  return typeof m === 'object' && m !== null && (m as ColumnarBatch).format === COLUMNAR_FORMAT;
}

/**
 * The records of a decoded prediction-log message: a columnar batch expanded, or the records of
 * an older `{records}` message; undefined when it is neither (a replica profile, a stray message).
 */
export function batchRecords(m: unknown): PredictionRecord[] | undefined {
  if (Array.isArray((m as PredictionBatch | undefined)?.records)) return (m as PredictionBatch).records;
  if (!isColumnar(m)) return undefined;
  const n = m.ids.length;
  const recs: PredictionRecord[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const r: PredictionRecord = { id: m.ids[i]!, model: m.model, version: m.version, ts: m.ts[i]!, features: {}, outputs: {}, latencyMs: m.latencyMs[i]! };
    const tenant = m.tenants?.[i];
    if (tenant !== undefined && tenant !== null) r.tenant = tenant;
    const refs = m.entities?.[i];
    if (refs) r.entities = refs;
    const g = m.groups?.[i];
    if (g) r.groups = g;
    recs[i] = r;
  }
  for (const b of m.features) {
    const vals = blockValues(b);
    const all = columnNames(b.name, b.per);
    const names = b.cols ? b.cols.map((c) => all[c]!) : all;
    const w = names.length;
    for (let i = 0; i < n; i++) {
      const f = recs[i]!.features;
      for (let j = 0; j < w; j++) f[names[j]!] = logged(b.datatype, vals[i * w + j]!);
    }
  }
  for (const b of m.outputs) {
    const vals = blockValues(b);
    const w = b.cols?.length ?? b.per;
    for (let i = 0; i < n; i++) {
      const row: (number | string)[] = [];
      for (let j = 0; j < w; j++) row.push(vals[i * w + j]!);
      recs[i]!.outputs[b.name] = outputOf(b.datatype, row);
    }
  }
  return recs;
}

/** One output of one row: a scalar, the row's numbers, or a string (see records.ts `OutputValue`). */
function outputOf(datatype: Datatype, row: (number | string)[]): OutputValue {
  if (row.length === 1) {
    const v = row[0]!;
    return typeof v === 'string' ? v : Number.isFinite(v) ? v : NaN;
  }
  if (row.some((v) => typeof v === 'string')) return JSON.stringify(row);
  return row.map((v) => (datatype === 'BOOL' ? Number(v !== 0) : (v as number)));
}
