/** Feature attributions (README "Governance" → "Explanations"). */
export * from './attributions.ts';
export * from './reference.ts';
export { graphKind, type GraphKind } from './graph.ts';
export { trainingExplainReference, IMPORTANCE_ROWS } from './training.ts';
export { IG_BACKWARD_STEPS, explainKernels, igBackwardRows, integratedGradientsBackward, mlpInputGradients, shoalMlp, type MlpLayer, type ShoalMlp } from './gradients.ts';
