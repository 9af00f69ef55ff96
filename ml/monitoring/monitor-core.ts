/**
 * The monitor's windows and rules (issue #15 item 4), free of NATS and of time: the monitor actor
 * (monitor-actor.ts) feeds it logged predictions and labeled rows and the time from its clock; a
 * unit test feeds it the same on a VirtualClock.
 *
 * Windows are tumbling, aligned to the epoch, one series per configured size, and a record goes
 * to the window of its own time (`ts`, when the replica answered). A window closes once `now`
 * (the monitor's clock) or the newest record time passes its end by `latenessMs`; records for a
 * closed window are counted as late. At close it is tested against the version's reference
 * profile: drift per feature, prediction drift, dataset drift share, the confidence-drop rule,
 * CBPE's estimated performance, and quality on the labeled rows received so far. Closed windows
 * are kept (`keepWindows` per size): a label that comes later goes to its prediction's window,
 * whose quality is computed again — labels arrive days late, the window they judge is the one
 * the prediction was made in.
 *
 * The state is plain data (`toJSON` / `fromJSON`): the actor checkpoints it with the stream
 * sequences it has consumed, so a restart resumes exactly.
 */
import {
  RecordProfile,
  binaryLabel,
  binaryQuality,
  confidenceDrop,
  driftAgainstReference,
  estimateWindow,
  outputValue,
  type ConfidenceDrop,
  type DriftOptions,
  type DriftReport,
  type EstimatedPerformance,
  type MonitoredRow,
  type QualityReport,
  type RecordProfileJSON,
  type ReferenceProfile,
} from './stats/index.ts';
import { Moments } from './stats/sketch.ts';
import { mapColumns } from './columns.ts';
import type { ProfileMessage } from './replica-profile.ts';
import type { LabeledRecord, MonitoringSpec, PredictionRecord } from './records.ts';
import type { FairnessPolicy } from '../governance/fairness/policy.ts';
import { judgeWindowFairness, type LabeledSample, type WindowFairness, type WindowFairnessOptions } from './window-fairness.ts';

export const AlertRule = {
  FEATURE_DRIFT: 'feature-drift',
  DATASET_DRIFT: 'dataset-drift',
  PREDICTION_DRIFT: 'prediction-drift',
  CONFIDENCE_DROP: 'confidence-drop',
  QUALITY_DROP: 'quality-drop',
  ESTIMATED_QUALITY_DROP: 'estimated-quality-drop',
  /** A fairness policy bound violated on a window's labeled rows with groups (window-fairness.ts). */
  FAIRNESS: 'fairness',
} as const;
export type AlertRule = (typeof AlertRule)[keyof typeof AlertRule];

/** One alert, as published on `<prefix>.events.alert` and POSTed to webhooks. */
export interface Alert {
  /** `<model>:v<version>:<window>:<start>:<rule>[:<feature>]`: the same alert is never raised twice. */
  id: string;
  at: number;
  severity: 'warning' | 'critical';
  rule: AlertRule;
  model: string;
  version: number;
  /** The window's name (`5m`, `1h`, …), size, start and end (epoch ms). */
  window: string;
  windowStart: number;
  windowEnd: number;
  /** The feature (or output) concerned; absent for a dataset-level rule. */
  feature?: string;
  /** The test or metric: `ks`, `chi2`, `wasserstein`, `jensenshannon`, `share`, `mean-confidence`, `auc`, … */
  statistic: string;
  /** The statistic's value (a p-value for `ks`/`chi2`, a distance, a share, a metric). */
  value: number;
  threshold: number;
  message: string;
  /** Rule `fairness`: the sensitive attribute, the groups at the two ends, the bootstrap interval. */
  attribute?: string;
  groups?: string[];
  interval?: [number | null, number | null];
}

export interface MetricValue {
  value: number;
  lower?: number;
  upper?: number;
  n: number;
}

