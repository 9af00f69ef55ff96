/**
 * Hot-path JSON ↔ tensor conversions of the gateway, for the common case only; anything unusual
 * falls back to `ml/tensor.ts` (`fromJson` / `toJson`), which owns the rules and the error
 * messages. Profiled under load, the generic path (flatten into an intermediate array through a
 * recursive closure, a per-call error helper, `Array.from` of the outputs and then
 * `JSON.stringify` of the whole response) was ~6% of the gateway's CPU.
 */
import { fromBytes, fromJson, numel, type Datatype, type TypedArray, type WireTensor } from '../ml/index.ts';

const F32_MAX = 3.4028234663852886e38;

// No closures in these functions: under tsx (esbuild `keepNames`) every named inner function
// costs a `__name()` call — an Object.defineProperty — each time it is created.

/** Writes `v` at `k` if it is a finite number that `out`'s type holds exactly (FP32: in range). */
function put(out: Float32Array | Float64Array | Int32Array, kind: number, k: number, v: unknown): boolean {
  if (typeof v !== 'number' || v - v !== 0) return false; // not a number, NaN or ±Infinity
  if (kind === 0 ? v > F32_MAX || v < -F32_MAX : kind === 2 ? (v | 0) !== v : false) return false;
  out[k] = v;
  return true;
}

/**
 * FP32 / FP64 / INT32 data of rank 1 or 2, flat or nested exactly as `shape`, every element a
 * finite number in range → a typed array. Returns undefined when any of that does not hold (the
 * caller then uses `fromJson`, which accepts what is valid and names what is not).
 */
function fastNumeric(datatype: Datatype, shape: readonly number[], data: unknown): TypedArray | undefined {
  if (!Array.isArray(data) || shape.length < 1 || shape.length > 2) return undefined;
  const kind = datatype === 'FP32' ? 0 : datatype === 'FP64' ? 1 : datatype === 'INT32' ? 2 : -1;
  if (kind < 0) return undefined;
  const rows = shape[0]!;
  const cols = shape.length === 2 ? shape[1]! : 1;
  const n = rows * cols;
  if (n === 0) return undefined;
  const flat = !Array.isArray(data[0]);
  // Lengths first: never allocate from a shape the data does not back.
  if (flat ? data.length !== n : shape.length !== 2 || data.length !== rows) return undefined;
  const out = kind === 0 ? new Float32Array(n) : kind === 1 ? new Float64Array(n) : new Int32Array(n);
  if (flat) {
    for (let k = 0; k < n; k++) if (!put(out, kind, k, data[k])) return undefined;
    return out;
  }
  let k = 0;
  for (let r = 0; r < rows; r++) {
    const row: unknown = data[r];
    if (!Array.isArray(row) || row.length !== cols) return undefined;
    for (let c = 0; c < cols; c++) if (!put(out, kind, k++, row[c])) return undefined;
  }
  return out;
}

/** JSON data → typed array: the fast path when it applies, else `fromJson` (which throws the 400s). */
export function jsonToTensor(name: string, datatype: Datatype, shape: readonly number[], data: unknown): TypedArray {
  return fastNumeric(datatype, shape, data) ?? fromJson(name, datatype, shape, data);
}

/** A tensor's elements as a JSON array (what `JSON.stringify(toJson(...))` gives). */
function dataJson(datatype: Datatype, a: TypedArray): string {
  let s = '[';
  if (datatype === 'BOOL') {
    for (let i = 0; i < a.length; i++) s += i === 0 ? (a[i] ? 'true' : 'false') : a[i] ? ',true' : ',false';
    return `${s}]`;
  }
  for (let i = 0; i < a.length; i++) {
    const v = Number(a[i]);
    // As JSON.stringify: a non-finite number is written null.
    const j = v - v === 0 ? String(v) : 'null';
    s += i === 0 ? j : `,${j}`;
  }
  return `${s}]`;
}

/**
 * The OIP response body, written directly: `{"model_name", "model_version", "id"?, "outputs":
 * [{"name", "datatype", "shape", "data"}]}` — the same JSON `JSON.stringify` of the response
 * object gives, without building per-element JS arrays first.
 */
export function oipResponseJson(model: string, version: string, id: string | undefined, outputs: readonly WireTensor[]): string {
  let s = `{"model_name":${JSON.stringify(model)},"model_version":${JSON.stringify(version)}`;
  if (id !== undefined) s += `,"id":${JSON.stringify(id)}`;
  s += ',"outputs":[';
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    if (i > 0) s += ',';
    const arr = fromBytes(o.name, o.datatype, o.data, numel(o.shape));
    s += `{"name":${JSON.stringify(o.name)},"datatype":${JSON.stringify(o.datatype)},"shape":[${o.shape.join(',')}],"data":${dataJson(o.datatype, arr)}}`;
  }
  return `${s}]}`;
}
