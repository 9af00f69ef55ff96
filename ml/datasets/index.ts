// Public entry of ml/datasets (re-exported by ml/index.ts).
export { deserialize, serialize, split, take, sha256hex, type Dataset, type Splits } from './dataset.ts';
export { generateFraud, FRAUD_COLUMNS, type FraudOptions } from './fraud.ts';
export { importCsv, type CsvSchema } from './csv.ts';
export { DatasetStore, type DatasetVersion } from './store.ts';
export {
  fraudEventStream,
  generateFraudEvents,
  inDeliveryOrder,
  resolveFraudEventOptions,
  FRAUD_EVENT_CATEGORIES,
  FRAUD_EVENT_CHANNELS,
  FRAUD_EVENT_COUNTRIES,
  FRAUD_EVENT_RISK_TIERS,
  FRAUD_EVENT_SEGMENTS,
  type FraudEventOptions,
  type ResolvedFraudEventOptions,
  type FraudEvent,
  type CustomerEvent,
  type MerchantEvent,
  type TransactionEvent,
  type LabelEvent,
} from './fraud-events.ts';
export { fraudTableFromEvents, type FraudTableOptions } from './fraud-table.ts';
