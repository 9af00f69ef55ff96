/**
 * A KLL quantile sketch (Karnin, Lang, Liberty 2016): levels of retained values, level h weighing
 * 2^h; a full level is sorted and every other value (odd or even positions, a coin) moves up.
 * Mergeable (levels concatenate, then compact), serialisable as plain numbers.
 *
 * Rank error: with `k` = 200 the normalised rank error is about 1.65 % at 99 % confidence
 * (Apache DataSketches' published table for KLL: ~1.65 % two-sided for k = 200), and the sketch
 * holds ~3k values whatever the stream's length. While fewer than `k` values arrived it is exact.
 * The coin is a hash of (values seen, level), so the same stream always gives the same sketch
 * (tests are reproducible) without a global random state.
 */

export interface KllJSON {
  k: number;
  n: number;
  min: number;
  max: number;
  levels: number[][];
}

/** A sorted sample with weights: what rank, CDF and distance computations walk over. */
export interface WeightedSample {
  values: Float64Array;
  /** Cumulative weights: cum[i] = total weight of values[0..i]. */
  cum: Float64Array;
  total: number;
}

/** @default 200 */
export const DEFAULT_KLL_K = 200;

export class KllSketch {
  readonly k: number;
  n = 0;
  min = Infinity;
  max = -Infinity;
  levels: number[][] = [[]];
  #sample: WeightedSample | undefined;
  /** The total capacity for the current number of levels (recomputed when a level is added). */
  #cap = -1;
  #capLevels = -1;
  /** Values retained, or -1 when it must be counted again. */
  #retained = -1;

  constructor(k = DEFAULT_KLL_K) {
    if (!Number.isInteger(k) || k < 8 || k > 65_535) throw new RangeError(`KllSketch: k must be an integer in [8, 65535] (got ${k})`);
    this.k = k;
  }

  /** Adds one value; NaN and ±Infinity are refused (count them as nulls upstream). */
  update(x: number): void {
    if (!Number.isFinite(x)) throw new RangeError(`KllSketch.update: ${x} is not a finite number`);
    this.n++;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    const l0 = this.levels[0]!;
    l0.push(x);
    this.#sample = undefined;
    // The retained count is kept between updates (recounted after a compaction or a merge).
    if (this.#retained < 0) this.#retained = this.#size();
    else this.#retained++;
    if (this.#retained > this.#capacityTotal()) {
      this.#compress();
      this.#retained = -1;
    }
  }

  /** Folds `other` into this sketch (both must have the same k). */
  merge(other: KllSketch): this {
    if (other.k !== this.k) throw new RangeError(`KllSketch.merge: k differs (${this.k} vs ${other.k})`);
    if (other.n === 0) return this;
    while (this.levels.length < other.levels.length) this.levels.push([]);
    other.levels.forEach((lv, h) => this.levels[h]!.push(...lv));
    this.n += other.n;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.#sample = undefined;
    while (this.#size() > this.#capacityTotal()) this.#compress();
    this.#retained = -1;
    return this;
  }

  /** Fraction of the stream ≤ x (estimated; exact while the sketch never compacted). */
  cdf(x: number): number {
    const s = this.sample();
    if (s.total === 0) return NaN;
    const i = upperBound(s.values, x);
    return i === 0 ? 0 : s.cum[i - 1]! / s.total;
  }

  /** The value at rank q ∈ [0, 1] (the smallest retained value whose cumulative weight reaches q·n). */
  quantile(q: number): number {
    const s = this.sample();
    if (s.total === 0) return NaN;
    if (q <= 0) return this.min;
    if (q >= 1) return this.max;
    const target = q * s.total;
    let lo = 0;
    let hi = s.values.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s.cum[mid]! >= target) hi = mid;
      else lo = mid + 1;
    }
    return s.values[lo]!;
  }

  /** The retained values, sorted, with cumulative weights (cached until the next change). */
  sample(): WeightedSample {
    if (this.#sample) return this.#sample;
    const items: [number, number][] = [];
    this.levels.forEach((lv, h) => {
      const w = 2 ** h;
      for (const v of lv) items.push([v, w]);
    });
    items.sort((a, b) => a[0] - b[0]);
    const values = new Float64Array(items.length);
    const cum = new Float64Array(items.length);
    let c = 0;
    items.forEach(([v, w], i) => {
      values[i] = v;
      c += w;
      cum[i] = c;
    });
    this.#sample = { values, cum, total: c };
    return this.#sample;
  }

  /** Values retained (memory is O(k) whatever n). */
  retained(): number {
    return this.#size();
  }

  toJSON(): KllJSON {
    return { k: this.k, n: this.n, min: this.n ? this.min : 0, max: this.n ? this.max : 0, levels: this.levels.map((l) => [...l]) };
  }

  static fromJSON(j: KllJSON): KllSketch {
    const s = new KllSketch(j.k);
    s.n = j.n;
    s.min = j.n ? j.min : Infinity;
    s.max = j.n ? j.max : -Infinity;
    s.levels = j.levels.length ? j.levels.map((l) => [...l]) : [[]];
    return s;
  }

  clone(): KllSketch {
    return KllSketch.fromJSON(this.toJSON());
  }

  #size(): number {
    let s = 0;
    for (const l of this.levels) s += l.length;
    return s;
  }

  /** Level h may hold k·(2/3)^(H−1−h) values (at least 2): the top level holds k. */
  #capacity(h: number): number {
    const depth = this.levels.length - 1 - h;
    return Math.max(2, Math.ceil(this.k * (2 / 3) ** depth));
  }

  #capacityTotal(): number {
    if (this.#capLevels === this.levels.length) return this.#cap;
    let c = 0;
    for (let h = 0; h < this.levels.length; h++) c += this.#capacity(h);
    this.#capLevels = this.levels.length;
    this.#cap = c;
    return c;
  }

  /** Compacts the lowest level over its capacity: half of its values (by a coin) move up, weight doubled. */
  #compress(): void {
    for (let h = 0; h < this.levels.length; h++) {
      const lv = this.levels[h]!;
      if (lv.length < this.#capacity(h)) continue;
      if (h + 1 === this.levels.length) this.levels.push([]);
      // A typed array sorts numerically in native code (the same order as a − b for finite values).
      const sorted = Float64Array.from(lv).sort();
      // An odd count leaves its last value behind at this level.
      const keep = sorted.length % 2 ? sorted[sorted.length - 1]! : undefined;
      const len = keep === undefined ? sorted.length : sorted.length - 1;
      const offset = coin(this.n, h);
      const up = this.levels[h + 1]!;
      for (let i = offset; i < len; i += 2) up.push(sorted[i]!);
      this.levels[h] = keep === undefined ? [] : [keep];
      this.#sample = undefined;
      return;
    }
  }
}

/** A deterministic fair-ish bit from (n, level): a 32-bit integer hash (Murmur3's finaliser). */
function coin(n: number, level: number): number {
  let h = (Math.imul(n | 0, 0x9e3779b1) ^ Math.imul(level + 1, 0x85ebca6b)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h & 1;
}

/** First index whose value is > x. */
export function upperBound(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An exact weighted sample of raw values (weight 1 each). */
export function exactSample(values: ArrayLike<number>): WeightedSample {
  const v = Float64Array.from(values).sort();
  const cum = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) cum[i] = i + 1;
  return { values: v, cum, total: v.length };
}
