/**
 * BYTES (string) tensors in process: JSON and the length-prefixed binary form (the OIP binary
 * tensor data extension, the NATS binary form) decode to the same `string[]` and encode back;
 * lying lengths, trailing bytes, invalid UTF-8, numbers where strings go and strings where
 * numbers go are refused naming the input; batches concatenate and split strings by rows.
 */
import { describe, expect, it } from 'vitest';
import { decodeOip, decodePredict, decodeWire, encodeOip, encodePredict, encodeWire, type Decoded, type Outputs } from '../../ml/serving/codecs/index.ts';
import { concatAlong, decodeStrings, encodeStrings, fromBytes, fromJson, splitAlong, toBytes, toJson, type Signature } from '../../ml/index.ts';

const SIG: Signature = {
  inputs: [{ name: 'S', datatype: 'BYTES', shape: [-1, 2] }],
  outputs: [
    { name: 'T', datatype: 'BYTES', shape: [-1, 2] },
    { name: 'id', datatype: 'INT64', shape: [-1, 2] },
  ],
};
const SCALAR: Signature = { inputs: [{ name: 's', datatype: 'BYTES', shape: [] }], outputs: [{ name: 't', datatype: 'BYTES', shape: [] }] };
const NUM: Signature = { inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 2] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 2] }] };

/** Multi-byte UTF-8 (2, 3 and 4 bytes a character), an empty string, ASCII. */
const ROWS = [
  ['crème brûlée', ''],
  ['猫', 'a🐟b'],
  ['plain', ' spaced  '],
];
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const error = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error('did not throw');
};
/** Length-prefixed elements written by hand (not with the code under test). */
function prefixed(...elements: (string | Uint8Array)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8') : Buffer.from(e)));
  return Buffer.concat(parts.flatMap((p) => [Buffer.from(Uint32Array.of(p.length).buffer), p]));
}
/** A binary-extension body: the JSON header, then `data`. */
function binaryBody(header: unknown, data: Uint8Array): { body: Buffer; headerLength: number } {
  const head = json(header);
  return { body: Buffer.concat([head, data]), headerLength: head.length };
}

