// Public entry of ml/pipelines (re-exported by ml/index.ts): continuous training (issue #16).
export { PipelineSpec, QUALITY_DEFAULTS, nextScheduled, parseInterval, validatePipelineSpec, type SpecLookups } from './spec.ts';
export { cronProblem, nextCron } from './schedule.ts';
export { labeledRowsSince } from './labels.ts';
export { judgeCanaryQuality, type CanaryQuality, type CanaryQualityPolicy, type Estimate as QualityEstimate, type QualityBasis } from './canary-quality.ts';
export { auc, compareAuc, ece, judgeGates, type AucComparison, type GateCheck, type GatePolicy, type GateReport } from './gates.ts';
export { PipelineStore, RUN_STATES, TRIGGER_KINDS, type CanaryStep, type Outcome, type RunRecord, type RunState, type ShadowStageReport, type Trigger, type TriggerKind } from './store.ts';
export { PipelineRunner, jobIdOf, type PipelineStages, type PipelineRunnerOptions } from './runner.ts';
export { PipelineClient } from './client.ts';
export { clusterLookups, startPipelineService, type ApplyResult as PipelineApplyResult } from './service.ts';
export { alertKind, alertTriggers, startPipelineRunner } from './leader.ts';
