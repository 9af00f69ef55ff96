/**
 * Mergeable column sketches (whylogs-style), all serialisable as plain JSON (so MessagePack too):
 *
 * - `Moments`: count, mean, M2 (Σ(x−mean)²), min, max — merged exactly with Chan et al.'s
 *   parallel update (Chan, Golub, LeVeque 1979), so the variance of merged replicas equals the
 *   variance of all their traffic up to float rounding.
 * - `FrequentItems`: a bounded categorical frequency table — exact while at most `capacity`
 *   distinct values arrived; past that a Misra-Gries summary (Misra & Gries 1982; merged as in
 *   Agarwal et al. 2012): every kept count is under-estimated by at most n/(capacity+1), and the
 *   weight it lost is reported as `other`.
 * - `ColumnSketch`: one column of a record — count, nulls, and either numeric (moments + KLL
 *   quantiles, kll.ts) or categorical (frequent items) statistics.
 */
import { KllSketch, type KllJSON } from './kll.ts';

/**
 * KLL k of a column's quantile sketch. 1024 keeps every window of up to 1024 values exact (one
 * level, never compacted, also after merging replicas whose windows add up to that), so the KS
 * test of a small window runs on exact values; beyond, the rank error is ~0.33 % (KLL's error
 * scales as 1/k: ~1.65 % at k = 200). Memory stays ≤ ~3k values per column whatever the traffic.
 * @default 1024
 */
export const COLUMN_KLL_K = 1024;

export interface MomentsJSON {
  n: number;
  mean: number;
  m2: number;
  min: number;
  max: number;
}

export class Moments {
  n = 0;
  mean = 0;
  m2 = 0;
  min = Infinity;
  max = -Infinity;

  update(x: number): void {
    this.n++;
    const d = x - this.mean;
    this.mean += d / this.n;
    this.m2 += d * (x - this.mean);
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
  }

  /** Chan et al.: n = nA + nB, δ = meanB − meanA, mean = meanA + δ·nB/n, M2 = M2A + M2B + δ²·nA·nB/n. */
  merge(o: Moments): this {
    if (o.n === 0) return this;
    if (this.n === 0) {
      Object.assign(this, { n: o.n, mean: o.mean, m2: o.m2, min: o.min, max: o.max });
      return this;
    }
    const n = this.n + o.n;
    const delta = o.mean - this.mean;
    this.mean += (delta * o.n) / n;
    this.m2 += o.m2 + (delta * delta * this.n * o.n) / n;
    this.n = n;
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
    return this;
  }

  /** The sample variance (n − 1 in the denominator); 0 below two values. */
  variance(): number {
    return this.n > 1 ? this.m2 / (this.n - 1) : 0;
  }

  std(): number {
    return Math.sqrt(this.variance());
  }

  /** The population standard deviation (n in the denominator), what numpy's `std` gives. */
  populationStd(): number {
    return this.n > 0 ? Math.sqrt(this.m2 / this.n) : 0;
  }

  toJSON(): MomentsJSON {
    return { n: this.n, mean: this.mean, m2: this.m2, min: this.n ? this.min : 0, max: this.n ? this.max : 0 };
  }

  static fromJSON(j: MomentsJSON): Moments {
    const m = new Moments();
    Object.assign(m, j);
    if (!j.n) Object.assign(m, { min: Infinity, max: -Infinity });
    return m;
  }
}

export interface FrequentItemsJSON {
  capacity: number;
  n: number;
  /** Weight of values no longer counted (Misra-Gries decrements). */
  other: number;
  counts: Record<string, number>;
}

/** @default 100 */
export const DEFAULT_FREQ_CAPACITY = 100;

export class FrequentItems {
  readonly capacity: number;
  n = 0;
  other = 0;
  counts = new Map<string, number>();

  constructor(capacity = DEFAULT_FREQ_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`FrequentItems: capacity must be a positive integer (got ${capacity})`);
    this.capacity = capacity;
  }

  update(value: string, weight = 1): void {
    this.n += weight;
    this.counts.set(value, (this.counts.get(value) ?? 0) + weight);
    if (this.counts.size > this.capacity) this.#reduce();
  }

  merge(o: FrequentItems): this {
    for (const [v, c] of o.counts) this.counts.set(v, (this.counts.get(v) ?? 0) + c);
    this.n += o.n;
    this.other += o.other;
    if (this.counts.size > this.capacity) this.#reduce();
    return this;
  }

  /** Estimated count of `value` (a lower bound, off by at most `maxError()`). */
  count(value: string): number {
    return this.counts.get(value) ?? 0;
  }

  /**
   * The bound on any count's under-estimate: 0 while exact, else (n − Σ kept counts)/(capacity+1)
   * = other/(capacity+1) ≤ n/(capacity+1) (the Misra-Gries bound, which survives merges).
   */
  maxError(): number {
    return this.other / (this.capacity + 1);
  }

  /** Counts sorted by count (descending), with `other` last when non-zero. */
  top(): [string, number][] {
    return [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  }

  /** Misra-Gries: subtract the (capacity+1)-th largest count from every count; drop those at ≤ 0. */
  #reduce(): void {
    const sorted = [...this.counts.values()].sort((a, b) => b - a);
    const cut = sorted[this.capacity]!;
    let lost = 0;
    for (const [v, c] of this.counts) {
      if (c <= cut) {
        lost += c;
        this.counts.delete(v);
      } else {
        this.counts.set(v, c - cut);
        lost += cut;
      }
    }
    this.other += lost;
  }

  toJSON(): FrequentItemsJSON {
    return { capacity: this.capacity, n: this.n, other: this.other, counts: Object.fromEntries(this.counts) };
  }

  static fromJSON(j: FrequentItemsJSON): FrequentItems {
    const f = new FrequentItems(j.capacity);
    f.n = j.n;
    f.other = j.other;
    f.counts = new Map(Object.entries(j.counts));
    return f;
  }
}

