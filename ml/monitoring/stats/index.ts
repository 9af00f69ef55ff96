/** Drift and quality statistics of model monitoring: pure functions and mergeable sketches. */
export { gammaP, gammaQ, chiSquaredSf, betaI, studentTSf, normalCdf, normalQuantile, kolmogorovSf, lnGamma, erfc } from './special.ts';
export { KllSketch, DEFAULT_KLL_K, exactSample, type KllJSON, type WeightedSample } from './kll.ts';
export { Moments, FrequentItems, ColumnSketch, OTHER, COLUMN_KLL_K, DEFAULT_FREQ_CAPACITY, categoryOf, type ColumnKind, type ColumnSketchJSON, type FrequentItemsJSON, type MomentsJSON, type Scalar, type SketchOptions } from './sketch.ts';
export {
  detectDrift,
  columnDrifts,
  correctAcross,
  summarize,
  columnDrift,
  chooseTest,
  resolveDriftOptions,
  ksStatistic,
  ksPValue,
  chiSquaredTest,
  wassersteinDistance,
  jensenShannonDistance,
  psi,
  poolSparseBins,
  numericPsi,
  categoricalPsi,
  benjaminiHochberg,
  bonferroni,
  adjustPValues,
  type Correction,
  type DriftOptions,
  type DriftReport,
  type DriftTest,
  type FeatureDrift,
  type ResolvedDriftOptions,
} from './drift.ts';
export { binaryQuality, wilson, aucDeLong, calibration, confusion, bootstrap, binaryLabel, f1Of, type CalibrationBin, type Interval, type QualityOptions, type QualityReport } from './quality.ts';
export { IsotonicCalibrator, estimatePerformance, expectedAuc, type EstimateOptions, type EstimatedPerformance, type IsotonicJSON } from './estimate.ts';
export { confidenceDrop, confidenceOf, studentTQuantile, type ConfidenceDrop, type ConfidenceDropOptions } from './confidence.ts';
export {
  buildReferenceProfile,
  driftAgainstReference,
  estimateWindow,
  inferSchema,
  outputValue,
  profileRows,
  RecordProfile,
  REFERENCE_PROFILE_FORMAT,
  type FeatureValue,
  type InferOptions,
  type MonitoredRow,
  type OutputValue,
  type ProfileSchema,
  type RecordProfileJSON,
  type ReferenceOptions,
  type ReferenceProfile,
} from './profile.ts';
