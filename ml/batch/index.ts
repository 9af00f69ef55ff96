// Public entry of ml/batch (re-exported by ml/index.ts).
export { BatchSpec, parseBatchSpec, splitModelRef } from './spec.ts';
export { planBatch, checkColumns, type BatchPlan } from './plan.ts';
export { submitBatch } from './client.ts';
export { openScoringSession, scoreRows, SCORE_CHUNK, type Scores } from './score.ts';
export { BATCH_JOB_ACTOR, scoresDataset } from './coordinator.ts';
export { BATCH_SCORER_ACTOR } from './worker.ts';
