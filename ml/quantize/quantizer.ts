/**
 * Rewrites an ONNX model for smaller, often faster inference, in TypeScript:
 *
 * - `int8`, dynamic: every MatMul/Gemm whose weight is a constant 2-D float matrix gets int8
 *   weights, one scale per output channel (symmetric, zero point 0); activations stay float on
 *   the wire and are quantized at run time. Two graph forms:
 *   - `integer`: DynamicQuantizeLinear(X) → MatMulInteger(Xq, Wq, Xzp) → Cast → Mul(Xs·Ws), the
 *     pattern onnxruntime's own dynamic quantizer writes (u8 activations × s8 weights);
 *   - `qdq`: the weight passes through DequantizeLinear (per axis) into the original MatMul/Gemm,
 *     so storage is int8 and onnxruntime decides how to compute.
 * - `fp16`: every float initializer stored as IEEE half, cast back to float once at load; the
 *   inputs and outputs (the signature clients use) stay float32. On CPU this halves the size and
 *   leaves the arithmetic in float32.
 *
 * A model with an op this file does not know (custom domains, control flow, convolutions,
 * recurrent cells, trees …) is refused with the list of those ops, before anything is written.
 */
import { MlErrors } from '../errors.ts';
import { quantizePerChannel, transpose } from './int8.ts';
import { DT, attr, decodeModel, defaultOpset, dimsOf, encodeModel, float16Tensor, floatTensorProto, floatValues, int8Tensor, node, onnx, type ModelProto, type NodeProto, type TensorProto } from './onnx-edit.ts';

export const QuantizeMode = { INT8: 'int8', FP16: 'fp16' } as const;
export type QuantizeMode = (typeof QuantizeMode)[keyof typeof QuantizeMode];
export const Int8Format = { INTEGER: 'integer', QDQ: 'qdq' } as const;
export type Int8Format = (typeof Int8Format)[keyof typeof Int8Format];

/**
 * The int8 form used when none is asked for: the one measured faster with onnxruntime-node 1.30
 * on this project's machines (bench/results/cost.md, "Quantization").
 */
export const DEFAULT_INT8_FORMAT: Int8Format = Int8Format.INTEGER;

export interface QuantizeOptions {
  mode: QuantizeMode;
  /** int8 only. @default DEFAULT_INT8_FORMAT */
  format?: Int8Format;
  /**
   * int8 weight bits. @default 7 for `integer` (u8×s8 pair sums cannot saturate 16 bits on CPUs
   * without VNNI), 8 for `qdq`
   */
  weightBits?: 7 | 8;
  /** Weights with fewer elements stay float (int8 buys nothing there). @default 16 */
  minElements?: number;
}

/** One weight the quantizer rewrote. */
export interface QuantizedWeight {
  weight: string;
  node: string;
  op: string;
  dims: number[];
}

export interface QuantizeResult {
  bytes: Uint8Array;
  mode: QuantizeMode;
  format?: Int8Format;
  weightBits?: number;
  weights: QuantizedWeight[];
}

/** Ops the quantizer knows: int8 rewrites MatMul and Gemm; the others are left as they are (float), which is correct for each of them. */
export const HANDLED_OPS: ReadonlySet<string> = new Set([
  'MatMul', 'Gemm', 'Add', 'Sub', 'Mul', 'Div', 'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Sigmoid', 'HardSigmoid', 'Tanh', 'Softmax', 'LogSoftmax', 'Softplus', 'Erf', 'Gelu',
  'Exp', 'Log', 'Sqrt', 'Neg', 'Abs', 'Pow', 'Reciprocal', 'Clip', 'Max', 'Min', 'Sum', 'Mean', 'Identity', 'Dropout', 'Cast',
  'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'Transpose', 'Shape', 'Constant', 'Expand', 'Tile',
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ArgMax', 'ArgMin', 'Where', 'Equal', 'Greater', 'Less', 'Not', 'And', 'Or',
  'LayerNormalization', 'BatchNormalization',
]);

/** The ops of a model the quantizer does not handle (`domain:Op` outside the default domain), sorted, each once. */
export function unsupportedOps(m: ModelProto): string[] {
  const out = new Set<string>();
  for (const n of m.graph?.node ?? []) {
    const domain = n.domain && n.domain !== 'ai.onnx' ? n.domain : '';
    if (domain || !HANDLED_OPS.has(n.opType ?? '')) out.add(domain ? `${domain}:${n.opType}` : (n.opType ?? '?'));
  }
  return [...out].sort();
}

