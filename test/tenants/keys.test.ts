/**
 * Keys and quota policy without a cluster: keys are hashed at load and never echoed; an entry
 * must give exactly one of key / keyHash; `shoal up`'s gateway is open only on loopback; the
 * replica quota counts the tenant's other tracks and not the one being replaced.
 */
import { describe, expect, it, vi } from 'vitest';
import { NKEY_PUBLIC, checkGatewayKeys, generateCredentials, hashApiKey, loadConfig, nkeyOfSeed, resolveApiKeys, serverConfig } from '../../cluster/index.ts';
import { checkReplicaQuota, type OwnerBook, type ReplicaCounts } from '../../ml/index.ts';
import { keysCommand, upGatewayAccess } from '../../cli/keys.ts';

/** Runs `shoal keys …` in-process; its stdout. */
async function keys(...args: string[]): Promise<string> {
  const out: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
    out.push(String(c));
    return true;
  });
  try {
    await keysCommand(args, loadConfig({ argv: [] }));
  } finally {
    spy.mockRestore();
  }
  return out.join('');
}

describe('shoal keys', () => {
  it('keys new --tenant: a fresh API key once, and the entry holding its hash', async () => {
    const r = JSON.parse(await keys('new', '--tenant', 'acme', '--json')) as { key: string; entry: { keyHash: string; tenant: string; role: string } };
    expect(r.entry).toEqual({ keyHash: hashApiKey(r.key), tenant: 'acme', role: 'inference' });
    expect((await keys('hash', 'abcdefghij')).trim()).toBe(hashApiKey('abcdefghij'));
  });

  it('keys new --tenant T --nats: an NKey whose seed is printed once and appears in no config entry', async () => {
    const r = JSON.parse(await keys('new', '--tenant', 'acme', '--nats', '--json')) as { seed: string; nkey: string; entry: { tenant: string; nkey: string }; usersEntry: string; inboxPrefix: string };
    expect(r.seed).toMatch(/^SU[A-Z2-7]+$/);
    expect(r.nkey).toMatch(NKEY_PUBLIC);
    expect(nkeyOfSeed(r.seed)).toBe(r.nkey);
    expect(r.entry).toEqual({ tenant: 'acme', nkey: r.nkey });
    expect(r.inboxPrefix).toBe('_INBOX_tenant-acme');
    expect(r.usersEntry).toBe(`{ nkey: "${r.nkey}", permissions: { publish: { allow: ["shoal.t.acme.>"] }, subscribe: { allow: ["_INBOX_tenant-acme.>"] }, allow_responses: true } }`);
    const conf = serverConfig({ host: '127.0.0.1', port: 4222, storeDir: '/tmp/x', credentials: generateCredentials(), tenantUsers: [r.entry] });
    expect(conf).toContain(r.usersEntry);
    for (const text of [r.usersEntry, conf, JSON.stringify(r.entry)]) expect(text).not.toContain(r.seed);
    // A name that is no subject token, and the shared tenant, get no NATS user.
    await expect(keys('new', '--tenant', 'a.b', '--nats')).rejects.toThrow(/NATS subject token/);
    await expect(keys('new', '--tenant', 'default', '--nats')).rejects.toThrow(/shared tenant/);
    expect(() => loadConfig({ argv: ['--nats.tenantUsers', JSON.stringify([{ tenant: 'acme', nkey: 'not-a-key' }])] })).toThrow(/nats\.tenantUsers/);
  });
});

