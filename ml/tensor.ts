/**
 * Tensors at the edges of serving: Open Inference Protocol datatypes, JSON data (nested or flat
 * row-major) ↔ typed arrays (BYTES: `string[]`, see tensor-strings.ts), and the wire form (raw
 * little-endian bytes in a MessagePack `bin`, readable from any language; BYTES: each element
 * length-prefixed). Every check names the input and what is wrong.
 */
import { Type, type Static } from '@sinclair/typebox';
import { MlErrors } from './errors.ts';
import { decodeStrings, encodeStrings, stringsFromJson, stringsJsonText } from './tensor-strings.ts';

export const Datatype = {
  FP16: 'FP16',
  FP32: 'FP32',
  FP64: 'FP64',
  INT8: 'INT8',
  INT16: 'INT16',
  INT32: 'INT32',
  INT64: 'INT64',
  UINT8: 'UINT8',
  UINT16: 'UINT16',
  UINT32: 'UINT32',
  UINT64: 'UINT64',
  BOOL: 'BOOL',
  /** Strings (ONNX string tensors): `string[]` in memory, length-prefixed UTF-8 on the wire. */
  BYTES: 'BYTES',
} as const;
export type Datatype = (typeof Datatype)[keyof typeof Datatype];
/** The datatypes held in typed arrays (all but BYTES). */
export type NumericDatatype = Exclude<Datatype, 'BYTES'>;
export const DATATYPES = Object.values(Datatype) as Datatype[];
export const DatatypeSchema = Type.Union(DATATYPES.map((d) => Type.Literal(d)));

/** onnxruntime's element type names. */
export type OrtType = 'float16' | 'float32' | 'float64' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool' | 'string';
export const ORT_TYPE: Record<Datatype, OrtType> = {
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  BOOL: 'bool',
  BYTES: 'string',
};
const FROM_ORT: Record<string, Datatype> = Object.fromEntries(Object.entries(ORT_TYPE).map(([d, o]) => [o, d as Datatype]));
export const datatypeFromOrt = (t: string): Datatype | undefined => FROM_ORT[t];

/** FP16 is held as its IEEE 754 half-precision bits in a Uint16Array (what onnxruntime-node takes on Node 20). */
export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;
/** A tensor's elements, row-major: a typed array, or for BYTES the strings. */
export type TensorData = TypedArray | string[];

type ArrayCtor = { new (n: number): TypedArray; new (buf: ArrayBufferLike, off: number, n: number): TypedArray; BYTES_PER_ELEMENT: number };
/** The typed array holding each datatype (BOOL: one byte per element, 0 or 1). */
const ARRAY: Record<NumericDatatype, ArrayCtor> = {
  FP16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  BOOL: Uint8Array,
} as unknown as Record<NumericDatatype, ArrayCtor>;
const BYTES = (dt: NumericDatatype): number => ARRAY[dt].BYTES_PER_ELEMENT;
/** Inclusive ranges of the integer types JSON numbers can fill exactly (64-bit: the safe integers). */
const INT_RANGE: Partial<Record<Datatype, readonly [number, number]>> = {
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * A number → IEEE 754 half-precision bits, rounded to nearest even (through float32, so a value
 * exactly halfway between two halves after float32 rounding may round once more). Out of range
 * gives ±Infinity's bits (callers refuse it first).
 */
export function toHalf(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is right
  return h;
}

/** IEEE 754 half-precision bits → the number. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** A tensor on the wire between gateway and inference actors. */
export const WireTensor = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 256 }),
  datatype: DatatypeSchema,
  shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 16 }),
  /** Row-major elements as little-endian bytes (BOOL: one byte each; BYTES: each a 4-byte little-endian length, then its UTF-8). */
  data: Type.Uint8Array(),
});
export type WireTensor = Static<typeof WireTensor>;

/** Input/output signature entry; -1 marks a variable dimension. */
export const TensorSpec = Type.Object({
  name: Type.String({ minLength: 1 }),
  datatype: DatatypeSchema,
  shape: Type.Array(Type.Integer({ minimum: -1 })),
  /** Each dimension's symbolic name ('' where it is fixed or unnamed): what batching matches on. Absent in records registered before it was kept. */
  dimParams: Type.Optional(Type.Array(Type.String())),
});
export type TensorSpec = Static<typeof TensorSpec>;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** `n` zero elements (BYTES: empty strings). */
function allocate(dt: NumericDatatype, n: number): TypedArray;
function allocate(dt: Datatype, n: number): TensorData;
function allocate(dt: Datatype, n: number): TensorData {
  return dt === 'BYTES' ? new Array<string>(n).fill('') : new ARRAY[dt](n);
}

