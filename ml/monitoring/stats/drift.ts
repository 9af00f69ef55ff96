/**
 * Per-feature drift tests between a reference and a current window, chosen like Evidently's
 * defaults, on sketches (sketch.ts) so replicas' summaries can be merged before testing:
 *
 * - small windows (current ≤ `smallWindowRows`, default 1000 rows): two-sample Kolmogorov-Smirnov
 *   (numeric; asymptotic p-value with Stephens' small-sample correction) and Pearson's
 *   chi-squared test of homogeneity on the 2×K table of category counts (categorical; p-value from
 *   the chi-squared CDF, special.ts). A feature drifts when its p-value, corrected for testing
 *   many features at once (Benjamini-Hochberg by default, or Bonferroni), is < `alpha` (0.05).
 * - large windows: the Wasserstein-1 distance divided by the reference's standard deviation
 *   (numeric) and the Jensen-Shannon distance (categorical, natural log, as scipy's default);
 *   a feature drifts at a distance ≥ `threshold` (0.1). With thousands of rows a p-value flags
 *   shifts too small to matter; a distance does not grow with the sample size.
 * - PSI (population stability index) is reported for every feature, never decides.
 *
 * The dataset drifts when at least `driftShare` (0.5) of the features drift. Every result carries
 * the sample sizes it was computed from.
 */
import { chiSquaredSf, kolmogorovSf } from './special.ts';
import { upperBound, type WeightedSample } from './kll.ts';
import { ColumnSketch, type ColumnKind } from './sketch.ts';

export type DriftTest = 'ks' | 'chi2' | 'wasserstein' | 'jensenshannon';
export type Correction = 'benjamini-hochberg' | 'bonferroni' | 'none';

export interface DriftOptions {
  /** A current window with at most this many rows gets the statistical tests, larger ones the distances. @default 1000 */
  smallWindowRows?: number;
  /** Significance level of the statistical tests (after correction). @default 0.05 */
  alpha?: number;
  /** Multiple-testing correction across the features of one report. @default 'benjamini-hochberg' */
  correction?: Correction;
  /** Distance at or above which a feature drifts (large windows). @default 0.1 */
  threshold?: number;
  /** Share of drifting features at or above which the dataset drifts. @default 0.5 */
  driftShare?: number;
  /** PSI bins of numeric features (reference quantiles). @default 10 */
  psiBins?: number;
  /** Force a test for some features (by name) whatever the window size. */
  tests?: Record<string, DriftTest>;
}

export type ResolvedDriftOptions = Required<Omit<DriftOptions, 'tests'>> & { tests: Record<string, DriftTest> };

export function resolveDriftOptions(o: DriftOptions = {}): ResolvedDriftOptions {
  const r = {
    smallWindowRows: o.smallWindowRows ?? 1000,
    alpha: o.alpha ?? 0.05,
    correction: o.correction ?? 'benjamini-hochberg',
    threshold: o.threshold ?? 0.1,
    driftShare: o.driftShare ?? 0.5,
    psiBins: o.psiBins ?? 10,
    tests: o.tests ?? {},
  };
  if (!(r.alpha > 0 && r.alpha < 1)) throw new RangeError(`drift option alpha must be in (0, 1) (got ${r.alpha})`);
  if (!(r.threshold > 0)) throw new RangeError(`drift option threshold must be > 0 (got ${r.threshold})`);
  if (!(r.driftShare > 0 && r.driftShare <= 1)) throw new RangeError(`drift option driftShare must be in (0, 1] (got ${r.driftShare})`);
  if (!(Number.isInteger(r.smallWindowRows) && r.smallWindowRows >= 0)) throw new RangeError(`drift option smallWindowRows must be a non-negative integer (got ${r.smallWindowRows})`);
  if (!(Number.isInteger(r.psiBins) && r.psiBins >= 2)) throw new RangeError(`drift option psiBins must be an integer ≥ 2 (got ${r.psiBins})`);
  if (!['benjamini-hochberg', 'bonferroni', 'none'].includes(r.correction)) throw new RangeError(`drift option correction must be benjamini-hochberg, bonferroni or none (got ${r.correction})`);
  return r;
}

export interface FeatureDrift {
  feature: string;
  kind: ColumnKind;
  test: DriftTest;
  /** KS: D; chi2: X²; wasserstein: W1 / reference std; jensenshannon: the JS distance. */
  statistic: number;
  /** Statistical tests only: the raw p-value, and the one corrected across the report's features. */
  pValue?: number;
  adjustedPValue?: number;
  /** chi2 only. */
  degreesOfFreedom?: number;
  /** alpha (tests) or the distance threshold. */
  threshold: number;
  drifted: boolean;
  psi: number;
  /** Non-null values compared on each side. */
  referenceSize: number;
  currentSize: number;
  referenceNulls: number;
  currentNulls: number;
}

