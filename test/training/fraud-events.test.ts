import { describe, expect, it } from 'vitest';
import {
  FRAUD_COLUMNS,
  FRAUD_EVENT_COUNTRIES,
  MlErrors,
  fraudEventStream,
  fraudTableFromEvents,
  generateFraudEvents,
  inDeliveryOrder,
  rocAuc,
  type FraudEvent,
  type LabelEvent,
  type TransactionEvent,
} from '../../ml/index.ts';

const HOUR = 3_600_000;
const opts = { seed: 7, customers: 800, merchants: 120, days: 14 };
const events = generateFraudEvents(opts);
const txs = events.filter((e): e is TransactionEvent => e.type === 'transaction');
const labels = events.filter((e): e is LabelEvent => e.type === 'label');

describe('fraud event stream', () => {
  it('is deterministic by seed, and the iterator yields exactly the array', () => {
    expect(generateFraudEvents(opts)).toEqual(events);
    const other = generateFraudEvents({ ...opts, seed: 8 });
    expect(other).not.toEqual(events);
    expect(other.filter((e) => e.type === 'transaction').map((e) => e.eventTime)).not.toEqual(txs.map((e) => e.eventTime));
    expect([...fraudEventStream(opts)]).toEqual(events);
  });

  it('streams lazily: the first events of a year-long, 7M-transaction stream come without generating it all', () => {
    const it = fraudEventStream({ seed: 3, customers: 10_000, days: 365 });
    const first: FraudEvent[] = [];
    for (const e of it) {
      first.push(e);
      if (first.length === 12_000) break;
    }
    // 10,200 entity events, then transactions from the first hours only.
    expect(first.filter((e) => e.type === 'customer')).toHaveLength(10_000);
    const lastTx = first.at(-1)!;
    expect(lastTx.type).toBe('transaction');
    expect(lastTx.eventTime - Date.UTC(2026, 0, 1)).toBeLessThan(48 * HOUR);
  });

  it('is ordered by event time, entities first, with unique event ids and known references', () => {
    for (let i = 1; i < events.length; i++) expect(events[i]!.eventTime >= events[i - 1]!.eventTime, `event ${i}`).toBe(true);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(events.length);
    const firstTx = events.findIndex((e) => e.type === 'transaction');
    expect(events.slice(0, firstTx).every((e) => e.type === 'customer' || e.type === 'merchant')).toBe(true);
    expect(events.slice(firstTx).some((e) => e.type === 'customer' || e.type === 'merchant')).toBe(false);
    const customers = new Set(events.flatMap((e) => (e.type === 'customer' ? [e.customer_id] : [])));
    const merchants = new Set(events.flatMap((e) => (e.type === 'merchant' ? [e.merchant_id] : [])));
    expect(customers.size).toBe(opts.customers);
    expect(merchants.size).toBe(opts.merchants);
    expect(txs.every((t) => customers.has(t.customer_id) && merchants.has(t.merchant_id))).toBe(true);
  });

  it('labels only fraud, strictly after its transaction, late (≥ 1 h), some never, none after the span', () => {
    const byId = new Map(txs.map((t) => [t.eventId, t]));
    const end = Date.UTC(2026, 0, 1) + opts.days * 24 * HOUR;
    expect(labels.length).toBeGreaterThan(0);
    for (const l of labels) {
      const t = byId.get(l.transaction_id)!;
      expect(t.is_fraud).toBe(true);
      expect(l.customer_id).toBe(t.customer_id);
      expect(l.eventTime - t.eventTime).toBeGreaterThanOrEqual(HOUR);
      expect(l.eventTime).toBeLessThanOrEqual(end);
    }
    expect(new Set(labels.map((l) => l.transaction_id)).size).toBe(labels.length);
    const fraud = txs.filter((t) => t.is_fraud).length;
    expect(labels.length).toBeLessThan(fraud);
    // With a horizon past the longest delay, only the unreported ones stay unlabelled.
    const all = generateFraudEvents({ ...opts, labelHorizonMs: 61 * 24 * HOUR }).filter((e) => e.type === 'label').length;
    expect(all).toBeGreaterThan(labels.length);
    // unreportedRate 0.1: labelled count is Binomial(fraud, 0.9); allow 4 standard deviations.
    expect(Math.abs(all / fraud - 0.9)).toBeLessThanOrEqual(4 * Math.sqrt((0.9 * 0.1) / fraud));
  });

  it('delivers the configured fraction of transactions late, so delivery order differs from event order', () => {
    for (const e of events) expect(e.deliveredAt).toBeGreaterThanOrEqual(e.eventTime);
    const late = txs.filter((t) => t.deliveredAt - t.eventTime >= 60_000).length;
    // Each transaction is late independently with p = 0.02: 4 binomial standard errors.
    const p = 0.02;
    expect(Math.abs(late / txs.length - p)).toBeLessThanOrEqual(4 * Math.sqrt((p * (1 - p)) / txs.length));
    const delivered = [...inDeliveryOrder(events)];
    expect(delivered).toHaveLength(events.length);
    expect(new Set(delivered.map((e) => e.eventId)).size).toBe(events.length);
    for (let i = 1; i < delivered.length; i++) expect(delivered[i]!.deliveredAt >= delivered[i - 1]!.deliveredAt, `delivery ${i}`).toBe(true);
    const deliveredTx = delivered.filter((e) => e.type === 'transaction');
    let inversions = 0;
    for (let i = 1; i < deliveredTx.length; i++) if (deliveredTx[i]!.eventTime < deliveredTx[i - 1]!.eventTime) inversions++;
    expect(inversions).toBeGreaterThan(0);
  });

  it('hits the configured fraud rate (exact up to rounding one transaction)', () => {
    for (const fraudRate of [0.02, 0.05]) {
      const t = generateFraudEvents({ ...opts, fraudRate }).filter((e): e is TransactionEvent => e.type === 'transaction');
      const rate = t.filter((x) => x.is_fraud).length / t.length;
      expect(Math.abs(rate - fraudRate)).toBeLessThanOrEqual(1 / t.length);
    }
  });

  it('fraud comes in bursts: compromised customers make more transactions per active hour', () => {
    const perHour = new Map<string, Map<number, number>>();
    const compromised = new Set<string>();
    for (const t of txs) {
      const h = Math.floor(t.eventTime / HOUR);
      const m = perHour.get(t.customer_id) ?? new Map<number, number>();
      m.set(h, (m.get(h) ?? 0) + 1);
      perHour.set(t.customer_id, m);
      if (t.is_fraud) compromised.add(t.customer_id);
    }
    const mean = (ids: string[]) => {
      const v = ids.map((id) => [...perHour.get(id)!.values()].reduce((a, b) => a + b, 0) / perHour.get(id)!.size);
      return v.reduce((a, b) => a + b, 0) / v.length;
    };
    const fraudIds = [...compromised];
    const legitIds = [...perHour.keys()].filter((id) => !compromised.has(id));
    expect(fraudIds.length).toBeGreaterThan(10);
    expect(mean(fraudIds)).toBeGreaterThan(mean(legitIds));
    // In the hours with fraud, the account is far busier than in legitimate hours.
    const fraudCells = new Set(txs.filter((t) => t.is_fraud).map((t) => `${t.customer_id}/${Math.floor(t.eventTime / HOUR)}`));
    const cells = [...perHour].flatMap(([id, m]) => [...m].map(([h, n]) => ({ fraud: fraudCells.has(`${id}/${h}`), n })));
    const cellMean = (fraud: boolean) => {
      const xs = cells.filter((c) => c.fraud === fraud);
      return xs.reduce((a, c) => a + c.n, 0) / xs.length;
    };
    expect(cellMean(true)).toBeGreaterThan(2 * cellMean(false));
    // Fraud is riskier on the signals the model should learn: abroad, online, bigger amounts.
    const share = (xs: TransactionEvent[], f: (t: TransactionEvent) => boolean) => xs.filter(f).length / xs.length;
    const fraud = txs.filter((t) => t.is_fraud);
    const legit = txs.filter((t) => !t.is_fraud);
    expect(share(fraud, (t) => t.channel === 'online')).toBeGreaterThan(share(legit, (t) => t.channel === 'online'));
    const home = new Map(events.flatMap((e) => (e.type === 'customer' ? [[e.customer_id, e.home_country] as const] : [])));
    const abroad = (t: TransactionEvent) => t.country !== home.get(t.customer_id);
    expect(share(fraud, abroad)).toBeGreaterThan(2 * share(legit, abroad));
    const medianUsd = (xs: TransactionEvent[]) => {
      const v = xs.map((t) => t.amount * FRAUD_EVENT_COUNTRIES[t.country].usd).sort((a, b) => a - b);
      return v[v.length >> 1]!;
    };
    expect(medianUsd(fraud)).toBeGreaterThan(medianUsd(legit));
  });

  it('derives the fraud training table point-in-time from the events', () => {
    const d = fraudTableFromEvents(events);
    const truth = fraudTableFromEvents(events, { labels: 'truth' });
    expect(d.columns).toEqual(FRAUD_COLUMNS);
    expect(d.rows).toBe(txs.length);
    expect(d.sensitiveName).toBe('age_under_30');
    expect(Buffer.from(d.features.buffer).equals(Buffer.from(truth.features.buffer))).toBe(true);
    const sum = (x: Uint8Array) => x.reduce((a, b) => a + b, 0);
    expect(sum(d.labels)).toBe(labels.length);
    expect(sum(truth.labels)).toBe(txs.filter((t) => t.is_fraud).length);
    // Labels known as of the middle of the span are fewer, and each is a known one.
    const mid = Date.UTC(2026, 0, 1) + (opts.days / 2) * 24 * HOUR;
    const early = fraudTableFromEvents(events, { asOf: mid });
    expect(sum(early.labels)).toBe(labels.filter((l) => l.deliveredAt <= mid).length);
    expect(sum(early.labels)).toBeLessThan(sum(d.labels));
    for (let i = 0; i < d.rows; i++) if (early.labels[i]) expect(d.labels[i]).toBe(1);
    // tx_last_24h and new_device against a brute-force recount over the raw events, for a sample
    // of rows: by default only what was delivered by the transaction's event time counts.
    const D = d.columns.length;
    const col = d.columns.indexOf('tx_last_24h');
    const dev = d.columns.indexOf('new_device');
    const byEvent = fraudTableFromEvents(events, { knownBy: 'event' });
    for (let i = 0; i < d.rows; i += 37) {
      const t = txs[i]!;
      const before = txs.filter((u, j) => j < i && u.customer_id === t.customer_id);
      const delivered = before.filter((u) => u.deliveredAt <= t.eventTime);
      const inDay = (xs: TransactionEvent[]) => xs.filter((u) => u.eventTime > t.eventTime - 24 * HOUR).length;
      const newDevice = (xs: TransactionEvent[]) => (xs.some((u) => u.device_id === t.device_id) ? 0 : 1);
      expect(d.features[i * D + col]).toBeCloseTo((inDay(delivered) - 3) / 1.5, 5);
      expect(d.features[i * D + dev]).toBe(newDevice(delivered));
      expect(byEvent.features[i * D + col]).toBeCloseTo((inDay(before) - 3) / 1.5, 5);
      expect(byEvent.features[i * D + dev]).toBe(newDevice(before));
    }
    // Late deliveries make the two views differ somewhere in the whole table.
    let anyDiff = 0;
    for (let i = 0; i < d.rows; i++) if (d.features[i * D + col] !== byEvent.features[i * D + col]) anyDiff++;
    expect(anyDiff).toBeGreaterThan(0);
    // The bursts show up in the feature: fraud rows have more recent transactions on average.
    const meanCol = (lab: 0 | 1) => {
      let s = 0;
      let n = 0;
      for (let i = 0; i < d.rows; i++) if (truth.labels[i] === lab) (s += d.features[i * D + col]!), n++;
      return s / n;
    };
    expect(meanCol(1)).toBeGreaterThan(meanCol(0));
    // Learnable: the recent-activity column alone ranks fraud above legitimate rows.
    const score = Array.from({ length: d.rows }, (_, i) => d.features[i * D + col]!);
    expect(rocAuc(score, Array.from(truth.labels))).toBeGreaterThan(0.7);
  });

  it('refuses bad options with SHOAL_ERR_BAD_INPUT naming the option', () => {
    expect(() => generateFraudEvents({ fraudRate: 1.5 })).toThrow(/"fraudRate"/);
    expect(() => generateFraudEvents({ customers: 0 })).toThrow(expect.objectContaining({ code: MlErrors.BAD_INPUT.code }));
    expect(() => generateFraudEvents({ start: 1 })).toThrow(/"start"/);
    expect(() => generateFraudEvents({ merchants: 2 })).toThrow(/"merchants"/);
  });
});
