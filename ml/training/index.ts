// Public entry of ml/training (re-exported by ml/index.ts).
export { TrainingSpec, parseTrainingSpec } from './spec.ts';
export { JobClient } from './jobs.ts';
export { bestF1Threshold, evaluate, rocAuc, type BinaryMetrics } from './metrics.ts';
export { exportOnnx, initParams, layout, predict, type Layout, type ModelShape } from './model.ts';
export { applyUpdate, gradient, nodeKernels, type GradResult } from './compute.ts';
export { TRAINING_JOB_ACTOR, TRAINER_WORKER_ACTOR, type GradReply } from './actors.ts';
