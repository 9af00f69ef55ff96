/**
 * What an inference replica reads and writes: requests decoded into typed arrays in signature
 * order (checked against the replica's own signature), and responses encoded back.
 *
 * Two request forms:
 * - the binary wire form (`infer`): tensors as raw little-endian bytes in MessagePack, for
 *   clients on NATS;
 * - the HTTP JSON bodies, forwarded by the gateway as they came (`infer-json`): an Open
 *   Inference Protocol v2 `infer` body or a `/v1 predict` body. The replica parses and checks
 *   them and answers the HTTP response body as JSON bytes, so the gateway — one event loop in
 *   front of every replica — never parses or writes tensors (profiled, that was most of its CPU
 *   per request; the replicas were mostly idle).
 *
 * OIP bodies may use the binary tensor data extension (Triton's and KServe's): the JSON header is
 * the first `Inference-Header-Content-Length` bytes, inputs with `parameters.binary_data_size`
 * take their little-endian bytes from what follows, in order; outputs asked for with
 * `parameters.binary_data` (or the request's `binary_data_output`) come back the same way.
 *
 * Every check throws SHOAL_ERR_BAD_INPUT naming the input and what is wrong; the gateway passes
 * it on as a 400 with the OIP error body.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { MlErrors } from '../errors.ts';
import type { Signature } from '../registry/schemas.ts';
import { DATATYPES, checkAgainst, firstNonFinite, fromBytes, fromJson, numel, toBytes, toJson, toJsonText, type Datatype, type TypedArray, type WireTensor } from '../tensor.ts';

const Parameters = Type.Record(Type.String(), Type.Unknown());

/** The OIP v2 `infer` request body (what the gateway documents; the replica checks it). */
export const OipInferRequest = Type.Object({
  id: Type.Optional(Type.String({ maxLength: 256 })),
  parameters: Type.Optional(Parameters),
  inputs: Type.Array(
    Type.Object({
      name: Type.String({ minLength: 1, maxLength: 256 }),
      shape: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 16 }),
      datatype: Type.String({ minLength: 1 }),
      parameters: Type.Optional(Parameters),
      /** Absent when the input is binary (`parameters.binary_data_size`). */
      data: Type.Optional(Type.Array(Type.Unknown())),
    }),
    { minItems: 1, maxItems: 64 },
  ),
  outputs: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), parameters: Type.Optional(Parameters) }), { maxItems: 64 })),
});
export type OipInferRequest = Static<typeof OipInferRequest>;

/** `/v1/models/{name}/predict`: rows as arrays (single-input models) or objects by input name. */
export const PredictRequest = Type.Object({
  instances: Type.Array(Type.Union([Type.Array(Type.Unknown()), Type.Record(Type.String(), Type.Unknown())]), { minItems: 1, maxItems: 65_536 }),
  id: Type.Optional(Type.String({ maxLength: 256 })),
});
export type PredictRequest = Static<typeof PredictRequest>;

/** Which HTTP body a forwarded request carries. */
export type JsonFormat = 'oip' | 'v1';

/** A request ready for the batcher: inputs in signature order. */
export interface Decoded {
  inputs: TypedArray[];
  shapes: number[][];
  /** Output names to return (default: all). */
  outputs: string[] | undefined;
  /** The request's `id`, echoed in the response. */
  id: string | undefined;
  /** Outputs to return as binary data (the binary tensor data extension). */
  binaryOutputs?: Set<string>;
}

/** An output of one request after its batch ran: its slice of the batch's tensor. */
export interface OutputTensor {
  data: TypedArray;
  dims: readonly number[];
}
export type Outputs = Map<string, OutputTensor>;

const checkOip = TypeCompiler.Compile(OipInferRequest);
const checkPredict = TypeCompiler.Compile(PredictRequest);
const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJsonBody<T extends TSchema>(body: Uint8Array, check: TypeCheck<T>): Static<T> {
  if (body.length === 0) throw MlErrors.BAD_INPUT('the request body is empty: send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (err) {
    throw MlErrors.BAD_INPUT(`the request body is not valid JSON: ${(err as Error).message}`);
  }
  if (!check.Check(value)) {
    const e = check.Errors(value).First();
    throw MlErrors.BAD_INPUT(`body${e?.path ?? ''}: ${e?.message ?? 'does not match the schema'}`);
  }
  return value;
}