export interface DriftReport {
  features: FeatureDrift[];
  drifted: number;
  share: number;
  datasetDrift: boolean;
  driftShare: number;
  correction: Correction;
  alpha: number;
  threshold: number;
  /** Rows (records) on each side. */
  referenceRows: number;
  currentRows: number;
}

// ---- primitives -------------------------------------------------------------------------------

/** Two-sample KS statistic: the largest gap between the two empirical CDFs. */
export function ksStatistic(a: WeightedSample, b: WeightedSample): number {
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.values.length || j < b.values.length) {
    // The next distinct value, consumed on both sides (ties move together).
    const x = Math.min(i < a.values.length ? a.values[i]! : Infinity, j < b.values.length ? b.values[j]! : Infinity);
    while (i < a.values.length && a.values[i]! <= x) i++;
    while (j < b.values.length && b.values[j]! <= x) j++;
    const fa = i ? a.cum[i - 1]! / a.total : 0;
    const fb = j ? b.cum[j - 1]! / b.total : 0;
    d = Math.max(d, Math.abs(fa - fb));
  }
  return d;
}

/**
 * Asymptotic p-value of a two-sample KS statistic D with sample sizes n and m:
 * Q_KS((√ne + 0.12 + 0.11/√ne)·D), ne = n·m/(n+m) (Stephens 1970's correction).
 */
export function ksPValue(d: number, n: number, m: number): number {
  if (n === 0 || m === 0) return 1;
  const en = Math.sqrt((n * m) / (n + m));
  return kolmogorovSf((en + 0.12 + 0.11 / en) * d);
}

/**
 * Pearson's chi-squared test of homogeneity on the 2×K table (reference counts, current counts),
 * categories empty on both sides dropped; df = K − 1.
 */
export function chiSquaredTest(reference: Map<string, number>, current: Map<string, number>): { statistic: number; df: number; pValue: number } {
  const cats = [...new Set([...reference.keys(), ...current.keys()])].filter((c) => (reference.get(c) ?? 0) + (current.get(c) ?? 0) > 0);
  const nr = cats.reduce((s, c) => s + (reference.get(c) ?? 0), 0);
  const nc = cats.reduce((s, c) => s + (current.get(c) ?? 0), 0);
  const df = cats.length - 1;
  if (df < 1 || nr === 0 || nc === 0) return { statistic: 0, df: Math.max(0, df), pValue: 1 };
  const n = nr + nc;
  let x2 = 0;
  for (const c of cats) {
    const r = reference.get(c) ?? 0;
    const k = current.get(c) ?? 0;
    const col = r + k;
    const er = (nr * col) / n;
    const ec = (nc * col) / n;
    x2 += (r - er) ** 2 / er + (k - ec) ** 2 / ec;
  }
  return { statistic: x2, df, pValue: chiSquaredSf(x2, df) };
}

/** The Wasserstein-1 distance ∫|F_a − F_b| dx between two (weighted) samples. */
export function wassersteinDistance(a: WeightedSample, b: WeightedSample): number {
  if (a.total === 0 || b.total === 0) return NaN;
  const xs = Float64Array.from([...a.values, ...b.values]).sort();
  let w = 0;
  for (let k = 0; k + 1 < xs.length; k++) {
    const x = xs[k]!;
    const dx = xs[k + 1]! - x;
    if (dx === 0) continue;
    w += Math.abs(cdfAt(a, x) - cdfAt(b, x)) * dx;
  }
  return w;
}

function cdfAt(s: WeightedSample, x: number): number {
  const i = upperBound(s.values, x);
  return i ? s.cum[i - 1]! / s.total : 0;
}

/**
 * The Jensen-Shannon distance √(½ KL(p‖m) + ½ KL(q‖m)), m = (p+q)/2, of two distributions over
 * the same keys (missing = 0), in log base `base` (e, as scipy's default).
 */
export function jensenShannonDistance(p: Map<string, number>, q: Map<string, number>, base = Math.E): number {
  const keys = new Set([...p.keys(), ...q.keys()]);
  const sp = [...p.values()].reduce((a, b) => a + b, 0);
  const sq = [...q.values()].reduce((a, b) => a + b, 0);
  if (sp === 0 || sq === 0) return NaN;
  let js = 0;
  for (const k of keys) {
    const pk = (p.get(k) ?? 0) / sp;
    const qk = (q.get(k) ?? 0) / sq;
    const mk = (pk + qk) / 2;
    if (pk > 0) js += 0.5 * pk * Math.log(pk / mk);
    if (qk > 0) js += 0.5 * qk * Math.log(qk / mk);
  }
  return Math.sqrt(Math.max(0, js) / Math.log(base));
}