/** One closed window's results (what the monitor publishes and keeps). */
export interface WindowReport {
  model: string;
  version: number;
  window: string;
  sizeMs: number;
  start: number;
  end: number;
  closedAt: number;
  /** Closed before its end by a flush (`{type: 'flush'}`). */
  partial: boolean;
  /** Rows the drift tests saw: all the replicas' traffic (`source: 'replicas'`) or the logged records (`'log'`). */
  rows: number;
  source: 'replicas' | 'log';
  /** Logged (sampled) records of the window. */
  logged: number;
  /** The replicas whose profiles were merged (source `replicas`). */
  replicas?: string[];
  /** Why drift and confidence were not tested (too few rows, no reference). */
  skipped?: string;
  drift?: DriftReport;
  predictionDrift?: DriftReport;
  confidence?: ConfidenceDrop;
  /** CBPE from the scores (the reference had labels). */
  estimated?: EstimatedPerformance;
  /** On the labeled rows received so far for this window's predictions. */
  quality?: QualityReport;
  /** Per-group fairness on the labeled rows with groups (window-fairness.ts). */
  fairness?: WindowFairness;
  /**
   * Counts of the window's sampled scores in SCORE_BINS equal-width bins over [0, 1] (outside
   * values in the end bins): what a canary's prediction distribution is compared with the stable's
   * on (ml/pipelines/canary-quality.ts). Absent without a score output.
   */
  scoreHistogram?: number[];
  labeled: number;
  alerts: Alert[];
}

/** Bins of {@link WindowReport.scoreHistogram}. */
export const SCORE_BINS = 10;

/** Counts of `scores` in {@link SCORE_BINS} equal-width bins over [0, 1]. */
export function scoreHistogram(scores: readonly number[]): number[] {
  const out = new Array<number>(SCORE_BINS).fill(0);
  for (const v of scores) if (Number.isFinite(v)) out[Math.min(SCORE_BINS - 1, Math.max(0, Math.floor(v * SCORE_BINS)))]!++;
  return out;
}

export interface ResolvedMonitorOptions {
  windows: number[];
  latenessMs: number;
  minRows: number;
  keepWindows: number;
  drift: DriftOptions;
  confidence: { alpha?: number; minDrop?: number };
  quality: { metric: 'accuracy' | 'precision' | 'recall' | 'f1' | 'auc'; maxDrop: number; minRows: number };
  /** Scores kept per window for CBPE (a uniform sample beyond). */
  maxScores: number;
  /** Labeled rows kept per window (a uniform sample beyond). */
  maxLabeled: number;
  fairness: WindowFairnessOptions;
}

export function resolveMonitorOptions(spec: MonitoringSpec = {}): ResolvedMonitorOptions {
  return {
    windows: [...new Set(spec.windows ?? [300_000, 3_600_000])].sort((a, b) => a - b),
    latenessMs: spec.latenessMs ?? 10_000,
    minRows: spec.minRows ?? 30,
    keepWindows: spec.keepWindows ?? 24,
    drift: spec.drift ?? {},
    confidence: spec.confidence ?? {},
    quality: { metric: (spec.quality?.metric as ResolvedMonitorOptions['quality']['metric']) ?? 'auc', maxDrop: spec.quality?.maxDrop ?? 0.05, minRows: spec.quality?.minRows ?? 100 },
    maxScores: 20_000,
    maxLabeled: 20_000,
    fairness: spec.fairness ?? {},
  };
}

