// Model monitoring (issue #15): the prediction log a replica writes, the feedback (labels) service
// and the join of labels with logged predictions; the wire records all of them share.
export * from './records.ts';
export { PredictionLog, encodeBatches, featureRows, observeBegin, observeEnd, outputRows, rowCount, type LoggedTensor, type Pending, type PredictionLogOptions, type PredictionLogStats } from './prediction-log.ts';
export { replicaPredictionLog } from './replica-log.ts';
export { FeedbackJoin, checkFeedback, indexKey, type LabelRule, startFeedbackService, startMonitoringStreams, type FeedbackJoinOptions, type FeedbackJoinStats, type FeedbackServiceOptions, type MonitoringLimits } from './feedback.ts';
