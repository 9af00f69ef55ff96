/**
 * Writes small ONNX models: a graph of nodes with float/int attributes, initializers and typed
 * inputs/outputs with fixed or symbolic dimensions, encoded as a ModelProto by `onnx-proto`.
 * The one place that knows the ONNX protobuf: the CPU backend's Gemm/MatMul sessions, training's
 * export and the tests' fixture models are all written here.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** ONNX tensor element types (TensorProto.DataType) the writers use. */
export const OnnxType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  /** Text: each element a byte string (UTF-8 in practice; onnxruntime-node reads and writes JS strings). */
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
} as const;
export type OnnxType = (typeof OnnxType)[keyof typeof OnnxType];

/** A fixed dimension, or a symbolic one (its name, e.g. `'N'`). */
export type OnnxDim = number | string;

/** A graph input or output. */
export interface OnnxValueInfo {
  name: string;
  /** @default OnnxType.FLOAT */
  type?: OnnxType;
  dims: readonly OnnxDim[];
}

/** A float (`f`), integer (`i`) or string (`s`) attribute, or a list of one of them (`floats`, `ints`, `strings`). */
export type OnnxAttribute = { f: number } | { i: number } | { s: string } | { floats: readonly number[] } | { ints: readonly number[] } | { strings: readonly string[] };

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name?: string;
  /** The operator set the op is from (e.g. `'ai.onnx.ml'`). @default '' (ai.onnx) */
  domain?: string;
  /** Written in insertion order. */
  attributes?: Readonly<Record<string, OnnxAttribute>>;
}

/** A constant tensor; its element type follows the array (Float32Array → FLOAT, BigInt64Array → INT64, string[] → STRING, UTF-8). */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  data: Float32Array | BigInt64Array | readonly string[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  initializers?: readonly OnnxInitializer[];
}

export interface OnnxModelOptions {
  irVersion: number;
  /** Version of the default ('' = ai.onnx) operator set. */
  opset: number;
  producer: string;
  /** Other operator sets the graph uses, by domain (e.g. `{ 'ai.onnx.ml': 3 }` for LabelEncoder). */
  domains?: Readonly<Record<string, number>>;
}

function valueInfo(v: OnnxValueInfo) {
  return onnx.ValueInfoProto.create({
    name: v.name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: v.type ?? OnnxType.FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }),
      }),
    }),
  });
}

const utf8 = new TextEncoder();

function attribute(name: string, a: OnnxAttribute) {
  const { AttributeType } = onnx.AttributeProto;
  if ('f' in a) return onnx.AttributeProto.create({ name, f: a.f, type: AttributeType.FLOAT });
  if ('i' in a) return onnx.AttributeProto.create({ name, i: a.i, type: AttributeType.INT });
  if ('s' in a) return onnx.AttributeProto.create({ name, s: utf8.encode(a.s), type: AttributeType.STRING });
  if ('floats' in a) return onnx.AttributeProto.create({ name, floats: [...a.floats], type: AttributeType.FLOATS });
  if ('ints' in a) return onnx.AttributeProto.create({ name, ints: [...a.ints], type: AttributeType.INTS });
  return onnx.AttributeProto.create({ name, strings: a.strings.map((x) => utf8.encode(x)), type: AttributeType.STRINGS });
}

function initializer(t: OnnxInitializer) {
  // Strings have no raw form: each element is its own bytes in `string_data`.
  if (Array.isArray(t.data)) return onnx.TensorProto.create({ name: t.name, dims: [...t.dims], dataType: OnnxType.STRING, stringData: t.data.map((x) => utf8.encode(x)) });
  const dataType = t.data instanceof Float32Array ? OnnxType.FLOAT : OnnxType.INT64;
  // A copy of exactly the view's bytes (the array may be a view into a larger buffer).
  const data = t.data as Float32Array | BigInt64Array;
  const rawData = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  return onnx.TensorProto.create({ name: t.name, dims: [...t.dims], dataType, rawData });
}

/** The serialized ModelProto of one graph. */
export function onnxModel(graph: OnnxGraph, o: OnnxModelOptions): Uint8Array {
  const g = onnx.GraphProto.create({
    name: graph.name,
    node: graph.nodes.map((n) =>
      onnx.NodeProto.create({
        opType: n.op,
        input: [...n.inputs],
        output: [...n.outputs],
        ...(n.name !== undefined ? { name: n.name } : {}),
        ...(n.domain !== undefined ? { domain: n.domain } : {}),
        ...(n.attributes ? { attribute: Object.entries(n.attributes).map(([k, a]) => attribute(k, a)) } : {}),
      }),
    ),
    initializer: (graph.initializers ?? []).map(initializer),
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map(valueInfo),
  });
  const m = onnx.ModelProto.create({ irVersion: o.irVersion, producerName: o.producer, opsetImport: [{ domain: '', version: o.opset }, ...Object.entries(o.domains ?? {}).map(([domain, version]) => ({ domain, version }))], graph: g });
  return onnx.ModelProto.encode(m).finish();
}

