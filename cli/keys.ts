/**
 * `shoal keys hash [KEY | --stdin]`: the `keyHash` of an API key for `gateway.apiKeys`, so the
 * config never holds the key itself. `shoal keys new --tenant T [--role admin|inference]`: a
 * fresh random key, printed once, with the config entry that holds only its hash. `shoal keys new
 * --tenant T --nats`: the tenant's own NATS user instead (README "Tenants over NATS"): a fresh user
 * NKey, its seed printed once, the `users` entry for an external nats-server and the
 * `nats.tenantUsers` entry for the embedded one (both hold only the public key).
 *
 * Also what `shoal up` decides about the gateway's keys (see {@link upGatewayAccess}).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Errors, hashApiKey, newTenantNkey, parseFlags, tenantInboxPrefix, tenantUserEntry, type Config } from '../cluster/index.ts';

export const KEYS_FLAGS = ['stdin', 'tenant', 'role', 'nats', 'json'];

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/**
 * How `shoal up` starts its gateway: with the configured keys; or, with none, open — but only
 * when it listens on loopback (reachable from this machine only), which keeps the quick start a
 * single command. On any other address without keys it refuses before starting anything.
 */
export function upGatewayAccess(config: Config): { open: boolean; note?: string } {
  const g = config.gateway;
  if (g.apiKeys.length > 0) return { open: false };
  if (g.open) return { open: true, note: 'gateway open (gateway.open: true): no API keys, every caller is an admin' };
  if (LOOPBACK.has(g.host)) return { open: true, note: `gateway open on loopback (${g.host}) only: no API keys configured; see README "Tenants, roles and quotas" to add them` };
  throw Errors.BAD_CONFIG('gateway.apiKeys', `no API keys, and the gateway would listen on ${g.host} (not loopback): add keys (\`shoal keys new --tenant T\`) or set gateway.open: true`);
}

/** `keys new --tenant T --nats`: the tenant's NATS user (see the file comment). */
function newTenantNatsUser(tenant: string | undefined, config: Config, json: boolean): number {
  // A NATS subject token: a tenant name with `.` (allowed for API keys) cannot have subjects of its own.
  if (!tenant || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) throw Errors.BAD_CONFIG('keys new --tenant', 'give the tenant (letters, digits, _ -, at most 64: it is a NATS subject token, so no "."), e.g. --tenant acme --nats');
  if (tenant === 'default') throw Errors.BAD_CONFIG('keys new --tenant', 'default is the shared tenant of an open gateway; a NATS user acts for a named tenant');
  const { nkey, seed } = newTenantNkey();
  const prefix = config.subjectPrefix;
  const entry = { tenant, nkey };
  const users = tenantUserEntry(entry, prefix);
  const inbox = tenantInboxPrefix(tenant);
  if (json) {
    process.stdout.write(`${JSON.stringify({ seed, nkey, entry, usersEntry: users, inboxPrefix: inbox, subjects: `${prefix}.t.${tenant}.>` })}\n`);
    return 0;
  }
  process.stdout.write(
    [
      `seed (shown once, give it to tenant ${tenant}; it signs the NATS connection): ${seed}`,
      `public key: ${nkey}`,
      `config entry for nats.tenantUsers (the embedded nats-server of shoal up): ${JSON.stringify(entry)}`,
      `users entry for an external nats-server (authorization { users = [ ... ] }, then reload it):`,
      `  ${users}`,
      `the tenant connects with the seed (NKey auth) and inbox prefix ${inbox}, and sends requests to ${prefix}.t.${tenant}.jobs.submit|status|cancel|list`,
      '',
    ].join('\n'),
  );
  return 0;
}

export async function keysCommand(args: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(args);
  const sub = positionals[0];
  if (sub === 'hash') {
    const key = flags.has('stdin') ? readFileSync(0, 'utf8').trim() : positionals[1];
    if (!key) throw Errors.BAD_CONFIG('keys hash', 'give the key (shoal keys hash KEY) or pipe it (shoal keys hash --stdin)');
    if (key.length < 8) throw Errors.BAD_CONFIG('keys hash', 'an API key has at least 8 characters');
    process.stdout.write(`${hashApiKey(key)}\n`);
    return 0;
  }
  if (sub === 'new') {
    if (flags.has('nats')) return newTenantNatsUser(flags.get('tenant'), config, flags.has('json'));
    const tenant = flags.get('tenant');
    if (!tenant || !/^[A-Za-z0-9_.-]{1,64}$/.test(tenant)) throw Errors.BAD_CONFIG('keys new --tenant', 'give the tenant (letters, digits, _ . -, at most 64)');
    const role = flags.get('role') ?? 'inference';
    if (role !== 'admin' && role !== 'inference') throw Errors.BAD_CONFIG('keys new --role', `admin or inference, got ${JSON.stringify(role)}`);
    const key = `shoal_${randomBytes(24).toString('base64url')}`;
    const entry = { keyHash: hashApiKey(key), tenant, role };
    if (flags.has('json')) process.stdout.write(`${JSON.stringify({ key, entry })}\n`);
    else process.stdout.write(`key (shown once, give it to the tenant): ${key}\nconfig entry for gateway.apiKeys: ${JSON.stringify(entry)}\n`);
    return 0;
  }
  throw Errors.BAD_CONFIG('keys', `unknown subcommand ${JSON.stringify(sub ?? '')}: use keys hash KEY | keys hash --stdin | keys new --tenant T [--role admin|inference] | keys new --tenant T --nats`);
}
