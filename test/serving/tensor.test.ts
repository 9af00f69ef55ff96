/** Tensor conversions at the serving edge: FP16 bits, and JSON → typed arrays with their 400s. */
import { describe, expect, it } from 'vitest';
import { fromHalf, fromJson, toHalf, toJson, type Datatype } from '../../ml/index.ts';

describe('FP16', () => {
  it('round-trips every finite half exactly (bits → number → bits)', () => {
    let checked = 0;
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00) continue; // Infinity / NaN
      expect(toHalf(fromHalf(h))).toBe(h);
      checked++;
    }
    expect(checked).toBe(63488);
  });

  it('rounds to nearest even and knows its limits', () => {
    expect([1, -2, 65504, 2 ** -24, 2 ** -14].map(toHalf)).toEqual([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400]);
    expect(toHalf(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and the next half: to even (1)
    expect(toHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // halfway, odd below: up to even
    expect(toHalf(65520)).toBe(0x7c00); // rounds past the largest half: Infinity
    expect(toHalf(2 ** -26)).toBe(0); // below half the smallest subnormal
    expect(fromHalf(0x7c00)).toBe(Infinity);
    expect(fromHalf(0xfc00)).toBe(-Infinity);
  });

  it('fromJson refuses what FP16 cannot hold; toJson gives numbers back', () => {
    const a = fromJson('h', 'FP16', [3], [0.5, -1024, 65504]);
    expect(a).toBeInstanceOf(Uint16Array);
    expect(toJson('FP16', a)).toEqual([0.5, -1024, 65504]);
    expect(() => fromJson('h', 'FP16', [1], [1e6])).toThrow(/input "h" \(FP16\): element 0 1000000 overflows FP16/);
    expect(() => fromJson('h', 'FP16', [1], [Number.NaN])).toThrow(/NaN and ±Infinity are refused/);
  });
});

describe('fromJson', () => {
  // FP32, FP64 and INT32 of rank 1 or 2 take the fast branch; the same values as rank 3 go the general way.
  const ways = (dt: Datatype, rows: unknown[][]) => [
    () => fromJson('x', dt, [2, 3], rows),
    () => fromJson('x', dt, [6], rows.flat()),
    () => fromJson('x', dt, [2, 3, 1], rows.map((r) => r.map((v) => [v]))),
  ];
  const outcome = (f: () => unknown) => {
    try {
      const a = f() as Float32Array;
      return { type: a.constructor.name, values: Array.from(a) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };

  it('gives the same typed array on the fast branch as the general way', () => {
    const cases: [Datatype, unknown[][], string][] = [
      ['FP32', [[0.1, -2, 3.4028234663852886e38], [0, -0, 1e-40]], 'Float32Array'],
      ['FP64', [[0.1, -2, 1e300], [0, -0, 5e-324]], 'Float64Array'],
      ['INT32', [[-2147483648, 2147483647, 0], [1, -1, -0]], 'Int32Array'],
    ];
    for (const [dt, rows, type] of cases) {
      const [fast, flat, general] = ways(dt, rows).map(outcome);
      expect(general).toMatchObject({ type });
      expect(fast).toEqual(general);
      expect(flat).toEqual(general);
    }
  });

  it('names the same element and reason on the fast branch as the general way', () => {
    const cases: [Datatype, unknown[][], string][] = [
      ['FP32', [[1, 2, 3], [4, 3.5e38, 6]], 'input "x" (FP32): element 4 3.5e+38 overflows FP32'],
      ['FP32', [[1, 2, 3], [4, 5, 'x']], 'input "x" (FP32): element 5 must be a number, got string'],
      ['FP64', [[1, null, 3], [4, 5, 6]], 'input "x" (FP64): element 1 must be a number, got null'],
      ['INT32', [[1, 2, 2.5], [4, 5, 6]], 'input "x" (INT32): element 2 2.5 is not an integer'],
      ['INT32', [[1, 2, 3], [2147483648, 5, 6]], "input \"x\" (INT32): element 3 2147483648 is outside INT32's range -2147483648..2147483647"],
      ['INT32', [[1, 2, 3], [4, 5, true]], 'input "x" (INT32): element 5 must be a number, got boolean'],
    ];
    for (const [dt, rows, error] of cases) for (const way of ways(dt, rows)) expect(outcome(way)).toEqual({ error });
  });
});
