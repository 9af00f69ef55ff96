// Model monitoring (issue #15): the prediction log a replica writes, the feedback (labels) service
// and the join of labels with logged predictions; the wire records all of them share.
export * from './records.ts';
export { PROCESS_CHUNK, PredictionLog, encodeSplit, MAX_BATCH_BYTES, featureRows, observeBegin, observeEnd, rowCount, type LoggedTensor, type Pending, type PredictionLogOptions, type PredictionLogStats } from './prediction-log.ts';
export { replicaPredictionLog } from './replica-log.ts';
export { COLUMNAR_FORMAT, batchRecords, buildBatch, isColumnar, type CapturedRequest, type CapturedTensor, type ColumnBlock, type ColumnarBatch } from './columnar.ts';
export { PROFILE_FORMAT, ReplicaProfiler, isProfileMessage, sliceLength, splitProfile, type ProfileMessage } from './replica-profile.ts';
export { mapColumns, columnNames } from './columns.ts';
export { FeedbackJoin, checkFeedback, indexKey, type LabelRule, startFeedbackService, startMonitoringStreams, type FeedbackJoinOptions, type FeedbackJoinStats, type FeedbackServiceOptions, type MonitoringLimits } from './feedback.ts';
export { LOCATE_AFTER_MS, LOCATE_BEFORE_MS, LoggedBatch, RecentPredictions, idTime, locatable, locateByTime } from './prediction-lookup.ts';
export { MonitorCore, AlertRule, SCORE_BINS, resolveMonitorOptions, scoreHistogram, windowName, type Alert, type MonitorCoreJSON, type MonitorCounters, type ResolvedMonitorOptions, type WindowReport } from './monitor-core.ts';
export { MONITOR_ACTOR, ModelMonitor, MonitorMsg, monitorId, monitorSpec, type MonitorArgs, type MonitorLag, type MonitorReport, type MonitorStatus } from './monitor-actor.ts';
export { modelMonitoring, readDeployment, startMonitor, stopMonitor, wantsMonitor, type ModelMonitoring } from './monitor-client.ts';
export { Webhooks, type WebhookOptions, type WebhookStats } from './webhooks.ts';
export { buildReferenceProfile, type MonitoredRow, type ReferenceProfile } from './stats/profile.ts';
export { windowFairness, judgeWindow, evaluateWindowFairness, MAX_GROUPS, type Groups, type WindowFairness, type WindowAttribute, type WindowFairnessOptions } from './window-fairness.ts';
