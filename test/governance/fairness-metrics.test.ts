/** The fairness metrics against values computed by hand (Fairlearn's definitions), the bootstrap, intersections and the policy's verdict. */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { bootstrapSummary, groupMetrics, quantile, summaryMetrics } from '../../ml/governance/fairness/metrics.ts';
import { fairnessAudit, intersect } from '../../ml/governance/fairness/audit.ts';
import { declaredAttributes, judge, undeclared } from '../../ml/governance/fairness/policy.ts';

// Group 0: y 1 1 0 0, scores .9 .2 .8 .1 → predicted 1 0 1 0: selection .5, TPR .5, FPR .5, precision .5, AUC 3/4.
// Group 1: y 1 0 0 0, scores .7 .3 .2 .1 → predicted 1 0 0 0: selection .25, TPR 1, FPR 0, precision 1, AUC 1.
// Group 2 (2 rows, too small at min 3): y 0 0, scores .9 .9 → selection 1, TPR undefined.
const p = [0.9, 0.2, 0.8, 0.1, 0.7, 0.3, 0.2, 0.1, 0.9, 0.9];
const y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0];
const g = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2];

describe('group metrics (hand-computed)', () => {
  it('per group: size, positives, selection rate, TPR, FPR, precision, AUC, too small', () => {
    const m = groupMetrics(p, y, g, 0.5, 3, (i) => ['A', 'B', 'C'][i]!);
    expect(m.map((x) => x.group)).toEqual(['A', 'B', 'C']);
    expect(m[0]).toMatchObject({ size: 4, positives: 2, selectionRate: 0.5, tpr: 0.5, fpr: 0.5, precision: 0.5, auc: 0.75, tooSmall: false });
    expect(m[1]).toMatchObject({ size: 4, positives: 1, selectionRate: 0.25, tpr: 1, fpr: 0, precision: 1, auc: 1, tooSmall: false });
    expect(m[2]).toMatchObject({ size: 2, positives: 0, selectionRate: 1, fpr: 1, tooSmall: true });
    expect(m[2]!.tpr).toBeNaN();
    expect(m[2]!.auc).toBeNaN();
  });

  it('summary: DPD = max−min selection, EOD = max(TPR spread, FPR spread), DI = min/max selection; small groups left out', () => {
    const s = summaryMetrics(p, y, g, 0.5, 3);
    expect(s.demographicParityDifference).toBeCloseTo(0.25, 12);
    expect(s.equalizedOddsDifference).toBeCloseTo(0.5, 12);
    expect(s.disparateImpact).toBeCloseTo(0.5, 12);
    // With the small group judged (min 1): selection rates .5 .25 1 → DPD .75, DI .25; FPR .5 0 1 → EOD 1.
    const all = summaryMetrics(p, y, g, 0.5, 1);
    expect(all.demographicParityDifference).toBeCloseTo(0.75, 12);
    expect(all.disparateImpact).toBeCloseTo(0.25, 12);
    expect(all.equalizedOddsDifference).toBeCloseTo(1, 12);
  });

  it('one judged group: the summary is undefined, not zero', () => {
    const s = summaryMetrics(p, y, g, 0.5, 5);
    expect(s.demographicParityDifference).toBeNaN();
    expect(s.disparateImpact).toBeNaN();
  });

  it('quantile interpolates', () => {
    expect(quantile([1, 2, 3, 4, 5], 0.5)).toBe(3);
    expect(quantile([0, 10], 0.25)).toBe(2.5);
  });
});

/** n rows per group, the first `sel0` / `sel1` share of each group predicted positive, labels alternating. */
function twoGroups(n: number, sel0: number, sel1: number) {
  const p: number[] = [];
  const y: number[] = [];
  const g: number[] = [];
  for (const [grp, sel] of [[0, sel0], [1, sel1]] as const)
    for (let i = 0; i < n; i++) {
      p.push(i < sel * n ? 0.9 : 0.1);
      y.push(i % 2);
      g.push(grp);
    }
  return { p, y, g };
}

describe('bootstrap intervals', () => {
  it('cover the point, narrow with the sample, and repeat with the seed', () => {
    const d = twoGroups(1000, 0.4, 0.2);
    const a = bootstrapSummary(d.p, d.y, d.g, 0.5, 30, { samples: 300, random: seededRandom(7) });
    expect(a.disparateImpact.value).toBeCloseTo(0.5, 12);
    expect(a.disparateImpact.low).toBeLessThan(0.5);
    expect(a.disparateImpact.high).toBeGreaterThan(0.5);
    expect(a.demographicParityDifference.value).toBeCloseTo(0.2, 12);
    expect(a.disparateImpact.used).toBe(300);
    const small = twoGroups(50, 0.4, 0.2);
    const b = bootstrapSummary(small.p, small.y, small.g, 0.5, 30, { samples: 300, random: seededRandom(7) });
    expect(b.disparateImpact.high - b.disparateImpact.low).toBeGreaterThan(a.disparateImpact.high - a.disparateImpact.low);
    const again = bootstrapSummary(d.p, d.y, d.g, 0.5, 30, { samples: 300, random: seededRandom(7) });
    expect(again).toEqual(a);
  });
});

