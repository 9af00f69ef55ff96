// Model monitoring (issue #15): the prediction log a replica writes, the feedback (labels) service
// and the join of labels with logged predictions; the wire records all of them share.
export * from './records.ts';
export { PredictionLog, encodeBatches, featureRows, observeBegin, observeEnd, outputRows, rowCount, type LoggedTensor, type Pending, type PredictionLogOptions, type PredictionLogStats } from './prediction-log.ts';
export { replicaPredictionLog } from './replica-log.ts';
export { FeedbackJoin, checkFeedback, indexKey, type LabelRule, startFeedbackService, startMonitoringStreams, type FeedbackJoinOptions, type FeedbackJoinStats, type FeedbackServiceOptions, type MonitoringLimits } from './feedback.ts';
export { MonitorCore, AlertRule, resolveMonitorOptions, windowName, type Alert, type MonitorCoreJSON, type MonitorCounters, type ResolvedMonitorOptions, type WindowReport } from './monitor-core.ts';
export { MONITOR_ACTOR, ModelMonitor, MonitorMsg, monitorId, monitorSpec, type MonitorArgs, type MonitorLag, type MonitorReport, type MonitorStatus } from './monitor-actor.ts';
export { modelMonitoring, readDeployment, startMonitor, stopMonitor, wantsMonitor, type ModelMonitoring } from './monitor-client.ts';
export { Webhooks, type WebhookOptions, type WebhookStats } from './webhooks.ts';
