/**
 * Public entry of the kernels layer: WGSL compute kernels on WebGPU with a CPU twin (worker
 * threads + ONNX Runtime), dispatched per step by a measured crossover. Other folders import
 * from here only.
 */
export { createKernels, nodeKernels, Kernels, type KernelsInfo } from './kernels.ts';
export { kernelsOptionsFrom, type BackendChoice, type KernelsOptions, type ResolvedKernelsOptions } from './kernels-options.ts';
export { StepBuilder, Value, type Backend, type RunOptions, type StepResult } from './step.ts';
export { ResidentTensor } from './resident.ts';
export { tensor, numel, describe, type DType, type HostArray, type Tensor, type TensorInfo } from './tensor.ts';
export { KernelErrors } from './errors.ts';
export { ops, type OpName } from './ops/index.ts';
export type { Attrs, OpDef, PrimitiveOp, CompositeOp, OpClass, OpCost } from './op.ts';
export { GpuDevice, type GpuAdapterInfo, type GpuFeatures, type GpuLimits, type GpuDeviceOptions } from './gpu/device.ts';
export { crossovers, defaultCacheDir, type AutotuneTable, type CurvePoint } from './autotune.ts';
export { gemmModel, type GemmModelSpec } from './cpu/onnx-model.ts';
export {
  OnnxType,
  onnxModel,
  withExternalData,
  floatTensor,
  int64Tensor,
  stringTensor,
  onnxGraphSummary,
  onnxInitializers,
  type OnnxGraphSummary,
  type OnnxFloatInitializer,
  type OnnxAttribute,
  type OnnxDim,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxModelOptions,
  type OnnxNode,
  type OnnxValueInfo,
} from './onnx.ts';
export { ACTIVATIONS, type Activation } from './ops/common.ts';
export { UNARY_FNS, BINARY_FNS, type UnaryFn, type BinaryFn } from './ops/elementwise.ts';
export { REDUCE_FNS, type ReduceFn } from './ops/reduce.ts';
export { MLP_ACTIVATIONS, type MlpActivation } from './ops/mlp.ts';
