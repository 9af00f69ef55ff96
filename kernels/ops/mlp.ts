/**
 * A two-layer perceptron, as composites of primitives:
 * - `mlpForward(X[N,D], W1[D,H], b1[H], W2[H,C], b2[C]) → h[N,H], logits[N,C]` with
 *   h = act(X·W1 + b1) (bias and activation fused in the gemm epilogue).
 * - `mlpBackward(X, h, W2, dlogits) → dW1, db1, dW2, db2`. The activation's derivative is taken
 *   from its output h, so `activation` is relu, sigmoid or tanh.
 */
import { defineComposite } from '../op.ts';
import type { TensorInfo } from '../tensor.ts';
import { attrEnum, expectCount, expectDim, expectDtype, expectRank, onlyKnown } from './common.ts';

export const MLP_ACTIVATIONS = ['relu', 'sigmoid', 'tanh'] as const;
export type MlpActivation = (typeof MLP_ACTIVATIONS)[number];

export interface MlpAttrs {
  activation: MlpActivation;
}

function parse(op: string, raw: Record<string, unknown> | undefined): MlpAttrs {
  onlyKnown(op, raw, ['activation']);
  return { activation: attrEnum(op, raw, 'activation', MLP_ACTIVATIONS, 'relu') };
}

function f32Rank(op: string, names: readonly string[], inputs: readonly TensorInfo[], ranks: readonly number[]): void {
  inputs.forEach((t, i) => {
    expectDtype(op, names[i]!, t, 'f32');
    expectRank(op, names[i]!, t, ranks[i]!);
  });
}

export const mlpForward = defineComposite<MlpAttrs>({
  name: 'mlpForward',
  inputs: ['X', 'W1', 'b1', 'W2', 'b2'],
  parseAttributes(raw) {
    return parse('mlpForward', raw);
  },
  validate(inputs) {
    const op = 'mlpForward';
    expectCount(op, this.inputs, inputs);
    f32Rank(op, this.inputs, inputs, [2, 2, 1, 2, 1]);
    const [x, w1, b1, w2, b2] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    expectDim(op, 'W1', w1, 0, 'X', x, 1, 'D');
    expectDim(op, 'b1', b1, 0, 'W1', w1, 1, 'H');
    expectDim(op, 'W2', w2, 0, 'W1', w1, 1, 'H');
    expectDim(op, 'b2', b2, 0, 'W2', w2, 1, 'C');
    return [
      { dtype: 'f32', shape: [x.shape[0]!, w1.shape[1]!] },
      { dtype: 'f32', shape: [x.shape[0]!, w2.shape[1]!] },
    ];
  },
  expand(step, [x, w1, b1, w2, b2], attrs) {
    const h = step.op1('gemm', [x!, w1!, b1!], { activation: attrs.activation });
    const logits = step.op1('gemm', [h, w2!, b2!]);
    return [h, logits];
  },
});

export const mlpBackward = defineComposite<MlpAttrs>({
  name: 'mlpBackward',
  inputs: ['X', 'h', 'W2', 'dlogits'],
  parseAttributes(raw) {
    return parse('mlpBackward', raw);
  },
  validate(inputs) {
    const op = 'mlpBackward';
    expectCount(op, this.inputs, inputs);
    f32Rank(op, this.inputs, inputs, [2, 2, 2, 2]);
    const [x, h, w2, dl] = inputs as [TensorInfo, TensorInfo, TensorInfo, TensorInfo];
    expectDim(op, 'h', h, 0, 'X', x, 0, 'N');
    expectDim(op, 'W2', w2, 0, 'h', h, 1, 'H');
    expectDim(op, 'dlogits', dl, 0, 'X', x, 0, 'N');
    expectDim(op, 'dlogits', dl, 1, 'W2', w2, 1, 'C');
    const [D, H, C] = [x.shape[1]!, h.shape[1]!, w2.shape[1]!];
    return [
      { dtype: 'f32', shape: [D, H] },
      { dtype: 'f32', shape: [H] },
      { dtype: 'f32', shape: [H, C] },
      { dtype: 'f32', shape: [C] },
    ];
  },
  expand(step, [x, h, w2, dl], attrs) {
    const dW2 = step.op1('matmul', [h!, dl!], { transA: true });
    const db2 = step.op1('reduce', [dl!], { fn: 'sum', axis: 0 });
    const dh = step.op1('matmul', [dl!, w2!], { transB: true });
    const dz = step.op1('binary', [dh, h!], { fn: `${attrs.activation}Grad` });
    const dW1 = step.op1('matmul', [x!, dz], { transA: true });
    const db1 = step.op1('reduce', [dz], { fn: 'sum', axis: 0 });
    return [dW1, db1, dW2, db2];
  },
});
