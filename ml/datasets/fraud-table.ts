/**
 * The fraud training table (fraud.ts's columns) derived from the event stream (fraud-events.ts),
 * each row's features as known at its transaction's time — what an online store would have
 * served then — and its label as known at `asOf`.
 */
import type { Dataset } from './dataset.ts';
import { FRAUD_COLUMNS } from './fraud.ts';
import { MlErrors } from '../errors.ts';
import { DAY, FRAUD_EVENT_CATEGORIES, FRAUD_EVENT_CHANNELS, FRAUD_EVENT_COUNTRIES, type CustomerEvent, type FraudEvent, type MerchantEvent } from './fraud-events.ts';

export interface FraudTableOptions {
  /**
   * Labels known by this time count (event time and delivery ≤ asOf); default: every label in
   * the stream. A transaction without a known label is labelled 0.
   */
  asOf?: number;
  /** `truth` uses the ground truth instead of label events (for measuring label noise). @default 'labels' */
  labels?: 'labels' | 'truth';
  /**
   * What a transaction's history features (`tx_last_24h`, `new_device`) may see: `delivery` —
   * earlier transactions already delivered at its event time, as an online store would have
   * had them when scoring it; `event` — every earlier transaction by event time, late or not
   * (which a serving path could not have known). @default 'delivery'
   */
  knownBy?: 'delivery' | 'event';
}

/**
 * Derives today's fraud training table (`FRAUD_COLUMNS`, one row per transaction, in event-time
 * order, `age_under_30` as the sensitive attribute) from an event-time-ordered stream, computing
 * every feature from what was known at the transaction's event time (see `knownBy`): the amount
 * in USD, the account age, the customer's transactions in the previous 24 h, the distance from
 * home to the merchant's country, the hour, whether the device is new for the customer, category
 * and channel. Same columns (and comparable scaling) as `generateFraud`, so a training job takes
 * either; the rows are not the old generator's rows (those are drawn independently, without any
 * history). One pass; memory is the table plus each customer's last 24 h and devices.
 */
export function fraudTableFromEvents(events: Iterable<FraudEvent>, o: FraudTableOptions = {}): Dataset {
  const byDelivery = (o.knownBy ?? 'delivery') === 'delivery';
  const customers = new Map<string, CustomerEvent>();
  const merchants = new Map<string, MerchantEvent>();
  const recent = new Map<string, { eventTime: number; deliveredAt: number }[]>(); // customer → its last 24 h
  const seen = new Map<string, Map<string, number>>(); // customer → device → first delivery
  const D = FRAUD_COLUMNS.length;
  const nCat = FRAUD_EVENT_CATEGORIES.length;
  let capacity = 1024;
  let features = new Float32Array(capacity * D);
  let labels = new Uint8Array(capacity);
  let sensitive = new Uint8Array(capacity);
  let rows = 0;
  const rowOf = new Map<string, number>();
  for (const e of events) {
    if (e.type === 'customer') customers.set(e.customer_id, e);
    else if (e.type === 'merchant') merchants.set(e.merchant_id, e);
    else if (e.type === 'label') {
      if (o.labels === 'truth') continue;
      if (o.asOf !== undefined && (e.eventTime > o.asOf || e.deliveredAt > o.asOf)) continue;
      const i = rowOf.get(e.transaction_id);
      if (i !== undefined) labels[i] = 1;
    } else {
      const c = customers.get(e.customer_id);
      const m = merchants.get(e.merchant_id);
      if (!c || !m) throw MlErrors.BAD_INPUT(`transaction ${e.eventId} names ${!c ? `customer "${e.customer_id}"` : `merchant "${e.merchant_id}"`} not seen earlier in the stream`);
      if (rows === capacity) {
        capacity *= 2;
        const f = new Float32Array(capacity * D);
        f.set(features);
        features = f;
        const l = new Uint8Array(capacity);
        l.set(labels);
        labels = l;
        const s = new Uint8Array(capacity);
        s.set(sensitive);
        sensitive = s;
      }
      const t = e.eventTime;
      const window = recent.get(e.customer_id) ?? [];
      while (window.length > 0 && window[0]!.eventTime <= t - DAY) window.shift();
      let count = 0;
      for (const w of window) if (!byDelivery || w.deliveredAt <= t) count++;
      const devs = seen.get(e.customer_id) ?? new Map<string, number>();
      const firstDelivery = devs.get(e.device_id);
      const knownDevice = firstDelivery !== undefined && (!byDelivery || firstDelivery <= t);
      const home = FRAUD_EVENT_COUNTRIES[c.home_country];
      const there = FRAUD_EVENT_COUNTRIES[m.country];
      const usd = e.amount * there.usd;
      const hour = new Date(t).getUTCHours();
      const row = features.subarray(rows * D, rows * D + D);
      row[0] = (Math.log(usd) - 4.4) / 1.1; // centred on this population's typical amount (≈ 80 USD)
      row[1] = ((t - c.account_created_at) / (365 * DAY) - 2) / 1.1;
      row[2] = (count - 3) / 1.5;
      row[3] = haversineKm(home.lat, home.lon, there.lat, there.lon) / 2000 - 0.8;
      row[4] = Math.sin((2 * Math.PI * hour) / 24);
      row[5] = Math.cos((2 * Math.PI * hour) / 24);
      row[6] = knownDevice ? 0 : 1;
      row[7 + FRAUD_EVENT_CATEGORIES.indexOf(m.category)] = 1;
      row[7 + nCat + FRAUD_EVENT_CHANNELS.indexOf(e.channel)] = 1;
      labels[rows] = o.labels === 'truth' && e.is_fraud ? 1 : 0;
      sensitive[rows] = c.age < 30 ? 1 : 0;
      rowOf.set(e.eventId, rows++);
      window.push({ eventTime: t, deliveredAt: e.deliveredAt });
      recent.set(e.customer_id, window);
      devs.set(e.device_id, Math.min(firstDelivery ?? Infinity, e.deliveredAt));
      seen.set(e.customer_id, devs);
    }
  }
  return {
    columns: [...FRAUD_COLUMNS],
    rows,
    features: features.slice(0, rows * D),
    labels: labels.slice(0, rows),
    sensitive: sensitive.slice(0, rows),
    sensitiveName: 'age_under_30',
  };
}

function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const a = Math.sin(((lat2 - lat1) * rad) / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(((lon2 - lon1) * rad) / 2) ** 2;
  return 2 * 6371 * Math.asin(Math.min(1, Math.sqrt(a)));
}