/** `300000` → `5m`, `3600000` → `1h`, `90000` → `90s`. */
export function windowName(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A bounded uniform sample (reservoir), deterministic: its own small PRNG. */
interface Reservoir {
  seen: number;
  items: number[];
}

interface OpenWindow {
  sizeMs: number;
  start: number;
  /** The profile of the logged records (the drift source until replicas publish their own). */
  profile: RecordProfile;
  /** Logged records taken. */
  logged: number;
  /** The merge of the replicas' profile deltas for this window (all traffic, sampled or not). */
  merged?: RecordProfile;
  /** The replicas whose deltas were merged. */
  replicas?: string[];
  scores: Reservoir;
  labeled: { seen: number } & LabeledSample;
}

interface ClosedWindow {
  report: WindowReport;
  labeled: { seen: number } & LabeledSample;
}

export interface MonitorCoreJSON {
  columnMap?: Record<string, string> | null;
  open: { sizeMs: number; start: number; profile: RecordProfileJSON; logged?: number; merged?: RecordProfileJSON; replicas?: string[]; scores: Reservoir; labeled: OpenWindow['labeled'] }[];
  fromReplicas?: boolean;
  closed: ClosedWindow[];
  counters: MonitorCounters;
  watermark: number;
  rng: number;
}

export interface MonitorCounters {
  /** Prediction records of this version taken into at least one window. */
  records: number;
  /** Records too late for at least one of their windows (that window had closed). */
  late: number;
  /** Labeled rows taken (into an open or a kept closed window). */
  labeled: number;
  /** Labeled rows whose window is no longer kept. */
  labeledTooLate: number;
  /** Rows whose label or score could not be used (no score output, a NaN). */
  unusable: number;
  windowsClosed: number;
  alerts: number;
  /** Rows merged from the replicas' own profiles (item 5: every request, sampled or not). */
  profiled: number;
  /** Profiled rows whose window had closed before their delta came. */
  lateProfiled: number;
}

export class MonitorCore {
  readonly o: ResolvedMonitorOptions;
  readonly #open = new Map<string, OpenWindow>();
  #closed: ClosedWindow[] = [];
  #columnMap: Record<string, string> | null | undefined;
  #watermark = 0;
  #rng = 0x9e3779b9;
  #outbox: Alert[] = [];
  readonly #stale = new Set<ClosedWindow>();
  readonly counters: MonitorCounters = { records: 0, late: 0, labeled: 0, labeledTooLate: 0, unusable: 0, windowsClosed: 0, alerts: 0, profiled: 0, lateProfiled: 0 };
  /** Replicas publish their own profiles: drift is tested on their merge, records no longer profiled here. */
  #fromReplicas = false;
  readonly #referenceFeatures: string[];
  readonly #confidenceRef: Moments;
  /** The model's fairness policy (the actor keeps it current): judged on each window's groups. */
  fairnessPolicy: FairnessPolicy | undefined;

  constructor(
    readonly model: string,
    readonly version: number,
    readonly reference: ReferenceProfile | undefined,
    spec: MonitoringSpec = {},
  ) {
    this.o = resolveMonitorOptions(spec);
    this.#referenceFeatures = reference ? Object.keys(reference.schema.features) : [];
    this.#confidenceRef = reference ? Moments.fromJSON(reference.profile.confidence) : new Moments();
  }

  /** The newest record time seen. */
  get watermark(): number {
    return this.#watermark;
  }

  /** Windows still open: `{window, start, rows}`. */
  openWindows(): { window: string; start: number; end: number; rows: number; labeled: number }[] {
    return [...this.#open.values()].map((w) => ({ window: windowName(w.sizeMs), start: w.start, end: w.start + w.sizeMs, rows: this.#tested(w).rows, labeled: w.labeled.seen }));
  }

  /** Closed windows, newest first (per size, at most `keepWindows`). */
  reports(): WindowReport[] {
    return this.#closed.map((c) => c.report).sort((a, b) => b.end - a.end || a.sizeMs - b.sizeMs);
  }

  /** Adds a logged prediction (records of other versions are ignored). */
  addPrediction(r: PredictionRecord): void {
    if (r.version !== this.version) return;
    const row = this.#row(r);
    let taken = false;
    let late = false;
    for (const size of this.o.windows) {
      const start = Math.floor(r.ts / size) * size;
      const key = `${size}:${start}`;
      let w = this.#open.get(key);
      if (!w) {
        if (this.#isClosed(size, start)) {
          late = true;
          continue;
        }
        w = this.#openWindow(size, start);
      }
      if (!this.#fromReplicas) w.profile.update(row);
      w.logged++;
      const score = this.#score(row);
      if (score !== undefined) this.#sample(w.scores, score, this.o.maxScores);
      taken = true;
    }
    if (taken) this.counters.records++;
    if (late) this.counters.late++;
    if (r.ts > this.#watermark) this.#watermark = r.ts;
  }

  /**
   * Adds a labeled row to its prediction's window of every size (open, or closed and kept: that
   * window's quality is then computed again by the next `rejudge`).
   */
  addLabeled(r: LabeledRecord): void {
    if (r.version !== this.version) return;
    const score = this.#score(this.#row(r));
    if (score === undefined) {
      this.counters.unusable++;
      return;
    }
    const label = binaryLabel(r.label);
    let taken = false;
    for (const size of this.o.windows) {
      const start = Math.floor(r.ts / size) * size;
      const open = this.#open.get(`${size}:${start}`);
      if (open) {
        this.#sampleLabeled(open.labeled, score, label, r.groups);
        taken = true;
        continue;
      }
      const closed = this.#closed.find((c) => c.report.sizeMs === size && c.report.start === start);
      if (closed) {
        this.#sampleLabeled(closed.labeled, score, label, r.groups);
        this.#stale.add(closed);
        taken = true;
        continue;
      }
      if (!this.#isClosed(size, start)) {
        // A label for a window no prediction opened yet (the join is ahead of the log): open it.
        const w = this.#openWindow(size, start);
        this.#sampleLabeled(w.labeled, score, label, r.groups);
        taken = true;
      }
    }
    if (taken) this.counters.labeled++;
    else this.counters.labeledTooLate++;
  }

  /**
   * Merges a replica's profile delta (replica-profile.ts) into the window of every size its slice
   * lies in. From the first one on, drift is tested on the merged profiles (all the traffic)
   * instead of the logged records. Ignored without a reference (no schema to merge under).
   */
  addProfile(m: ProfileMessage): void {
    if (m.version !== this.version || !this.reference) return;
    this.#fromReplicas = true;
    const delta = RecordProfile.fromJSON(m.profile, this.reference.schema);
    let taken = false;
    let late = false;
    for (const size of this.o.windows) {
      const start = Math.floor(m.start / size) * size;
      let w = this.#open.get(`${size}:${start}`);
      if (!w) {
        if (this.#isClosed(size, start)) {
          late = true;
          continue;
        }
        w = this.#openWindow(size, start);
      }
      (w.merged ??= this.#newProfile()).merge(delta);
      if (!(w.replicas ??= []).includes(m.replica)) w.replicas.push(m.replica);
      taken = true;
    }
    if (taken) this.counters.profiled += m.profile.rows;
    if (late) this.counters.lateProfiled += m.profile.rows;
  }

  /** Computes again the quality of closed windows that got labels since the last call; returns their reports. */
  rejudge(now: number): WindowReport[] {
    const out: WindowReport[] = [];
    for (const c of this.#stale) {
      if (!this.#closed.includes(c)) continue;
      this.#judgeQuality(c, now);
      out.push(c.report);
    }
    this.#stale.clear();
    return out;
  }

  /**
   * Closes the windows whose end plus the lateness has passed (by `now` or by the newest record
   * time); `flush` closes every open window now (marked partial when before its end).
   */
  close(now: number, flush = false): WindowReport[] {
    const out: WindowReport[] = [];
    const horizon = Math.max(now, this.#watermark);
    for (const [key, w] of [...this.#open].sort((a, b) => a[1].start - b[1].start || a[1].sizeMs - b[1].sizeMs)) {
      const end = w.start + w.sizeMs;
      if (!flush && end + this.o.latenessMs > horizon) continue;
      this.#open.delete(key);
      const c: ClosedWindow = { report: this.#evaluate(w, now, flush && end > now), labeled: w.labeled };
      this.#judgeQuality(c, now);
      this.#closed.push(c);
      this.counters.windowsClosed++;
      out.push(c.report);
    }
    // Keep the newest `keepWindows` per size.
    for (const size of this.o.windows) {
      const mine = this.#closed.filter((c) => c.report.sizeMs === size).sort((a, b) => b.report.start - a.report.start);
      for (const old of mine.slice(this.o.keepWindows)) this.#closed.splice(this.#closed.indexOf(old), 1);
    }
    return out;
  }

  /** Alerts raised since the last call (to publish). */
  takeAlerts(): Alert[] {
    const a = this.#outbox;
    this.#outbox = [];
    return a;
  }

  toJSON(): MonitorCoreJSON {
    return {
      columnMap: this.#columnMap ?? null,
      open: [...this.#open.values()].map((w) => ({ sizeMs: w.sizeMs, start: w.start, profile: w.profile.toJSON(), logged: w.logged, ...(w.merged ? { merged: w.merged.toJSON(), replicas: w.replicas ?? [] } : {}), scores: w.scores, labeled: w.labeled })),
      fromReplicas: this.#fromReplicas,
      closed: this.#closed,
      counters: this.counters,
      watermark: this.#watermark,
      rng: this.#rng,
    };
  }

  restore(j: MonitorCoreJSON): this {
    this.#columnMap = j.columnMap ?? undefined;
    this.#open.clear();
    for (const w of j.open) {
      if (!this.o.windows.includes(w.sizeMs)) continue;
      const profile = this.reference ? RecordProfile.fromJSON(w.profile, this.reference.schema) : this.#newProfile();
      if (!this.reference) profile.rows = w.profile.rows;
      const merged = this.reference && w.merged ? RecordProfile.fromJSON(w.merged, this.reference.schema) : undefined;
      this.#open.set(`${w.sizeMs}:${w.start}`, { sizeMs: w.sizeMs, start: w.start, profile, logged: w.logged ?? w.profile.rows, ...(merged ? { merged, replicas: w.replicas ?? [] } : {}), scores: w.scores, labeled: w.labeled });
    }
    this.#closed = j.closed.filter((c) => this.o.windows.includes(c.report.sizeMs));
    Object.assign(this.counters, j.counters);
    this.#watermark = j.watermark;
    this.#rng = j.rng;
    this.#fromReplicas = j.fromReplicas ?? false;
    return this;
  }

  // ---- internals --------------------------------------------------------------------------------

  #isClosed(size: number, start: number): boolean {
    // A window that ended long enough before the newest record time is closed (or was never opened and is late).
    if (start + size + this.o.latenessMs <= this.#watermark) return true;
    return this.#closed.some((c) => c.report.sizeMs === size && c.report.start === start);
  }

  #openWindow(size: number, start: number): OpenWindow {
    const w: OpenWindow = { sizeMs: size, start, profile: this.#newProfile(), logged: 0, scores: { seen: 0, items: [] }, labeled: { seen: 0, scores: [], labels: [] } };
    this.#open.set(`${size}:${start}`, w);
    return w;
  }

  /** The profile the window's drift tests run on: the replicas' merge once they publish, else the logged records'. */
  #tested(w: OpenWindow): RecordProfile {
    return this.#fromReplicas && w.merged ? w.merged : w.profile;
  }

  #newProfile(): RecordProfile {
    return new RecordProfile(this.reference?.schema ?? { features: {}, outputs: {} });
  }

  /**
   * A record as the reference names its columns. A trained version's reference uses the
   * dataset's column names while the replica logs `<input>_<i>`: when the reference's names are
   * not in the record but one input has exactly as many columns, they map by position.
   */
  #row(r: PredictionRecord): MonitoredRow {
    if (this.#columnMap === undefined) this.#columnMap = this.#mapColumns(r.features);
    if (this.#columnMap === null) return { features: r.features, outputs: r.outputs };
    const features: MonitoredRow['features'] = {};
    for (const [k, v] of Object.entries(r.features)) features[this.#columnMap[k] ?? k] = v;
    return { features, outputs: r.outputs };
  }

  #mapColumns(features: Record<string, unknown>): Record<string, string> | null {
    return mapColumns(this.#referenceFeatures, Object.keys(features));
  }

  #score(row: MonitoredRow): number | undefined {
    const key = this.reference?.schema.score;
    if (!key) return undefined;
    const v = outputValue(row.outputs[key]);
    return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
  }

  #random(): number {
    // xorshift32: deterministic, and its state is checkpointed, so a resumed monitor samples alike.
    let x = this.#rng >>> 0;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#rng = x >>> 0;
    return this.#rng / 4294967296;
  }

  #sample(r: Reservoir, v: number, max: number): void {
    r.seen++;
    if (r.items.length < max) r.items.push(v);
    else {
      const j = Math.floor(this.#random() * r.seen);
      if (j < max) r.items[j] = v;
    }
  }

  #sampleLabeled(l: OpenWindow['labeled'], score: number, label: number, groups: LabeledRecord['groups']): void {
    l.seen++;
    const g = groups && Object.keys(groups).length > 0 ? groups : null;
    // Groups ride beside the sample, aligned with it, from the first row that has some.
    if (g && !l.groups) l.groups = new Array<null>(l.scores.length).fill(null);
    let j = l.scores.length;
    if (j >= this.o.maxLabeled) {
      j = Math.floor(this.#random() * l.seen);
      if (j >= this.o.maxLabeled) return;
    }
    l.scores[j] = score;
    l.labels[j] = label;
    if (l.groups) l.groups[j] = g;
  }

  #base(w: OpenWindow, now: number, partial: boolean): WindowReport {
    return { model: this.model, version: this.version, window: windowName(w.sizeMs), sizeMs: w.sizeMs, start: w.start, end: w.start + w.sizeMs, closedAt: now, partial, rows: this.#tested(w).rows, source: this.#fromReplicas && w.merged ? 'replicas' : 'log', logged: w.logged, ...(w.replicas ? { replicas: [...w.replicas].sort() } : {}), ...(w.scores.items.length ? { scoreHistogram: scoreHistogram(w.scores.items) } : {}), labeled: 0, alerts: [] };
  }

  #evaluate(w: OpenWindow, now: number, partial: boolean): WindowReport {
    const rep = this.#base(w, now, partial);
    const ref = this.reference;
    if (!ref) {
      rep.skipped = 'the version has no reference profile';
      return rep;
    }
    const tested = this.#tested(w);
    if (tested.rows < this.o.minRows) {
      rep.skipped = `${tested.rows} rows, fewer than minRows (${this.o.minRows})`;
      return rep;
    }
    const { features, predictions } = driftAgainstReference(ref, tested, this.o.drift);
    rep.drift = features;
    rep.predictionDrift = predictions;
    if (ref.schema.score && this.#confidenceRef.n > 1 && tested.confidence.n > 1) rep.confidence = confidenceDrop(this.#confidenceRef, tested.confidence, this.o.confidence);
    if (w.scores.items.length > 0) {
      const est = estimateWindow(ref, w.scores.items);
      if (est) rep.estimated = est;
    }
    const alert = (a: Omit<Alert, 'id' | 'at' | 'model' | 'version' | 'window' | 'windowStart' | 'windowEnd'>) => this.#alert(rep, now, a);
    for (const f of features.features) {
      if (!f.drifted) continue;
      const p = f.adjustedPValue ?? f.pValue;
      alert({ severity: 'warning', rule: AlertRule.FEATURE_DRIFT, feature: f.feature, statistic: f.test, value: p ?? f.statistic, threshold: f.threshold, message: `feature ${f.feature} drifted in the ${rep.window} window: ${f.test} ${p !== undefined ? `p=${p.toPrecision(3)} < ${f.threshold}` : `${f.statistic.toPrecision(3)} ≥ ${f.threshold}`}` });
    }
    if (features.datasetDrift) {
      alert({ severity: 'critical', rule: AlertRule.DATASET_DRIFT, statistic: 'share', value: features.share, threshold: features.driftShare, message: `dataset drift in the ${rep.window} window: ${features.drifted} of ${features.features.length} features drifted (share ${features.share.toFixed(2)} ≥ ${features.driftShare})` });
    }
    for (const f of predictions.features) {
      if (!f.drifted) continue;
      const p = f.adjustedPValue ?? f.pValue;
      alert({ severity: 'warning', rule: AlertRule.PREDICTION_DRIFT, feature: f.feature, statistic: f.test, value: p ?? f.statistic, threshold: f.threshold, message: `prediction drift on output ${f.feature} in the ${rep.window} window (${f.test})` });
    }
    if (rep.confidence?.fired) {
      const c = rep.confidence;
      alert({ severity: 'critical', rule: AlertRule.CONFIDENCE_DROP, statistic: 'mean-confidence', value: c.currentMean, threshold: c.referenceMean - c.minDrop, message: `mean confidence dropped from ${c.referenceMean.toFixed(3)} to ${c.currentMean.toFixed(3)} in the ${rep.window} window (p=${c.pValue.toPrecision(3)})` });
    }
    const q = this.o.quality;
    const refValue = refMetric(ref, q.metric);
    if (rep.estimated && refValue !== undefined && rep.estimated.rows >= q.minRows) {
      const est = rep.estimated[q.metric];
      if (Number.isFinite(est) && est < refValue - q.maxDrop) {
        alert({ severity: 'warning', rule: AlertRule.ESTIMATED_QUALITY_DROP, statistic: q.metric, value: est, threshold: refValue - q.maxDrop, message: `estimated ${q.metric} ${est.toFixed(3)} is below the reference's ${refValue.toFixed(3)} by more than ${q.maxDrop} (before labels)` });
      }
    }
    return rep;
  }

  /** Quality of a closed window on its labeled rows; a quality-drop alert once, when it first applies. */
  #judgeQuality(c: ClosedWindow, now: number): void {
    const l = c.labeled;
    c.report.labeled = l.seen;
    if (l.scores.length === 0) return;
    const threshold = this.reference?.threshold ?? 0.5;
    c.report.quality = binaryQuality(l.scores, l.labels, { threshold });
    for (const a of judgeWindowFairness(c.report, c.labeled, threshold, this.o.fairness, this.fairnessPolicy)) this.#alert(c.report, now, a);
    const q = this.o.quality;
    const refValue = this.reference ? refMetric(this.reference, q.metric) : undefined;
    const m = metricOf(c.report.quality, q.metric);
    if (refValue === undefined || !m || m.n < q.minRows || !Number.isFinite(m.value)) return;
    if (m.value < refValue - q.maxDrop && !c.report.alerts.some((a) => a.rule === AlertRule.QUALITY_DROP)) {
      this.#alert(c.report, now, { severity: 'critical', rule: AlertRule.QUALITY_DROP, statistic: q.metric, value: m.value, threshold: refValue - q.maxDrop, message: `${q.metric} on ${m.n} labeled rows is ${m.value.toFixed(3)}, below the reference's ${refValue.toFixed(3)} by more than ${q.maxDrop}` });
    }
  }

  #alert(rep: WindowReport, now: number, a: Omit<Alert, 'id' | 'at' | 'model' | 'version' | 'window' | 'windowStart' | 'windowEnd'>): void {
    const id = [rep.model, `v${rep.version}`, rep.window, rep.start, a.rule, ...(a.feature ? [a.feature] : []), ...(a.attribute ? [a.attribute, a.statistic] : [])].join(':');
    const alert: Alert = { id, at: now, model: rep.model, version: rep.version, window: rep.window, windowStart: rep.start, windowEnd: rep.end, ...a };
    rep.alerts.push(alert);
    this.#outbox.push(alert);
    this.counters.alerts++;
  }
}

function metricOf(q: QualityReport, metric: ResolvedMonitorOptions['quality']['metric']): MetricValue | undefined {
  const m = q[metric];
  return m ? { value: m.value, lower: m.lower, upper: m.upper, n: m.n } : undefined;
}

function refMetric(ref: ReferenceProfile, metric: ResolvedMonitorOptions['quality']['metric']): number | undefined {
  const v = ref.metrics?.[metric]?.value;
  return v !== undefined && Number.isFinite(v) ? v : undefined;
}
