/**
 * A timestamped fraud event stream, deterministic by seed: customers, merchants, card
 * transactions and fraud labels that arrive late — the raw material for streaming aggregates and
 * point-in-time-correct training sets (issue #14), where `generateFraud` only gives a finished
 * feature table.
 *
 * Structure:
 * - customers have a segment, a home country, an account age, an age (for fairness checks) and a
 *   personal activity rate (log-normal around the segment's); transactions follow a daily cycle
 *   (quiet at night, busiest early afternoon, UTC);
 * - merchants have a category, a country and a risk tier; amounts are log-normal by category and
 *   mostly domestic for legitimate customers, on the customer's own devices;
 * - fraud comes in bursts: a compromised account makes a quick run of higher amounts, mostly
 *   online, at risky merchants, often abroad and from a device the customer never used, at any
 *   hour;
 * - a fraud label (a chargeback) arrives hours to weeks after its transaction (log-normal delay),
 *   some fraud is never reported, and labels later than the end of the span are not yet known;
 * - every event has `eventTime` and `deliveredAt`; a configurable fraction of transactions is
 *   delivered late (minutes to hours), so ingestion order differs from event-time order.
 *
 * The generator walks simulated time hour by hour and keeps only what is pending (scheduled burst
 * transactions and labels), so `fraudEventStream` yields millions of events in bounded memory;
 * `generateFraudEvents` is the same stream collected into an array.
 */
import { seededRandom } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { pick } from './fraud.ts';

export interface FraudEventOptions {
  /** @default 1 */
  seed?: number;
  /** @default 1000 */
  customers?: number;
  /** @default 200 */
  merchants?: number;
  /** Length of the simulated span in days. @default 7 */
  days?: number;
  /** Start of the span, epoch ms (a whole hour). @default Date.UTC(2026, 0, 1) */
  start?: number;
  /** Mean legitimate transactions per customer per day (each customer's own rate varies around it). @default 2 */
  txPerCustomerPerDay?: number;
  /** Fraction of all transactions that are fraudulent (exact up to rounding). @default 0.02 */
  fraudRate?: number;
  /** Fraction of fraudulent transactions that are never labelled. @default 0.1 */
  unreportedRate?: number;
  /** Median delay from a fraud transaction to its label, ms. @default 3 days */
  labelDelayMedianMs?: number;
  /** Fraction of transactions delivered late (minutes to hours after their event time). @default 0.02 */
  lateRate?: number;
  /**
   * Labels whose event time is after `start + days + labelHorizonMs` are not emitted (not yet
   * known when the data was pulled). @default 0
   */
  labelHorizonMs?: number;
}

export type ResolvedFraudEventOptions = Required<FraudEventOptions>;

export const FRAUD_EVENT_CATEGORIES = ['grocery', 'electronics', 'travel', 'gaming', 'fashion'] as const;
export const FRAUD_EVENT_CHANNELS = ['in-store', 'online', 'phone'] as const;
export const FRAUD_EVENT_SEGMENTS = ['consumer', 'small-business', 'premium'] as const;
export const FRAUD_EVENT_RISK_TIERS = ['low', 'medium', 'high'] as const;
export type MerchantCategory = (typeof FRAUD_EVENT_CATEGORIES)[number];
export type Channel = (typeof FRAUD_EVENT_CHANNELS)[number];
export type Segment = (typeof FRAUD_EVENT_SEGMENTS)[number];
export type RiskTier = (typeof FRAUD_EVENT_RISK_TIERS)[number];

/** Countries with an approximate centre (lat, lon), currency and its USD value. */
export const FRAUD_EVENT_COUNTRIES = {
  US: { lat: 39.8, lon: -98.6, currency: 'USD', usd: 1 },
  GB: { lat: 54.0, lon: -2.0, currency: 'GBP', usd: 1.27 },
  DE: { lat: 51.2, lon: 10.4, currency: 'EUR', usd: 1.1 },
  FR: { lat: 46.6, lon: 2.2, currency: 'EUR', usd: 1.1 },
  CA: { lat: 56.1, lon: -106.3, currency: 'CAD', usd: 0.74 },
  BR: { lat: -14.2, lon: -51.9, currency: 'BRL', usd: 0.2 },
} as const;
export type Country = keyof typeof FRAUD_EVENT_COUNTRIES;
const COUNTRIES = Object.keys(FRAUD_EVENT_COUNTRIES) as Country[];
const COUNTRY_WEIGHTS = [0.5, 0.15, 0.12, 0.1, 0.08, 0.05];