describe('API keys', () => {
  it('hashes as sha256 of the UTF-8 bytes', () => {
    expect(hashApiKey('abc')).toBe('sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('resolves plain keys to their hash, keeps given hashes, and maps admin: true to the admin role', () => {
    const r = resolveApiKeys([
      { key: 'plain-key-0001', tenant: 'acme' },
      { keyHash: hashApiKey('other-key-0002'), tenant: 'ops', admin: true },
      { keyHash: hashApiKey('third-key-0003'), tenant: 'acme', role: 'admin', rateLimitPerMinute: 5 },
    ]);
    expect(r).toEqual([
      { hash: hashApiKey('plain-key-0001'), tenant: 'acme', role: 'inference' },
      { hash: hashApiKey('other-key-0002'), tenant: 'ops', role: 'admin' },
      { hash: hashApiKey('third-key-0003'), tenant: 'acme', role: 'admin', rateLimitPerMinute: 5 },
    ]);
    expect(JSON.stringify(r)).not.toContain('plain-key-0001');
  });

  it('refuses an entry with both or neither of key / keyHash, a duplicate, or a contradiction — naming the entry, never the key', () => {
    const refuse = (keys: Parameters<typeof resolveApiKeys>[0]) => {
      try {
        resolveApiKeys(keys);
      } catch (err) {
        return err as Error & { code: string };
      }
      throw new Error('accepted');
    };
    const both = refuse([{ key: 'secret-key-0001', keyHash: hashApiKey('secret-key-0001'), tenant: 'a' }]);
    expect([both.code, both.message]).toEqual(['SHOAL_ERR_BAD_CONFIG', expect.stringMatching(/gateway\.apiKeys\[0\].*exactly one of key/)]);
    expect(both.message).not.toContain('secret-key-0001');
    expect(refuse([{ tenant: 'a' }]).message).toMatch(/exactly one/);
    expect(refuse([{ key: 'secret-key-0001', tenant: 'a' }, { keyHash: hashApiKey('secret-key-0001'), tenant: 'b' }]).message).toMatch(/gateway\.apiKeys\[1\].*twice/);
    expect(refuse([{ key: 'secret-key-0001', tenant: 'a', role: 'inference', admin: true }]).message).toMatch(/contradicts/);
  });

  it('config: keyHash must be sha256:<64 hex>; gateway.open defaults to false; no keys without open is refused', () => {
    expect(() => loadConfig({ argv: ['--gateway.apiKeys', JSON.stringify([{ keyHash: 'md5:abc', tenant: 'a' }])], env: {}, cwd: '/' })).toThrow(/gateway\.apiKeys/);
    // A malformed key is not echoed in the error (it is still a secret).
    let msg = '';
    try {
      loadConfig({ argv: ['--gateway.apiKeys', JSON.stringify([{ key: 'shortk', tenant: 'a' }])], env: {}, cwd: '/' });
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toMatch(/gateway\.apiKeys\.0\.key.*value not shown/);
    expect(msg).not.toContain('shortk');
    const cfg = loadConfig({ argv: [], env: {}, cwd: '/' });
    expect(cfg.gateway.open).toBe(false);
    expect(cfg.tenants).toEqual({});
    expect(() => checkGatewayKeys(cfg.gateway.apiKeys, cfg.gateway.open)).toThrow(/no API keys, and gateway\.open is not set/);
    expect(() => checkGatewayKeys([], true)).not.toThrow();
  });

  it("shoal up's gateway: open on loopback without keys, refused elsewhere, keyed when keys are given", () => {
    const cfg = (argv: string[]) => loadConfig({ argv, env: {}, cwd: '/' });
    expect(upGatewayAccess(cfg([])).open).toBe(true);
    expect(() => upGatewayAccess(cfg(['--gateway.host', '0.0.0.0']))).toThrow(/not loopback/);
    expect(upGatewayAccess(cfg(['--gateway.host', '0.0.0.0', '--gateway.open', 'true'])).open).toBe(true);
    expect(upGatewayAccess(cfg(['--gateway.host', '0.0.0.0', '--gateway.apiKeys', JSON.stringify([{ key: 'k-123456789', tenant: 'a' }])]))).toEqual({ open: false });
  });
});

describe('replica quota (policy)', () => {
  const owners = (own: Record<string, string>) =>
    ({
      fetchOwner: async (_k: string, name: string) => own[name] ?? 'default',
      ownedBy: (_k: string, t: string) => Object.keys(own).filter((n) => own[n] === t),
    }) as unknown as OwnerBook;
  const deps: Record<string, ReplicaCounts> = { a1: { stable: { replicas: 2 }, canary: { replicas: 1 } }, a2: { stable: { replicas: 1 } }, d: { stable: { replicas: 50 } } };
  const current = async (n: string) => deps[n];
  const quotas = { acme: { maxReplicas: 5 } };
  const own = owners({ a1: 'acme', a2: 'acme' });

  it('counts every track of the tenant except the one being replaced', async () => {
    await expect(checkReplicaQuota(quotas, own, current, 'a1', 'stable', 3)).resolves.toBeUndefined(); // 1 canary + 1 (a2) + 3
    await expect(checkReplicaQuota(quotas, own, current, 'a1', 'stable', 4)).rejects.toMatchObject({ code: 'SHOAL_ERR_QUOTA_EXCEEDED' });
    await expect(checkReplicaQuota(quotas, own, current, 'a2', 'canary', 1)).resolves.toBeUndefined(); // 2 + 1 + 1 + 1
    await expect(checkReplicaQuota(quotas, own, current, 'a2', 'canary', 2)).rejects.toThrow(/canary of a2 asks 2 replicas; the tenant runs 4 of its 5/);
  });

  it('does not limit the default tenant or a tenant without maxReplicas', async () => {
    await expect(checkReplicaQuota(quotas, own, current, 'd', 'stable', 500)).resolves.toBeUndefined();
    await expect(checkReplicaQuota({}, own, current, 'a1', 'stable', 500)).resolves.toBeUndefined();
  });
});
