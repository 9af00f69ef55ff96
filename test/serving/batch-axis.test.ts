/**
 * Batch-axis planning (ml/serving/batch-axis.ts) without a cluster: which models batch and
 * along which axes, from the signature's dimension names and the deploy options, and the
 * concatenation and splitting along an axis that is not 0.
 */
import { describe, expect, it } from 'vitest';
import { batchingInfo, concatAlong, describeBatching, planBatching, splitAlong, type Signature } from '../../ml/index.ts';

type Dim = number | string;
const spec = (name: string, dims: Dim[]) => ({
  name,
  datatype: 'FP32' as const,
  shape: dims.map((d) => (typeof d === 'number' ? d : -1)),
  dimParams: dims.map((d) => (typeof d === 'string' ? d : '')),
});
const sig = (inputs: [string, Dim[]][], outputs: [string, Dim[]][]): Signature => ({ inputs: inputs.map(([n, d]) => spec(n, d)), outputs: outputs.map(([n, d]) => spec(n, d)) });

describe('planBatching', () => {
  it('batches along axis 0 when every input and output has the same symbolic first dimension', () => {
    const plan = planBatching(sig([['X', ['N', 32]], ['M', ['N', 'T']]], [['Y', ['N', 4]]]));
    expect(plan).toEqual({ batched: true, dim: 'N', inputAxes: [0, 0], outputAxes: [0] });
    expect(batchingInfo(sig([['X', ['N', 32]]], [['Y', ['N', 4]]]), plan, 16)).toMatchObject({ batched: true, maxBatchSize: 16, dim: 'N', axes: { X: 0, Y: 0 } });
  });

  it('serves unbatched, saying why, a scalar input, a fixed first dimension, or first dimensions with different names', () => {
    const scalar = planBatching(sig([['X', ['N', 4]], ['temperature', []]], [['Y', ['N', 4]]]));
    expect(scalar).toEqual({ batched: false, reason: 'input "temperature" is a scalar (shape [])' });
    const fixed = planBatching(sig([['x', ['batch', 3]], ['h', [2, 'batch', 3]]], [['y', ['batch', 3]]]));
    expect(fixed).toMatchObject({ batched: false, reason: expect.stringContaining('input "h" has a fixed first dimension ([2, batch, 3])') });
    const differ = planBatching(sig([['X', ['N', 8]]], [['Y', ['M', 8]]]));
    expect(differ).toMatchObject({ batched: false, reason: 'the first dimensions differ: input "X" has "N", output "Y" has "M"' });
    // -1 without a name: cannot be matched with the others.
    const unnamed = planBatching({ inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 8], dimParams: ['', ''] }], outputs: [spec('Y', ['N', 8])] });
    expect(unnamed).toMatchObject({ batched: false, reason: expect.stringContaining('no name for its first dimension') });
    expect(batchingInfo(sig([['t', []]], [['y', []]]), planBatching(sig([['t', []]], [['y', []]])), 32)).toEqual({ batched: false, maxBatchSize: 0, reason: 'input "t" is a scalar (shape [])' });
  });

  it('batching: false turns a batchable model unbatched', () => {
    expect(planBatching(sig([['X', ['N', 32]]], [['Y', ['N', 4]]]), { batching: false })).toMatchObject({ batched: false, reason: expect.stringContaining('batching: false') });
  });

  it('batchAxes: the state axis 1, the other tensors found by the same dimension name', () => {
    const s = sig([['x', ['batch', 3]], ['h', [2, 'batch', 3]]], [['y', ['batch', 3]], ['h_out', [2, 'batch', 3]]]);
    const plan = planBatching(s, { batchAxes: { h: 1 } });
    expect(plan).toEqual({ batched: true, dim: 'batch', inputAxes: [0, 1], outputAxes: [0, 1] });
    const info = batchingInfo(s, plan, 8);
    expect(describeBatching(info)).toBe('batched along "batch" up to 8 rows (batch axis h:1, h_out:1; others 0)');
  });

  it('batchAxes that cannot hold are refused, naming the tensor', () => {
    const s = sig([['x', ['batch', 3]], ['h', [2, 'batch', 3]]], [['y', ['batch', 3]], ['h_out', [2, 'batch', 3]]]);
    const usage = (o: Parameters<typeof planBatching>[1]) => {
      try {
        planBatching(s, o);
      } catch (err) {
        return err as { code: string; message: string };
      }
      throw new Error('no error');
    };
    expect(usage({ batchAxes: { nope: 1 } })).toMatchObject({ code: 'SHOAL_ERR_USAGE', message: expect.stringContaining('"nope", which is neither an input nor an output') });
    expect(usage({ batchAxes: { h: 3 } })).toMatchObject({ message: expect.stringContaining('batchAxes.h is 3, outside "h" [2, batch, 3]') });
    expect(usage({ batchAxes: { h: 0 } })).toMatchObject({ message: expect.stringContaining('not a named dynamic dimension') });
    expect(usage({ batchAxes: { h: 1, x: 1 } })).toMatchObject({ message: expect.stringContaining('not a named dynamic dimension') });
    const noBatch = sig([['x', ['batch', 3]], ['h', [2, 'batch', 3]]], [['y', [3]]]);
    expect(() => planBatching(noBatch, { batchAxes: { h: 1 } })).toThrow(/output "y" \[3\] has no "batch" dimension/);
  });
});