/** Refuses a name given twice or one the model does not have. */
function checkNames(sig: Signature, label: string, names: readonly string[]): void {
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    for (let j = 0; j < i; j++) if (names[j] === name) throw MlErrors.BAD_INPUT(`input "${name}" given twice`);
    if (!sig.inputs.some((s) => s.name === name)) throw MlErrors.BAD_INPUT(`model ${label} has no input "${name}" (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`);
  }
}

function checkOutputs(sig: Signature, label: string, outputs: readonly string[] | undefined): void {
  if (outputs) for (const o of outputs) if (!sig.outputs.some((s) => s.name === o)) throw MlErrors.BAD_INPUT(`model ${label} has no output "${o}" (outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
}

function missing(sig: Signature, name: string): never {
  const s = sig.inputs.find((x) => x.name === name)!;
  throw MlErrors.BAD_INPUT(`missing input "${name}" (${s.datatype} [${s.shape.join(', ')}])`);
}

/** The binary wire form (tensors as raw bytes). */
export function decodeWire(sig: Signature, label: string, inputs: readonly WireTensor[], outputs: string[] | undefined): Decoded {
  checkNames(
    sig,
    label,
    inputs.map((t) => t.name),
  );
  const out: Decoded = { inputs: [], shapes: [], outputs, id: undefined };
  for (const spec of sig.inputs) {
    const t = inputs.find((x) => x.name === spec.name) ?? missing(sig, spec.name);
    checkAgainst(spec, t.datatype, t.shape);
    const data = fromBytes(spec.name, spec.datatype, t.data, numel(t.shape));
    const bad = firstNonFinite(spec.datatype, data);
    if (bad >= 0) throw MlErrors.BAD_INPUT(`input "${spec.name}": element ${bad} is not finite`);
    out.inputs.push(data);
    out.shapes.push([...t.shape]);
  }
  checkOutputs(sig, label, outputs);
  return out;
}

interface JsonInput {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown;
  /** Set for a binary input: its bytes, cut from the body after the JSON header. */
  bytes?: Uint8Array;
}

function decodeJsonInputs(sig: Signature, label: string, inputs: readonly JsonInput[], outputs: string[] | undefined, id: string | undefined): Decoded {
  checkNames(
    sig,
    label,
    inputs.map((t) => t.name),
  );
  for (const inp of inputs) {
    if (!(DATATYPES as string[]).includes(inp.datatype)) throw MlErrors.BAD_INPUT(`input "${inp.name}": unsupported datatype ${inp.datatype} (supported: ${DATATYPES.join(', ')})`);
  }
  const out: Decoded = { inputs: [], shapes: [], outputs, id };
  for (const spec of sig.inputs) {
    const inp = inputs.find((x) => x.name === spec.name) ?? missing(sig, spec.name);
    checkAgainst(spec, inp.datatype, inp.shape);
    if (inp.bytes) {
      const data = fromBytes(spec.name, spec.datatype, inp.bytes, numel(inp.shape));
      const bad = firstNonFinite(spec.datatype, data);
      if (bad >= 0) throw MlErrors.BAD_INPUT(`input "${spec.name}": element ${bad} is not finite`);
      out.inputs.push(data);
    } else {
      if (inp.data === undefined) throw MlErrors.BAD_INPUT(`input "${spec.name}" has no data (nor parameters.binary_data_size)`);
      out.inputs.push(fromJson(spec.name, spec.datatype, inp.shape, inp.data));
    }
    out.shapes.push(inp.shape);
  }
  checkOutputs(sig, label, outputs);
  return out;
}

const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * An OIP v2 `infer` body: `{id?, inputs: [{name, shape, datatype, data}], outputs?}`; with
 * `headerLength` (the `Inference-Header-Content-Length` header), the binary tensor data extension.
 */
export function decodeOipJson(sig: Signature, label: string, body: Uint8Array, headerLength?: number): Decoded {
  if (headerLength !== undefined && headerLength > body.length) throw MlErrors.BAD_INPUT(`Inference-Header-Content-Length is ${headerLength} but the body has ${body.length} bytes`);
  const req = parseJsonBody(headerLength === undefined ? body : body.subarray(0, headerLength), checkOip);
  // Binary inputs take their bytes from after the JSON header, in the order of the inputs.
  let offset = headerLength ?? 0;
  const inputs: JsonInput[] = req.inputs.map((inp) => {
    const size = inp.parameters?.binary_data_size;
    if (size === undefined) return inp;
    if (!isSize(size)) throw MlErrors.BAD_INPUT(`input "${inp.name}": parameters.binary_data_size must be a byte count, got ${JSON.stringify(size)}`);
    if (headerLength === undefined) throw MlErrors.BAD_INPUT(`input "${inp.name}" is binary (binary_data_size) but the request has no Inference-Header-Content-Length header`);
    if (offset + size > body.length) throw MlErrors.BAD_INPUT(`input "${inp.name}": binary_data_size ${size} runs past the end of the body (${body.length - offset} bytes left)`);
    const bytes = body.subarray(offset, offset + size);
    offset += size;
    return { name: inp.name, datatype: inp.datatype, shape: inp.shape, bytes };
  });
  if (headerLength !== undefined && offset !== body.length) throw MlErrors.BAD_INPUT(`the body has ${body.length - offset} bytes of binary data that no input's binary_data_size accounts for`);
  const d = decodeJsonInputs(
    sig,
    label,
    inputs,
    req.outputs?.map((o) => o.name),
    req.id,
  );
  // Binary outputs: the request's binary_data_output, overridden per output by binary_data.
  const all = req.parameters?.binary_data_output === true;
  const binary = new Set<string>();
  const named = new Map((req.outputs ?? []).map((o) => [o.name, o.parameters?.binary_data] as const));
  for (const spec of sig.outputs) {
    const own = named.get(spec.name);
    if (own === true || (own === undefined && all)) binary.add(spec.name);
  }
  if (binary.size > 0) d.binaryOutputs = binary;
  return d;
}

function dimsOf(v: unknown): number[] {
  const dims: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    dims.push(cur.length);
    cur = cur[0];
  }
  return dims;
}

