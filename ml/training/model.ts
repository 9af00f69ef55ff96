/**
 * The trainable models as flat parameter vectors: logistic regression (w[D], b) and a one-layer
 * MLP (W1[D,H], b1[H], W2[H,1], b2). Forward in float64 for evaluation, deterministic
 * initialisation by seed, and export to ONNX (MatMul + Add [+ Relu + MatMul + Add] + Sigmoid).
 */
import { floatTensor, onnxModel, type OnnxInitializer, type OnnxNode } from '../../kernels/index.ts';
import { seededRandom } from '../../cluster/index.ts';

export interface ModelShape {
  type: 'logreg' | 'mlp';
  features: number;
  /** Hidden layer widths of the MLP (ReLU), input to output; empty for logistic regression. */
  layers: number[];
}

/** Offsets of one dense layer's weights W[in,out] and bias b[out] in the flat vector. */
export interface DenseLayer {
  in: number;
  out: number;
  w: number;
  b: number;
}

export interface Layout {
  size: number;
  /** Hidden layers then the output layer (out = 1); logistic regression is the output layer alone. */
  dense: DenseLayer[];
}

export function layout(s: ModelShape): Layout {
  const widths = [s.features, ...(s.type === 'mlp' ? s.layers : []), 1];
  const dense: DenseLayer[] = [];
  let off = 0;
  for (let i = 0; i + 1 < widths.length; i++) {
    const [inW, outW] = [widths[i]!, widths[i + 1]!];
    dense.push({ in: inW, out: outW, w: off, b: off + inW * outW });
    off += inW * outW + outW;
  }
  return { size: off, dense };
}

export function initParams(s: ModelShape, seed: number): Float32Array {
  const L = layout(s);
  const p = new Float32Array(L.size);
  if (s.type === 'logreg') return p;
  const r = seededRandom(seed * 7919 + 17);
  // Glorot-uniform weights, zero biases.
  for (const d of L.dense) {
    const a = Math.sqrt(6 / (d.in + d.out));
    for (let i = 0; i < d.in * d.out; i++) p[d.w + i] = (r() * 2 - 1) * a;
  }
  return p;
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Probabilities for `rows` rows of `x` (row-major, D columns), in float64. */
export function predict(s: ModelShape, p: Float32Array, x: Float32Array, rows: number): Float64Array {
  const L = layout(s);
  const out = new Float64Array(rows);
  let cur = new Float64Array(s.features);
  for (let i = 0; i < rows; i++) {
    cur = Float64Array.from(x.subarray(i * s.features, (i + 1) * s.features));
    L.dense.forEach((d, li) => {
      const next = new Float64Array(d.out);
      for (let k = 0; k < d.out; k++) {
        let z = p[d.b + k]!;
        for (let j = 0; j < d.in; j++) z += cur[j]! * p[d.w + j * d.out + k]!;
        next[k] = li === L.dense.length - 1 ? z : z > 0 ? z : 0;
      }
      cur = next;
    });
    out[i] = sigmoid(cur[0]!);
  }
  return out;
}

// ---- ONNX export ---------------------------------------------------------------------------------

/** X [N, D] float32 → Y [N, 1] probabilities: (MatMul + Add + Relu)* → MatMul + Add → Sigmoid. */
export function exportOnnx(s: ModelShape, p: Float32Array, name = 'shoal-model'): Uint8Array {
  const L = layout(s);
  const node = (op: string, inputs: string[], outputs: string[]): OnnxNode => ({ op, inputs, outputs });
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  let x = 'X';
  L.dense.forEach((d, i) => {
    const last = i === L.dense.length - 1;
    initializers.push(floatTensor(`W${i}`, [d.in, d.out], p.subarray(d.w, d.w + d.in * d.out)), floatTensor(`B${i}`, [d.out], p.subarray(d.b, d.b + d.out)));
    nodes.push(node('MatMul', [x, `W${i}`], [`m${i}`]), node('Add', [`m${i}`, `B${i}`], [last ? 'z' : `a${i}`]));
    if (!last) {
      nodes.push(node('Relu', [`a${i}`], [`h${i}`]));
      x = `h${i}`;
    }
  });
  nodes.push(node('Sigmoid', ['z'], ['Y']));
  return onnxModel(
    { name, nodes, initializers, inputs: [{ name: 'X', dims: ['N', s.features] }], outputs: [{ name: 'Y', dims: ['N', 1] }] },
    { irVersion: 7, opset: 13, producer: 'shoal-training' },
  );
}