describe('concatAlong / splitAlong', () => {
  it('axis 0: rows of each request one after the other; split gives views back', () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = Float32Array.from([5, 6]);
    const { data, dims } = concatAlong([a, b], [[2, 2], [1, 2]], 0);
    expect(dims).toEqual([3, 2]);
    expect(Array.from(data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    const parts = splitAlong(data, dims, 0, [2, 1]);
    expect(parts.map((p) => [Array.from(p.data as Float32Array), p.dims])).toEqual([
      [[1, 2, 3, 4], [2, 2]],
      [[5, 6], [1, 2]],
    ]);
    expect((parts[0]!.data as Float32Array).buffer).toBe((data as Float32Array).buffer);
  });

  it('axis 1 of [layers, batch, hidden]: each layer holds every request, in order; a split is the inverse', () => {
    // Request a: batch 1, request b: batch 2; layers 2, hidden 2. Element value = layer·100 + request·10 + index.
    const a = Float32Array.from([0, 1, 100, 101]); // [2, 1, 2]
    const b = Float32Array.from([10, 11, 12, 13, 110, 111, 112, 113]); // [2, 2, 2]
    const { data, dims } = concatAlong([a, b], [[2, 1, 2], [2, 2, 2]], 1);
    expect(dims).toEqual([2, 3, 2]);
    expect(Array.from(data as Float32Array)).toEqual([0, 1, 10, 11, 12, 13, 100, 101, 110, 111, 112, 113]);
    const [pa, pb] = splitAlong(data, dims, 1, [1, 2]);
    expect(pa!.dims).toEqual([2, 1, 2]);
    expect(Array.from(pa!.data as Float32Array)).toEqual(Array.from(a));
    expect(pb!.dims).toEqual([2, 2, 2]);
    expect(Array.from(pb!.data as Float32Array)).toEqual(Array.from(b));
  });

  it('works on strings and 64-bit integers, and refuses an output whose batch axis does not add up', () => {
    const s = concatAlong([['a', 'b'], ['c']], [[2], [1]], 0);
    expect(s.data).toEqual(['a', 'b', 'c']);
    expect(splitAlong(s.data, s.dims, 0, [2, 1]).map((p) => p.data)).toEqual([['a', 'b'], ['c']]);
    const i = concatAlong([BigInt64Array.from([1n, 2n]), BigInt64Array.from([3n, 4n])], [[1, 2], [1, 2]], 1);
    expect(i.dims).toEqual([1, 4]);
    expect(Array.from(i.data as BigInt64Array)).toEqual([1n, 2n, 3n, 4n]);
    expect(() => splitAlong(Float32Array.from([1, 2, 3]), [3], 0, [1, 1])).toThrow(/has 3 rows, the batch had 2/);
  });
});