/** The category a bounded table reports for weight it no longer attributes to a value. */
export const OTHER = '__other__';

export type ColumnKind = 'numeric' | 'categorical';
export type Scalar = number | string | boolean | null | undefined;

export interface SketchOptions {
  /** KLL accuracy parameter of numeric columns. @default 1024 (COLUMN_KLL_K) */
  kllK?: number;
  /** Distinct values a categorical column counts exactly. @default 100 */
  categories?: number;
}

export interface ColumnSketchJSON {
  kind: ColumnKind;
  count: number;
  nulls: number;
  /** Values of the wrong type for the column (a string in a numeric column): counted, not sketched. */
  invalid: number;
  moments?: MomentsJSON;
  kll?: KllJSON;
  freq?: FrequentItemsJSON;
}

/** One column: count, nulls, and numeric or categorical statistics. */
export class ColumnSketch {
  count = 0;
  nulls = 0;
  invalid = 0;
  readonly moments?: Moments;
  readonly kll?: KllSketch;
  readonly freq?: FrequentItems;

  constructor(
    readonly kind: ColumnKind,
    o: SketchOptions = {},
  ) {
    if (kind === 'numeric') {
      this.moments = new Moments();
      this.kll = new KllSketch(o.kllK ?? COLUMN_KLL_K);
    } else this.freq = new FrequentItems(o.categories ?? DEFAULT_FREQ_CAPACITY);
  }

  update(v: Scalar): void {
    this.count++;
    if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) {
      this.nulls++;
      return;
    }
    if (this.kind === 'numeric') {
      const x = typeof v === 'boolean' ? Number(v) : v;
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        this.invalid++;
        return;
      }
      this.moments!.update(x);
      this.kll!.update(x);
    } else this.freq!.update(categoryOf(v));
  }

  merge(o: ColumnSketch): this {
    if (o.kind !== this.kind) throw new RangeError(`ColumnSketch.merge: kind differs (${this.kind} vs ${o.kind})`);
    this.count += o.count;
    this.nulls += o.nulls;
    this.invalid += o.invalid;
    this.moments?.merge(o.moments!);
    this.kll?.merge(o.kll!);
    this.freq?.merge(o.freq!);
    return this;
  }

  /** Values sketched (neither null nor invalid). */
  valid(): number {
    return this.count - this.nulls - this.invalid;
  }

  /** Category proportions (a categorical column), `OTHER` included when the table overflowed. */
  proportions(): Map<string, number> {
    const f = this.freq!;
    const out = new Map<string, number>();
    if (f.n === 0) return out;
    for (const [v, c] of f.counts) out.set(v, c / f.n);
    if (f.other > 0) out.set(OTHER, f.other / f.n);
    return out;
  }

  /** Category counts, `OTHER` included when the table overflowed. */
  categoryCounts(): Map<string, number> {
    const f = this.freq!;
    const out = new Map(f.counts);
    if (f.other > 0) out.set(OTHER, (out.get(OTHER) ?? 0) + f.other);
    return out;
  }

  toJSON(): ColumnSketchJSON {
    return {
      kind: this.kind,
      count: this.count,
      nulls: this.nulls,
      invalid: this.invalid,
      ...(this.moments ? { moments: this.moments.toJSON(), kll: this.kll!.toJSON() } : {}),
      ...(this.freq ? { freq: this.freq.toJSON() } : {}),
    };
  }

  static fromJSON(j: ColumnSketchJSON): ColumnSketch {
    const c = new ColumnSketch(j.kind, { ...(j.kll ? { kllK: j.kll.k } : {}), ...(j.freq ? { categories: j.freq.capacity } : {}) });
    c.count = j.count;
    c.nulls = j.nulls;
    c.invalid = j.invalid ?? 0;
    if (j.kind === 'numeric') {
      Object.assign(c, { moments: Moments.fromJSON(j.moments!), kll: KllSketch.fromJSON(j.kll!) });
    } else Object.assign(c, { freq: FrequentItems.fromJSON(j.freq!) });
    return c;
  }
}

/** How a categorical value is keyed: strings as they are, booleans and numbers by their text. */
export function categoryOf(v: string | number | boolean): string {
  return typeof v === 'string' ? v : String(v);
}
