/**
 * Shadow comparison (issue #16): a candidate version receives a mirrored share of the stable
 * version's requests; its answers are never returned, only compared with stable's. This file is
 * the arithmetic of that comparison, shared by the three places that need it — the gateway that
 * compares one request's two answers and tallies them, the rollout controller that adds every
 * gateway's tallies up, and the pipeline stage that judges the total:
 *
 * - agreement per row: the same class (argmax of several scores; a single score in 0..1 is a
 *   probability, classed at 0.5), or for a single score outside 0..1 (a regression) a relative
 *   difference under {@link REGRESSION_TOLERANCE};
 * - a score per row (the probability, the positive class's score, or the top score) counted in
 *   {@link SHADOW_BINS} fixed bins over 0..1, so that tallies from any number of gateways add up
 *   and a distance between the two distributions (PSI, drift.ts) is computed from the sums.
 */
import { Type, type Static } from '@sinclair/typebox';
import { psi } from '../monitoring/stats/drift.ts';

/** Bins of the score histograms: [0, 0.05), [0.05, 0.1), … [0.95, 1]; scores outside are clamped. */
export const SHADOW_BINS = 20;
/** A regression output agrees when |a − b| ≤ this × max(1, |a|, |b|). */
export const REGRESSION_TOLERANCE = 0.01;

export const scoreBin = (s: number): number => (Number.isFinite(s) ? Math.min(SHADOW_BINS - 1, Math.max(0, Math.floor(s * SHADOW_BINS))) : 0);

/** One model version's shadow tally: what a gateway sends, what the controller adds up. */
export const ShadowCounts = Type.Object({
  model: Type.String({ maxLength: 256 }),
  /** The shadow version. */
  version: Type.Integer({ minimum: 1 }),
  /** The stable version it was compared with. */
  stable: Type.Integer({ minimum: 1 }),
  /** The shadow track's `since`: a new shadow of the same version starts a new count. */
  since: Type.Number(),
  /** Rows compared (a request of 8 rows counts 8). */
  compared: Type.Number({ minimum: 0 }),
  /** Rows whose answers agreed. */
  agreed: Type.Number({ minimum: 0 }),
  /** Mirrored requests the shadow failed (server errors, timeouts) or answered in another shape. */
  errors: Type.Number({ minimum: 0 }),
  /** Mirrored requests dropped because this gateway already had its limit in flight. */
  dropped: Type.Number({ minimum: 0 }),
  stableHist: Type.Array(Type.Number({ minimum: 0 }), { minItems: SHADOW_BINS, maxItems: SHADOW_BINS }),
  shadowHist: Type.Array(Type.Number({ minimum: 0 }), { minItems: SHADOW_BINS, maxItems: SHADOW_BINS }),
});
export type ShadowCounts = Static<typeof ShadowCounts>;

/** What a gateway publishes on `shoal.gw.shadow` with its outcome reports: its shadow tallies since the last one. */
export const ShadowReportMsg = Type.Object({
  type: Type.Literal('shadow'),
  counts: Type.Array(ShadowCounts, { maxItems: 1024 }),
});
export type ShadowReportMsg = Static<typeof ShadowReportMsg>;

/** The controller's answer to `shoal.sched.shadow-report`: the cluster's sums for one shadow (zeros when none came). */
export const ShadowReportRequest = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  version: Type.Integer({ minimum: 1 }),
  since: Type.Number(),
});
export type ShadowReportRequest = Static<typeof ShadowReportRequest>;

export const emptyCounts = (model: string, version: number, stable: number, since: number): ShadowCounts => ({
  model,
  version,
  stable,
  since,
  compared: 0,
  agreed: 0,
  errors: 0,
  dropped: 0,
  stableHist: new Array<number>(SHADOW_BINS).fill(0),
  shadowHist: new Array<number>(SHADOW_BINS).fill(0),
});

