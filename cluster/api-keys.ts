/**
 * API keys as the gateway keeps them: only their SHA-256 (`sha256:<hex>`). A config may give the
 * hash (`keyHash`, made by `shoal keys hash`) or, for development, the plain key (`key`), which
 * is hashed at load and then dropped, so neither a log line nor an error ever holds it.
 */
import { createHash } from 'node:crypto';
import { Errors } from './errors.ts';

export const KEY_HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** `sha256:<hex>` of a key's UTF-8 bytes. */
export function hashApiKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

export const KeyRole = { ADMIN: 'admin', INFERENCE: 'inference' } as const;
export type KeyRole = (typeof KeyRole)[keyof typeof KeyRole];

/** A key as configured (config `gateway.apiKeys[i]`). */
export interface ApiKeyConfig {
  key?: string | undefined;
  keyHash?: string | undefined;
  tenant: string;
  rateLimitPerMinute?: number | undefined;
  role?: KeyRole | undefined;
  admin?: boolean | undefined;
}

/** A key once loaded: its hash, never the key. */
export interface ResolvedApiKey {
  hash: string;
  tenant: string;
  role: KeyRole;
  rateLimitPerMinute?: number;
}

/**
 * Checks and hashes the configured keys: each has exactly one of `key` / `keyHash`; a hash is
 * given once. The error names the entry (`gateway.apiKeys[2]`), never the key.
 */
export function resolveApiKeys(keys: readonly ApiKeyConfig[], field = 'gateway.apiKeys'): ResolvedApiKey[] {
  const seen = new Set<string>();
  return keys.map((k, i) => {
    const at = `${field}[${i}]`;
    if ((k.key === undefined) === (k.keyHash === undefined)) throw Errors.BAD_CONFIG(at, 'give exactly one of key (plain, development) or keyHash ("sha256:<hex>", from `shoal keys hash`)');
    if (k.keyHash !== undefined && !KEY_HASH_PATTERN.test(k.keyHash)) throw Errors.BAD_CONFIG(`${at}.keyHash`, 'must be "sha256:" and 64 lowercase hex digits');
    if (k.role !== undefined && k.admin !== undefined && (k.role === KeyRole.ADMIN) !== k.admin) throw Errors.BAD_CONFIG(at, `role ${k.role} contradicts admin: ${k.admin}`);
    const hash = k.keyHash ?? hashApiKey(k.key!);
    if (seen.has(hash)) throw Errors.BAD_CONFIG(at, 'the same key is given twice');
    seen.add(hash);
    const role = k.role ?? (k.admin === true ? KeyRole.ADMIN : KeyRole.INFERENCE);
    return { hash, tenant: k.tenant, role, ...(k.rateLimitPerMinute !== undefined ? { rateLimitPerMinute: k.rateLimitPerMinute } : {}) };
  });
}

/** The gateway refuses to serve without keys unless told it is meant to be open. */
export function checkGatewayKeys(keys: readonly unknown[], open: boolean): void {
  if (keys.length === 0 && !open) {
    throw Errors.BAD_CONFIG(
      'gateway.apiKeys',
      'no API keys, and gateway.open is not set: give keys (`shoal keys hash <key>` makes a keyHash) or set gateway.open: true to serve without authentication',
    );
  }
}
