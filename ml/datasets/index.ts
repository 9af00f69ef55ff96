// Public entry of ml/datasets (re-exported by ml/index.ts).
export { deserialize, serialize, split, take, sha256hex, type Dataset, type Splits } from './dataset.ts';
export { generateFraud, FRAUD_COLUMNS, type FraudOptions } from './fraud.ts';
export { importCsv, type CsvSchema } from './csv.ts';
export { DatasetStore, type DatasetVersion } from './store.ts';