/** A `/v1 predict` body: rows → inputs of shape [rows, …dims of a row], datatype from the signature. */
export function decodePredictJson(sig: Signature, label: string, body: Uint8Array): Decoded {
  const req = parseJsonBody(body, checkPredict);
  const instances = req.instances;
  let inputs: JsonInput[];
  if (instances.every(Array.isArray)) {
    if (sig.inputs.length !== 1) throw MlErrors.BAD_INPUT(`the model takes ${sig.inputs.length} inputs (${sig.inputs.map((s) => s.name).join(', ')}): send each instance as an object by input name`);
    const spec = sig.inputs[0]!;
    inputs = [{ name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(instances[0])], data: instances }];
  } else {
    if (instances.some(Array.isArray)) throw MlErrors.BAD_INPUT('instances must be all arrays or all objects');
    inputs = sig.inputs.map((spec) => {
      const col = instances.map((row, i) => {
        const v = (row as Record<string, unknown>)[spec.name];
        if (v === undefined) throw MlErrors.BAD_INPUT(`instance ${i} has no "${spec.name}"`);
        return v;
      });
      return { name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(col[0])], data: col };
    });
  }
  return decodeJsonInputs(sig, label, inputs, undefined, req.id);
}

/** Decodes a forwarded HTTP body of either form. */
export function decodeJson(format: JsonFormat, sig: Signature, label: string, body: Uint8Array, headerLength?: number): Decoded {
  return format === 'v1' ? decodePredictJson(sig, label, body) : decodeOipJson(sig, label, body, headerLength);
}

// ---- responses ----

/** The outputs a request asked for, in signature order. */
function selected(sig: Signature, outs: Outputs, wanted: readonly string[] | undefined): { name: string; datatype: Datatype; t: OutputTensor }[] {
  const list: { name: string; datatype: Datatype; t: OutputTensor }[] = [];
  for (const spec of sig.outputs) {
    if (wanted && !wanted.includes(spec.name)) continue;
    const t = outs.get(spec.name);
    if (t) list.push({ name: spec.name, datatype: spec.datatype, t });
  }
  return list;
}