describe('bootstrap intervals of a fair model', () => {
  it('straddle parity instead of being pushed away from it (the gap between a fixed pair, signed)', () => {
    const d = twoGroups(1000, 0.3, 0.3);
    const a = bootstrapSummary(d.p, d.y, d.g, 0.5, 30, { samples: 300, random: seededRandom(3) });
    expect(a.disparateImpact.value).toBeCloseTo(1, 12);
    expect(a.disparateImpact.low).toBeLessThan(1);
    expect(a.disparateImpact.high).toBeGreaterThan(1);
    expect(a.demographicParityDifference.value).toBeCloseTo(0, 12);
    expect(a.demographicParityDifference.low).toBeLessThan(0);
    expect(a.demographicParityDifference.high).toBeGreaterThan(0);
    // So a four-fifths bound can be met by a fair model with enough rows.
    const audit = fairnessAudit(d.p, d.y, [{ name: 'g', values: d.g }], 0.5, { samples: 300 });
    expect(judge({ disparateImpact: { min: 0.8 } }, audit).pass).toBe(true);
  });
});

describe('intersections and the audit', () => {
  it('two attributes give their pairs as groups, labelled', () => {
    const x = intersect({ name: 'age', values: [0, 0, 1, 1], levels: ['30+', '<30'] }, { name: 'sex', values: [0, 1, 0, 1] });
    expect(x.name).toBe('age & sex');
    expect(x.levels).toEqual(['age=30+ & sex=0', 'age=30+ & sex=1', 'age=<30 & sex=0', 'age=<30 & sex=1']);
    expect(Array.from(x.values)).toEqual([0, 1, 2, 3]);
  });

  it('audits each attribute and the intersection', () => {
    const d = twoGroups(200, 0.4, 0.2);
    const second = d.g.map((_, i) => i % 2);
    const a = fairnessAudit(d.p, d.y, [{ name: 'age', values: d.g }, { name: 'region', values: second }], 0.5, { samples: 100, minGroupSize: 30 });
    expect(a.attributes.map((x) => x.attribute)).toEqual(['age', 'region', 'age & region']);
    expect(a.attributes[2]!.of).toEqual(['age', 'region']);
    expect(a.attributes[2]!.groups.map((x) => x.size)).toEqual([100, 100, 100, 100]);
    expect(a.attributes[0]!.summary.disparateImpact.value).toBeCloseTo(0.5, 12);
  });
});

describe('the policy', () => {
  const d = twoGroups(1000, 0.4, 0.2);
  const audit = fairnessAudit(d.p, d.y, [{ name: 'age', values: d.g, levels: ['30+', 'under 30'] }], 0.5, { samples: 200 });

  it('a disparate impact of 0.5 fails "min 0.8", naming metric, attribute, groups and interval', () => {
    const v = judge({ disparateImpact: { min: 0.8 } }, audit);
    expect(v.pass).toBe(false);
    expect(v.violations).toHaveLength(1);
    expect(v.violations[0]).toMatchObject({ metric: 'disparateImpact', attribute: 'age', groups: ['under 30', '30+'] });
    expect(v.violations[0]!.message).toMatch(/disparateImpact 0\.500 \[0\.\d+, 0\.\d+\] for age \(groups under 30 vs 30\+\)/);
  });

  it('judges the interval, not the point: a point inside the bound with an interval crossing it fails', () => {
    const s = audit.attributes[0]!.summary.demographicParityDifference;
    expect(judge({ demographicParityDifference: { max: s.high + 0.001 } }, audit).pass).toBe(true);
    expect(judge({ demographicParityDifference: { max: (s.value + s.high) / 2 } }, audit).pass).toBe(false);
  });

  it('no audit fails any bound; undeclared attributes are found', () => {
    expect(judge({ disparateImpact: { min: 0.8 } }, undefined).pass).toBe(false);
    expect(judge({}, undefined).pass).toBe(true);
    expect(undeclared({ attributes: ['age', 'gender'], disparateImpact: { min: 0.8 } }, declaredAttributes(audit))).toEqual(['gender']);
  });
});
