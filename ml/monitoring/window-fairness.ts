/**
 * Live fairness on labeled traffic (issue #20 part 2): per monitor window, on the labeled rows
 * that carry groups (`groups: {attribute: value}` — sent with the feedback, or put on the logged
 * record by a replica serving a feature-view model whose views declare sensitive features), the
 * same per-group metrics and summary (demographic parity difference, equalized odds difference,
 * disparate impact ratio, seeded bootstrap intervals, minimum group size) as the training audit:
 * `fairnessAudit` (ml/governance/fairness/audit.ts) run once per attribute on the rows that carry
 * it. No second implementation: a window's block is a `FairnessAudit` plus the rows per attribute.
 *
 * Intersections are not computed live (each attribute is audited on its own rows). An attribute
 * with more than {@link MAX_GROUPS} distinct values in a window is reported without metrics.
 *
 * With a fairness policy, the window is judged with `judge(…, 'alarm')` (policy.ts): a bound is
 * violated only when the whole interval lies beyond it, and a metric that cannot be computed
 * (fewer than two groups of `minGroupSize` labeled rows) is "too small to judge", never an alarm.
 */
import { fairnessAudit, FAIRNESS_AUDIT_FORMAT, type AttributeAudit, type FairnessAudit } from '../governance/fairness/audit.ts';
import { judge, type FairnessPolicy, type Verdict, type Violation } from '../governance/fairness/policy.ts';
import type { Alert, WindowReport } from './monitor-core.ts';

/** A labeled row's groups: attribute name → group value. */
export type Groups = Record<string, string>;

/** Most distinct values per attribute in one window (more: the attribute is not audited there). */
export const MAX_GROUPS = 64;

/** The most characters of a group value (feedback checks it; longer values never reach a window). */
export const MAX_GROUP_VALUE = 64;

export interface WindowFairnessOptions {
  /** Groups with fewer labeled rows are reported as too small to judge. @default 30 */
  minGroupSize?: number;
  /** Bootstrap resamples. @default 500 */
  samples?: number;
  /** @default 1 */
  seed?: number;
  /** @default 0.95 */
  confidence?: number;
}

export interface WindowAttribute extends AttributeAudit {
  /** Labeled rows of the window that carry this attribute. */
  rows: number;
  /** Why it was not audited (too many distinct values). */
  skipped?: string;
}

/** A window's `fairness` block. */
export interface WindowFairness extends Omit<FairnessAudit, 'attributes'> {
  attributes: WindowAttribute[];
  /** Set when no attribute has two groups of at least `minGroupSize` labeled rows. */
  tooSmall?: string;
  /** The model's fairness policy judged on this window (alarm mode), when it has one. */
  verdict?: Verdict;
}

/**
 * The fairness block of a window's labeled sample (`scores`, 0/1 `labels`, `groups` per row, the
 * three arrays aligned); undefined when no row carries a group.
 */
export function windowFairness(scores: readonly number[], labels: readonly number[], groups: readonly (Groups | null | undefined)[], threshold: number, o: WindowFairnessOptions = {}): WindowFairness | undefined {
  const names = new Set<string>();
  let rows = 0;
  for (const g of groups) {
    if (!g) continue;
    let any = false;
    for (const k of Object.keys(g)) (names.add(k), (any = true));
    if (any) rows++;
  }
  if (names.size === 0) return undefined;
  const minGroupSize = o.minGroupSize ?? 30;
  const samples = o.samples ?? 500;
  const seed = o.seed ?? 1;
  const confidence = o.confidence ?? 0.95;
  const attributes: WindowAttribute[] = [...names].sort().map((name, k) => {
    const idx: number[] = [];
    for (let i = 0; i < groups.length; i++) if (typeof groups[i]?.[name] === 'string') idx.push(i);
    const levels = [...new Set(idx.map((i) => groups[i]![name]!))].sort();
    if (levels.length > MAX_GROUPS) {
      return { attribute: name, rows: idx.length, groups: [], judgedGroups: 0, summary: emptySummary(), skipped: `${levels.length} distinct values (at most ${MAX_GROUPS} are audited per window)` };
    }
    const id = new Map(levels.map((v, j) => [v, j]));
    const p = idx.map((i) => scores[i]!);
    const y = idx.map((i) => labels[i]!);
    const values = idx.map((i) => id.get(groups[i]![name]!)!);
    // Each attribute its own bootstrap stream (seed + k), as the training audit does.
    const a = fairnessAudit(p, y, [{ name, values, levels }], threshold, { minGroupSize, samples, seed: seed + k, confidence, intersections: false }).attributes[0]!;
    return { ...a, rows: idx.length };
  });
  const out: WindowFairness = { format: FAIRNESS_AUDIT_FORMAT, rows, threshold, minGroupSize, bootstrap: { samples, seed, confidence }, attributes };
  if (!attributes.some((a) => a.judgedGroups >= 2)) out.tooSmall = `too small to judge: no attribute has two groups of at least ${minGroupSize} labeled rows (${attributes.map((a) => `${a.attribute}: ${a.groups.map((g) => `${g.size}`).join('/') || '0'}`).join('; ')})`;
  return out;
}

