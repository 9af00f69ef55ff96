/**
 * A model's fairness policy and its verdict on a version's audit.
 *
 * A bound is judged on the bootstrap interval, not the point: a version passes a `min` only when
 * the interval's low end is at or above it, a `max` only when the high end is at or below it —
 * "demonstrably within bounds", so a small holdout with a wide interval does not pass on luck.
 * A summary metric that cannot be computed (fewer than two groups large enough to judge) fails for
 * a single attribute and is skipped for an intersection (intersections are often thin), with a
 * note. A version with no audit fails any policy.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { AttributeAudit, FairnessAudit } from './audit.ts';
import { SUMMARY_METRICS, type SummaryMetric } from './metrics.ts';

const Bound = Type.Object({ min: Type.Optional(Type.Number()), max: Type.Optional(Type.Number()) }, { additionalProperties: false, minProperties: 1 });

export const FairnessPolicy = Type.Object(
  {
    /** Sensitive attributes (or `a & b` intersections) the bounds apply to. @default every audited one */
    attributes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 128 }), { minItems: 1, maxItems: 16 })),
    demographicParityDifference: Type.Optional(Bound),
    equalizedOddsDifference: Type.Optional(Bound),
    disparateImpact: Type.Optional(Bound),
  },
  { additionalProperties: false },
);
export type FairnessPolicy = Static<typeof FairnessPolicy>;

export interface Violation {
  metric: SummaryMetric;
  attribute: string;
  /** The groups at the two ends of the spread (lowest first), by the point estimate. */
  groups: string[];
  value: number | null;
  interval: [number | null, number | null];
  bound: { min?: number; max?: number };
  message: string;
}

export interface Verdict {
  pass: boolean;
  violations: Violation[];
  /** Checks skipped (an intersection too thin to judge), in words. */
  notes: string[];
}

/** The attributes a policy may name: those audited (and their intersections). */
export function declaredAttributes(audit: FairnessAudit | undefined, declared: readonly string[] = []): string[] {
  return [...new Set([...declared, ...(audit?.attributes.map((a) => a.attribute) ?? [])])];
}

/** The policy's attributes that are not declared, if any. */
export function undeclared(policy: FairnessPolicy, declared: readonly string[]): string[] {
  return (policy.attributes ?? []).filter((a) => !declared.includes(a));
}

const fmt = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(3));

/**
 * `mode: 'gate'` (the default, before a version takes traffic): a bound passes only when the whole
 * interval is within it. `mode: 'alarm'` (live windows, ml/monitoring/window-fairness.ts): a bound
 * fails only when the whole interval is beyond it — "demonstrably outside" — so a small window with
 * a wide interval never alarms; a metric that cannot be computed is a note there, never a violation.
 */
export function judge(policy: FairnessPolicy, audit: FairnessAudit | undefined, what = 'the version', mode: 'gate' | 'alarm' = 'gate'): Verdict {
  const bounds = SUMMARY_METRICS.filter((m) => policy[m]);
  if (bounds.length === 0) return { pass: true, violations: [], notes: [] };
  if (!audit) {
    return {
      pass: false,
      violations: bounds.map((m) => ({ metric: m, attribute: '*', groups: [], value: null, interval: [null, null], bound: policy[m]!, message: `${m}: ${what} has no fairness audit (train it with a dataset that declares a sensitive attribute)` })),
      notes: [],
    };
  }
  const chosen = policy.attributes ? audit.attributes.filter((a) => policy.attributes!.includes(a.attribute)) : audit.attributes;
  const violations: Violation[] = [];
  const notes: string[] = [];
  for (const a of chosen)
    for (const m of bounds) {
      const b = policy[m]!;
      const s = a.summary[m];
      const value = finite(s?.value);
      const low = finite(s?.low);
      const high = finite(s?.high);
      const groups = extremes(a, m);
      if (value === null || low === null || high === null) {
        const why = `${m} for ${a.attribute}: fewer than two groups of at least ${audit.minGroupSize} rows (${a.judgedGroups} judged), too small to judge`;
        if (a.of || mode === 'alarm') notes.push(why);
        else violations.push({ metric: m, attribute: a.attribute, groups, value, interval: [low, high], bound: b, message: why });
        continue;
      }
      const alarm = mode === 'alarm';
      const tooLow = b.min !== undefined && (alarm ? high : low) < b.min;
      const tooHigh = b.max !== undefined && (alarm ? low : high) > b.max;
      if (!tooLow && !tooHigh) continue;
      const need = tooLow ? `≥ ${b.min}` : `≤ ${b.max}`;
      violations.push({
        metric: m,
        attribute: a.attribute,
        groups,
        value,
        interval: [low, high],
        bound: b,
        message: `${m} ${fmt(value)} [${fmt(low)}, ${fmt(high)}] for ${a.attribute} (groups ${groups.join(' vs ')}) is not ${need} ${alarm ? 'anywhere in' : 'over'} its ${Math.round(audit.bootstrap.confidence * 100)}% interval`,
      });
    }
  return { pass: violations.length === 0, violations, notes };
}

const finite = (x: number | null | undefined): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** The judged groups at the two ends of the metric's spread (by the point estimates). */
function extremes(a: AttributeAudit, m: SummaryMetric): string[] {
  const judged = a.groups.filter((g) => !g.tooSmall);
  const ends = (key: 'selectionRate' | 'tpr' | 'fpr') => {
    const v = judged.filter((g) => finite(g[key]) !== null).sort((x, y) => x[key] - y[key]);
    return v.length < 2 ? undefined : { spread: v[v.length - 1]![key] - v[0]![key], groups: [v[0]!.group, v[v.length - 1]!.group] };
  };
  if (m !== 'equalizedOddsDifference') return ends('selectionRate')?.groups ?? [];
  const t = ends('tpr');
  const f = ends('fpr');
  return (t && (!f || t.spread >= f.spread) ? t : f)?.groups ?? [];
}
