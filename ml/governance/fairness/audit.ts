/**
 * The fairness audit of a model version: for each declared sensitive attribute (and each pair of
 * them, as an intersection, when two or more are declared), the per-group metrics and the summary
 * metrics with seeded bootstrap intervals, at the version's decision threshold on its holdout.
 * Stored at registration inside the reference profile's JSON under `fairness` (next to
 * `explain`), so it travels with the version; read back by the gate and the model card.
 *
 * Stored as JSON: an undefined rate (NaN) is written as `null`.
 */
import { seededRandom } from '../../../cluster/index.ts';
import { bootstrapSummary, groupMetrics, type BootstrapOptions, type GroupMetrics, type Interval, type SummaryMetric } from './metrics.ts';

export const FAIRNESS_AUDIT_FORMAT = 'shoal-fairness/1';

/** A sensitive attribute over the audited rows: one group id per row, and optional names for the ids. */
export interface SensitiveColumn {
  name: string;
  values: ArrayLike<number>;
  /** Label of each group id (e.g. `['30+', 'under 30']`); the id itself when absent. */
  levels?: readonly string[];
}

export interface AttributeAudit {
  /** The attribute, or `a & b` for an intersection. */
  attribute: string;
  /** The attributes an intersection is made of (absent for a single attribute). */
  of?: [string, string];
  groups: GroupMetrics[];
  /** Groups large enough to judge; the summary needs two. */
  judgedGroups: number;
  summary: Record<SummaryMetric, Interval & { used: number }>;
}

export interface FairnessAudit {
  format: typeof FAIRNESS_AUDIT_FORMAT;
  rows: number;
  threshold: number;
  minGroupSize: number;
  bootstrap: { samples: number; seed: number; confidence: number };
  attributes: AttributeAudit[];
}

export interface AuditOptions extends BootstrapOptions {
  /** Groups with fewer rows are reported as too small to judge. @default 30 */
  minGroupSize?: number;
  /** Audit pairs of attributes as intersections (when two or more are given). @default true */
  intersections?: boolean;
}

export const DEFAULT_MIN_GROUP_SIZE = 30;

export function fairnessAudit(p: ArrayLike<number>, y: ArrayLike<number>, attributes: readonly SensitiveColumn[], threshold: number, o: AuditOptions = {}): FairnessAudit {
  const minGroupSize = o.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  const samples = o.samples ?? 500;
  const seed = o.seed ?? 1;
  const confidence = o.confidence ?? 0.95;
  const cols: { col: SensitiveColumn; of?: [string, string] }[] = attributes.map((col) => ({ col }));
  if (o.intersections !== false)
    for (let a = 0; a < attributes.length; a++) for (let b = a + 1; b < attributes.length; b++) cols.push({ col: intersect(attributes[a]!, attributes[b]!), of: [attributes[a]!.name, attributes[b]!.name] });
  const out: AttributeAudit[] = cols.map(({ col, of }, k) => {
    const label = (g: number) => col.levels?.[g] ?? String(g);
    const groups = groupMetrics(p, y, col.values, threshold, minGroupSize, label);
    // Each attribute its own stream (seed + k): adding an attribute does not move the others' intervals.
    const summary = bootstrapSummary(p, y, col.values, threshold, minGroupSize, { samples, confidence, random: seededRandom(seed + k) });
    return { attribute: col.name, ...(of ? { of } : {}), groups, judgedGroups: groups.filter((g) => !g.tooSmall).length, summary };
  });
  return { format: FAIRNESS_AUDIT_FORMAT, rows: p.length, threshold, minGroupSize, bootstrap: { samples, seed, confidence }, attributes: out };
}

/** The intersection of two attributes: one group per pair of values seen, labelled `a=x & b=y`. */
export function intersect(a: SensitiveColumn, b: SensitiveColumn): SensitiveColumn {
  const n = a.values.length;
  const ids = new Map<string, number>();
  const levels: string[] = [];
  const values = new Uint32Array(n);
  const la = (g: number) => a.levels?.[g] ?? String(g);
  const lb = (g: number) => b.levels?.[g] ?? String(g);
  // Ids in sorted pair order, so the labels come out in a stable order.
  const pairs = new Set<string>();
  for (let i = 0; i < n; i++) pairs.add(`${a.values[i]}|${b.values[i]}`);
  const sorted = [...pairs].map((s) => s.split('|').map(Number) as [number, number]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (const [x, y] of sorted) {
    ids.set(`${x}|${y}`, levels.length);
    levels.push(`${a.name}=${la(x)} & ${b.name}=${lb(y)}`);
  }
  for (let i = 0; i < n; i++) values[i] = ids.get(`${a.values[i]}|${b.values[i]}`)!;
  return { name: `${a.name} & ${b.name}`, values, levels };
}

/** The `fairness` part of a stored reference profile (parsed JSON), when it has one. */
export function fairnessOf(profile: unknown): FairnessAudit | undefined {
  const f = (profile as { fairness?: unknown } | undefined)?.fairness;
  if (!f || typeof f !== 'object' || (f as { format?: unknown }).format !== FAIRNESS_AUDIT_FORMAT) return undefined;
  return f as FairnessAudit;
}
