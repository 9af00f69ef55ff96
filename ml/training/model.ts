/**
 * The trainable models as flat parameter vectors: logistic regression (w[D], b) and a one-layer
 * MLP (W1[D,H], b1[H], W2[H,1], b2). Forward in float64 for evaluation, deterministic
 * initialisation by seed, and export to ONNX (MatMul + Add [+ Relu + MatMul + Add] + Sigmoid).
 */
import onnxProto from 'onnx-proto';
import { rng } from '../datasets/index.ts';

const { onnx } = onnxProto;

export interface ModelShape {
  type: 'logreg' | 'mlp';
  features: number;
  hidden: number;
}

export interface Layout {
  size: number;
  /** Offsets into the flat vector. */
  w1: number;
  b1: number;
  w2: number;
  b2: number;
}

export function layout(s: ModelShape): Layout {
  const D = s.features;
  if (s.type === 'logreg') return { size: D + 1, w1: 0, b1: D, w2: -1, b2: -1 };
  const H = s.hidden;
  return { size: D * H + H + H + 1, w1: 0, b1: D * H, w2: D * H + H, b2: D * H + H + H };
}

export function initParams(s: ModelShape, seed: number): Float32Array {
  const L = layout(s);
  const p = new Float32Array(L.size);
  if (s.type === 'logreg') return p;
  const r = rng(seed * 7919 + 17);
  const D = s.features;
  const H = s.hidden;
  const a1 = Math.sqrt(6 / (D + H));
  for (let i = 0; i < D * H; i++) p[L.w1 + i] = (r() * 2 - 1) * a1;
  const a2 = Math.sqrt(6 / (H + 1));
  for (let i = 0; i < H; i++) p[L.w2 + i] = (r() * 2 - 1) * a2;
  return p;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Probabilities for `rows` rows of `x` (row-major, D columns), in float64. */
export function predict(s: ModelShape, p: Float32Array, x: Float32Array, rows: number): Float64Array {
  const D = s.features;
  const L = layout(s);
  const out = new Float64Array(rows);
  if (s.type === 'logreg') {
    for (let i = 0; i < rows; i++) {
      let z = p[L.b1]!;
      for (let j = 0; j < D; j++) z += x[i * D + j]! * p[j]!;
      out[i] = sigmoid(z);
    }
    return out;
  }
  const H = s.hidden;
  const h = new Float64Array(H);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < H; k++) {
      let z = p[L.b1 + k]!;
      for (let j = 0; j < D; j++) z += x[i * D + j]! * p[L.w1 + j * H + k]!;
      h[k] = z > 0 ? z : 0;
    }
    let z = p[L.b2]!;
    for (let k = 0; k < H; k++) z += h[k]! * p[L.w2 + k]!;
    out[i] = sigmoid(z);
  }
  return out;
}

// ---- ONNX export ---------------------------------------------------------------------------------

function init(name: string, dims: number[], values: Float32Array) {
  return onnx.TensorProto.create({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(values.slice().buffer) });
}

function io(name: string, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: onnx.TensorShapeProto.create({ dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) }),
      }),
    }),
  });
}

/** X [N, D] float32 → Y [N, 1] probabilities. */
export function exportOnnx(s: ModelShape, p: Float32Array, name = 'shoal-model'): Uint8Array {
  const D = s.features;
  const L = layout(s);
  const node = (opType: string, input: string[], output: string[]) => onnx.NodeProto.create({ opType, input, output });
  let nodes;
  let initializer;
  if (s.type === 'logreg') {
    nodes = [node('MatMul', ['X', 'W'], ['z0']), node('Add', ['z0', 'B'], ['z']), node('Sigmoid', ['z'], ['Y'])];
    initializer = [init('W', [D, 1], p.slice(0, D)), init('B', [1], p.slice(L.b1, L.b1 + 1))];
  } else {
    const H = s.hidden;
    nodes = [
      node('MatMul', ['X', 'W1'], ['a0']),
      node('Add', ['a0', 'B1'], ['a1']),
      node('Relu', ['a1'], ['h']),
      node('MatMul', ['h', 'W2'], ['z0']),
      node('Add', ['z0', 'B2'], ['z']),
      node('Sigmoid', ['z'], ['Y']),
    ];
    initializer = [init('W1', [D, H], p.slice(L.w1, L.w1 + D * H)), init('B1', [H], p.slice(L.b1, L.b1 + H)), init('W2', [H, 1], p.slice(L.w2, L.w2 + H)), init('B2', [1], p.slice(L.b2, L.b2 + 1))];
  }
  const graph = onnx.GraphProto.create({ name, node: nodes, initializer, input: [io('X', ['N', D])], output: [io('Y', ['N', 1])] });
  const m = onnx.ModelProto.create({ irVersion: 7, producerName: 'shoal-training', opsetImport: [{ domain: '', version: 13 }], graph });
  return onnx.ModelProto.encode(m).finish();
}