/**
 * Two histograms over the same ordered bins, with adjacent bins merged (left to right) until every
 * merged bin expects at least `minExpected` counts on the smaller side under homogeneity
 * (column total × smaller side's total ÷ grand total) — Cochran's rule for the chi-squared
 * approximation. A remainder too small for a bin of its own joins the last one. Sparse tail bins
 * otherwise dominate both the chi-squared statistic and PSI: one score in a bin the reference
 * rarely fills reads as a shift. Totals are kept; with fewer than two merged bins nothing can be
 * compared (the chi-squared test then has no degrees of freedom).
 */
export function poolSparseBins(reference: readonly number[], current: readonly number[], minExpected = 5): { reference: number[]; current: number[] } {
  if (reference.length !== current.length) throw new RangeError(`poolSparseBins: ${reference.length} reference bins vs ${current.length} current bins`);
  const nr = reference.reduce((a, b) => a + b, 0);
  const nc = current.reduce((a, b) => a + b, 0);
  const n = nr + nc;
  const smaller = Math.min(nr, nc);
  const out = { reference: [] as number[], current: [] as number[] };
  let r = 0;
  let c = 0;
  for (let i = 0; i < reference.length; i++) {
    r += reference[i]!;
    c += current[i]!;
    if (n > 0 && ((r + c) * smaller) / n >= minExpected) {
      out.reference.push(r);
      out.current.push(c);
      r = 0;
      c = 0;
    }
  }
  if (r + c > 0 || out.reference.length === 0) {
    if (out.reference.length) {
      out.reference[out.reference.length - 1]! += r;
      out.current[out.current.length - 1]! += c;
    } else {
      out.reference.push(r);
      out.current.push(c);
    }
  }
  return out;
}

/**
 * Population stability index Σ (c_i − r_i)·ln(c_i / r_i) over bins of proportions; an empty bin
 * counts as `eps` (1e-4) so the index stays finite.
 */
export function psi(reference: readonly number[], current: readonly number[], eps = 1e-4): number {
  let s = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = Math.max(reference[i]!, eps);
    const c = Math.max(current[i] ?? 0, eps);
    s += (c - r) * Math.log(c / r);
  }
  return s;
}

/** Benjamini-Hochberg adjusted p-values (step-up, monotone, capped at 1), in the input's order. */
export function benjaminiHochberg(p: readonly number[]): number[] {
  const m = p.length;
  const order = p.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(m);
  let min = 1;
  for (let r = m; r >= 1; r--) {
    const [v, i] = order[r - 1]!;
    min = Math.min(min, (v * m) / r);
    out[i] = min;
  }
  return out;
}

export function bonferroni(p: readonly number[]): number[] {
  return p.map((v) => Math.min(1, v * p.length));
}

export function adjustPValues(p: readonly number[], c: Correction): number[] {
  return c === 'benjamini-hochberg' ? benjaminiHochberg(p) : c === 'bonferroni' ? bonferroni(p) : [...p];
}

// ---- on sketches ------------------------------------------------------------------------------

/** PSI of a numeric column over `bins` reference-quantile bins. */
export function numericPsi(reference: ColumnSketch, current: ColumnSketch, bins = 10): number {
  const edges: number[] = [];
  for (let b = 1; b < bins; b++) {
    const e = reference.kll!.quantile(b / bins);
    if (!edges.length || e > edges.at(-1)!) edges.push(e);
  }
  const props = (s: ColumnSketch) => {
    const cdf = [0, ...edges.map((e) => s.kll!.cdf(e)), 1];
    return cdf.slice(1).map((c, i) => c - cdf[i]!);
  };
  return psi(props(reference), props(current));
}

/** PSI of a categorical column over the union of categories. */
export function categoricalPsi(reference: ColumnSketch, current: ColumnSketch): number {
  const r = reference.proportions();
  const c = current.proportions();
  const keys = [...new Set([...r.keys(), ...c.keys()])];
  return psi(
    keys.map((k) => r.get(k) ?? 0),
    keys.map((k) => c.get(k) ?? 0),
  );
}

/** The test Evidently's defaults pick for a column kind and a window size. */
export function chooseTest(kind: ColumnKind, currentRows: number, o: Pick<ResolvedDriftOptions, 'smallWindowRows'>): DriftTest {
  const small = currentRows <= o.smallWindowRows;
  return kind === 'numeric' ? (small ? 'ks' : 'wasserstein') : small ? 'chi2' : 'jensenshannon';
}

