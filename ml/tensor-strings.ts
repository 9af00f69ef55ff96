/**
 * BYTES (string) tensors at the edges of serving. In memory a BYTES tensor is a `string[]`, row
 * major — what onnxruntime-node takes and gives for an ONNX string tensor. On the wire (the
 * binary tensor data extension, `raw_input_contents`, the NATS binary form) each element is a
 * 4-byte little-endian length and then that many bytes, one after another, as Triton writes them.
 *
 * Elements must be UTF-8 text: ONNX string tensors are text and onnxruntime-node hands them to
 * JavaScript as strings, so arbitrary bytes could not come back as they went in. Bytes that are
 * not UTF-8 are refused (400) rather than silently replaced; so is a NUL character, at which
 * onnxruntime-node 1.30 cuts an input string short (seen: "dog\0" arrives as "dog").
 */
import { MlErrors } from './errors.ts';

const utf8In = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Out = new TextEncoder();

function bad(name: string, why: string): Error {
  return MlErrors.BAD_INPUT(`input "${name}" (BYTES): ${why}`);
}

/** Strings → the length-prefixed bytes (4-byte little-endian length, then the UTF-8 bytes, per element). */
export function encodeStrings(strings: readonly string[]): Uint8Array {
  const parts = strings.map((s) => utf8Out.encode(s));
  let size = 0;
  for (const p of parts) size += 4 + p.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length, true);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** The size {@link encodeStrings} gives, without encoding. */
export function encodedStringsSize(strings: readonly string[]): number {
  let size = 0;
  for (const s of strings) size += 4 + Buffer.byteLength(s, 'utf8');
  return size;
}

/**
 * Length-prefixed bytes → `expected` strings (any count when undefined). Refuses a length that
 * runs past the end, bytes left over after the last element, too few or too many elements, and
 * an element that is not UTF-8 — naming the input and the element.
 */
export function decodeStrings(name: string, bytes: Uint8Array, expected?: number): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    const i = out.length;
    if (expected !== undefined && i === expected) throw bad(name, `${bytes.length - at} bytes left after the ${expected} elements the shape holds (each element is a 4-byte little-endian length, then its bytes)`);
    if (at + 4 > bytes.length) throw bad(name, `element ${i}: ${bytes.length - at} bytes where its 4-byte length should be`);
    const len = view.getUint32(at, true);
    if (len > bytes.length - at - 4) throw bad(name, `element ${i}: its length says ${len} bytes but only ${bytes.length - at - 4} are left`);
    const element = bytes.subarray(at + 4, at + 4 + len);
    try {
      out.push(utf8In.decode(element));
    } catch {
      throw bad(name, `element ${i} is not valid UTF-8 (BYTES elements are text here: ONNX string tensors)`);
    }
    if (element.includes(0)) throw nul(name, i);
    at += 4 + len;
  }
  if (expected !== undefined && out.length !== expected) throw bad(name, `the data holds ${out.length} element${out.length === 1 ? '' : 's'}, the shape needs ${expected}`);
  return out;
}

/**
 * One JSON element of a BYTES tensor → its string: a string as it is, or `{"b64": "…"}` (base64
 * of UTF-8 bytes, as Triton's HTTP endpoint takes). Anything else is refused.
 */
export function stringFromJson(name: string, i: number, v: unknown): string {
  if (typeof v === 'string') {
    // JSON may escape half a surrogate pair ("\ud800"), which no UTF-8 holds.
    if (LONE_SURROGATE.test(v)) throw bad(name, `element ${i} holds a lone UTF-16 surrogate, which is not text UTF-8 can carry`);
    if (v.includes('\0')) throw nul(name, i);
    return v;
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const b64 = (v as Record<string, unknown>).b64;
    if (typeof b64 === 'string' && Object.keys(v).length === 1) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 === 1) throw bad(name, `element ${i}: "b64" is not base64`);
      let text: string;
      try {
        text = utf8In.decode(Buffer.from(b64, 'base64'));
      } catch {
        throw bad(name, `element ${i}: "b64" does not hold valid UTF-8 (BYTES elements are text here: ONNX string tensors)`);
      }
      if (text.includes('\0')) throw nul(name, i);
      return text;
    }
    throw bad(name, `element ${i} must be a string (or {"b64": "…"}), got an object`);
  }
  return badJson(name, i, v);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function nul(name: string, i: number): Error {
  return bad(name, `element ${i} holds a NUL character, at which onnxruntime cuts a string short`);
}

function badJson(name: string, i: number, v: unknown): never {
  throw bad(name, `element ${i} must be a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
}

/** A flat list of JSON elements → strings (see {@link stringFromJson}). */
export function stringsFromJson(name: string, flat: readonly unknown[]): string[] {
  const out = new Array<string>(flat.length);
  for (let i = 0; i < flat.length; i++) out[i] = stringFromJson(name, i, flat[i]);
  return out;
}

/** Strings as JSON text: what `JSON.stringify(strings)` gives. */
export function stringsJsonText(strings: readonly string[]): string {
  return JSON.stringify(strings);
}
