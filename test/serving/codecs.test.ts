/**
 * The serving codecs in process: every protocol goes through the one `decodeInputs`, so the same
 * tensor arrives the same whichever way it came, and is refused with the same words.
 */
import { describe, expect, it } from 'vitest';
import { decodeOip, decodePredict, decodeWire, type Decoded } from '../../ml/serving/codecs/index.ts';
import { toBytes, type Signature } from '../../ml/index.ts';

const SIG: Signature = { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 3] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 1] }] };
const ROWS = [
  [0.5, -1, 2],
  [3, 4.25, -0.125],
];
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const oip = (input: Record<string, unknown>, extra: Record<string, unknown> = {}) => json({ inputs: [{ name: 'X', shape: [2, 3], datatype: 'FP32', ...input }], ...extra });
const error = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error('did not throw');
};

describe('serving codecs', () => {
  it('decode the same tensor from OIP JSON (nested, flat), OIP binary data, /v1 rows and the NATS binary form', () => {
    const x = Float32Array.from(ROWS.flat());
    const head = json({ id: 'r1', inputs: [{ name: 'X', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: x.byteLength } }] });
    const ways: Decoded[] = [
      decodeOip(SIG, 'm v1', oip({ data: ROWS }, { id: 'r1' })),
      decodeOip(SIG, 'm v1', oip({ data: ROWS.flat() }, { id: 'r1' })),
      decodeOip(SIG, 'm v1', Buffer.concat([head, Buffer.from(toBytes(x))]), head.length),
      decodePredict(SIG, 'm v1', json({ instances: ROWS, id: 'r1' })),
      decodePredict(SIG, 'm v1', json({ instances: ROWS.map((r) => ({ X: r })), id: 'r1' })),
      { ...decodeWire(SIG, 'm v1', [{ name: 'X', datatype: 'FP32', shape: [2, 3], data: toBytes(x) }], undefined), id: 'r1' },
    ];
    for (const d of ways) {
      expect(d.inputs).toHaveLength(1);
      expect(d.inputs[0]).toBeInstanceOf(Float32Array);
      expect(Array.from(d.inputs[0] as Float32Array)).toEqual(Array.from(x));
      expect(d).toMatchObject({ shapes: [[2, 3]], id: 'r1' });
    }
  });

  it('refuse a request that does not fit the signature with the same code and message, whichever protocol', () => {
    const x = toBytes(Float32Array.from(ROWS.flat()));
    const cases: [() => unknown, () => unknown, string][] = [
      [() => decodeOip(SIG, 'm v1', oip({ name: 'Z', data: ROWS })), () => decodeWire(SIG, 'm v1', [{ name: 'Z', datatype: 'FP32', shape: [2, 3], data: x }], undefined), 'model m v1 has no input "Z" (inputs: X)'],
      [() => decodeOip(SIG, 'm v1', oip({ datatype: 'FP64', data: ROWS })), () => decodeWire(SIG, 'm v1', [{ name: 'X', datatype: 'FP64', shape: [1, 3], data: x }], undefined), 'input "X": datatype FP64 where the model takes FP32'],
      [() => decodeOip(SIG, 'm v1', oip({ shape: [3, 2], data: ROWS.flat() })), () => decodeWire(SIG, 'm v1', [{ name: 'X', datatype: 'FP32', shape: [3, 2], data: x }], undefined), 'input "X": dimension 1 is 2, the model takes [-1, 3]'],
      [() => decodeOip(SIG, 'm v1', oip({ data: ROWS }, { outputs: [{ name: 'nope' }] })), () => decodeWire(SIG, 'm v1', [{ name: 'X', datatype: 'FP32', shape: [2, 3], data: x }], ['nope']), 'model m v1 has no output "nope" (outputs: Y)'],
    ];
    for (const [viaJson, viaWire, message] of cases) {
      expect(error(viaJson)).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message });
      expect(error(viaWire)).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message });
    }
    expect(error(() => decodePredict(SIG, 'm v1', json({ instances: [[1, 2]] })))).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message: 'input "X": dimension 1 is 2, the model takes [-1, 3]' });
    expect(error(() => decodeOip(SIG, 'm v1', oip({ data: [[1, 2, 'x'], [4, 5, 6]] })))).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message: 'input "X" (FP32): element 2 must be a number, got string' });
    expect(error(() => decodePredict(SIG, 'm v1', json({ instances: [[1, 2, 'x'], [4, 5, 6]] })))).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message: 'input "X" (FP32): element 2 must be a number, got string' });
  });
});
