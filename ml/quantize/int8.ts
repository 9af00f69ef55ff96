/**
 * The arithmetic of weight quantization, free of ONNX: symmetric per-channel int8 (one scale per
 * output channel, zero point 0), and its inverse. Rounding is half to even, as ONNX's
 * QuantizeLinear rounds, so a weight quantized here and one quantized by onnxruntime agree.
 */

/** A weight matrix quantized per channel: `q[i] * scales[channel(i)]` approximates the float weight. */
export interface PerChannelInt8 {
  q: Int8Array;
  /** One per channel (float32, > 0). */
  scales: Float32Array;
  /** The largest integer used: `2^(bits-1) - 1` (127 for 8 bits, 63 for 7). */
  qmax: number;
}

/** Round half to even (banker's rounding), the rounding of ONNX QuantizeLinear. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round sends .5 up; step back when that made an odd number from an exact half.
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Quantizes a row-major matrix `[rows, cols]` per channel along `axis` (1: one scale per column,
 * the output channel of a MatMul weight `[K, N]`; 0: one per row, a Gemm weight with transB).
 * Symmetric: scale = max|w| / qmax, zero point 0; an all-zero channel gets scale 1.
 * `bits` 8 uses [-127, 127]; 7 uses [-63, 63] (the "reduce range" onnxruntime advises for its
 * u8×s8 kernels on CPUs without VNNI, whose 16-bit pair sums can saturate).
 */
export function quantizePerChannel(w: Float32Array, rows: number, cols: number, axis: 0 | 1, bits: 7 | 8 = 8): PerChannelInt8 {
  if (w.length !== rows * cols) throw new Error(`weight has ${w.length} values, expected ${rows}×${cols}`);
  const qmax = 2 ** (bits - 1) - 1;
  const channels = axis === 1 ? cols : rows;
  const amax = new Float64Array(channels);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const ch = axis === 1 ? c : r;
      const a = Math.abs(w[r * cols + c]!);
      if (a > amax[ch]!) amax[ch] = a;
    }
  }
  const scales = new Float32Array(channels);
  for (let ch = 0; ch < channels; ch++) scales[ch] = amax[ch]! > 0 ? amax[ch]! / qmax : 1;
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const s = scales[axis === 1 ? c : r]!;
      const v = roundHalfEven(w[r * cols + c]! / s);
      q[r * cols + c] = Math.max(-qmax, Math.min(qmax, v));
    }
  }
  return { q, scales, qmax };
}

/** The float weights a per-channel quantization stands for (what DequantizeLinear computes). */
export function dequantizePerChannel(p: PerChannelInt8, rows: number, cols: number, axis: 0 | 1): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = p.q[r * cols + c]! * p.scales[axis === 1 ? c : r]!;
  return out;
}

/** Transposes a row-major `[rows, cols]` matrix. */
export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c]!;
  return out;
}
