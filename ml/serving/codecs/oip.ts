/**
 * The Open Inference Protocol v2 (KServe / Triton) `infer` body, forwarded by the gateway as it
 * came: `{id?, parameters?, inputs: [{name, shape, datatype, parameters?, data?}], outputs?}`,
 * and the response body.
 *
 * With the binary tensor data extension (Triton's and KServe's clients) the JSON header is the
 * first `Inference-Header-Content-Length` bytes; inputs with `parameters.binary_data_size` take
 * their little-endian bytes from what follows, in order (BYTES: each element a 4-byte
 * little-endian length, then its bytes, as Triton does); outputs asked for with
 * `parameters.binary_data` (or the request's `binary_data_output`) come back the same way.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { MlErrors } from '../../errors.ts';
import type { Signature } from '../../registry/schemas.ts';
import { toBytes, toJsonText, type Datatype, type TensorData } from '../../tensor.ts';
import { parseJsonBody } from './json-body.ts';
import { checkOutputs, decodeInputs, selectOutputs, type Decoded, type Outputs, type RequestTensor, type ResponseBody } from './signature.ts';

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

const checkOip = TypeCompiler.Compile(OipInferRequest);

/**
 * An OIP v2 `infer` body → its inputs in signature order; with `headerLength` (the
 * `Inference-Header-Content-Length` header), the binary tensor data extension.
 */
export function decodeOip(sig: Signature, label: string, body: Uint8Array, headerLength?: number): Decoded {
  if (headerLength !== undefined && headerLength > body.length) throw MlErrors.BAD_INPUT(`Inference-Header-Content-Length is ${headerLength} but the body has ${body.length} bytes`);
  const req = parseJsonBody(headerLength === undefined ? body : body.subarray(0, headerLength), checkOip);
  const { inputs, shapes } = decodeInputs(sig, label, withBinaryData(req, body, headerLength));
  const outputs = req.outputs?.map((o) => o.name);
  checkOutputs(sig, label, outputs);
  const d: Decoded = { inputs, shapes, outputs, id: req.id };
  const binary = binaryOutputs(sig, req);
  if (binary) d.binaryOutputs = binary;
  return d;
}

const isSize = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The request's inputs, binary ones given their bytes: cut from after the JSON header, in the order of the inputs. */
function withBinaryData(req: OipInferRequest, body: Uint8Array, headerLength: number | undefined): RequestTensor[] {
  let offset = headerLength ?? 0;
  const inputs = req.inputs.map((inp): RequestTensor => {
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
  return inputs;
}

/** Outputs to send as binary data: the request's `binary_data_output`, overridden per output by `binary_data`. */
export function binaryOutputs(sig: Signature, req: Pick<OipInferRequest, 'parameters' | 'outputs'>): Set<string> | undefined {
  const all = req.parameters?.binary_data_output === true;
  if (!all && req.outputs === undefined) return undefined; // the common case: nothing to look up
  const binary = new Set<string>();
  const named = new Map((req.outputs ?? []).map((o) => [o.name, o.parameters?.binary_data] as const));
  for (const spec of sig.outputs) {
    const own = named.get(spec.name);
    if (own === true || (own === undefined && all)) binary.add(spec.name);
  }
  return binary.size > 0 ? binary : undefined;
}

/** An output as the response body writes it. */
export interface OipOutput {
  name: string;
  datatype: Datatype;
  shape: readonly number[];
  data: TensorData;
  /** Its bytes when sent as binary data (set by `encodeOip`: BYTES outputs are encoded once, for their size and body). */
  bytes?: Uint8Array;
}

/**
 * The OIP response body: UTF-8 JSON, or — when outputs are binary — the JSON header followed by
 * their bytes, with the header's length (`Inference-Header-Content-Length`).
 */
export function encodeOip(sig: Signature, model: string, version: string, d: Decoded, outs: Outputs): ResponseBody {
  const binary = d.binaryOutputs;
  const tensors = selectOutputs(sig, outs, d.outputs).map(({ name, datatype, t }): OipOutput => (binary?.has(name) ? { name, datatype, shape: t.dims, data: t.data, bytes: toBytes(t.data) } : { name, datatype, shape: t.dims, data: t.data }));
  const head = Buffer.from(oipResponseJson(model, version, d.id, tensors, binary, d.extra), 'utf8');
  if (!binary) return { body: head };
  const parts: Uint8Array[] = [head];
  for (const t of tensors) if (t.bytes) parts.push(t.bytes);
  return { body: Buffer.concat(parts), headerLength: head.length };
}

/**
 * The response JSON, written directly: `{"model_name", "model_version", "id"?, "outputs":
 * [{"name", "datatype", "shape", "data"}]}` — the same JSON `JSON.stringify` of the response
 * object gives, without building per-element JS arrays first.
 */
export function oipResponseJson(model: string, version: string, id: string | undefined, outputs: readonly OipOutput[], binary?: ReadonlySet<string>, parameters?: Record<string, unknown>): string {
  let s = `{"model_name":${JSON.stringify(model)},"model_version":${JSON.stringify(version)}`;
  if (id !== undefined) s += `,"id":${JSON.stringify(id)}`;
  if (parameters !== undefined) s += `,"parameters":${JSON.stringify(parameters)}`;
  s += ',"outputs":[';
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!;
    if (i > 0) s += ',';
    const head = `{"name":${JSON.stringify(o.name)},"datatype":${JSON.stringify(o.datatype)},"shape":[${o.shape.join(',')}]`;
    s += binary?.has(o.name) ? `${head},"parameters":{"binary_data_size":${(o.bytes ?? toBytes(o.data)).byteLength}}}` : `${head},"data":${toJsonText(o.datatype, o.data)}}`;
  }
  return `${s}]}`;
}
