/**
 * Writes the worked example's events (README "Feature store: from events to a prediction by
 * customer"): two weeks of the fraud generator's customers, merchants, card payments and
 * chargebacks, ending now, as JSON lines to push into the views of this folder, plus the
 * snapshots that fit the views' transformations.
 *
 *   npx tsx examples/feature-store/events.ts [--customers 200] [--merchants 40] [--days 14] [--seed 1] [--out examples/feature-store/data]
 *
 * Every event carries `knownAt` (when the product learnt of it: the generator's delivery time),
 * so history pushed today is joined as it was known then. Each payment also gives an `outcome`
 * row `is_fraud: false` dated at the payment; a chargeback, weeks later in the product's life but
 * pushed here with the rest, gives the same entity and time `is_fraud: true`, which replaces it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { HOUR, generateFraudEvents, type FraudEvent } from '../../ml/datasets/fraud-events.ts';

const { values } = parseArgs({
  options: {
    customers: { type: 'string', default: '200' },
    merchants: { type: 'string', default: '40' },
    days: { type: 'string', default: '14' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: join(import.meta.dirname, 'data') },
  },
});
const now = Date.now();
const days = Number(values.days);
// The span ends at the last whole hour, so the streaming windows have recent payments to count.
const start = Math.floor(now / HOUR) * HOUR - days * 24 * HOUR;
const events = generateFraudEvents({ seed: Number(values.seed), customers: Number(values.customers), merchants: Number(values.merchants), days, start });
const knownAt = (e: FraudEvent) => Math.min(e.deliveredAt, now);

const out: Record<string, object[]> = { customer: [], merchant: [], payment: [], outcome: [] };
const payments = new Map<string, { customer_id: string; merchant_id: string; eventTime: number }>();
for (const e of events) {
  const base = { eventId: e.eventId, eventTime: e.eventTime, knownAt: knownAt(e) };
  if (e.type === 'customer') out.customer!.push({ ...base, entity: { customer_id: e.customer_id }, values: { home_country: e.home_country, segment: e.segment, account_age_days: e.account_age_days } });
  else if (e.type === 'merchant') out.merchant!.push({ ...base, entity: { merchant_id: e.merchant_id }, values: { category: e.category, risk_tier: e.risk_tier } });
  else if (e.type === 'transaction') {
    out.payment!.push({ ...base, entity: { customer_id: e.customer_id }, values: { amount: e.amount, channel: e.channel } });
    out.outcome!.push({ ...base, eventId: `${e.eventId}-o`, entity: { customer_id: e.customer_id, merchant_id: e.merchant_id }, values: { is_fraud: false } });
    payments.set(e.eventId, { customer_id: e.customer_id, merchant_id: e.merchant_id, eventTime: e.eventTime });
  }
}
// Chargebacks after every payment row, so the correction is pushed after what it corrects.
let chargebacks = 0;
for (const e of events) {
  if (e.type !== 'label') continue;
  const p = payments.get(e.transaction_id);
  if (!p) continue;
  chargebacks++;
  out.outcome!.push({ eventId: e.eventId, eventTime: p.eventTime, knownAt: knownAt(e), entity: { customer_id: p.customer_id, merchant_id: p.merchant_id }, values: { is_fraud: true } });
}

mkdirSync(values.out, { recursive: true });
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
for (const [view, rows] of Object.entries(out)) writeFileSync(join(values.out, `${view}.jsonl`), jsonl(rows));
// Snapshots to fit the transformations on: the pushed values themselves.
for (const view of ['customer', 'merchant', 'payment']) writeFileSync(join(values.out, `${view}-snapshot.jsonl`), jsonl(out[view]!.map((e) => (e as { values: object }).values)));
console.log(
  `wrote ${values.out}: ${out.customer!.length} customers, ${out.merchant!.length} merchants, ${out.payment!.length} payments, ${out.outcome!.length} outcome rows (${chargebacks} chargebacks), ${new Date(start).toISOString()} → ${new Date(start + days * 24 * HOUR).toISOString()}`,
);