/** A float32 initializer. */
export function floatTensor(name: string, dims: readonly number[], values: ArrayLike<number>): OnnxInitializer {
  return { name, dims, data: Float32Array.from(values) };
}

/** A string initializer (STRING, each element UTF-8). */
export function stringTensor(name: string, dims: readonly number[], values: readonly string[]): OnnxInitializer {
  return { name, dims, data: [...values] };
}

/** An int64 initializer. */
export function int64Tensor(name: string, dims: readonly number[], values: readonly (bigint | number)[]): OnnxInitializer {
  return { name, dims, data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

/**
 * Moves a model's initializers into a side file, as ONNX's external data format keeps the weights
 * of models over protobuf's 2 GB limit: each initializer's bytes go to `data` at an offset
 * aligned to `align` bytes (memory-mappable), and its TensorProto says `external_data {location,
 * offset, length}` with `data_location: EXTERNAL` instead of holding `raw_data`. Write `data` as
 * `location` beside the returned graph. Initializers under `minBytes` stay inline.
 */
export function withExternalData(model: Uint8Array, location: string, o: { minBytes?: number; align?: number } = {}): { model: Uint8Array; data: Uint8Array } {
  const m = onnx.ModelProto.decode(model);
  const align = o.align ?? 4096;
  const parts: Uint8Array[] = [];
  let size = 0;
  for (const t of m.graph?.initializer ?? []) {
    const raw = t.rawData;
    if (!raw || raw.length === 0 || raw.length < (o.minBytes ?? 0)) continue;
    const offset = Math.ceil(size / align) * align;
    if (offset > size) parts.push(new Uint8Array(offset - size));
    parts.push(raw);
    size = offset + raw.length;
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.length) },
    ];
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0);
  }
  const data = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return { model: onnx.ModelProto.encode(m).finish(), data };
}

/** What an explainer needs to know of a model's graph: its nodes' ops in order, and its inputs' and outputs' names. */
export interface OnnxGraphSummary {
  ops: { op: string; inputs: string[]; outputs: string[] }[];
  inputs: string[];
  outputs: string[];
}

/** Reads a ModelProto's graph structure (no weights), e.g. to tell a linear/logistic model from others. */
export function onnxGraphSummary(model: Uint8Array): OnnxGraphSummary {
  const m = onnx.ModelProto.decode(model);
  const g = m.graph;
  const inits = new Set((g?.initializer ?? []).map((t) => t.name ?? ''));
  return {
    ops: (g?.node ?? []).map((n) => ({ op: n.opType ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])] })),
    inputs: (g?.input ?? []).map((v) => v.name ?? '').filter((n) => !inits.has(n)),
    outputs: (g?.output ?? []).map((v) => v.name ?? ''),
  };
}

/** A FLOAT initializer's values, read from a ModelProto (inline `raw_data` or `float_data`). */
export interface OnnxFloatInitializer {
  name: string;
  dims: number[];
  data: Float32Array;
}

/**
 * Reads a ModelProto's FLOAT initializers (the weights), by name. Initializers of other element
 * types, and those stored as external data, are left out.
 */
export function onnxInitializers(model: Uint8Array): Map<string, OnnxFloatInitializer> {
  const m = onnx.ModelProto.decode(model);
  const out = new Map<string, OnnxFloatInitializer>();
  for (const t of m.graph?.initializer ?? []) {
    if (t.dataType !== OnnxType.FLOAT || !t.name) continue;
    const dims = (t.dims ?? []).map((d) => Number(d));
    const n = dims.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (t.rawData && t.rawData.length > 0) {
      if (t.rawData.length !== n * 4) continue;
      // A copy: raw_data is a view into the decoded buffer (a Buffer's slice() is a view too), not necessarily 4-byte aligned.
      const bytes = new Uint8Array(t.rawData.length);
      bytes.set(t.rawData);
      data = new Float32Array(bytes.buffer);
    } else if (t.floatData && t.floatData.length === n) data = Float32Array.from(t.floatData);
    else continue;
    out.set(t.name, { name: t.name, dims, data });
  }
  return out;
}
