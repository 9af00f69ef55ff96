/** Tensor conversions at the serving edge: FP16 bits, and JSON → typed arrays with their 400s. */
import { describe, expect, it } from 'vitest';
import { fromHalf, fromJson, toHalf, toJson } from '../../ml/index.ts';

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
