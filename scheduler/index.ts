// Public entry of the scheduler layer. Other folders import from here only.
// (scheduler/main.ts is the process entry, not part of the API.)
export { SchedulerErrors } from './errors.ts';
export {
  PendingCode,
  ImpossibleCode,
  type PlacementRequest,
  type NormalizedRequest,
  type ResourceVector,
  type LabelValue,
  type NodeSpec,
  type NodeState,
  type PoolState,
  type Placement,
  type PendingReason,
  type PlaceResult,
  type ImpossibleReason,
  type NodeType,
  type NodeTypeResources,
  type PoolSpec,
  type Catalogue,
  type ResolvedPool,
  type ResolvedCatalogue,
} from './types.ts';
export { normalizeRequest, defaultSpotOk, dominantShare, DEFAULT_CPU } from './request.ts';
export { resolveCatalogue, impossibleReason, gangImpossibleReason, nodeSpecForPool, poolCanEverHost, poolCapacity } from './catalogue.ts';
export { Placer, type PlacerOptions } from './placement.ts';
export { nodeSpecFromView } from './fleet-index.ts';
export { placeGang, checkGang, assertGangPlaceable, type GangResult } from './gang.ts';
export { StrategyName, type Strategy, type PlacementContext } from './strategies/strategy.ts';
export { packStrategy } from './strategies/pack.ts';
export { spreadStrategy } from './strategies/spread.ts';
export { costAwareStrategy, type CostAwareOptions } from './strategies/cost-aware.ts';
export { Autoscaler, type AutoscalerOptions, type FleetNode, type ScalePlan, type LaunchDecision } from './autoscaler/autoscaler.ts';
export { PoolBackoff, type BackoffOptions } from './autoscaler/backoff.ts';
export { ScalingController, type ScalingControllerOptions, type ReconcileResult } from './autoscaler/controller.ts';
export { ReplicaScaler, trainingWorkers, type InferenceLoad, type ReplicaPolicy, type TrainingPolicy } from './autoscaler/load-signals.ts';
export { PoolRisk, type PoolRiskOptions } from './spot/pool-risk.ts';
export { InterruptionHandler, type InterruptionHooks, type InterruptionOutcome, type Move } from './spot/interruption.ts';
export { UniformProgress, Market, DecisionReason, type DeadlineJob, type UniformProgressOptions, type ProgressState, type Decision } from './spot/uniform-progress.ts';
export {
  NodePhase,
  NoticePresets,
  ProviderEvents,
  type Provider,
  type ProviderEvent,
  type ProviderEventType,
  type ProviderNode,
  type LaunchRequest,
  type SpotMarket,
} from './providers/provider.ts';
export { syntheticTraces, replayTrace, traceStep, type SpotTrace, type SyntheticTraceOptions } from './providers/traces.ts';
export { SimProvider, type SimProviderOptions } from './providers/sim.ts';
export { LocalProvider, type LocalProviderOptions } from './providers/local.ts';
export { DUE_RETRY_MS, LeaderLease, type LeaderLeaseOptions, type LeaseRecord } from './leader.ts';
export { autoscalerNodeIds, withoutFlag } from './local-autoscaling.ts';
export { CostLedger, IDLE_TENANT, SYSTEM_TENANT, DEFAULT_TENANT, type CostRow, type Owner, type NodePrice } from './cost/ledger.ts';
export { Budgets, BudgetRule, type BudgetAlert } from './cost/budgets.ts';
export { rightSize, type Recommendation, type RightSizeInput, type RightSizeOutput } from './cost/right-size.ts';
export { SchedulerCostRequest, type CostGroup, type CostReport, type CostReportRow, type CostAdvice } from './cost/cost-wire.ts';
export { COST_GROUPS, costAdvice, costReport, formatCostAdvice, formatCostReport, parseSince } from './cost/cost-client.ts';
export { liveHostReason } from './host-check.ts';
