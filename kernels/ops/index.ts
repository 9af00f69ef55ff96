/** The op registry: every op, by name, in one map. */
import type { OpDef } from '../op.ts';
import { adam, sgd } from './optim.ts';
import { bce } from './bce.ts';
import { binary, unary } from './elementwise.ts';
import { crossEntropy } from './cross-entropy.ts';
import { gemm } from './gemm.ts';
import { histogram } from './histogram.ts';
import { layerNorm } from './layer-norm.ts';
import { logregBackward, logregForward } from './logreg.ts';
import { matmul } from './matmul.ts';
import { mlpBackward, mlpForward } from './mlp.ts';
import { reduce } from './reduce.ts';
import { softmax } from './softmax.ts';

const all = [matmul, gemm, softmax, layerNorm, reduce, unary, binary, histogram, crossEntropy, bce, sgd, adam, logregForward, logregBackward, mlpForward, mlpBackward] as OpDef<never>[];

export const ops: ReadonlyMap<string, OpDef<unknown>> = new Map(all.map((o) => [o.name, o as unknown as OpDef<unknown>]));

export type OpName =
  | 'matmul'
  | 'gemm'
  | 'softmax'
  | 'layerNorm'
  | 'reduce'
  | 'unary'
  | 'binary'
  | 'histogram'
  | 'crossEntropy'
  | 'bce'
  | 'sgd'
  | 'adam'
  | 'logregForward'
  | 'logregBackward'
  | 'mlpForward'
  | 'mlpBackward';