/** Checks that `data` is flat (length = numel) or nested exactly as `shape`; returns the flat list. */
function flatten(name: string, shape: readonly number[], data: unknown): unknown[] {
  if (!Array.isArray(data)) throw MlErrors.BAD_INPUT(`input "${name}": data must be an array`);
  const n = numel(shape);
  if (data.length === 0 || !Array.isArray(data[0])) {
    if (data.length !== n) throw MlErrors.BAD_INPUT(`input "${name}": shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
    return data;
  }
  if (shape.length <= 1) throw MlErrors.BAD_INPUT(`input "${name}": shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      out.push(v);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw MlErrors.BAD_INPUT(`input "${name}": data${path} must be an array of ${shape[depth]} (shape [${shape.join(', ')}]), got ${Array.isArray(v) ? `${v.length} items` : typeof v}`);
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`);
  };
  walk(data, 0, '');
  return out;
}

const F32_MAX = 3.4028234663852886e38;

/**
 * JSON data (flat row-major, or nested exactly as `shape`) → a typed array of `datatype`. Refuses
 * what the type cannot hold — not a number (or boolean), NaN/±Infinity, out of range, not an
 * integer, a 64-bit integer JSON cannot carry exactly — naming the input and the element.
 *
 * Every JSON tensor of every request comes through here, so the common case has a fast branch:
 * FP32, FP64 or INT32 of rank 1 or 2 is written in one pass with no flattened copy. It bails out
 * (never throws) at the first thing it does not expect, and the general way below then accepts
 * what is valid and names what is not.
 */
export function fromJson(name: string, datatype: NumericDatatype, shape: readonly number[], data: unknown): TypedArray;
export function fromJson(name: string, datatype: Datatype, shape: readonly number[], data: unknown): TensorData;
export function fromJson(name: string, datatype: Datatype, shape: readonly number[], data: unknown): TensorData {
  if (datatype === 'BYTES') return stringsFromJson(name, flatten(name, shape, data));
  // The fast branch's kinds: 0 FP32, 1 FP64, 2 INT32.
  const kind = datatype === 'FP32' ? 0 : datatype === 'FP64' ? 1 : datatype === 'INT32' ? 2 : -1;
  if (kind >= 0 && shape.length >= 1 && shape.length <= 2) {
    const fast = fastNumeric(kind, shape, data);
    if (fast !== undefined) return fast;
  }
  const flat = flatten(name, shape, data);
  const out = allocate(datatype, flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (datatype === 'BOOL') {
      if (typeof v !== 'boolean' && v !== 0 && v !== 1) throw badElement(name, datatype, i, `must be a boolean, got ${JSON.stringify(v)}`);
      (out as Uint8Array)[i] = v === true || v === 1 ? 1 : 0;
      continue;
    }
    if (typeof v !== 'number') throw badElement(name, datatype, i, `must be a number, got ${v === null ? 'null' : typeof v}`);
    if (!Number.isFinite(v)) throw badElement(name, datatype, i, `is ${v} (NaN and ±Infinity are refused)`);
    switch (datatype) {
      case 'FP16': {
        const h = toHalf(v);
        if ((h & 0x7c00) === 0x7c00) throw badElement(name, datatype, i, `${v} overflows FP16 (largest 65504)`);
        (out as Uint16Array)[i] = h;
        break;
      }
      case 'FP32':
        if (Math.abs(v) > F32_MAX) throw badElement(name, datatype, i, `${v} overflows FP32`);
        (out as Float32Array)[i] = v;
        break;
      case 'FP64':
        (out as Float64Array)[i] = v;
        break;
      default: {
        const [lo, hi] = INT_RANGE[datatype]!;
        if (!Number.isInteger(v)) throw badElement(name, datatype, i, `${v} is not an integer`);
        if (v < lo || v > hi) throw badElement(name, datatype, i, !Number.isSafeInteger(v) ? `${v} is not an integer JSON can carry exactly` : `${v} is outside ${datatype}'s range ${lo}..${hi}`);
        if (datatype === 'INT64' || datatype === 'UINT64') (out as BigInt64Array)[i] = BigInt(v);
        else (out as Int32Array)[i] = v;
      }
    }
  }
  return out;
}

function badElement(name: string, datatype: Datatype, i: number, why: string): Error {
  return MlErrors.BAD_INPUT(`input "${name}" (${datatype}): element ${i} ${why}`);
}

// The fast branch of `fromJson`. No closures here: under tsx (esbuild `keepNames`) every named
// inner function costs a `__name()` call — an Object.defineProperty — each time it is created.

/** Writes `v` at `k` if it is a finite number that `out`'s type holds exactly (FP32: in range). */
function put(out: Float32Array | Float64Array | Int32Array, kind: number, k: number, v: unknown): boolean {
  if (typeof v !== 'number' || v - v !== 0) return false; // not a number, NaN or ±Infinity
  if (kind === 0 ? v > F32_MAX || v < -F32_MAX : kind === 2 ? (v | 0) !== v : false) return false;
  out[k] = v;
  return true;
}

