/**
 * The special functions behind the p-values, against published table values. Sources:
 * chi-squared and Student's t critical values from any statistics table (e.g. NIST/SEMATECH
 * e-Handbook of Statistical Methods, §1.3.6.7.3 and §1.3.6.7.2); the Kolmogorov distribution's
 * critical values 1.2238 / 1.3581 / 1.6276 for α = 0.10 / 0.05 / 0.01 (Smirnov 1948's table, as
 * reproduced in Massey 1951); Φ(1.959964) = 0.975; P(1, x) = 1 − e^−x and P(½, x) = erf(√x)
 * from the definition of the incomplete gamma.
 */
import { describe, expect, it } from 'vitest';
import { betaI, chiSquaredSf, erfc, gammaP, gammaQ, kolmogorovSf, lnGamma, normalCdf, normalQuantile, studentTSf, studentTQuantile } from '../../ml/monitoring/stats/index.ts';

describe('special functions', () => {
  it('ln Γ matches factorials and Γ(½) = √π', () => {
    expect(lnGamma(1)).toBeCloseTo(0, 12);
    expect(lnGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(lnGamma(11)).toBeCloseTo(Math.log(3628800), 10);
    expect(lnGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
  });

  it('the regularized incomplete gamma matches its closed forms', () => {
    for (const x of [0.01, 0.5, 1, 2.5, 7, 30]) {
      expect(gammaP(1, x)).toBeCloseTo(1 - Math.exp(-x), 12);
      expect(gammaQ(1, x)).toBeCloseTo(Math.exp(-x), 12);
      expect(gammaP(3, x) + gammaQ(3, x)).toBeCloseTo(1, 12);
    }
    // P(2, x) = 1 − e^−x (1 + x)
    expect(gammaP(2, 3)).toBeCloseTo(1 - Math.exp(-3) * 4, 12);
    expect(erfc(1)).toBeCloseTo(0.157299207050285, 12); // erfc(1), Abramowitz & Stegun table 7.1
    expect(() => gammaP(0, 1)).toThrow(/a must be > 0/);
  });

  it('the chi-squared survival function gives the table critical values α = 0.05 and 0.01', () => {
    // (df, χ²_{0.95}, χ²_{0.99})
    const table: [number, number, number][] = [
      [1, 3.841, 6.635],
      [2, 5.991, 9.21],
      [5, 11.07, 15.086],
      [10, 18.307, 23.209],
      [30, 43.773, 50.892],
    ];
    for (const [df, c95, c99] of table) {
      expect(chiSquaredSf(c95, df)).toBeCloseTo(0.05, 3);
      expect(chiSquaredSf(c99, df)).toBeCloseTo(0.01, 3);
    }
    expect(chiSquaredSf(0, 4)).toBe(1);
    // df = 2 is exponential: P(X² ≥ x) = e^{−x/2}
    expect(chiSquaredSf(7.3, 2)).toBeCloseTo(Math.exp(-3.65), 12);
  });

  it('the Kolmogorov survival function gives Smirnov\'s critical values', () => {
    expect(kolmogorovSf(1.2238)).toBeCloseTo(0.1, 3);
    expect(kolmogorovSf(1.3581)).toBeCloseTo(0.05, 3);
    expect(kolmogorovSf(1.6276)).toBeCloseTo(0.01, 3);
    expect(kolmogorovSf(0)).toBe(1);
    expect(kolmogorovSf(3)).toBeLessThan(1e-7);
  });

  it('normal CDF and quantile invert each other at the usual points', () => {
    expect(normalCdf(1.959963984540054)).toBeCloseTo(0.975, 12);
    expect(normalCdf(0)).toBe(0.5);
    expect(normalCdf(-1)).toBeCloseTo(0.158655253931457, 12);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 9);
    expect(normalQuantile(0.995)).toBeCloseTo(2.575829303548901, 9);
    expect(normalQuantile(0.05)).toBeCloseTo(-1.644853626951472, 9);
  });

  it('Student\'s t gives the table two-sided 95 % critical values', () => {
    const table: [number, number][] = [
      [1, 12.706],
      [5, 2.571],
      [10, 2.228],
      [30, 2.042],
    ];
    for (const [df, t] of table) {
      expect(studentTSf(t, df)).toBeCloseTo(0.025, 4);
      expect(studentTQuantile(0.975, df)).toBeCloseTo(t, 2);
    }
    // df = 1 is Cauchy: P(T ≥ 1) = ¼
    expect(studentTSf(1, 1)).toBeCloseTo(0.25, 12);
    expect(studentTSf(-1, 1)).toBeCloseTo(0.75, 12);
    // I_x(1, 1) = x; I_x(a, 1) = x^a
    expect(betaI(0.3, 1, 1)).toBeCloseTo(0.3, 12);
    expect(betaI(0.6, 3, 1)).toBeCloseTo(0.216, 12);
  });
});
