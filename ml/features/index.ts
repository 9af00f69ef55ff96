// Feature store (issue #14 items 1–3): views, transforms, online store, push ingestion, offline store and training sets.
export * from './schemas.ts';
export { checkDefinition, compileEncoder, encodeOne, encodeRows, fitView, numberOf, type Encoder } from './transforms.ts';
export { FeatureViews, canonicalJson, featureKeys, parseViewDef, type ApplyResult } from './views.ts';
export { OnlineStore, entityValues, onlineKey, type OnlineRecord, type OnlineRow } from './online.ts';
export { OfflineStore, buildTrainingSet, startFeatureCompactor, type Compactor, type CompactorOptions, manifestKey, type BuildRequest, type BuildResult, type LabelRow, type LabelsFromView, type MaterializeResult, type OfflineFile, type OfflineManifest, type TrainingSetLineage } from './offline.ts';
export { ApplyRequest, BuildRequestSchema, MaterializeRequest, checkEvent, eventTimeOf, startFeatureService, type FeatureService, type FeatureServiceOptions } from './service.ts';
export { FeatureClient, type EntityVector } from './client.ts';
