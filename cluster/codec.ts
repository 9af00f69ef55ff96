/**
 * Payload codec: standard MessagePack (no msgpackr records or structured-clone extensions, so any
 * language's MessagePack library reads it) and JSON, chosen by the `content-type` header.
 * Default on the wire is MessagePack; JSON is accepted where outside clients submit.
 */
import { Packr } from 'msgpackr';
import { Errors } from './errors.ts';

export const ContentType = {
  MSGPACK: 'application/msgpack',
  JSON: 'application/json',
} as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

/** `useRecords: false` keeps the output plain MessagePack maps; `mapsAsObjects` decodes maps to objects. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' });
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

const ALIASES: Record<string, ContentType> = {
  'application/msgpack': ContentType.MSGPACK,
  'application/x-msgpack': ContentType.MSGPACK,
  'application/vnd.msgpack': ContentType.MSGPACK,
  'application/json': ContentType.JSON,
};

/** Normalises a content-type header value; an absent header means MessagePack. */
export function parseContentType(header: string | undefined | null): ContentType {
  if (header === undefined || header === null || header === '') return ContentType.MSGPACK;
  const base = header.split(';')[0]!.trim().toLowerCase();
  const ct = ALIASES[base];
  if (!ct) throw Errors.BAD_CONTENT_TYPE(header);
  return ct;
}

export function encode(value: unknown, ct: ContentType = ContentType.MSGPACK): Uint8Array {
  if (ct === ContentType.JSON) return utf8.encode(JSON.stringify(value));
  return packr.pack(value);
}

export function decode(bytes: Uint8Array, ct: ContentType = ContentType.MSGPACK): unknown {
  if (bytes.length === 0) return undefined;
  try {
    if (ct === ContentType.JSON) return JSON.parse(fromUtf8.decode(bytes));
    return packr.unpack(bytes);
  } catch (err) {
    throw Errors.DECODE_FAILED(ct, err instanceof Error ? err.message : String(err));
  }
}