/** One column's drift statistic (before any multiple-testing correction). */
export function columnDrift(feature: string, reference: ColumnSketch, current: ColumnSketch, test: DriftTest, o: ResolvedDriftOptions): FeatureDrift {
  if (reference.kind !== current.kind) throw new RangeError(`feature ${feature}: reference is ${reference.kind}, current is ${current.kind}`);
  const base = {
    feature,
    kind: reference.kind,
    test,
    referenceSize: reference.valid(),
    currentSize: current.valid(),
    referenceNulls: reference.nulls,
    currentNulls: current.nulls,
  };
  const empty = base.referenceSize === 0 || base.currentSize === 0;
  const psiValue = empty ? 0 : reference.kind === 'numeric' ? numericPsi(reference, current, o.psiBins) : categoricalPsi(reference, current);
  const numeric = reference.kind === 'numeric';
  if ((test === 'ks' || test === 'wasserstein') && !numeric) throw new RangeError(`feature ${feature}: ${test} needs a numeric column`);
  if ((test === 'chi2' || test === 'jensenshannon') && numeric) throw new RangeError(`feature ${feature}: ${test} needs a categorical column`);
  if (empty) {
    const isTest = test === 'ks' || test === 'chi2';
    return { ...base, statistic: 0, ...(isTest ? { pValue: 1, adjustedPValue: 1 } : {}), threshold: isTest ? o.alpha : o.threshold, drifted: false, psi: 0 };
  }
  switch (test) {
    case 'ks': {
      const d = ksStatistic(reference.kll!.sample(), current.kll!.sample());
      const p = ksPValue(d, base.referenceSize, base.currentSize);
      return { ...base, statistic: d, pValue: p, adjustedPValue: p, threshold: o.alpha, drifted: p < o.alpha, psi: psiValue };
    }
    case 'chi2': {
      const t = chiSquaredTest(reference.categoryCounts(), current.categoryCounts());
      return { ...base, statistic: t.statistic, pValue: t.pValue, adjustedPValue: t.pValue, degreesOfFreedom: t.df, threshold: o.alpha, drifted: t.pValue < o.alpha, psi: psiValue };
    }
    case 'wasserstein': {
      // Evidently divides by the reference's (population) standard deviation, floored at 0.001.
      const w = wassersteinDistance(reference.kll!.sample(), current.kll!.sample()) / Math.max(reference.moments!.populationStd(), 0.001);
      return { ...base, statistic: w, threshold: o.threshold, drifted: w >= o.threshold, psi: psiValue };
    }
    case 'jensenshannon': {
      const js = jensenShannonDistance(reference.proportions(), current.proportions());
      return { ...base, statistic: js, threshold: o.threshold, drifted: js >= o.threshold, psi: psiValue };
    }
  }
}

type Side = { rows: number; columns: Record<string, ColumnSketch> };

/** Each column's statistic, p-values not yet corrected. */
export function columnDrifts(reference: Side, current: Side, o: ResolvedDriftOptions): FeatureDrift[] {
  const names = Object.keys(reference.columns).filter((n) => current.columns[n]);
  return names.map((n) => {
    const r = reference.columns[n]!;
    return columnDrift(n, r, current.columns[n]!, o.tests[n] ?? chooseTest(r.kind, current.rows, o), o);
  });
}

/** Corrects the p-values of every tested column in `families` as one family, and sets `drifted`. */
export function correctAcross(features: FeatureDrift[], o: ResolvedDriftOptions): void {
  const tested = features.filter((f) => f.pValue !== undefined);
  const adjusted = adjustPValues(
    tested.map((f) => f.pValue!),
    o.correction,
  );
  tested.forEach((f, i) => {
    f.adjustedPValue = adjusted[i]!;
    f.drifted = adjusted[i]! < o.alpha;
  });
}

/** The report of columns already tested and corrected. */
export function summarize(features: FeatureDrift[], referenceRows: number, currentRows: number, o: ResolvedDriftOptions): DriftReport {
  const drifted = features.filter((f) => f.drifted).length;
  const share = features.length ? drifted / features.length : 0;
  return {
    features,
    drifted,
    share,
    datasetDrift: features.length > 0 && share >= o.driftShare,
    driftShare: o.driftShare,
    correction: o.correction,
    alpha: o.alpha,
    threshold: o.threshold,
    referenceRows,
    currentRows,
  };
}

/**
 * Drift of every column of `reference` that `current` has too: a test per column (Evidently's
 * defaults for the current window's size unless `tests` names one), p-values corrected across
 * the tested columns, and the dataset verdict.
 */
export function detectDrift(reference: Side, current: Side, options: DriftOptions = {}): DriftReport {
  const o = resolveDriftOptions(options);
  const features = columnDrifts(reference, current, o);
  correctAcross(features, o);
  return summarize(features, reference.rows, current.rows, o);
}
