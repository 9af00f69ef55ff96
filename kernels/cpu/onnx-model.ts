/**
 * The CPU backend's matmul-class graphs: one Gemm (or MatMul) node with symbolic dimensions, so
 * one ONNX Runtime session serves every shape with the same attributes.
 */
import { onnxModel, type OnnxNode } from '../onnx.ts';

export interface GemmModelSpec {
  transA: boolean;
  transB: boolean;
  alpha: number;
  beta: number;
  /** 'vec' → bias [N], 'scalar' → bias [1]. */
  bias: 'none' | 'vec' | 'scalar';
}

/**
 * `Y = alpha·op(A)·op(B) (+ beta·bias)` with inputs A, B (, bias) and output Y. With no
 * transposes, alpha 1 and no bias this is a plain MatMul node, the same graph a direct
 * onnxruntime MatMul call would use.
 */
export function gemmModel(spec: GemmModelSpec): Uint8Array {
  const plain = !spec.transA && !spec.transB && spec.alpha === 1 && spec.bias === 'none';
  const node: OnnxNode = {
    op: plain ? 'MatMul' : 'Gemm',
    name: plain ? 'matmul' : 'gemm',
    inputs: spec.bias !== 'none' ? ['A', 'B', 'bias'] : ['A', 'B'],
    outputs: ['Y'],
    ...(plain ? {} : { attributes: { alpha: { f: spec.alpha }, beta: { f: spec.beta }, transA: { i: spec.transA ? 1 : 0 }, transB: { i: spec.transB ? 1 : 0 } } }),
  };
  return onnxModel(
    {
      name: 'shoal_gemm',
      nodes: [node],
      inputs: [
        { name: 'A', dims: spec.transA ? ['K', 'M'] : ['M', 'K'] },
        { name: 'B', dims: spec.transB ? ['N', 'K'] : ['K', 'N'] },
        ...(spec.bias !== 'none' ? [{ name: 'bias', dims: spec.bias === 'vec' ? ['N'] : [1] }] : []),
      ],
      outputs: [{ name: 'Y', dims: ['M', 'N'] }],
    },
    { irVersion: 8, opset: 17, producer: 'shoal' },
  );
}