/** Quantizes a model (see the file comment). Throws SHOAL_ERR_QUANTIZE_UNSUPPORTED naming what it cannot handle. */
export function quantizeModel(name: string, bytes: Uint8Array, o: QuantizeOptions): QuantizeResult {
  let m: ModelProto;
  try {
    m = decodeModel(bytes);
  } catch (err) {
    throw MlErrors.QUANTIZE_UNSUPPORTED(name, `it is not an ONNX model (${(err as Error).message})`);
  }
  const g = m.graph;
  if (!g) throw MlErrors.QUANTIZE_UNSUPPORTED(name, 'the model has no graph');
  const done = (m.metadataProps ?? []).find((p) => p.key === 'shoal.quantized');
  if (done) throw MlErrors.QUANTIZE_UNSUPPORTED(name, `it is already quantized (${done.value}); quantize its float source instead`);
  const bad = unsupportedOps(m);
  if (bad.length) throw MlErrors.QUANTIZE_UNSUPPORTED(name, `it uses ops the quantizer does not handle: ${bad.join(', ')} (it handles ${[...HANDLED_OPS].join(', ')})`);
  if ((g.initializer ?? []).some((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)) throw MlErrors.QUANTIZE_UNSUPPORTED(name, 'its weights are external data (a package); quantize single-file models');
  const result = o.mode === QuantizeMode.FP16 ? toFp16(m) : toInt8(name, m, o);
  m.metadataProps = [...(m.metadataProps ?? []).filter((p) => p.key !== 'shoal.quantized'), { key: 'shoal.quantized', value: result.format ? `int8-${result.format}` : o.mode }];
  return { ...result, bytes: encodeModel(m) };
}

function toFp16(m: ModelProto): Omit<QuantizeResult, 'bytes'> {
  const g = m.graph!;
  const inputs = new Set((g.input ?? []).map((v) => v.name));
  const casts: NodeProto[] = [];
  const weights: QuantizedWeight[] = [];
  g.initializer = (g.initializer ?? []).map((t) => {
    const v = floatValues(t);
    // An initializer that is also a graph input may be fed by the caller: it keeps its type.
    if (!v || inputs.has(t.name!)) return t;
    const half = `${t.name}_fp16`;
    casts.push(node('Cast', [half], [t.name!], `${t.name}_cast_fp32`, { to: { i: DT.FLOAT } }));
    weights.push({ weight: t.name!, node: '', op: 'initializer', dims: dimsOf(t) });
    return float16Tensor(half, dimsOf(t), v);
  });
  g.node = [...casts, ...(g.node ?? [])];
  return { mode: QuantizeMode.FP16, weights };
}

function toInt8(name: string, m: ModelProto, o: QuantizeOptions): Omit<QuantizeResult, 'bytes'> {
  const g = m.graph!;
  const format = o.format ?? DEFAULT_INT8_FORMAT;
  const bits = o.weightBits ?? (format === Int8Format.INTEGER ? 7 : 8);
  const opset = defaultOpset(m);
  // DynamicQuantizeLinear is opset 11; DequantizeLinear with a per-axis scale is opset 13.
  const need = format === Int8Format.INTEGER ? 11 : 13;
  if (opset < need) throw MlErrors.QUANTIZE_UNSUPPORTED(name, `int8 ${format} needs opset ≥ ${need}; the model imports opset ${opset}`);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name!, t] as const));
  const graphInputs = new Set((g.input ?? []).map((v) => v.name));
  const minElements = o.minElements ?? 16;
  const added: TensorProto[] = [];
  const dynq = new Map<string, { q: string; s: string; zp: string }>();
  const dq = new Map<string, string>();
  const weights: QuantizedWeight[] = [];
  const out: NodeProto[] = [];
  let k = 0;

  for (const n of g.node ?? []) {
    const op = n.opType ?? '';
    const [a, b] = n.input ?? [];
    const w = b !== undefined && !graphInputs.has(b) ? inits.get(b) : undefined;
    const wv = w ? floatValues(w) : undefined;
    const dims = w ? dimsOf(w) : [];
    const transA = op === 'Gemm' ? attr(n, 'transA', 0) : 0;
    if ((op !== 'MatMul' && op !== 'Gemm') || !a || !w || !wv || dims.length !== 2 || wv.length < minElements || transA !== 0 || inits.has(a)) {
      out.push(n);
      continue;
    }
    const id = `q${k++}`;
    const transB = op === 'Gemm' ? attr(n, 'transB', 0) : 0;
    weights.push({ weight: b!, node: n.name || id, op, dims });
    if (format === Int8Format.QDQ) {
      // Per output channel: axis 1 of W[K,N]; axis 0 of a transposed Gemm weight W[N,K].
      const axis = transB ? 0 : 1;
      let deq = dq.get(b!);
      if (!deq) {
        const p = quantizePerChannel(wv, dims[0]!, dims[1]!, axis, bits);
        deq = `${b}_dequantized`;
        added.push(int8Tensor(`${b}_int8`, dims, p.q), floatTensorProto(`${b}_scale`, [p.scales.length], p.scales), int8Tensor(`${b}_zero_point`, [p.scales.length], new Int8Array(p.scales.length)));
        out.push(node('DequantizeLinear', [`${b}_int8`, `${b}_scale`, `${b}_zero_point`], [deq], `${b}_DequantizeLinear`, { axis: { i: axis } }));
        dq.set(b!, deq);
      }
      const inputs = [...n.input!];
      inputs[1] = deq;
      out.push(onnx.NodeProto.create({ ...n, input: inputs }));
      continue;
    }
    // integer: W as [K, N] (a Gemm's transB undone), alpha folded into the scales.
    const [K, N] = transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!];
    const p = quantizePerChannel(transB ? transpose(wv, dims[0]!, dims[1]!) : wv, K, N, 1, bits);
    const alpha = op === 'Gemm' ? attr(n, 'alpha', 1) : 1;
    const scales = alpha === 1 ? p.scales : p.scales.map((s) => s * alpha);
    added.push(int8Tensor(`${id}_${b}_int8`, [K, N], p.q), floatTensorProto(`${id}_${b}_scale`, [N], scales));
    let x = dynq.get(a);
    if (!x) {
      x = { q: `${a}_quantized`, s: `${a}_scale`, zp: `${a}_zero_point` };
      out.push(node('DynamicQuantizeLinear', [a], [x.q, x.s, x.zp], `${a}_DynamicQuantizeLinear`));
      dynq.set(a, x);
    }
    const y = n.output![0]!;
    const c = op === 'Gemm' ? n.input![2] : undefined;
    const mm = c ? `${id}_matmul` : y;
    out.push(
      node('MatMulInteger', [x.q, `${id}_${b}_int8`, x.zp], [`${id}_int32`], `${id}_MatMulInteger`),
      node('Cast', [`${id}_int32`], [`${id}_float`], `${id}_Cast`, { to: { i: DT.FLOAT } }),
      node('Mul', [x.s, `${id}_${b}_scale`], [`${id}_scales`], `${id}_ScaleMul`),
      node('Mul', [`${id}_float`, `${id}_scales`], [mm], `${id}_Mul`),
    );
    if (c) {
      const beta = attr(n, 'beta', 1);
      if (beta === 1) out.push(node('Add', [mm, c], [y], `${id}_Add`));
      else {
        added.push(floatTensorProto(`${id}_beta`, [], Float32Array.of(beta)));
        out.push(node('Mul', [c, `${id}_beta`], [`${id}_bias`], `${id}_BetaMul`), node('Add', [mm, `${id}_bias`], [y], `${id}_Add`));
      }
    }
  }
  if (weights.length === 0) throw MlErrors.QUANTIZE_UNSUPPORTED(name, `it has no MatMul or Gemm with a constant 2-D float weight of ≥ ${minElements} elements: nothing to quantize to int8`);
  g.node = out;
  // Float weights no node reads any more are dropped (that is where the size goes).
  const used = new Set<string>([...out.flatMap((n) => n.input ?? []), ...(g.output ?? []).map((v) => v.name!)]);
  g.initializer = [...(g.initializer ?? []).filter((t) => used.has(t.name!) || graphInputs.has(t.name!)), ...added];
  return { mode: QuantizeMode.INT8, format, weightBits: bits, weights };
}