describe('BYTES tensors: codecs', () => {
  it('the length-prefixed form is 4 little-endian length bytes then the UTF-8, element after element', () => {
    expect(Array.from(encodeStrings(['é', '', 'ab']))).toEqual([2, 0, 0, 0, 0xc3, 0xa9, 0, 0, 0, 0, 2, 0, 0, 0, 0x61, 0x62]);
    expect(Buffer.from(encodeStrings(ROWS.flat()))).toEqual(Buffer.from(prefixed(...ROWS.flat())));
    expect(decodeStrings('S', prefixed(...ROWS.flat()), 6)).toEqual(ROWS.flat());
    expect(decodeStrings('S', new Uint8Array(0), 0)).toEqual([]);
    // A length that does not start at an aligned offset is read all the same.
    const odd = Buffer.concat([Buffer.from([9]), prefixed('x', 'yz')]).subarray(1);
    expect(decodeStrings('S', odd, 2)).toEqual(['x', 'yz']);
  });

  it('decode the same strings from OIP JSON (nested, flat, b64), the binary extension, /v1 rows and the NATS binary form', () => {
    const flat = ROWS.flat();
    const data = prefixed(...flat);
    const bin = binaryBody({ id: 'r1', inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', parameters: { binary_data_size: data.length } }] }, data);
    const b64 = flat.map((s) => ({ b64: Buffer.from(s, 'utf8').toString('base64') }));
    const oip = (d: unknown) => json({ id: 'r1', inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', data: d }] });
    const ways: Decoded[] = [
      decodeOip(SIG, 'm v1', oip(ROWS)),
      decodeOip(SIG, 'm v1', oip(flat)),
      decodeOip(SIG, 'm v1', oip(b64)),
      decodeOip(SIG, 'm v1', bin.body, bin.headerLength),
      decodePredict(SIG, 'm v1', json({ instances: ROWS, id: 'r1' })),
      { ...decodeWire(SIG, 'm v1', [{ name: 'S', datatype: 'BYTES', shape: [3, 2], data }], undefined), id: 'r1' },
    ];
    for (const d of ways) expect(d).toMatchObject({ inputs: [flat], shapes: [[3, 2]], id: 'r1' });
  });

  it('encode BYTES outputs as JSON strings, as length-prefixed binary data and in the NATS binary form, round trip', () => {
    const flat = ROWS.flat();
    const outs: Outputs = new Map([
      ['T', { data: flat, dims: [3, 2] }],
      ['id', { data: BigInt64Array.of(1n, 2n, 3n, 4n, 5n, 6n), dims: [3, 2] }],
    ]);
    const asJson = decodeOip(SIG, 'm v1', json({ inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', data: ROWS }] }));
    const text = JSON.parse(encodeOip(SIG, 'm', '1', asJson, outs).body.toString('utf8')) as { outputs: unknown[] };
    expect(text.outputs).toEqual([
      { name: 'T', datatype: 'BYTES', shape: [3, 2], data: flat },
      { name: 'id', datatype: 'INT64', shape: [3, 2], data: [1, 2, 3, 4, 5, 6] },
    ]);
    // Binary outputs: T's size is its encoded size, and its bytes follow the header.
    const asBin = decodeOip(SIG, 'm v1', json({ parameters: { binary_data_output: true }, inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', data: ROWS }], outputs: [{ name: 'T' }] }));
    const r = encodeOip(SIG, 'm', '1', asBin, outs);
    const head = JSON.parse(r.body.subarray(0, r.headerLength).toString('utf8')) as { outputs: { parameters: { binary_data_size: number } }[] };
    const want = prefixed(...flat);
    expect(head.outputs).toEqual([{ name: 'T', datatype: 'BYTES', shape: [3, 2], parameters: { binary_data_size: want.length } }]);
    expect(Buffer.from(r.body.subarray(r.headerLength))).toEqual(Buffer.from(want));
    // …which decodes back as an input of the same model.
    const again = binaryBody({ inputs: [{ name: 'S', shape: [3, 2], datatype: 'BYTES', parameters: { binary_data_size: want.length } }] }, r.body.subarray(r.headerLength));
    expect(decodeOip(SIG, 'm v1', again.body, again.headerLength).inputs).toEqual([flat]);
    // NATS binary form.
    const wire = encodeWire(SIG, outs, ['T']);
    expect(wire).toHaveLength(1);
    expect(Buffer.from(wire[0]!.data)).toEqual(Buffer.from(want));
    expect(decodeWire(SIG, 'm v1', [{ name: 'S', datatype: 'BYTES', shape: [3, 2], data: wire[0]!.data }], undefined).inputs).toEqual([flat]);
    // /v1: a row of strings per instance.
    const v1 = JSON.parse(encodePredict(SIG, 'm', '1', { ...asJson, outputs: ['T'] }, outs).body.toString('utf8')) as { predictions: unknown };
    expect(v1.predictions).toEqual(ROWS);
  });

  it('rank-0 and 2-D string tensors, and empty strings', () => {
    expect(decodeOip(SCALAR, 'm v1', json({ inputs: [{ name: 's', shape: [], datatype: 'BYTES', data: ['héllo'] }] })).inputs).toEqual([['héllo']]);
    expect(decodeWire(SCALAR, 'm v1', [{ name: 's', datatype: 'BYTES', shape: [], data: prefixed('') }], undefined).inputs).toEqual([['']]);
    const out = encodeOip(SCALAR, 'm', '1', decodeOip(SCALAR, 'm v1', json({ inputs: [{ name: 's', shape: [], datatype: 'BYTES', data: [''] }] })), new Map([['t', { data: [''], dims: [] }]]));
    expect(JSON.parse(out.body.toString('utf8'))).toMatchObject({ outputs: [{ name: 't', datatype: 'BYTES', shape: [], data: [''] }] });
    expect(fromJson('S', 'BYTES', [2, 3], [['', '', ''], ['a', '', 'b']])).toEqual(['', '', '', 'a', '', 'b']);
    expect(fromBytes('S', 'BYTES', prefixed('', '', ''), 3)).toEqual(['', '', '']);
    expect(toJson('BYTES', ['x', ''])).toEqual(['x', '']);
    expect(toBytes([])).toHaveLength(0);
  });

  it('refuses a length that lies, bytes left over, the wrong count and invalid UTF-8, naming the input and the element', () => {
    const wire = (data: Uint8Array, shape = [1, 2]) => () => decodeWire(SIG, 'm v1', [{ name: 'S', datatype: 'BYTES', shape, data }], undefined);
    const oipBin = (data: Uint8Array, shape = [1, 2]) => () => {
      const b = binaryBody({ inputs: [{ name: 'S', shape, datatype: 'BYTES', parameters: { binary_data_size: data.length } }] }, data);
      return decodeOip(SIG, 'm v1', b.body, b.headerLength);
    };
    const good = prefixed('ab', 'cde');
    const longer = Buffer.from(good);
    longer.writeUInt32LE(100, 6); // element 1 says 100 bytes; 3 are left
    const shorter = Buffer.from(good);
    shorter.writeUInt32LE(1, 6); // element 1 says 1 byte: 2 bytes are left over
    const cases: [Uint8Array, number[], string][] = [
      [longer, [1, 2], 'input "S" (BYTES): element 1: its length says 100 bytes but only 3 are left'],
      [shorter, [1, 2], 'input "S" (BYTES): 2 bytes left after the 2 elements the shape holds (each element is a 4-byte little-endian length, then its bytes)'],
      [good.subarray(0, 8), [1, 2], 'input "S" (BYTES): element 1: 2 bytes where its 4-byte length should be'],
      [prefixed('ab'), [1, 2], 'input "S" (BYTES): the data holds 1 element, the shape needs 2'],
      [prefixed('a', 'b', 'c', 'd'), [1, 2], 'input "S" (BYTES): 10 bytes left after the 2 elements the shape holds (each element is a 4-byte little-endian length, then its bytes)'],
      [prefixed('ok', Uint8Array.of(0xc3, 0x28)), [1, 2], 'input "S" (BYTES): element 1 is not valid UTF-8 (BYTES elements are text here: ONNX string tensors)'],
      [prefixed(Uint8Array.of(0xff), 'x'), [1, 2], 'input "S" (BYTES): element 0 is not valid UTF-8 (BYTES elements are text here: ONNX string tensors)'],
      // onnxruntime-node would cut "dog\0" to "dog": refused rather than changed.
      [prefixed('ok', 'dog\0'), [1, 2], 'input "S" (BYTES): element 1 holds a NUL character, at which onnxruntime cuts a string short'],
    ];
    for (const [data, shape, message] of cases) {
      expect(error(wire(data, shape))).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message });
      expect(error(oipBin(data, shape))).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message });
    }
  });

  it('refuses a number (or null, an object, an array) where a string goes, a string where a number goes, and the wrong datatype', () => {
    const oip = (sig: Signature, input: Record<string, unknown>) => () => decodeOip(sig, 'm v1', json({ inputs: [input] }));
    const cases: [() => unknown, string][] = [
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: [['a', 7]] }), 'input "S" (BYTES): element 1 must be a string, got number'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: [null, 'a'] }), 'input "S" (BYTES): element 0 must be a string, got null'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', true] }), 'input "S" (BYTES): element 1 must be a string, got boolean'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', { text: 'b' }] }), 'input "S" (BYTES): element 1 must be a string (or {"b64": "…"}), got an object'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', { b64: '*not*' }] }), 'input "S" (BYTES): element 1: "b64" is not base64'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', { b64: Buffer.from([0xff]).toString('base64') }] }), 'input "S" (BYTES): element 1: "b64" does not hold valid UTF-8 (BYTES elements are text here: ONNX string tensors)'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', '\ud800'] }), 'input "S" (BYTES): element 1 holds a lone UTF-16 surrogate, which is not text UTF-8 can carry'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a\u0000b', 'c'] }), 'input "S" (BYTES): element 0 holds a NUL character, at which onnxruntime cuts a string short'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a', { b64: Buffer.from('x\0').toString('base64') }] }), 'input "S" (BYTES): element 1 holds a NUL character, at which onnxruntime cuts a string short'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['a'] }), 'input "S": shape [1, 2] needs 2 values, got 1'],
      [oip(SIG, { name: 'S', shape: [1, 2], datatype: 'FP32', data: [1, 2] }), 'input "S": datatype FP32 where the model takes BYTES'],
      [oip(NUM, { name: 'X', shape: [1, 2], datatype: 'FP32', data: [1, '2'] }), 'input "X" (FP32): element 1 must be a number, got string'],
      [oip(NUM, { name: 'X', shape: [1, 2], datatype: 'BYTES', data: ['1', '2'] }), 'input "X": datatype BYTES where the model takes FP32'],
      [() => decodePredict(SIG, 'm v1', json({ instances: [['a', 1]] })), 'input "S" (BYTES): element 1 must be a string, got number'],
      [() => decodePredict(NUM, 'm v1', json({ instances: [['a', 'b']] })), 'input "X" (FP32): element 0 must be a number, got string'],
    ];
    for (const [f, message] of cases) expect(error(f)).toEqual({ code: 'SHOAL_ERR_BAD_INPUT', message });
    // A lone surrogate pair (a 4-byte character) is fine.
    expect(decodeOip(SIG, 'm v1', json({ inputs: [{ name: 'S', shape: [1, 2], datatype: 'BYTES', data: ['\ud83d\udc1f', 'x'] }] })).inputs).toEqual([['🐟', 'x']]);
  });

  it('concatAlong and splitAlong: strings and typed arrays along the batch axis', () => {
    const joined = concatAlong([['a', 'b'], ['c', 'd', 'e', 'f'], ['', 'g']], [[1, 2], [2, 2], [1, 2]], 0);
    expect(joined).toEqual({ data: ['a', 'b', 'c', 'd', 'e', 'f', '', 'g'], dims: [4, 2] });
    expect(splitAlong(joined.data, joined.dims, 0, [1, 2, 1]).map((p) => p.data)).toEqual([['a', 'b'], ['c', 'd', 'e', 'f'], ['', 'g']]);
    // Along axis 1 (a state [layers, batch, hidden]): strings interleave per layer.
    const state = concatAlong([['a0', 'a1'], ['b0', 'b1']], [[2, 1], [2, 1]], 1);
    expect(state).toEqual({ data: ['a0', 'b0', 'a1', 'b1'], dims: [2, 2] });
    expect(splitAlong(state.data, state.dims, 1, [1, 1]).map((p) => p.data)).toEqual([['a0', 'a1'], ['b0', 'b1']]);
    const nums = concatAlong([BigInt64Array.of(1n, 2n), BigInt64Array.of(3n, 4n, 5n, 6n)], [[1, 2], [2, 2]], 0);
    expect(nums.data).toEqual(BigInt64Array.of(1n, 2n, 3n, 4n, 5n, 6n));
    const parts = splitAlong(nums.data, nums.dims, 0, [2, 1]).map((p) => p.data);
    expect(parts).toEqual([BigInt64Array.of(1n, 2n, 3n, 4n), BigInt64Array.of(5n, 6n)]);
    // Typed parts along axis 0 are views of the batch's output (no copy), string parts their own arrays.
    expect((parts[1] as BigInt64Array).buffer).toBe((nums.data as BigInt64Array).buffer);
  });
});
