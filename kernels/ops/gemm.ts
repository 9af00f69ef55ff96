/**
 * gemm: Y = act(alpha · op(A) · op(B) + beta · bias), bias of shape [N] or [1]. The bias add and
 * the activation run in the matmul's epilogue: one dispatch, no intermediate buffer.
 */
import { KernelErrors } from '../errors.ts';
import { definePrimitive } from '../op.ts';
import type { TensorInfo } from '../tensor.ts';
import { ACTIVATIONS, type Activation, attrEnum, attrNumber, expectCount, expectDtype, onlyKnown } from './common.ts';
import { cpuGemm, encodeGemm, type GemmConfig, type MatmulAttrs, matmulDims, parseMatmulAttrs } from './matmul.ts';

export interface GemmAttrs extends MatmulAttrs {
  beta: number;
  activation: Activation;
}

function biasKind(inputs: readonly TensorInfo[], N: number): GemmConfig['bias'] {
  const bias = inputs[2];
  if (!bias) return 'none';
  expectDtype('gemm', 'bias', bias, 'f32');
  const n = bias.shape.reduce((x, y) => x * y, 1);
  if (bias.shape.length === 1 && n === N) return 'vec';
  if (n === 1) return 'scalar';
  throw KernelErrors.SHAPE_MISMATCH('gemm', `bias.shape [${bias.shape.join(', ')}] must be [N=${N}] or [1]`);
}

export const gemm = definePrimitive<GemmAttrs>({
  name: 'gemm',
  inputs: ['A', 'B', 'bias?'],
  opClass: 'matmul',
  parseAttributes(raw) {
    onlyKnown('gemm', raw, ['transA', 'transB', 'alpha', 'beta', 'activation']);
    return {
      ...parseMatmulAttrs('gemm', raw),
      beta: attrNumber('gemm', raw, 'beta', 1),
      activation: attrEnum('gemm', raw, 'activation', ACTIVATIONS, 'none'),
    };
  },
  validate(inputs, attrs) {
    expectCount('gemm', this.inputs, inputs);
    const d = matmulDims('gemm', inputs[0]!, inputs[1]!, attrs);
    biasKind(inputs, d.N);
    return [{ dtype: 'f32', shape: [d.M, d.N] }];
  },
  cost(inputs, attrs) {
    const d = matmulDims('gemm', inputs[0]!, inputs[1]!, attrs);
    return { flops: 2 * d.M * d.N * d.K + 2 * d.M * d.N, bytes: 4 * (d.M * d.K + d.K * d.N + d.M * d.N) };
  },
  gpu(ctx, inputs, outputs, attrs) {
    const d = matmulDims('gemm', inputs[0]!.info, inputs[1]!.info, attrs);
    const bias = biasKind(inputs.map((v) => v.info), d.N);
    encodeGemm(ctx, inputs[0]!, inputs[1]!, inputs[2], outputs[0]!, d, { ...attrs, bias });
  },
  cpu(inputs, outputs, infos, attrs) {
    const d = matmulDims('gemm', infos[0]!, infos[1]!, attrs);
    const bias = biasKind(infos, d.N);
    cpuGemm(inputs[0] as Float32Array, inputs[1] as Float32Array, inputs[2] as Float32Array | undefined, outputs[0] as Float32Array, d, { ...attrs, bias });
  },
});