/** Adds `b` into `a` (same model, version and since). */
export function addCounts(a: ShadowCounts, b: ShadowCounts): void {
  a.compared += b.compared;
  a.agreed += b.agreed;
  a.errors += b.errors;
  a.dropped += b.dropped;
  for (let i = 0; i < SHADOW_BINS; i++) {
    a.stableHist[i]! += b.stableHist[i] ?? 0;
    a.shadowHist[i]! += b.shadowHist[i] ?? 0;
  }
}

/**
 * The rows of a response body's first output, one number array per row: an OIP v2 JSON body
 * (`outputs[0]` with `shape` and flat or nested `data`) or a `/v1` body (`predictions`).
 * Undefined when the body is not one of those or holds no numbers (strings, binary outputs).
 */
export function responseRows(body: Uint8Array): number[][] | undefined {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const o = v as { outputs?: unknown; predictions?: unknown };
  if (Array.isArray(o.outputs)) {
    const out = o.outputs[0] as { shape?: unknown; data?: unknown } | undefined;
    if (!out || !Array.isArray(out.data) || !Array.isArray(out.shape)) return undefined;
    const flat = (out.data as unknown[]).flat(Infinity);
    if (!flat.every((x) => typeof x === 'number')) return undefined;
    const rows = out.shape.length > 1 ? Number(out.shape[0]) : flat.length;
    if (!Number.isInteger(rows) || rows <= 0 || flat.length % rows !== 0) return undefined;
    const per = flat.length / rows;
    return Array.from({ length: rows }, (_, i) => (flat as number[]).slice(i * per, (i + 1) * per));
  }
  if (Array.isArray(o.predictions)) {
    const rows = o.predictions.map((p) => (typeof p === 'number' ? [p] : Array.isArray(p) ? (p as unknown[]).flat(Infinity) : undefined));
    if (rows.length === 0 || !rows.every((r): r is number[] => !!r && r.length > 0 && r.every((x) => typeof x === 'number'))) return undefined;
    return rows;
  }
  return undefined;
}

const argmax = (r: number[]): number => r.reduce((best, x, i) => (x > r[best]! ? i : best), 0);

/** The row's score for the histograms: the probability, the positive class's score (two), or the top score. */
export const rowScore = (r: number[]): number => (r.length === 1 ? r[0]! : r.length === 2 ? r[1]! : Math.max(...r));

/** Whether two answers for one row agree (see the file's comment). */
export function rowsAgree(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  if (a.length > 1) return argmax(a) === argmax(b);
  const [x, y] = [a[0]!, b[0]!];
  const probabilities = x >= 0 && x <= 1 && y >= 0 && y <= 1;
  if (probabilities) return x >= 0.5 === y >= 0.5;
  return Math.abs(x - y) <= REGRESSION_TOLERANCE * Math.max(1, Math.abs(x), Math.abs(y));
}

/**
 * Adds one request's comparison into `into`: every row compared, agreement counted, both scores
 * binned. Answers of different row counts or widths count one error (the shadow answers another question).
 */
export function compareInto(into: ShadowCounts, stable: number[][], shadow: number[][]): void {
  if (stable.length !== shadow.length || stable.some((r, i) => r.length !== shadow[i]!.length)) {
    into.errors++;
    return;
  }
  for (let i = 0; i < stable.length; i++) {
    into.compared++;
    if (rowsAgree(stable[i]!, shadow[i]!)) into.agreed++;
    into.stableHist[scoreBin(rowScore(stable[i]!))]!++;
    into.shadowHist[scoreBin(rowScore(shadow[i]!))]!++;
  }
}

/** PSI of the shadow's score distribution against stable's (reference), from the two histograms. */
export function histogramPsi(stableHist: readonly number[], shadowHist: readonly number[]): number {
  const ns = stableHist.reduce((a, b) => a + b, 0);
  const nh = shadowHist.reduce((a, b) => a + b, 0);
  if (ns === 0 || nh === 0) return NaN;
  return psi(
    stableHist.map((c) => c / ns),
    shadowHist.map((c) => c / nh),
  );
}

