// Feature store (issue #14 items 1–4): views, transforms, online store, push ingestion, offline store and training sets, streaming aggregates.
export * from './schemas.ts';
export { checkDefinition, compileEncoder, encodeOne, encodeRows, fitView, numberOf, type Encoder } from './transforms.ts';
export { FeatureViews, canonicalJson, featureKeys, parseViewDef, type ApplyResult } from './views.ts';
export { OnlineStore, entityValues, onlineKey, type OnlineRecord, type OnlineRow } from './online.ts';
export { OfflineStore, startFeatureCompactor, type Compactor, type CompactorOptions, manifestKey, type MaterializeResult, type OfflineFile, type OfflineManifest } from './offline.ts';
export { buildTrainingSet, pointInTimeRows, type PointInTimeQuery, type BuildRequest, type BuildResult, type LabelRow, type LabelsFromView, type TrainingSetLineage } from './training-set.ts';
export { ApplyRequest, BuildRequestSchema, MaterializeRequest, checkEvent, eventTimeOf, startFeatureService, type AggregatorPlacement, type FeatureService, type FeatureServiceOptions } from './service.ts';
export { FeatureClient, type EntityVector } from './client.ts';
export { DEFAULT_TILE_SECONDS, addExact, aggregateKeyToken, aggregateValues, aggregatorId, applyEvent, checkAggregateSource, emptyRecord, exactSum, groupKey, resolveAggregate, roundExact, tileOf, valuesFromMeasures, windowMs, windowStart, type AggregateRecord, type KeyFrom, type ResolvedAggregate, type SourceEvent } from './aggregates.ts';
export { aggregateKey, aggregateOf, aggregateSourceOf, applyAggregateBatch, getAggregateRecord, readAggregateRows, type BatchResult } from './aggregate-store.ts';
export { FEATURE_AGGREGATOR_ACTOR, AggregatorMsg, FeatureAggregator, aggregatorSpec, type AggregatorArgs, type AggregatorStatus } from './aggregate-actor.ts';
export { aggregateTrainingRows, type AggregateRows } from './aggregate-offline.ts';
