/**
 * ModelInferRequest ↔ the body an inference replica already reads: the OIP binary tensor data
 * extension (a JSON header of `Inference-Header-Content-Length` bytes, then each input's
 * little-endian bytes). `raw_input_contents` are that form already, so they are forwarded
 * without a copy per element; typed `contents` are written into it here, checked on the way (the
 * right repeated field for the datatype; values the datatype holds). Every output is asked for
 * as binary data, which is `raw_output_contents` as it comes back.
 *
 * BYTES: `raw_input_contents` and `raw_output_contents` hold each element as a 4-byte
 * little-endian length and then its bytes (Triton's form, the same as the binary extension);
 * `contents.bytes_contents` holds one entry per element and is written into that form here.
 *
 * What the replica checks — names, datatypes and shapes against the model's signature, element
 * counts against shapes, non-finite floats — it still checks, with the same messages as REST.
 */
import { Errors } from '../../cluster/index.ts';
import { DATATYPES, MlErrors, fromJson, toBytes, type Datatype } from '../../ml/index.ts';
import type { InferInputTensor, InferTensorContents, ModelInferRequest, ModelInferResponse } from './proto.ts';

/** The repeated field each datatype's typed values travel in (FP16 has none: raw only). */
const CONTENTS_FIELD: Readonly<Record<Datatype, keyof InferTensorContents | undefined>> = {
  FP16: undefined,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  BOOL: 'bool_contents',
  BYTES: 'bytes_contents',
};
const FIELDS = Object.keys({ bool_contents: 0, int_contents: 0, int64_contents: 0, uint_contents: 0, uint64_contents: 0, fp32_contents: 0, fp64_contents: 0, bytes_contents: 0 } satisfies Record<keyof InferTensorContents, 0>) as (keyof InferTensorContents)[];

const isDatatype = (d: string): d is Datatype => (DATATYPES as string[]).includes(d);

/** The first repeated field that holds values, if any. */
const filledField = (c: InferTensorContents | null): keyof InferTensorContents | undefined => (c ? FIELDS.find((f) => c[f].length > 0) : undefined);

/** A shape's int64 strings as numbers: non-negative integers (an OIP shape has no -1). */
function shapeOf(t: InferInputTensor): number[] {
  return t.shape.map((d, i) => {
    const n = Number(d);
    if (!Number.isSafeInteger(n) || n < 0) throw MlErrors.BAD_INPUT(`input "${t.name}": shape[${i}] is ${d}; dimensions are sizes (0 or more)`);
    return n;
  });
}

/** Typed contents → little-endian bytes, refusing the wrong field and values the datatype cannot hold. */
function contentsBytes(t: InferInputTensor, shape: readonly number[]): Uint8Array {
  const dt = t.datatype;
  if (!isDatatype(dt)) throw MlErrors.BAD_INPUT(`input "${t.name}": unsupported datatype ${JSON.stringify(dt)} (supported: ${DATATYPES.join(', ')})`);
  const field = CONTENTS_FIELD[dt];
  if (field === undefined) throw MlErrors.BAD_INPUT(`input "${t.name}" is ${dt}, which has no typed contents field: send its bytes in raw_input_contents`);
  const values = t.contents?.[field] ?? [];
  const filled = filledField(t.contents);
  if (values.length === 0 && filled !== undefined) throw MlErrors.BAD_INPUT(`input "${t.name}" (${dt}) takes its values in contents.${field}, not contents.${filled}`);
  if (dt === 'BYTES') {
    // Each element's bytes as they came, length-prefixed; the replica checks the count and the UTF-8.
    const elements = values as Buffer[];
    const size = elements.reduce((a, e) => a + 4 + e.length, 0);
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    for (const e of elements) {
      out.writeUInt32LE(e.length, at);
      out.set(e, at + 4);
      at += 4 + e.length;
    }
    return out;
  }
  if (dt === 'INT64' || dt === 'UINT64') {
    // Decimal strings the protobuf decoder checked to be in range: exact as BigInt.
    const n = shape.reduce((a, b) => a * b, 1);
    if (values.length !== n) throw MlErrors.BAD_INPUT(`input "${t.name}": shape [${shape.join(', ')}] needs ${n} values, got ${values.length} in contents.${field}`);
    const big = (values as string[]).map((v) => BigInt(v));
    return toBytes(dt === 'INT64' ? BigInt64Array.from(big) : BigUint64Array.from(big));
  }
  // The JSON path's checks name the element: 300 in an INT8, NaN in an FP32, a count off the shape.
  return toBytes(fromJson(t.name, dt, shape, values));
}

/** A forwarded inference body: the binary extension's JSON header and the inputs' bytes after it. */
export interface ForwardedBody {
  body: Buffer;
  headerLength: number;
}

/** A ModelInferRequest as the body a replica reads (see the file comment). */
export function toForwardedBody(req: ModelInferRequest): ForwardedBody {
  if (req.inputs.length === 0) throw MlErrors.BAD_INPUT('the request has no inputs');
  const raw = req.raw_input_contents;
  if (raw.length > 0 && raw.length !== req.inputs.length) {
    throw MlErrors.BAD_INPUT(`raw_input_contents has ${raw.length} entries for ${req.inputs.length} inputs: one per input, in the order of inputs`);
  }
  const parts: Uint8Array[] = [];
  const inputs = req.inputs.map((t, i) => {
    if (t.name === '') throw MlErrors.BAD_INPUT(`inputs[${i}] has no name`);
    const shape = shapeOf(t);
    let bytes: Uint8Array;
    if (raw.length > 0) {
      const filled = filledField(t.contents);
      if (filled !== undefined) throw MlErrors.BAD_INPUT(`input "${t.name}" has contents.${filled} but the request uses raw_input_contents: one or the other, for every input`);
      bytes = raw[i]!;
    } else bytes = contentsBytes(t, shape);
    parts.push(bytes);
    return { name: t.name, shape, datatype: t.datatype, parameters: { binary_data_size: bytes.byteLength } };
  });
  const outputs = req.outputs.map((o, i) => {
    if (o.name === '') throw MlErrors.BAD_INPUT(`outputs[${i}] has no name`);
    return { name: o.name };
  });
  // Request parameters are not forwarded: the replica knows none besides binary_data_output (REST passes them and it ignores them).
  const header = { ...(req.id !== '' ? { id: req.id } : {}), parameters: { binary_data_output: true }, inputs, ...(outputs.length > 0 ? { outputs } : {}) };
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([head, ...parts]), headerLength: head.length };
}

/** The JSON header of a replica's binary response. */
interface ResponseHeader {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: { name: string; datatype: string; shape: number[]; parameters?: { binary_data_size?: unknown } }[];
}

/** A replica's response body (binary outputs) → ModelInferResponse, each output's bytes a view of the body. */
export function toInferResponse(body: Buffer, headerLength: number | undefined): ModelInferResponse {
  if (headerLength === undefined) throw Errors.INTERNAL('the replica answered with JSON outputs where binary ones were asked for');
  const head = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as ResponseHeader;
  let offset = headerLength;
  const raw: Uint8Array[] = [];
  const outputs = head.outputs.map((o) => {
    const size = o.parameters?.binary_data_size;
    if (typeof size !== 'number' || offset + size > body.length) throw Errors.INTERNAL(`the replica's response has no binary data for output "${o.name}"`);
    raw.push(body.subarray(offset, offset + size));
    offset += size;
    return { name: o.name, datatype: o.datatype, shape: o.shape };
  });
  return { model_name: head.model_name, model_version: head.model_version, id: head.id ?? '', outputs, raw_output_contents: raw };
}