/** The thresholds a shadow is judged by (the pipeline spec's `shadow`). */
export interface ShadowPolicy {
  /** Rows compared before any verdict. */
  minCompared: number;
  /** Lowest share of rows whose answers agree. */
  minAgreement: number;
  /** Highest PSI between the two score distributions. */
  maxDistance: number;
  /** Highest share of mirrored requests the shadow may fail. @default 0.05 */
  maxErrorRate?: number;
}

export interface ShadowJudgment {
  compared: number;
  /** Share of compared rows that agreed (0 when none). */
  agreement: number;
  /** PSI of the score distributions (0 when nothing was compared). */
  distance: number;
  errors: number;
  /** Undefined: too few rows compared to decide. */
  pass?: boolean;
  reason: string;
}

/** Judges a shadow's sums: refused (no `pass`) below `minCompared`, else agreement, distance and errors against the policy. */
export function judgeShadow(p: ShadowPolicy, c: Pick<ShadowCounts, 'compared' | 'agreed' | 'errors' | 'stableHist' | 'shadowHist'>): ShadowJudgment {
  const compared = c.compared;
  const agreement = compared > 0 ? c.agreed / compared : 0;
  const d = histogramPsi(c.stableHist, c.shadowHist);
  const distance = Number.isFinite(d) ? d : 0;
  const base = { compared, agreement, distance, errors: c.errors };
  if (compared < p.minCompared) return { ...base, reason: `${compared} rows compared, fewer than minCompared ${p.minCompared}: too few to judge` };
  const failures: string[] = [];
  if (agreement < p.minAgreement) failures.push(`agreement ${(agreement * 100).toFixed(1)}% below ${(p.minAgreement * 100).toFixed(1)}%`);
  if (distance > p.maxDistance) failures.push(`score distribution PSI ${distance.toFixed(3)} above ${p.maxDistance}`);
  // Errors are per mirrored request; rows of a failed request were never compared, so requests are the fair base.
  const errorRate = c.errors / (c.errors + compared);
  const maxErrorRate = p.maxErrorRate ?? 0.05;
  if (errorRate > maxErrorRate) failures.push(`shadow errors ${c.errors} (${(errorRate * 100).toFixed(1)}%, allowed ${(maxErrorRate * 100).toFixed(1)}%)`);
  if (failures.length) return { ...base, pass: false, reason: `shadow: ${failures.join('; ')} over ${compared} rows` };
  return { ...base, pass: true, reason: `shadow: agreement ${(agreement * 100).toFixed(1)}%, PSI ${distance.toFixed(3)} over ${compared} rows` };
}

/** Sums of shadow tallies per (model, version, since): the gateway's between two reports, the controller's in total. */
export class ShadowTally {
  readonly #counts = new Map<string, ShadowCounts>();

  /** The tally of one shadow, created at its first use. */
  of(model: string, version: number, stable: number, since: number): ShadowCounts {
    const k = `${model}@${version}@${since}`;
    let c = this.#counts.get(k);
    if (!c) this.#counts.set(k, (c = emptyCounts(model, version, stable, since)));
    return c;
  }

  add(c: ShadowCounts): void {
    addCounts(this.of(c.model, c.version, c.stable, c.since), c);
  }

  get(model: string, version: number, since: number): ShadowCounts | undefined {
    return this.#counts.get(`${model}@${version}@${since}`);
  }

  /** The tallies with anything in them, and a fresh start (what a gateway reports). */
  take(): ShadowCounts[] {
    const out = [...this.#counts.values()].filter((c) => c.compared + c.errors + c.dropped > 0);
    this.#counts.clear();
    return out;
  }

  /** Forgets every shadow of `model` but the one started at `keepSince` (the controller, when a shadow ends). */
  forget(model: string, keepSince?: number): void {
    for (const [k, c] of this.#counts) if (c.model === model && c.since !== keepSince) this.#counts.delete(k);
  }
}
