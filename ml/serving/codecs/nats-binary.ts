/**
 * The NATS binary form, for clients that skip HTTP: `{"type": "infer", "items": [{"inputs":
 * [{name, datatype, shape, data}], "outputs"?}]}` in MessagePack, each tensor's `data` its raw
 * little-endian bytes (`WireTensor`, readable from any language; BYTES: each element a 4-byte
 * little-endian length, then its UTF-8). Outputs go back the same way.
 */
import type { Signature } from '../../registry/schemas.ts';
import { toBytes, type WireTensor } from '../../tensor.ts';
import { checkOutputs, decodeInputs, selectOutputs, type Decoded, type Outputs } from './signature.ts';

/** One binary request → its inputs in signature order (the message schema already checked the datatypes). */
export function decodeWire(sig: Signature, label: string, inputs: readonly WireTensor[], outputs: string[] | undefined): Decoded {
  const tensors = inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, bytes: t.data }));
  const { inputs: data, shapes } = decodeInputs(sig, label, tensors);
  checkOutputs(sig, label, outputs);
  return { inputs: data, shapes, outputs, id: undefined };
}

/** A request's outputs in the binary form. */
export function encodeWire(sig: Signature, outs: Outputs, wanted: readonly string[] | undefined): WireTensor[] {
  return selectOutputs(sig, outs, wanted).map(({ name, datatype, t }) => ({ name, datatype, shape: [...t.dims], data: toBytes(t.data) }));
}
