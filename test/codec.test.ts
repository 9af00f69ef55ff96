import { describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { ContentType, Errors, decode, encode, parseContentType } from '../cluster/index.ts';

describe('codec', () => {
  const value = { type: 'describe', n: 3, x: 1.5, ok: true, list: [1, 'a', null], nested: { a: { b: 'c' } } };

  it('round-trips MessagePack and JSON', () => {
    expect(decode(encode(value, ContentType.MSGPACK), ContentType.MSGPACK)).toEqual(value);
    expect(decode(encode(value, ContentType.JSON), ContentType.JSON)).toEqual(value);
  });

  it('writes standard MessagePack: plain maps, no msgpackr record extension', () => {
    const bytes = encode({ a: 1, b: 'x' });
    // A map (fixmap 0x8N or map16 0xde with a 2-entry count), then fixstr "a": the format every
    // MessagePack library reads.
    const body = bytes[0] === 0xde ? (expect([bytes[1], bytes[2]]).toEqual([0, 2]), bytes.subarray(3)) : (expect(bytes[0]).toBe(0x82), bytes.subarray(1));
    expect([body[0], body[1]]).toEqual([0xa1, 'a'.charCodeAt(0)]);
    // Records would use ext type 0x72 / 0xd4..0xd8 markers; a default decoder must read it.
    expect(unpack(encode([value, value]))).toEqual([value, value]);
    expect([...encode([{ k: 1 }, { k: 2 }])].some((b) => b >= 0xd4 && b <= 0xd8)).toBe(false);
  });

  it('chooses by content-type header, defaulting to MessagePack', () => {
    expect(parseContentType(undefined)).toBe(ContentType.MSGPACK);
    expect(parseContentType('application/json; charset=utf-8')).toBe(ContentType.JSON);
    expect(parseContentType('application/x-msgpack')).toBe(ContentType.MSGPACK);
    expect(() => parseContentType('text/xml')).toThrow(expect.objectContaining({ code: Errors.BAD_CONTENT_TYPE.code }));
  });

  it('turns undecodable bytes into a typed error', () => {
    expect(() => decode(new TextEncoder().encode('{ not json'), ContentType.JSON)).toThrow(expect.objectContaining({ code: Errors.DECODE_FAILED.code }));
    expect(() => decode(new Uint8Array([0x92, 0x01]), ContentType.MSGPACK)).toThrow(expect.objectContaining({ code: Errors.DECODE_FAILED.code }));
  });
});
