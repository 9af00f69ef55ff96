/**
 * `/v1/models/{name}/predict`, for callers who do not want tensors: `{"instances": [row, …]}`,
 * a row an array (single-input models) or an object by input name, each input's datatype from
 * the signature; the answer is `{"predictions": [row, …]}` from the one output, or by output
 * name with several.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { MlErrors } from '../../errors.ts';
import type { Signature } from '../../registry/schemas.ts';
import { toJson, type Datatype } from '../../tensor.ts';
import { parseJsonBody } from './json-body.ts';
import { decodeInputs, selectOutputs, type Decoded, type OutputTensor, type Outputs, type RequestTensor, type ResponseBody, type SelectedOutput } from './signature.ts';

/** `/v1/models/{name}/predict`: rows as arrays (single-input models) or objects by input name. */
export const PredictRequest = Type.Object({
  instances: Type.Array(Type.Union([Type.Array(Type.Unknown()), Type.Record(Type.String(), Type.Unknown())]), { minItems: 1, maxItems: 65_536 }),
  id: Type.Optional(Type.String({ maxLength: 256 })),
});
export type PredictRequest = Static<typeof PredictRequest>;

const checkPredict = TypeCompiler.Compile(PredictRequest);

/** The dims of a nested array, read down its first elements. */
function dimsOf(v: unknown): number[] {
  const dims: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    dims.push(cur.length);
    cur = cur[0];
  }
  return dims;
}

/** A `/v1 predict` body → inputs of shape [rows, …dims of a row], datatype from the signature. */
export function decodePredict(sig: Signature, label: string, body: Uint8Array): Decoded {
  const req = parseJsonBody(body, checkPredict);
  const instances = req.instances;
  let tensors: RequestTensor[];
  if (instances.every(Array.isArray)) {
    if (sig.inputs.length !== 1) throw MlErrors.BAD_INPUT(`the model takes ${sig.inputs.length} inputs (${sig.inputs.map((s) => s.name).join(', ')}): send each instance as an object by input name`);
    const spec = sig.inputs[0]!;
    tensors = [{ name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(instances[0])], data: instances }];
  } else {
    if (instances.some(Array.isArray)) throw MlErrors.BAD_INPUT('instances must be all arrays or all objects');
    tensors = sig.inputs.map((spec) => {
      const col = instances.map((row, i) => {
        const v = (row as Record<string, unknown>)[spec.name];
        if (v === undefined) throw MlErrors.BAD_INPUT(`instance ${i} has no "${spec.name}"`);
        return v;
      });
      return { name: spec.name, datatype: spec.datatype, shape: [instances.length, ...dimsOf(col[0])], data: col };
    });
  }
  const { inputs, shapes } = decodeInputs(sig, label, tensors);
  return { inputs, shapes, outputs: undefined, id: req.id };
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

/** The `/v1 predict` response JSON from the outputs a request gets back. */
export function predictResponseJson(model: string, version: string, id: string | undefined, outputs: readonly SelectedOutput[], extra?: Record<string, unknown>): string {
  let predictions: unknown[];
  if (outputs.length === 1) predictions = splitRows(outputs[0]!.datatype, outputs[0]!.t);
  else {
    const cols = outputs.map((o) => [o.name, splitRows(o.datatype, o.t)] as const);
    predictions = Array.from({ length: cols[0]?.[1].length ?? 0 }, (_, i) => Object.fromEntries(cols.map(([n, rows]) => [n, rows[i]])));
  }
  return JSON.stringify({ model_name: model, model_version: version, ...(id !== undefined ? { id } : {}), predictions, ...extra });
}

/** The `/v1 predict` response body: `{"model_name", "model_version", "id"?, "predictions": [row, …]}`. */
export function encodePredict(sig: Signature, model: string, version: string, d: Decoded, outs: Outputs): ResponseBody {
  return { body: Buffer.from(predictResponseJson(model, version, d.id, selectOutputs(sig, outs, d.outputs), d.extra), 'utf8') };
}