interface EventBase {
  /** Unique and stable by seed: `c-…`, `m-…`, `t-…`, `l-…`. */
  eventId: string;
  /** When it happened, epoch ms. */
  eventTime: number;
  /** When the pipeline received it, epoch ms (≥ eventTime). */
  deliveredAt: number;
}

export interface CustomerEvent extends EventBase {
  type: 'customer';
  customer_id: string;
  home_country: Country;
  segment: Segment;
  account_created_at: number;
  /** Account age at eventTime, days. */
  account_age_days: number;
  /** Age of the holder in years (a sensitive attribute: for fairness checks, not a feature). */
  age: number;
}

export interface MerchantEvent extends EventBase {
  type: 'merchant';
  merchant_id: string;
  category: MerchantCategory;
  country: Country;
  risk_tier: RiskTier;
}

export interface TransactionEvent extends EventBase {
  type: 'transaction';
  customer_id: string;
  merchant_id: string;
  /** In `currency`, rounded to cents. */
  amount: number;
  currency: string;
  /** The merchant's country. */
  country: Country;
  channel: Channel;
  device_id: string;
  /** Ground truth, for tests and evaluation only: a model must learn from label events, never from this. */
  is_fraud: boolean;
}

export interface LabelEvent extends EventBase {
  type: 'label';
  transaction_id: string;
  customer_id: string;
  /** Always 1: a chargeback. A transaction without a label by some time is presumed legitimate. */
  is_fraud: 1;
}

export type FraudEvent = CustomerEvent | MerchantEvent | TransactionEvent | LabelEvent;

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export function resolveFraudEventOptions(o: FraudEventOptions = {}): ResolvedFraudEventOptions {
  const r: ResolvedFraudEventOptions = {
    seed: o.seed ?? 1,
    customers: o.customers ?? 1000,
    merchants: o.merchants ?? 200,
    days: o.days ?? 7,
    start: o.start ?? Date.UTC(2026, 0, 1),
    txPerCustomerPerDay: o.txPerCustomerPerDay ?? 2,
    fraudRate: o.fraudRate ?? 0.02,
    unreportedRate: o.unreportedRate ?? 0.1,
    labelDelayMedianMs: o.labelDelayMedianMs ?? 3 * DAY,
    lateRate: o.lateRate ?? 0.02,
    labelHorizonMs: o.labelHorizonMs ?? 0,
  };
  const bad = (name: string, why: string) => MlErrors.BAD_INPUT(`fraud events option "${name}" ${why}`);
  if (!Number.isInteger(r.seed)) throw bad('seed', `must be an integer, got ${r.seed}`);
  if (!Number.isInteger(r.customers) || r.customers < 1) throw bad('customers', `must be an integer ≥ 1, got ${r.customers}`);
  if (!Number.isInteger(r.merchants) || r.merchants < COUNTRIES.length) throw bad('merchants', `must be an integer ≥ ${COUNTRIES.length}, got ${r.merchants}`);
  if (!(r.days > 0) || !Number.isFinite(r.days)) throw bad('days', `must be a positive number, got ${r.days}`);
  if (!Number.isInteger(r.start) || r.start % HOUR !== 0) throw bad('start', `must be epoch ms on a whole hour, got ${r.start}`);
  if (!(r.txPerCustomerPerDay > 0) || !Number.isFinite(r.txPerCustomerPerDay)) throw bad('txPerCustomerPerDay', `must be a positive number, got ${r.txPerCustomerPerDay}`);
  for (const k of ['fraudRate', 'unreportedRate', 'lateRate'] as const) {
    if (!(r[k] >= 0 && r[k] < 1)) throw bad(k, `must be in [0, 1), got ${r[k]}`);
  }
  if (!(r.labelDelayMedianMs > 0) || !Number.isFinite(r.labelDelayMedianMs)) throw bad('labelDelayMedianMs', `must be a positive number, got ${r.labelDelayMedianMs}`);
  if (!(r.labelHorizonMs >= 0)) throw bad('labelHorizonMs', `must be ≥ 0, got ${r.labelHorizonMs}`);
  return r;
}

/** The events as an array, ordered by event time (ties by generation order). */
export function generateFraudEvents(o: FraudEventOptions = {}): FraudEvent[] {
  return [...fraudEventStream(o)];
}

