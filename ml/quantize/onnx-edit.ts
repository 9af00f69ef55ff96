/**
 * Reading and editing a decoded ONNX ModelProto (onnx-proto): float initializers as arrays
 * (raw or typed storage), and builders for the int8, float16 and float tensors and the nodes a
 * quantized graph adds. kernels/onnx.ts writes graphs from scratch; this edits one that exists.
 */
import onnxProto from 'onnx-proto';
import { toHalf } from '../tensor.ts';

const { onnx } = onnxProto;
export { onnx };
export type ModelProto = InstanceType<typeof onnx.ModelProto>;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;

/** TensorProto.DataType codes used here. */
export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;

type LongLike = number | { toNumber(): number };
export const toNum = (x: LongLike | null | undefined): number => (x == null ? 0 : typeof x === 'number' ? x : x.toNumber());

export const decodeModel = (bytes: Uint8Array): ModelProto => onnx.ModelProto.decode(bytes);
export const encodeModel = (m: ModelProto): Uint8Array => onnx.ModelProto.encode(m).finish();

export const dimsOf = (t: TensorProto): number[] => (t.dims ?? []).map((d) => toNum(d as LongLike));

/** A float32 initializer's values (raw_data little-endian, or float_data); undefined for other types or external data. */
export function floatValues(t: TensorProto): Float32Array | undefined {
  if (t.dataType !== DT.FLOAT || t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) return undefined;
  if (t.rawData && t.rawData.length > 0) {
    // A fresh, aligned copy (rawData may be a Node Buffer view at any offset; Buffer#slice does not copy).
    const copy = new Uint8Array(t.rawData);
    return new Float32Array(copy.buffer, 0, copy.byteLength >> 2);
  }
  return Float32Array.from(t.floatData ?? []);
}

const bytesOf = (a: Int8Array | Uint8Array | Float32Array | Uint16Array | Int32Array): Uint8Array => new Uint8Array(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));

export function int8Tensor(name: string, dims: readonly number[], q: Int8Array): TensorProto {
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: DT.INT8, rawData: bytesOf(q) });
}

export function floatTensorProto(name: string, dims: readonly number[], v: Float32Array): TensorProto {
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: DT.FLOAT, rawData: bytesOf(v) });
}

/** A float32 array stored as IEEE half (round to nearest even). */
export function float16Tensor(name: string, dims: readonly number[], v: Float32Array): TensorProto {
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = toHalf(v[i]!);
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: DT.FLOAT16, rawData: bytesOf(h) });
}

type Attr = { i: number } | { f: number };

export function node(op: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, Attr> = {}): NodeProto {
  const { AttributeType } = onnx.AttributeProto;
  return onnx.NodeProto.create({
    opType: op,
    input: inputs,
    output: outputs,
    name,
    attribute: Object.entries(attrs).map(([k, a]) => ('i' in a ? onnx.AttributeProto.create({ name: k, i: a.i, type: AttributeType.INT }) : onnx.AttributeProto.create({ name: k, f: a.f, type: AttributeType.FLOAT }))),
  });
}

/** An attribute's int or float value, or `fallback` when the node lacks it. */
export function attr(n: NodeProto, name: string, fallback: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  if (!a) return fallback;
  return a.type === onnx.AttributeProto.AttributeType.FLOAT ? (a.f ?? fallback) : toNum(a.i as LongLike);
}

/** The default-domain opset the model imports (0 when none). */
export function defaultOpset(m: ModelProto): number {
  const d = (m.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return toNum(d?.version as LongLike);
}
