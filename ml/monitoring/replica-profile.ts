/**
 * A replica's own profile of its traffic (issue #15 item 5, whylogs-style): every request the
 * replica answers — sampled into the prediction log or not — is summarised into the mergeable
 * sketches of stats/ (per feature KLL or Misra-Gries, the output distribution, the confidence
 * moments) under the version's reference schema, in time slices aligned to the epoch. A slice's
 * profile is published as a delta (what came since its last publish) on the model's prediction
 * subject, as a {@link ProfileMessage}; the monitor merges every replica's deltas into its
 * windows, so drift is tested on ALL the traffic even when the log samples little of it.
 *
 * Slices are the greatest common divisor of the monitor's window sizes, so each slice lies in one
 * window of every size. Merging is exact for counts and moments, within the Misra-Gries bound for
 * category counts and within KLL's rank error for quantiles (stats/sketch.ts, stats/kll.ts).
 */
import type { ReferenceProfile, RecordProfileJSON } from './stats/profile.ts';
import { RecordProfile } from './stats/profile.ts';
import type { ColumnSketch } from './stats/sketch.ts';
import { columnNames, mapColumns } from './columns.ts';
import { elementValue, sameShape, type CapturedRequest } from './columnar.ts';
import type { OutputValue } from './records.ts';

export const PROFILE_FORMAT = 'shoal.replica-profile/v1';

/** A replica's profile delta of one slice (or a part of one: a large profile is split by features). */
export interface ProfileMessage {
  format: typeof PROFILE_FORMAT;
  model: string;
  version: number;
  /** The replica (its actor id), for diagnostics. */
  replica: string;
  /** The slice: `[start, start + sliceMs)`, epoch ms by the replica's clock. */
  start: number;
  sliceMs: number;
  /** Rows this delta profiles (0 in the extra parts of a split profile). */
  profile: RecordProfileJSON;
}

export function isProfileMessage(m: unknown): m is ProfileMessage {
  return typeof m === 'object' && m !== null && (m as ProfileMessage).format === PROFILE_FORMAT;
}

interface Plan {
  /** The request the plan was made for (its shape is compared, not its values). */
  shape: CapturedRequest;
  inputs: { el: number; sketch: ColumnSketch | undefined }[][];
  missing: ColumnSketch[];
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The slice length for a monitor's window sizes: their greatest common divisor. */
export function sliceLength(windows: readonly number[]): number {
  return windows.reduce((g, w) => gcd(g, w), 0) || 300_000;
}

export class ReplicaProfiler {
  readonly #slices = new Map<number, RecordProfile>();
  readonly #plans = new WeakMap<RecordProfile, Plan>();
  readonly #reference: ReferenceProfile;
  /** Logged input column → reference feature, decided on the first request (see columns.ts). */
  #map: Record<string, string> | null | undefined;
  /** Rows profiled so far (all slices, all deltas). */
  rows = 0;

  constructor(
    readonly model: string,
    readonly version: number,
    readonly replica: string,
    reference: ReferenceProfile,
    readonly sliceMs: number,
  ) {
    this.#reference = reference;
  }

  /** Adds one answered request's rows to its slice's profile (column by column). */
  add(r: CapturedRequest): void {
    const start = Math.floor(r.ts / this.sliceMs) * this.sliceMs;
    let p = this.#slices.get(start);
    if (!p) this.#slices.set(start, (p = new RecordProfile(this.#reference.schema)));
    const n = r.rows;
    const plan = this.#plan(p, r);
    for (let k = 0; k < plan.inputs.length; k++) {
      const t = r.inputs[k]!;
      const cols = plan.inputs[k]!;
      for (let j = 0; j < cols.length; j++) {
        const c = cols[j]!;
        if (!c.sketch) continue;
        for (let row = 0; row < n; row++) c.sketch.update(elementValue(t.datatype, t.data, (t.whole ? 0 : row * t.per) + c.el));
      }
    }
    // A reference feature the request does not carry counts as null, as in a record's profile.
    for (const c of plan.missing) for (let row = 0; row < n; row++) c.update(undefined);
    for (let row = 0; row < n; row++) p.updateOutputs(outputsOf(r, row));
    p.addRows(n);
    this.rows += n;
  }