/**
 * Data of rank 1 or 2, flat or nested exactly as `shape`, every element a finite number the
 * type holds → the typed array; undefined as soon as any of that does not hold.
 */
function fastNumeric(kind: number, shape: readonly number[], data: unknown): TypedArray | undefined {
  if (!Array.isArray(data)) return undefined;
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

/** Typed array (or strings) → JSON-friendly flat list. */
export function toJson(datatype: Datatype, arr: TensorData): number[] | boolean[] | string[] {
  if (Array.isArray(arr)) return arr;
  if (datatype === 'BOOL') return Array.from(arr as Uint8Array, (x) => x !== 0);
  if (datatype === 'INT64' || datatype === 'UINT64') return Array.from(arr as BigInt64Array, (x) => Number(x));
  if (datatype === 'FP16') return Array.from(arr as Uint16Array, fromHalf);
  return Array.from(arr as Float32Array);
}

/** A tensor's elements as JSON text: what `JSON.stringify(toJson(datatype, arr))` gives, without the array. */
export function toJsonText(datatype: Datatype, arr: TensorData): string {
  if (Array.isArray(arr)) return stringsJsonText(arr);
  let s = '[';
  if (datatype === 'BOOL') {
    for (let i = 0; i < arr.length; i++) s += i === 0 ? (arr[i] ? 'true' : 'false') : arr[i] ? ',true' : ',false';
    return `${s}]`;
  }
  const half = datatype === 'FP16';
  for (let i = 0; i < arr.length; i++) {
    const v = half ? fromHalf(arr[i] as number) : Number(arr[i]);
    // As JSON.stringify: a non-finite number is written null.
    const j = v - v === 0 ? String(v) : 'null';
    s += i === 0 ? j : `,${j}`;
  }
  return `${s}]`;
}

/** A tensor's wire bytes: a typed array's own bytes (a view), or strings length-prefixed (BYTES). */
export function toBytes(arr: TensorData): Uint8Array {
  if (Array.isArray(arr)) return encodeStrings(arr);
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/**
 * Wire bytes → typed array (copied when the bytes are not aligned for the element type); BYTES:
 * the length-prefixed strings, each length checked against what is left.
 */
export function fromBytes(name: string, datatype: NumericDatatype, bytes: Uint8Array, expected?: number): TypedArray;
export function fromBytes(name: string, datatype: Datatype, bytes: Uint8Array, expected?: number): TensorData;
export function fromBytes(name: string, datatype: Datatype, bytes: Uint8Array, expected?: number): TensorData {
  if (datatype === 'BYTES') return decodeStrings(name, bytes, expected);
  const size = BYTES(datatype);
  if (bytes.byteLength % size !== 0 || (expected !== undefined && bytes.byteLength !== expected * size)) {
    throw MlErrors.BAD_INPUT(`input "${name}": ${bytes.byteLength} bytes of ${datatype} data do not hold ${expected ?? '?'} elements`);
  }
  const n = bytes.byteLength / size;
  let buf = bytes.buffer;
  let off = bytes.byteOffset;
  if (off % size !== 0) {
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    buf = copy.buffer;
    off = 0;
  }
  return new ARRAY[datatype](buf, off, n);
}

/** Checks a request tensor against its signature entry (dtype, rank, fixed dims). */
export function checkAgainst(spec: TensorSpec, datatype: string, shape: readonly number[]): void {
  if (datatype !== spec.datatype) throw MlErrors.BAD_INPUT(`input "${spec.name}": datatype ${datatype} where the model takes ${spec.datatype}`);
  if (shape.length !== spec.shape.length) throw MlErrors.BAD_INPUT(`input "${spec.name}": shape [${shape.join(', ')}] has rank ${shape.length}, the model takes [${spec.shape.join(', ')}]`);
  for (let d = 0; d < shape.length; d++) {
    const want = spec.shape[d]!;
    if (want >= 0 && shape[d] !== want) throw MlErrors.BAD_INPUT(`input "${spec.name}": dimension ${d} is ${shape[d]}, the model takes [${spec.shape.join(', ')}]`);
  }
}

/** Is finite everywhere (floats only). Returns the first bad index or -1. */
export function firstNonFinite(datatype: Datatype, arr: TensorData): number {
  if (datatype === 'FP16') {
    const h = arr as Uint16Array;
    for (let i = 0; i < h.length; i++) if ((h[i]! & 0x7c00) === 0x7c00) return i; // exponent all ones: ±Infinity or NaN
    return -1;
  }
  if (datatype !== 'FP32' && datatype !== 'FP64') return -1;
  const a = arr as Float32Array;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

export { allocate };
