/**
 * What a training job stores for explanations when it registers a version: a background sample of
 * its holdout rows and the version's global importance (mean |attribution| on the holdout) —
 * exact SHAP of the logit for logistic regression, KernelSHAP of the logit for an MLP — computed
 * with the trainer's own float64 forward pass (no onnxruntime in the training job).
 */
import { predict, type ModelShape } from '../../training/model.ts';
import { kernelShap, linearShap, type Attribution } from './attributions.ts';
import { BACKGROUND_ROWS, denseBackground, meanAbsolute, sampleBackground, type ExplainReference } from './reference.ts';

/** Holdout rows averaged for the global importance of an MLP (KernelSHAP), and of a logistic model (exact). */
export const IMPORTANCE_ROWS = { kernel: 64, exact: 2000 } as const;

export async function trainingExplainReference(shape: ModelShape, params: Float32Array, holdout: Float32Array, rows: number, columns: readonly string[]): Promise<ExplainReference> {
  const D = shape.features;
  const background = sampleBackground(holdout, rows, D, columns, BACKGROUND_ROWS);
  if (rows === 0) return { background };
  const bg = denseBackground(background, D);
  let a: Attribution[];
  let method: 'exact' | 'kernel';
  if (shape.type === 'logreg') {
    // The logit is w·x + b exactly: the weights are the parameters (layout: w[D], b).
    method = 'exact';
    const n = Math.min(rows, IMPORTANCE_ROWS.exact);
    a = linearShap({ weights: Float64Array.from(params.subarray(0, D)), bias: params[D]! }, bg, holdout.subarray(0, n * D), n);
  } else {
    method = 'kernel';
    const n = Math.min(rows, IMPORTANCE_ROWS.kernel);
    const small = { x: bg.x.subarray(0, Math.min(bg.rows, 16) * D), rows: Math.min(bg.rows, 16), d: D };
    a = await kernelShap(async (x, k) => predict(shape, params, x, k), small, holdout.subarray(0, n * D), n, { link: 'logit', samples: 128 });
  }
  return { background, importance: meanAbsolute(method, 'logit', columns, a) };
}
