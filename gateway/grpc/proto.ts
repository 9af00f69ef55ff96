/**
 * The KServe v2 gRPC service definition (grpc_predict_v2.proto beside this file), loaded with
 * `@grpc/proto-loader`, and the shapes of its messages as the loader hands them over. The test
 * suite's client loads the same file with the same options.
 */
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync, type Options } from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('./grpc_predict_v2.proto', import.meta.url));
/** Shoal's own service beside the standard one (`shoal.v1.ExplainService`); it imports grpc_predict_v2.proto. */
export const EXPLAIN_PROTO_PATH = fileURLToPath(new URL('./shoal_explain.proto', import.meta.url));

/**
 * Field names as the spec writes them (`raw_input_contents`), 64-bit integers as decimal strings
 * (a JS number would round an INT64 above 2^53; shapes are checked as they are turned into
 * numbers), and unset fields filled in (empty strings, arrays and maps; null messages), so a
 * handler never meets `undefined`.
 */
export const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, arrays: true, objects: true, oneofs: true };

/** The package definition (`inference.GRPCInferenceService`): for servers and, in tests, clients. */
export function loadInferencePackage(): { inference: { GRPCInferenceService: ServiceClientConstructor } } {
  return loadPackageDefinition(loadSync(PROTO_PATH, LOADER_OPTIONS)) as unknown as ReturnType<typeof loadInferencePackage>;
}

/** The package definition of `shoal.v1.ExplainService` (explain.ts): for servers and, in tests, clients. */
export function loadExplainPackage(): { shoal: { v1: { ExplainService: ServiceClientConstructor } } } {
  const def = loadSync(EXPLAIN_PROTO_PATH, { ...LOADER_OPTIONS, includeDirs: [fileURLToPath(new URL('.', import.meta.url))] });
  return loadPackageDefinition(def) as unknown as ReturnType<typeof loadExplainPackage>;
}

/** `InferParameter`: one of the three, named by `parameter_choice`. */
export interface InferParameter {
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param';
}

/** `InferTensorContents`: the repeated field of the tensor's datatype. */
export interface InferTensorContents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  /** int64: decimal strings. */
  shape: string[];
  parameters: Record<string, InferParameter>;
  contents: InferTensorContents | null;
}

export interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameter>;
  inputs: InferInputTensor[];
  outputs: { name: string; parameters: Record<string, InferParameter> }[];
  raw_input_contents: Buffer[];
}

/** What a handler answers (the loader's encoder takes numbers for int64 fields too). */
export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: InferOutputTensor[];
  raw_output_contents: Uint8Array[];
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}
