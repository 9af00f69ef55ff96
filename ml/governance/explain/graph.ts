/**
 * Which exact method a model's ONNX graph allows: a graph of affine ops only (MatMul, Gemm, Add,
 * Sub, Identity, Flatten), optionally ending in a Sigmoid, is linear in its identity (or logit)
 * link; anything else (Relu, a second Sigmoid, trees…) is not. The replica then reads the weights
 * by probing and checks additivity on the background before it calls the model linear.
 */
import { onnxGraphSummary } from '../../../kernels/index.ts';
import type { Link } from './attributions.ts';

const AFFINE = new Set(['MatMul', 'Gemm', 'Add', 'Sub', 'Identity', 'Flatten']);

export interface GraphKind {
  /** Linear in `link` space (from the graph alone). */
  linear: boolean;
  /** Logit when the explained output comes out of a Sigmoid (a probability), else identity. */
  link: Link;
  /** Shoal's MLP export: MatMul/Add/Relu layers then Sigmoid (integrated gradients' default). */
  mlp: boolean;
  why: string;
}

export function graphKind(model: Uint8Array, output: string): GraphKind {
  let g;
  try {
    g = onnxGraphSummary(model);
  } catch (err) {
    return { linear: false, link: 'identity', mlp: false, why: `the graph could not be read (${(err as Error).message})` };
  }
  const producer = g.ops.find((n) => n.outputs.includes(output));
  const link: Link = producer?.op === 'Sigmoid' || producer?.op === 'Softmax' ? 'logit' : 'identity';
  const others = g.ops.filter((n) => n !== producer || producer.op !== 'Sigmoid');
  const bad = others.find((n) => !AFFINE.has(n.op));
  const mlp = !!bad && others.every((n) => AFFINE.has(n.op) || n.op === 'Relu');
  if (bad) return { linear: false, link, mlp, why: `its graph has a ${bad.op} node` };
  if (g.inputs.length !== 1) return { linear: false, link, mlp: false, why: `it has ${g.inputs.length} inputs` };
  return { linear: true, link, mlp: false, why: link === 'logit' ? 'affine ops then Sigmoid (logistic)' : 'affine ops only (linear)' };
}
