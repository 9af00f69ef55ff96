// Feature store (issue #14 items 1–2): views, transforms, online store, push ingestion.
export * from './schemas.ts';
export { checkDefinition, compileEncoder, encodeOne, encodeRows, fitView, numberOf, type Encoder } from './transforms.ts';
export { FeatureViews, canonicalJson, featureKeys, parseViewDef, type ApplyResult } from './views.ts';
export { OnlineStore, entityValues, onlineKey, type OnlineRecord, type OnlineRow } from './online.ts';
export { ApplyRequest, checkEvent, eventTimeOf, startFeatureService, type FeatureService, type FeatureServiceOptions } from './service.ts';
export { FeatureClient, type EntityVector } from './client.ts';