  /** Which sketch each input column feeds, per slice profile and request shape (built once, not per request). */
  #plan(p: RecordProfile, r: CapturedRequest): Plan {
    const cached = this.#plans.get(p);
    if (cached && sameShape(cached.shape, r)) return cached;
    if (this.#map === undefined) this.#map = mapColumns(Object.keys(this.#reference.schema.features), r.inputs.flatMap((t) => names(t)));
    const touched = new Set<ColumnSketch>();
    const inputs = r.inputs.map((t) =>
      names(t).map((name, j) => {
        const sketch = p.features[this.#map?.[name] ?? name];
        if (sketch) touched.add(sketch);
        return { el: t.cols ? t.cols[j]! : j, sketch };
      }),
    );
    const plan: Plan = { shape: r, inputs, missing: Object.values(p.features).filter((c) => !touched.has(c)) };
    this.#plans.set(p, plan);
    return plan;
  }

  /**
   * The deltas to publish, and forgets them: the slices that ended by `now`, or all of them with
   * `all` (a periodic publish of the open slice, or close).
   */
  take(now: number, all: boolean): ProfileMessage[] {
    const out: ProfileMessage[] = [];
    for (const [start, p] of this.#slices) {
      if (!all && start + this.sliceMs > now) continue;
      this.#slices.delete(start);
      if (p.rows > 0) out.push({ format: PROFILE_FORMAT, model: this.model, version: this.version, replica: this.replica, start, sliceMs: this.sliceMs, profile: p.toJSON() });
    }
    return out;
  }
}

function names(t: CapturedRequest['inputs'][number]): string[] {
  const all = columnNames(t.name, t.per);
  return t.cols ? t.cols.map((c) => all[c]!) : all;
}

/** One row's outputs as a record carries them (columnar.ts `batchRecords` gives the same). */
function outputsOf(r: CapturedRequest, row: number): Record<string, OutputValue> {
  const out: Record<string, OutputValue> = {};
  for (const t of r.outputs) {
    const off = t.whole ? 0 : row * t.per;
    const w = t.cols?.length ?? t.per;
    if (w === 1) {
      const v = elementValue(t.datatype, t.data, off + (t.cols ? t.cols[0]! : 0));
      out[t.name] = typeof v === 'string' ? v : typeof v === 'number' ? v : v === true ? 1 : v === false ? 0 : NaN;
      continue;
    }
    const vals: (number | string)[] = [];
    for (let j = 0; j < w; j++) {
      const v = elementValue(t.datatype, t.data, off + (t.cols ? t.cols[j]! : j));
      vals.push(typeof v === 'string' ? v : typeof v === 'number' ? v : v === true ? 1 : v === false ? 0 : NaN);
    }
    out[t.name] = vals.some((v) => typeof v === 'string') ? JSON.stringify(vals) : (vals as number[]);
  }
  return out;
}

/** Splits a profile message whose encoding is over `maxBytes` into parts by features (the first part keeps rows, outputs and confidence). */
export function splitProfile(m: ProfileMessage, encode: (m: ProfileMessage) => Uint8Array, maxBytes: number): Uint8Array[] {
  const bytes = encode(m);
  const feats = Object.keys(m.profile.features);
  if (bytes.length <= maxBytes || feats.length < 2) return [bytes];
  const half = feats.length >> 1;
  const pick = (ks: string[]) => Object.fromEntries(ks.map((k) => [k, m.profile.features[k]!]));
  const a: ProfileMessage = { ...m, profile: { ...m.profile, features: pick(feats.slice(0, half)) } };
  const b: ProfileMessage = { ...m, profile: { rows: 0, features: pick(feats.slice(half)), outputs: {}, confidence: { n: 0, mean: 0, m2: 0, min: 0, max: 0 } } };
  return [...splitProfile(a, encode, maxBytes), ...splitProfile(b, encode, maxBytes)];
}
