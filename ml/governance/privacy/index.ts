/** Privacy (issue #20): PII declarations and what they imply, and the erasure of an entity. */
export { WITHHELD, entityRef, jsonErrorMessage, piiFeatures, piiLogFields, replicaPiiFields, shown, withPiiExcluded, type PinnedView } from './pii.ts';
export { ForgetRequest, forget, formatForget, parseEntity, type ForgetResult } from './erasure.ts';
export { keyMatch, type ViewErasure } from './erase-features.ts';
export type { ModelErasure } from './erase-predictions.ts';
export type { BuiltFrom } from './erase-lineage.ts';
export { startPrivacyService, type PrivacyServiceOptions } from './service.ts';