/**
 * The policy judged on a window's block in alarm mode (policy.ts): only attributes the window
 * can judge are judged; the others are notes ("too small to judge"), never violations.
 */
export function judgeWindow(policy: FairnessPolicy, f: WindowFairness, what: string): Verdict {
  const named = policy.attributes ?? f.attributes.map((a) => a.attribute);
  const notes: string[] = [];
  for (const a of named) if (!f.attributes.some((x) => x.attribute === a)) notes.push(`${a}: no labeled rows of ${what} carry this attribute`);
  const judgeable = f.attributes.filter((a) => named.includes(a.attribute) && !a.skipped);
  if (judgeable.length === 0) return { pass: true, violations: [], notes };
  const audit: FairnessAudit = { ...f, attributes: judgeable };
  const v = judge({ ...policy, attributes: judgeable.map((a) => a.attribute) }, audit, what, 'alarm');
  return { pass: v.pass, violations: v.violations, notes: [...notes, ...v.notes] };
}

function emptySummary(): AttributeAudit['summary'] {
  const nan = { value: Number.NaN, low: Number.NaN, high: Number.NaN, used: 0 };
  return { demographicParityDifference: { ...nan }, equalizedOddsDifference: { ...nan }, disparateImpact: { ...nan } };
}

/** A window's labeled sample as the monitor keeps it (monitor-core.ts). */
export interface LabeledSample {
  scores: number[];
  labels: number[];
  /** Per row, its groups (null: none); absent until a row with groups came. */
  groups?: (Groups | null)[];
}

/** The block of a window's labeled sample, judged against the policy when there is one; undefined without groups. */
export function evaluateWindowFairness(l: LabeledSample, threshold: number, o: WindowFairnessOptions, policy: FairnessPolicy | undefined, what: string): WindowFairness | undefined {
  if (!l.groups) return undefined;
  const f = windowFairness(l.scores, l.labels, l.groups, threshold, o);
  if (f && policy) f.verdict = judgeWindow(policy, f, what);
  return f;
}

type AlertFields = Pick<Alert, 'severity' | 'rule' | 'statistic' | 'value' | 'threshold' | 'message' | 'attribute' | 'groups' | 'interval'>;

/**
 * Sets a closed window's `fairness` block (the monitor calls it whenever the window's quality is
 * computed, at close and when labels come later) and returns the alerts to raise: one per
 * attribute and metric the policy finds violated, not raised for this window before.
 */
export function judgeWindowFairness(report: WindowReport, l: LabeledSample, threshold: number, o: WindowFairnessOptions, policy: FairnessPolicy | undefined): AlertFields[] {
  const f = evaluateWindowFairness(l, threshold, o, policy, `the ${report.window} window`);
  if (!f) return [];
  report.fairness = f;
  const raised = (v: Violation) => report.alerts.some((a) => a.rule === 'fairness' && a.attribute === v.attribute && a.statistic === v.metric);
  return (f.verdict?.violations ?? []).filter((v) => !raised(v)).map((v) => fairnessAlertOf(v, report.window));
}

/** The alert fields of a violation (rule `fairness`): metric, attribute, the groups at the two ends, the interval. */
export function fairnessAlertOf(v: Violation, window: string): AlertFields {
  const threshold = v.bound.max ?? v.bound.min ?? Number.NaN;
  return { severity: 'critical', rule: 'fairness', attribute: v.attribute, groups: v.groups, interval: v.interval, statistic: v.metric, value: v.value ?? Number.NaN, threshold, message: `fairness in the ${window} window: ${v.message}` };
}
