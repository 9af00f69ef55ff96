/**
 * A realistic tabular fraud-detection dataset, deterministic by seed: mixed numeric features
 * (amount, account age, recent activity, distance) and categorical ones (merchant category,
 * channel — one-hot), class imbalance (≈ 3 % fraud by default), a sensitive attribute (an age
 * band, kept out of the features, for later fairness checks) and a `drift` knob that shifts the
 * distributions the way a changing population would.
 */
import { seededRandom } from '../../cluster/index.ts';
import type { Dataset } from './dataset.ts';

export interface FraudOptions {
  rows: number;
  /** @default 1 */
  seed?: number;
  /** Fraction of fraud before calibration. @default 0.03 */
  fraudRate?: number;
  /** 0 = the reference population; 1 = strongly shifted (bigger amounts, more online, younger accounts). @default 0 */
  drift?: number;
}

const CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fashion'] as const;
const CHANNELS = ['in-store', 'online', 'phone'] as const;

export const FRAUD_COLUMNS = [
  'log_amount',
  'account_age',
  'tx_last_24h',
  'distance_from_home',
  'hour_sin',
  'hour_cos',
  'new_device',
  ...CATEGORIES.map((c) => `category_${c}`),
  ...CHANNELS.map((c) => `channel_${c}`),
];

export function generateFraud(o: FraudOptions): Dataset {
  const r = seededRandom(o.seed ?? 1);
  const drift = o.drift ?? 0;
  const rows = o.rows;
  const D = FRAUD_COLUMNS.length;
  const features = new Float32Array(rows * D);
  const labels = new Uint8Array(rows);
  const sensitive = new Uint8Array(rows);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  // Intercept chosen so the base rate is near `fraudRate`.
  const intercept = Math.log((o.fraudRate ?? 0.03) / (1 - (o.fraudRate ?? 0.03))) - 1.6;
  for (let i = 0; i < rows; i++) {
    const ageBand = r() < 0.3 + 0.2 * drift ? 1 : 0; // 1 = under 30
    const logAmount = 3.5 + 0.4 * drift + 1.1 * gauss();
    const accountAge = Math.max(0, (ageBand ? 1.2 : 2.5) - 0.8 * drift + 1.0 * gauss());
    const tx24 = Math.max(0, Math.round(2 + 2 * r() + (r() < 0.1 ? 6 * r() : 0)));
    const distance = Math.abs(gauss()) * (1 + drift);
    const hour = Math.floor(r() * 24);
    const newDevice = r() < 0.1 + 0.1 * drift ? 1 : 0;
    const cat = pick(r, [0.35, 0.2 + 0.1 * drift, 0.15, 0.1 + 0.05 * drift, 0.2]);
    const channel = pick(r, [0.5 - 0.2 * drift, 0.4 + 0.2 * drift, 0.1]);
    const night = hour < 5 ? 1 : 0;
    // The hidden risk: a sparse linear score with two interactions, so a linear model does well
    // and a non-linear one a little better.
    const z =
      intercept +
      0.9 * (logAmount - 3.5) +
      -0.7 * accountAge +
      0.35 * (tx24 - 3) +
      0.6 * distance +
      1.1 * newDevice +
      0.8 * night +
      [0, 0.9, 0.7, 1.2, 0.1][cat]! +
      [0, 0.8, 0.3][channel]! +
      0.9 * newDevice * (channel === 1 ? 1 : 0) +
      0.5 * night * (logAmount > 4.5 ? 1 : 0);
    labels[i] = r() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
    sensitive[i] = ageBand;
    const row = features.subarray(i * D, i * D + D);
    row[0] = (logAmount - 3.5) / 1.1;
    row[1] = (accountAge - 2) / 1.1;
    row[2] = (tx24 - 3) / 1.5;
    row[3] = distance - 0.8;
    row[4] = Math.sin((2 * Math.PI * hour) / 24);
    row[5] = Math.cos((2 * Math.PI * hour) / 24);
    row[6] = newDevice;
    row[7 + cat] = 1;
    row[7 + CATEGORIES.length + channel] = 1;
  }
  return { columns: [...FRAUD_COLUMNS], rows, features, labels, sensitive, sensitiveName: 'age_under_30' };
}

/** An index drawn with probability proportional to its weight. */
export function pick(r: () => number, weights: readonly number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = r() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u <= 0) return i;
  }
  return weights.length - 1;
}
