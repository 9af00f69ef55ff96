/**
 * Logistic regression, as composites of primitives (so a whole training step stays one GPU
 * submission or one worker task).
 * - `logregForward(X[N,D], w[D,1], b[1]) → p[N,1]`: one gemm with the sigmoid fused.
 * - `logregBackward(X[N,D], p[N,1], y[N,1]) → loss[1], dw[D,1], db[1]` for the mean binary
 *   cross-entropy: dz = (p − y)/N, dw = Xᵀ·dz, db = Σ dz.
 */
import { defineComposite } from '../op.ts';
import type { TensorInfo } from '../tensor.ts';
import { expectCount, expectDim, expectDtype, expectRank, onlyKnown } from './common.ts';
import { KernelErrors } from '../errors.ts';

function checkX(op: string, x: TensorInfo): void {
  expectDtype(op, 'X', x, 'f32');
  expectRank(op, 'X', x, 2);
}

export const logregForward = defineComposite<Record<string, never>>({
  name: 'logregForward',
  inputs: ['X', 'w', 'b'],
  parseAttributes(raw) {
    onlyKnown('logregForward', raw, []);
    return {};
  },
  validate(inputs) {
    expectCount('logregForward', this.inputs, inputs);
    const [x, w, b] = [inputs[0]!, inputs[1]!, inputs[2]!];
    checkX('logregForward', x);
    expectDtype('logregForward', 'w', w, 'f32');
    expectDtype('logregForward', 'b', b, 'f32');
    expectRank('logregForward', 'w', w, 2);
    expectDim('logregForward', 'w', w, 0, 'X', x, 1, 'D');
    expectDim('logregForward', 'w', w, 1, '', 1);
    if (b.shape.length !== 1 || b.shape[0] !== 1) throw KernelErrors.SHAPE_MISMATCH('logregForward', `b.shape [${b.shape.join(', ')}] must be [1]`);
    return [{ dtype: 'f32', shape: [x.shape[0]!, 1] }];
  },
  expand(step, [x, w, b]) {
    return [step.op1('gemm', [x!, w!, b!], { activation: 'sigmoid' })];
  },
});

export const logregBackward = defineComposite<Record<string, never>>({
  name: 'logregBackward',
  inputs: ['X', 'p', 'y'],
  parseAttributes(raw) {
    onlyKnown('logregBackward', raw, []);
    return {};
  },
  validate(inputs) {
    expectCount('logregBackward', this.inputs, inputs);
    const [x, p, y] = [inputs[0]!, inputs[1]!, inputs[2]!];
    checkX('logregBackward', x);
    for (const [n, t] of [['p', p], ['y', y]] as const) {
      expectDtype('logregBackward', n, t, 'f32');
      expectRank('logregBackward', n, t, 2);
      expectDim('logregBackward', n, t, 0, 'X', x, 0, 'N');
      expectDim('logregBackward', n, t, 1, '', 1);
    }
    return [
      { dtype: 'f32', shape: [1] },
      { dtype: 'f32', shape: [x.shape[1]!, 1] },
      { dtype: 'f32', shape: [1] },
    ];
  },
  expand(step, [x, p, y]) {
    const [loss, dz] = step.op('bce', [p!, y!]) as [ReturnType<typeof step.op1>, ReturnType<typeof step.op1>];
    const dw = step.op1('matmul', [x!, dz], { transA: true });
    const db = step.op1('reduce', [dz], { fn: 'sum', axis: 0 });
    return [loss, dw, db];
  },
});