/**
 * The events one at a time in event-time order: first the customers and merchants (eventTime =
 * start), then transactions and labels. Memory holds the entities and what is scheduled ahead
 * (burst transactions, pending labels), not the stream.
 */
export function* fraudEventStream(options: FraudEventOptions = {}): Generator<FraudEvent> {
  const o = resolveFraudEventOptions(options);
  const r = seededRandom(o.seed);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const end = o.start + Math.round(o.days * DAY);
  const labelCutoff = end + o.labelHorizonMs;

  // Merchants: category, country, risk tier (riskier for electronics and gaming), amount scale.
  const catWeights = [0.32, 0.14, 0.1, 0.12, 0.22];
  const catAmount = [
    { mu: Math.log(40), sigma: 0.6 },
    { mu: Math.log(180), sigma: 0.9 },
    { mu: Math.log(350), sigma: 0.8 },
    { mu: Math.log(25), sigma: 1.0 },
    { mu: Math.log(70), sigma: 0.7 },
  ];
  const catChannel = [
    [0.85, 0.12, 0.03],
    [0.35, 0.6, 0.05],
    [0.2, 0.65, 0.15],
    [0.05, 0.9, 0.05],
    [0.55, 0.42, 0.03],
  ];
  const catRisk = [
    [0.8, 0.18, 0.02],
    [0.4, 0.4, 0.2],
    [0.5, 0.35, 0.15],
    [0.3, 0.4, 0.3],
    [0.65, 0.28, 0.07],
  ];
  const merchants: MerchantEvent[] = [];
  const byCountry = new Map<Country, number[]>(COUNTRIES.map((c) => [c, []]));
  const risky: number[] = [];
  for (let i = 0; i < o.merchants; i++) {
    // The first merchants cover every country once, so a domestic merchant always exists.
    const country = i < COUNTRIES.length ? COUNTRIES[i]! : COUNTRIES[pick(r, COUNTRY_WEIGHTS)]!;
    const cat = pick(r, catWeights);
    const tier = pick(r, catRisk[cat]!);
    merchants.push({
      type: 'merchant',
      eventId: `m-${i}`,
      eventTime: o.start,
      deliveredAt: o.start,
      merchant_id: `m-${i}`,
      category: FRAUD_EVENT_CATEGORIES[cat]!,
      country,
      risk_tier: FRAUD_EVENT_RISK_TIERS[tier]!,
    });
    byCountry.get(country)!.push(i);
    if (tier === 2) risky.push(i);
  }
  if (risky.length === 0) risky.push(...merchants.map((_, i) => i));
  const merchantCat = merchants.map((m) => FRAUD_EVENT_CATEGORIES.indexOf(m.category));

  // Customers: segment sets the activity level; each has its own rate and 1–3 devices.
  const segWeights = [0.7, 0.2, 0.1];
  const segRate = [1, 2, 1.4];
  const segAmount = [1, 1.6, 2.2];
  const customers: CustomerEvent[] = [];
  const rate = new Float64Array(o.customers);
  const devices = new Uint8Array(o.customers);
  for (let i = 0; i < o.customers; i++) {
    const seg = pick(r, segWeights);
    const home = COUNTRIES[pick(r, COUNTRY_WEIGHTS)]!;
    const ageDays = Math.max(1, Math.round(Math.exp(6 + 1.1 * gauss())));
    const age = Math.min(90, Math.max(18, Math.round(42 + 14 * gauss())));
    rate[i] = segRate[seg]! * Math.exp(0.6 * gauss() - 0.18);
    devices[i] = 1 + Math.floor(r() * 3);
    customers.push({
      type: 'customer',
      eventId: `c-${i}`,
      eventTime: o.start,
      deliveredAt: o.start,
      customer_id: `c-${i}`,
      home_country: home,
      segment: FRAUD_EVENT_SEGMENTS[seg]!,
      account_created_at: o.start - ageDays * DAY,
      account_age_days: ageDays,
      age,
    });
  }
  // Scale the personal rates so their mean is exactly txPerCustomerPerDay.
  const rateSum = rate.reduce((s, x) => s + x, 0);
  const cumRate = new Float64Array(o.customers);
  let acc = 0;
  for (let i = 0; i < o.customers; i++) {
    rate[i] = (rate[i]! * o.txPerCustomerPerDay * o.customers) / rateSum;
    cumRate[i] = acc += rate[i]!;
  }
  const totalPerDay = acc;

  // Daily cycle (UTC hour): low at night, peak early afternoon; mean 1 over the day.
  const cycleRaw = Array.from({ length: 24 }, (_, h) => 0.15 + Math.exp(-((h - 13.5) ** 2) / (2 * 4 ** 2)));
  const cycleMean = cycleRaw.reduce((s, x) => s + x, 0) / 24;
  const cycle = cycleRaw.map((x) => x / cycleMean);

  // Legitimate counts per hour are drawn first, so the number of fraud transactions can be set
  // to hit fraudRate exactly (up to rounding) and split into bursts placed over the span.
  const hours = Math.ceil((end - o.start) / HOUR);
  const hourCounts = new Int32Array(hours);
  let legit = 0;
  for (let h = 0; h < hours; h++) {
    const span = Math.min(HOUR, end - (o.start + h * HOUR)) / HOUR;
    const hourOfDay = new Date(o.start + h * HOUR).getUTCHours();
    hourCounts[h] = poisson(r, gauss, (totalPerDay / 24) * cycle[hourOfDay]! * span);
    legit += hourCounts[h]!;
  }
  const fraudTotal = Math.round((legit * o.fraudRate) / (1 - o.fraudRate));
  const bursts: { at: number; size: number }[] = [];
  for (let left = fraudTotal; left > 0; ) {
    const size = Math.min(left, 3 + Math.floor(-Math.log(1 - r()) * 4)); // 3 + geometric-ish, mean ≈ 7
    bursts.push({ at: o.start + Math.floor(r() * (end - o.start)), size });
    left -= size;
  }
  bursts.sort((a, b) => a.at - b.at);

  yield* customers;
  yield* merchants;

  const pending = new Heap<FraudEvent & { seq: number }>((a, b) => a.eventTime - b.eventTime || a.seq - b.seq);
  let seq = 0;
  let txN = 0;
  let labelN = 0;
  let burstN = 0;
  let nextBurst = 0;

  const delivery = (eventTime: number): number =>
    r() < o.lateRate
      ? eventTime + Math.min(6 * HOUR, Math.max(60_000, Math.round(20 * 60_000 * Math.exp(1.0 * gauss()))))
      : eventTime + 50 + Math.floor(r() * 1950);
  const amountFor = (m: number, scale: number): { amount: number; currency: string } => {
    const { mu, sigma } = catAmount[merchantCat[m]!]!;
    const usd = scale * Math.exp(mu + sigma * gauss());
    const c = FRAUD_EVENT_COUNTRIES[merchants[m]!.country];
    return { amount: Math.max(0.5, Math.round((usd / c.usd) * 100) / 100), currency: c.currency };
  };
  const scheduleLabel = (tx: TransactionEvent) => {
    if (r() < o.unreportedRate) return;
    const delay = Math.max(HOUR, Math.round(o.labelDelayMedianMs * Math.exp(0.9 * gauss())));
    const t = tx.eventTime + Math.min(delay, 60 * DAY);
    if (t > labelCutoff) return;
    pending.push({
      type: 'label',
      eventId: `l-${labelN++}`,
      eventTime: t,
      deliveredAt: t + 50 + Math.floor(r() * 1950),
      transaction_id: tx.eventId,
      customer_id: tx.customer_id,
      is_fraud: 1,
      seq: seq++,
    });
  };

  for (let h = 0; h < hours; h++) {
    const h0 = o.start + h * HOUR;
    const h1 = Math.min(end, h0 + HOUR);
    // Bursts starting this hour: schedule all their transactions (and labels) now.
    while (nextBurst < bursts.length && bursts[nextBurst]!.at < h1) {
      const b = bursts[nextBurst++]!;
      const victim = Math.floor(r() * o.customers);
      const home = customers[victim]!.home_country;
      const attackerDevice = `d-x${burstN++}`;
      let t = b.at;
      for (let k = 0; k < b.size; k++) {
        const foreign = r() < 0.6;
        let m: number;
        if (r() < 0.7) m = risky[Math.floor(r() * risky.length)]!;
        else m = Math.floor(r() * merchants.length);
        if (foreign && merchants[m]!.country === home) m = Math.floor(r() * merchants.length);
        const device = r() < 0.8 ? attackerDevice : `d-${victim}-${Math.floor(r() * devices[victim]!)}`;
        const { amount, currency } = amountFor(m, 2.5);
        const tx: TransactionEvent = {
          type: 'transaction',
          eventId: `t-${txN++}`,
          eventTime: t,
          deliveredAt: delivery(t),
          customer_id: `c-${victim}`,
          merchant_id: merchants[m]!.merchant_id,
          amount,
          currency,
          country: merchants[m]!.country,
          channel: FRAUD_EVENT_CHANNELS[pick(r, [0.1, 0.8, 0.1])]!,
          device_id: device,
          is_fraud: true,
        };
        pending.push({ ...tx, seq: seq++ });
        scheduleLabel(tx);
        // Next one within minutes: a burst lasts well under an hour.
        t = Math.min(end - 1, t + 20_000 + Math.round(-Math.log(1 - r()) * 3 * 60_000));
      }
    }
    // Legitimate transactions of this hour.
    const batch: (FraudEvent & { seq: number })[] = [];
    const times = Array.from({ length: hourCounts[h]! }, () => h0 + Math.floor(r() * (h1 - h0))).sort((a, b) => a - b);
    for (const t of times) {
      const c = lowerBound(cumRate, r() * totalPerDay);
      const home = customers[c]!.home_country;
      const local = byCountry.get(home)!;
      const m = r() < 0.93 && local.length > 0 ? local[Math.floor(r() * local.length)]! : Math.floor(r() * merchants.length);
      const seg = FRAUD_EVENT_SEGMENTS.indexOf(customers[c]!.segment);
      const { amount, currency } = amountFor(m, segAmount[seg]!);
      batch.push({
        type: 'transaction',
        eventId: `t-${txN++}`,
        eventTime: t,
        deliveredAt: delivery(t),
        customer_id: `c-${c}`,
        merchant_id: merchants[m]!.merchant_id,
        amount,
        currency,
        country: merchants[m]!.country,
        channel: FRAUD_EVENT_CHANNELS[pick(r, catChannel[merchantCat[m]!]!)]!,
        device_id: `d-${c}-${Math.floor(r() * devices[c]!)}`,
        is_fraud: false,
        seq: seq++,
      });
    }
    while (pending.size > 0 && pending.peek()!.eventTime < h1) batch.push(pending.pop()!);
    batch.sort((a, b) => a.eventTime - b.eventTime || a.seq - b.seq);
    for (const e of batch) yield strip(e);
  }
  // Labels after the span (up to labelCutoff) are still to come.
  while (pending.size > 0) yield strip(pending.pop()!);
}