/** The binary wire form of a request's outputs. */
export function encodeWire(sig: Signature, outs: Outputs, wanted: readonly string[] | undefined): WireTensor[] {
  return selected(sig, outs, wanted).map(({ name, datatype, t }) => ({ name, datatype, shape: [...t.dims], data: toBytes(t.data) }));
}

/**
 * The OIP response body, written directly: `{"model_name", "model_version", "id"?, "outputs":
 * [{"name", "datatype", "shape", "data"}]}` — the same JSON `JSON.stringify` of the response
 * object gives, without building per-element JS arrays first.
 */
export function oipResponseJson(
  model: string,
  version: string,
  id: string | undefined,
  outputs: readonly { name: string; datatype: Datatype; shape: readonly number[]; data: TypedArray }[],
  binary?: ReadonlySet<string>,
): string {
  let s = `{"model_name":${JSON.stringify(model)},"model_version":${JSON.stringify(version)}`;
  if (id !== undefined) s += `,"id":${JSON.stringify(id)}`;
  s += ',"outputs":[';
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    if (i > 0) s += ',';
    const head = `{"name":${JSON.stringify(o.name)},"datatype":${JSON.stringify(o.datatype)},"shape":[${o.shape.join(',')}]`;
    s += binary?.has(o.name) ? `${head},"parameters":{"binary_data_size":${o.data.byteLength}}}` : `${head},"data":${toJsonText(o.datatype, o.data)}}`;
  }
  return `${s}]}`;
}

/** Splits an output into per-row JSON values (nested by the dims after the first). */
function splitRows(datatype: Datatype, t: OutputTensor): unknown[] {
  const flat = toJson(datatype, t.data) as unknown[];
  const n = t.dims[0] ?? 1;
  const per = n > 0 ? flat.length / n : 0;
  const rest = t.dims.slice(1);
  const nest = (part: unknown[], dims: readonly number[]): unknown => {
    if (dims.length <= 1) return part;
    const step = part.length / dims[0]!;
    return Array.from({ length: dims[0]! }, (_, i) => nest(part.slice(i * step, (i + 1) * step), dims.slice(1)));
  };
  return Array.from({ length: n }, (_, i) => {
    const row = flat.slice(i * per, (i + 1) * per);
    return rest.length === 0 ? row[0] : nest(row, rest);
  });
}

/** The `/v1 predict` response: `{"predictions": [row, …]}` from the one output, or by output name with several. */
export function predictResponseJson(model: string, version: string, id: string | undefined, outputs: readonly { name: string; datatype: Datatype; t: OutputTensor }[]): string {
  let predictions: unknown[];
  if (outputs.length === 1) predictions = splitRows(outputs[0]!.datatype, outputs[0]!.t);
  else {
    const cols = outputs.map((o) => [o.name, splitRows(o.datatype, o.t)] as const);
    predictions = Array.from({ length: cols[0]?.[1].length ?? 0 }, (_, i) => Object.fromEntries(cols.map(([n, rows]) => [n, rows[i]])));
  }
  return JSON.stringify({ model_name: model, model_version: version, ...(id !== undefined ? { id } : {}), predictions });
}

/**
 * The HTTP response body of a forwarded request: UTF-8 JSON, or — when outputs are binary — the
 * JSON header followed by their bytes, with the header's length (`Inference-Header-Content-Length`).
 */
export function encodeJson(format: JsonFormat, sig: Signature, model: string, version: string, d: Decoded, outs: Outputs): { body: Buffer; headerLength?: number } {
  const list = selected(sig, outs, d.outputs);
  if (format === 'v1') return { body: Buffer.from(predictResponseJson(model, version, d.id, list), 'utf8') };
  const tensors = list.map(({ name, datatype, t }) => ({ name, datatype, shape: t.dims, data: t.data }));
  const head = Buffer.from(oipResponseJson(model, version, d.id, tensors, d.binaryOutputs), 'utf8');
  if (!d.binaryOutputs) return { body: head };
  const parts: Buffer[] = [head];
  for (const t of tensors) if (d.binaryOutputs.has(t.name)) parts.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return { body: Buffer.concat(parts), headerLength: head.length };
}
