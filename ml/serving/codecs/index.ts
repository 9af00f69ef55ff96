// What an inference replica reads and writes, one file per protocol over one shared
// `decodeInputs` (signature.ts): the OIP v2 body with its binary tensor data extension (oip.ts),
// the `/v1 predict` body (v1.ts), both forwarded by the gateway as they came, and the NATS
// binary form (nats-binary.ts). JSON data becomes tensors in `fromJson` (ml/tensor.ts).
export { checkOutputs, decodeInputs, selectOutputs, type Decoded, type DecodedInputs, type OutputTensor, type Outputs, type RequestTensor, type ResponseBody, type SelectedOutput } from './signature.ts';
export { OipInferRequest, binaryOutputs, decodeOip, encodeOip, oipResponseJson, type OipOutput } from './oip.ts';
export { PredictRequest, decodePredict, encodePredict, predictResponseJson } from './v1.ts';
export { decodeWire, encodeWire } from './nats-binary.ts';