/**
 * Re-orders an event-time-ordered stream into delivery order (by `deliveredAt`, ties by event
 * time), as an ingestion pipeline would see it. Memory holds only the events still in flight: an
 * event is released once the input's event time has passed its delivery time, since no later
 * input can be delivered before it.
 */
export function* inDeliveryOrder(events: Iterable<FraudEvent>): Generator<FraudEvent> {
  const heap = new Heap<FraudEvent & { seq: number }>((a, b) => a.deliveredAt - b.deliveredAt || a.eventTime - b.eventTime || a.seq - b.seq);
  let seq = 0;
  for (const e of events) {
    while (heap.size > 0 && heap.peek()!.deliveredAt <= e.eventTime) yield strip(heap.pop()!);
    heap.push({ ...e, seq: seq++ });
  }
  while (heap.size > 0) yield strip(heap.pop()!);
}

function strip<T extends { seq: number }>(e: T): Omit<T, 'seq'> & FraudEvent {
  const { seq: _seq, ...rest } = e;
  return rest as unknown as Omit<T, 'seq'> & FraudEvent;
}

function lowerBound(cum: Float64Array, u: number): number {
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid]! > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Knuth's method for small means, a rounded normal for large ones (exact enough for counts). */
function poisson(r: () => number, gauss: () => number, mean: number): number {
  if (mean <= 0) return 0;
  if (mean > 60) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gauss()));
  const limit = Math.exp(-mean);
  let k = 0;
  let p = r();
  while (p > limit) {
    k++;
    p *= r();
  }
  return k;
}

/** A binary min-heap. */
class Heap<T> {
  private readonly items: T[] = [];
  constructor(private readonly compare: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.compare(a[i]!, a[p]!) >= 0) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const rr = l + 1;
        let m = i;
        if (l < a.length && this.compare(a[l]!, a[m]!) < 0) m = l;
        if (rr < a.length && this.compare(a[rr]!, a[m]!) < 0) m = rr;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
