// Public entry of ml/quantize (re-exported by ml/index.ts): int8/fp16 quantization of registered versions.
export { quantizePerChannel, dequantizePerChannel, roundHalfEven, transpose, type PerChannelInt8 } from './int8.ts';
export { DEFAULT_INT8_FORMAT, HANDLED_OPS, Int8Format, QuantizeMode, quantizeModel, unsupportedOps, type QuantizeOptions, type QuantizeResult, type QuantizedWeight } from './quantizer.ts';
export { compareLatency, type InputsFor, type LatencyComparison, type LatencyOptions } from './latency.ts';
export { DEFAULT_VERDICT_POLICY, judge as judgeQuantized, type MainMetric, type Verdict as QuantizeVerdict, type VerdictPolicy } from './verdict.ts';
export { EVAL_BATCH, describeReport, quantizeVersion, type QuantizationReport, type QuantizeVersionOptions } from './quantize-version.ts';
