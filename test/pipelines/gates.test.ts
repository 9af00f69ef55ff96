/** The blessing gates: AUC, DeLong's paired comparison, ECE and the verdict, against values worked by hand. */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../cluster/index.ts';
import { auc, compareAuc, ece, judgeGates } from '../../ml/pipelines/index.ts';

/** DeLong's variance of AUC(a) − AUC(b) from the full ψ matrix (O(n·m)), as the paper writes it. */
function naiveDelong(a: number[], b: number[], y: number[]) {
  const psi = (x: number, z: number) => (x > z ? 1 : x === z ? 0.5 : 0);
  const P = y.flatMap((v, i) => (v ? [i] : []));
  const N = y.flatMap((v, i) => (v ? [] : [i]));
  const comp = (s: number[]) => ({
    v10: P.map((i) => N.reduce((t, j) => t + psi(s[i]!, s[j]!), 0) / N.length),
    v01: N.map((j) => P.reduce((t, i) => t + psi(s[i]!, s[j]!), 0) / P.length),
  });
  const ca = comp(a);
  const cb = comp(b);
  const cov = (u: number[], v: number[]) => {
    const mu = u.reduce((s, x) => s + x, 0) / u.length;
    const mv = v.reduce((s, x) => s + x, 0) / v.length;
    return u.reduce((s, x, k) => s + (x - mu) * (v[k]! - mv), 0) / (u.length - 1);
  };
  const aucA = ca.v10.reduce((s, x) => s + x, 0) / P.length;
  const aucB = cb.v10.reduce((s, x) => s + x, 0) / P.length;
  const v = (cov(ca.v10, ca.v10) + cov(cb.v10, cb.v10) - 2 * cov(ca.v10, cb.v10)) / P.length + (cov(ca.v01, ca.v01) + cov(cb.v01, cb.v01) - 2 * cov(ca.v01, cb.v01)) / N.length;
  return { delta: aucA - aucB, se: Math.sqrt(v) };
}

describe('pipeline gates', () => {
  it('AUC of a worked example is 0.75 (ties count half)', () => {
    expect(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(0.75, 12);
    expect(auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1])).toBeCloseTo(0.5, 12);
  });

  it("DeLong: the worked example against a constant scorer has Δ 0.25 and se √0.125", () => {
    // Positives' components [0.5, 1], negatives' [1, 0.5]: variances 0.125 each, over 2 rows each.
    const c = compareAuc([0.1, 0.4, 0.35, 0.8], [0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1], 0.95);
    expect(c.delta).toBeCloseTo(0.25, 12);
    expect(c.se).toBeCloseTo(Math.sqrt(0.125), 12);
    expect(c.low).toBeCloseTo(0.25 - 1.6448536269514722 * Math.sqrt(0.125), 8);
  });

  it('DeLong agrees with the O(n·m) definition on random paired scores with ties', () => {
    const r = seededRandom(7);
    const n = 300;
    const y = Array.from({ length: n }, () => (r() < 0.3 ? 1 : 0));
    const a = y.map((v) => Math.round((v * 0.8 + r()) * 20) / 20);
    const b = y.map((v, i) => Math.round((v * 0.5 + 0.5 * a[i]! + r() * 0.7) * 20) / 20);
    const got = compareAuc(a, b, y);
    const want = naiveDelong(a, b, y);
    expect(got.delta).toBeCloseTo(want.delta, 12);
    expect(got.se).toBeCloseTo(want.se, 12);
    // The same scorer twice: no difference, no variance.
    expect(compareAuc(a, a, y).se).toBe(0);
  });

  it('ECE of a worked example is 0.1', () => {
    expect(ece([0.05, 0.15, 0.95, 0.85], [0, 0, 1, 1])).toBeCloseTo(0.1, 12);
  });

  it('a candidate far worse than production fails the AUC gate with the numbers in the report; one as good passes', () => {
    const r = seededRandom(3);
    const y = Array.from({ length: 400 }, () => (r() < 0.5 ? 1 : 0));
    const good = y.map((v) => 0.5 * v + 0.5 * r());
    const noise = y.map(() => r());
    const bad = judgeGates({ maxAucDrop: 0.02 }, { y, candidate: noise, production: good });
    expect(bad.pass).toBe(false);
    expect(bad.checks.find((c) => c.gate === 'auc')).toMatchObject({ pass: false });
    expect(bad.checks[0]!.message).toMatch(/lower bound/);
    expect(judgeGates({ maxAucDrop: 0.02 }, { y, candidate: good, production: good }).pass).toBe(true);
    const calib = judgeGates({ maxAucDrop: 0.02, maxEce: 0.01 }, { y, candidate: good });
    expect(calib.checks.find((c) => c.gate === 'ece')).toMatchObject({ pass: false });
  });

  it('a fairness policy without an audit fails, naming the metric', () => {
    const rep = judgeGates({ maxAucDrop: 0.02, fairness: { demographicParityDifference: { max: 0.1 } } }, { y: [0, 1], candidate: [0.2, 0.8] });
    expect(rep.pass).toBe(false);
    expect(rep.checks.find((c) => c.gate === 'fairness')?.message).toMatch(/demographicParityDifference/);
  });
});
