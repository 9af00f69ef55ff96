/**
 * The shadow comparison's arithmetic against known values: which rows agree, how scores are
 * binned, the PSI of two histograms, the judgment's thresholds and its refusal on too few rows,
 * and that tallies from several gateways add up to what one would have counted.
 */
import { describe, expect, it } from 'vitest';
import { SHADOW_BINS, ShadowTally, compareInto, histogramPsi, judgeShadow, responseRows, rowsAgree, type ShadowCounts } from '../../ml/index.ts';

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const hist = (cells: Record<number, number>) => Array.from({ length: SHADOW_BINS }, (_, i) => cells[i] ?? 0);
const policy = { minCompared: 200, minAgreement: 0.9, maxDistance: 0.1 };

describe('shadow comparison', () => {
  it('reads the rows of an OIP v2 body (flat or nested data) and of a /v1 body; refuses what it cannot compare', () => {
    expect(responseRows(enc({ model_name: 'm', model_version: '1', outputs: [{ name: 'Y', datatype: 'FP32', shape: [3, 1], data: [0.1, 0.7, 0.4] }] }))).toEqual([[0.1], [0.7], [0.4]]);
    expect(responseRows(enc({ outputs: [{ name: 'Y', shape: [2, 3], data: [[1, 2, 3], [6, 5, 4]] }] }))).toEqual([[1, 2, 3], [6, 5, 4]]);
    expect(responseRows(enc({ predictions: [0.2, [0.3, 0.7]] }))).toEqual([[0.2], [0.3, 0.7]]);
    expect(responseRows(enc({ outputs: [{ name: 'S', shape: [1], data: ['a'] }] }))).toBeUndefined();
    expect(responseRows(enc({ outputs: [{ name: 'Y', shape: [2, 2], data: [1, 2, 3] }] }))).toBeUndefined();
    expect(responseRows(new TextEncoder().encode('not json'))).toBeUndefined();
  });

  it('rows agree on the class (0.5 for a probability, argmax for several scores) or within 1% for a regression', () => {
    expect(rowsAgree([0.51], [0.99])).toBe(true);
    expect(rowsAgree([0.49], [0.5])).toBe(false);
    expect(rowsAgree([0.1, 0.6, 0.3], [0.3, 0.4, 0.3])).toBe(true);
    expect(rowsAgree([0.1, 0.6, 0.3], [0.5, 0.2, 0.3])).toBe(false);
    expect(rowsAgree([100], [100.9])).toBe(true);
    expect(rowsAgree([100], [102])).toBe(false);
    expect(rowsAgree([0.2], [0.2, 0.8])).toBe(false);
  });

  it('counts every row and bins both scores; answers of another shape count one error', () => {
    const t = new ShadowTally();
    const c = t.of('m', 2, 1, 1000);
    compareInto(c, [[0.02], [0.97], [0.6]], [[0.04], [0.3], [0.61]]);
    expect(c).toMatchObject({ compared: 3, agreed: 2, errors: 0 });
    expect(c.stableHist).toEqual(hist({ 0: 1, 19: 1, 12: 1 }));
    expect(c.shadowHist).toEqual(hist({ 0: 1, 6: 1, 12: 1 }));
    compareInto(c, [[0.1], [0.2]], [[0.1]]);
    expect(c).toMatchObject({ compared: 3, errors: 1 });
  });

  it('PSI of two histograms: a known value, 0 for the same distribution, NaN with an empty side', () => {
    // (0.25 − 0.5)·ln(0.25/0.5) + (0.75 − 0.5)·ln(0.75/0.5)
    expect(histogramPsi(hist({ 0: 50, 1: 50 }), hist({ 0: 25, 1: 75 }))).toBeCloseTo(0.25 * Math.log(2) + 0.25 * Math.log(1.5), 10);
    expect(histogramPsi(hist({ 3: 10, 7: 30 }), hist({ 3: 100, 7: 300 }))).toBeCloseTo(0, 12);
    expect(histogramPsi(hist({}), hist({ 1: 1 }))).toBeNaN();
  });

  it('judges agreement and distance against the policy, and refuses to judge below minCompared', () => {
    const same = { stableHist: hist({ 0: 150, 10: 50 }), shadowHist: hist({ 0: 150, 10: 50 }) };
    const few = judgeShadow(policy, { compared: 199, agreed: 199, errors: 0, ...same });
    expect(few).toMatchObject({ compared: 199, agreement: 1, reason: expect.stringMatching(/199 rows compared, fewer than minCompared 200/) });
    expect(few.pass).toBeUndefined();
    expect(judgeShadow(policy, { compared: 200, agreed: 180, errors: 0, ...same })).toMatchObject({ pass: true, agreement: 0.9, distance: 0 });
    const low = judgeShadow(policy, { compared: 200, agreed: 179, errors: 0, ...same });
    expect(low).toMatchObject({ pass: false, agreement: 0.895 });
    expect(low.reason).toMatch(/agreement 89\.5% below 90\.0%/);
    const moved = judgeShadow(policy, { compared: 200, agreed: 200, errors: 0, stableHist: hist({ 0: 100, 1: 100 }), shadowHist: hist({ 0: 50, 1: 150 }) });
    expect(moved.pass).toBe(false);
    expect(moved.distance).toBeCloseTo(0.2747, 4);
    expect(moved.reason).toMatch(/PSI 0\.275 above 0\.1/);
    const erring = judgeShadow(policy, { compared: 200, agreed: 200, errors: 20, ...same });
    expect(erring).toMatchObject({ pass: false, errors: 20 });
    expect(erring.reason).toMatch(/shadow errors 20/);
  });

  it('tallies from two gateways add up to what one gateway would have counted', () => {
    const rows: [number[], number[]][] = Array.from({ length: 40 }, (_, i) => [[i / 40], [((i * 7) % 40) / 40]]);
    const one = new ShadowTally();
    for (const [a, b] of rows) compareInto(one.of('m', 2, 1, 5), [a], [b]);
    const [g1, g2, sum] = [new ShadowTally(), new ShadowTally(), new ShadowTally()];
    rows.forEach(([a, b], i) => compareInto((i % 2 ? g1 : g2).of('m', 2, 1, 5), [a], [b]));
    for (const c of [...g1.take(), ...g2.take()]) sum.add(c);
    expect(sum.get('m', 2, 5)).toEqual(one.get('m', 2, 5));
    expect(g1.take()).toEqual([]);
    // Another shadow (a later `since`) is counted apart, and forgetting keeps only the current one.
    sum.add({ ...(one.get('m', 2, 5) as ShadowCounts), since: 6 });
    sum.forget('m', 6);
    expect(sum.get('m', 2, 5)).toBeUndefined();
    expect(sum.get('m', 2, 6)?.compared).toBe(40);
  });
});
