/**
 * What every request codec shares: a request's tensors checked against the model's signature —
 * names, datatypes, shapes — and built as typed arrays in signature order, and the outputs it
 * asks for checked and, after its batch ran, selected. Each protocol (`oip.ts`, `v1.ts`,
 * `nats-binary.ts`) turns its body into {@link RequestTensor}s and calls {@link decodeInputs}.
 *
 * Every check throws SHOAL_ERR_BAD_INPUT naming the input and what is wrong; the gateway passes
 * it on as a 400 with the OIP error body.
 */
import { MlErrors } from '../../errors.ts';
import type { Signature } from '../../registry/schemas.ts';
import { DATATYPES, checkAgainst, firstNonFinite, fromBytes, fromJson, numel, type Datatype, type TensorData } from '../../tensor.ts';

/** One input as a protocol gives it: JSON `data`, or little-endian `bytes` (BYTES: length-prefixed elements). */
export interface RequestTensor {
  name: string;
  /** As sent: checked here against the supported datatypes and the signature. */
  datatype: string;
  shape: number[];
  /** JSON data, flat row-major or nested as `shape`. */
  data?: unknown;
  /** Raw little-endian bytes (the NATS binary form, OIP's binary tensor data extension); BYTES: each element a 4-byte little-endian length, then its UTF-8. */
  bytes?: Uint8Array;
}

/** A request's inputs in signature order, ready for the batcher. */
export interface DecodedInputs {
  /** Typed arrays; a BYTES input's strings. */
  inputs: TensorData[];
  shapes: number[][];
}

/** A request ready for the batcher: inputs in signature order. */
export interface Decoded extends DecodedInputs {
  /** Output names to return (default: all). */
  outputs: string[] | undefined;
  /** The request's `id`, echoed in the response. */
  id: string | undefined;
  /** Outputs to return as binary data (the binary tensor data extension). */
  binaryOutputs?: Set<string>;
  /** Fields added to the response (a prediction by entity reports which features were filled: `entities`). */
  extra?: Record<string, unknown>;
  /** A prediction by entity: per row, its entity keys hashed (ml/governance/privacy `entityRef`), for the prediction log. */
  entityRefs?: string[][];
  /** A prediction by entity: per row, its groups from the views' sensitive features (live fairness), for the prediction log. */
  groups?: (Record<string, string> | null)[];
}

/** An output of one request after its batch ran: its slice of the batch's tensor. */
export interface OutputTensor {
  data: TensorData;
  dims: readonly number[];
}
export type Outputs = Map<string, OutputTensor>;

/** An HTTP response body; `headerLength` when binary output data follows its JSON header. */
export interface ResponseBody {
  body: Buffer;
  headerLength?: number;
}

/** An output a request gets back, with its signature datatype. */
export interface SelectedOutput {
  name: string;
  datatype: Datatype;
  t: OutputTensor;
}

/**
 * Checks a request's tensors against the signature — no name twice, none the model lacks, a
 * supported datatype, none missing, each one's datatype and shape — and builds each as a typed
 * array or, for BYTES, strings (bytes: the right length and, for floats, finite; BYTES: every
 * length prefix true, UTF-8; JSON: see `fromJson`).
 */
export function decodeInputs(sig: Signature, label: string, tensors: readonly RequestTensor[]): DecodedInputs {
  checkNames(sig, label, tensors);
  for (const t of tensors) {
    if (!(DATATYPES as string[]).includes(t.datatype)) throw MlErrors.BAD_INPUT(`input "${t.name}": unsupported datatype ${t.datatype} (supported: ${DATATYPES.join(', ')})`);
  }
  const out: DecodedInputs = { inputs: [], shapes: [] };
  for (const spec of sig.inputs) {
    const t = tensors.find((x) => x.name === spec.name) ?? missing(sig, spec.name);
    checkAgainst(spec, t.datatype, t.shape);
    if (t.bytes !== undefined) {
      const data = fromBytes(spec.name, spec.datatype, t.bytes, numel(t.shape));
      const bad = firstNonFinite(spec.datatype, data);
      if (bad >= 0) throw MlErrors.BAD_INPUT(`input "${spec.name}": element ${bad} is not finite`);
      out.inputs.push(data);
    } else {
      if (t.data === undefined) throw MlErrors.BAD_INPUT(`input "${spec.name}" has no data (nor parameters.binary_data_size)`);
      out.inputs.push(fromJson(spec.name, spec.datatype, t.shape, t.data));
    }
    out.shapes.push(t.shape);
  }
  return out;
}

/** Refuses a name given twice or one the model does not have. */
function checkNames(sig: Signature, label: string, tensors: readonly RequestTensor[]): void {
  for (let i = 0; i < tensors.length; i++) {
    const name = tensors[i]!.name;
    for (let j = 0; j < i; j++) if (tensors[j]!.name === name) throw MlErrors.BAD_INPUT(`input "${name}" given twice`);
    if (!sig.inputs.some((s) => s.name === name)) throw MlErrors.BAD_INPUT(`model ${label} has no input "${name}" (inputs: ${sig.inputs.map((s) => s.name).join(', ')})`);
  }
}

function missing(sig: Signature, name: string): never {
  const s = sig.inputs.find((x) => x.name === name)!;
  throw MlErrors.BAD_INPUT(`missing input "${name}" (${s.datatype} [${s.shape.join(', ')}])`);
}

/** Refuses an output name the model does not have. */
export function checkOutputs(sig: Signature, label: string, outputs: readonly string[] | undefined): void {
  if (outputs) for (const o of outputs) if (!sig.outputs.some((s) => s.name === o)) throw MlErrors.BAD_INPUT(`model ${label} has no output "${o}" (outputs: ${sig.outputs.map((s) => s.name).join(', ')})`);
}

/** The outputs a request asked for (default: all), in signature order. */
export function selectOutputs(sig: Signature, outs: Outputs, wanted: readonly string[] | undefined): SelectedOutput[] {
  const list: SelectedOutput[] = [];
  for (const spec of sig.outputs) {
    if (wanted && !wanted.includes(spec.name)) continue;
    const t = outs.get(spec.name);
    if (t) list.push({ name: spec.name, datatype: spec.datatype, t });
  }
  return list;
}
