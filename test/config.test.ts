import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROFILES, Errors, envName, loadConfig } from '../cluster/index.ts';

const dir = () => mkdtempSync(join(tmpdir(), 'shoal-cfg-'));

function configError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(Errors.BAD_CONFIG.is(err)).toBe(true);
    return err as Error;
  }
  throw new Error('expected a config error');
}

describe('loadConfig', () => {
  it('gives the defaults with no file, env or flags', () => {
    const c = loadConfig({ argv: [], env: {}, cwd: dir() });
    expect(c.nats.port).toBe(4222);
    expect(c.gateway.port).toBe(8080);
    expect(c.dataDir).toBe('./.shoal');
    expect(c.nodes).toEqual(DEFAULT_PROFILES);
    expect(c.nodes.length).toBeGreaterThanOrEqual(2);
  });

  it('applies file < env < flags', () => {
    const cwd = dir();
    writeFileSync(join(cwd, 'shoal.config.json'), JSON.stringify({ gateway: { port: 9001 }, nats: { port: 5000 }, subjectPrefix: 'acme' }));
    const fileOnly = loadConfig({ argv: [], env: {}, cwd });
    expect([fileOnly.gateway.port, fileOnly.nats.port, fileOnly.subjectPrefix]).toEqual([9001, 5000, 'acme']);
    const withEnv = loadConfig({ argv: [], env: { SHOAL_GATEWAY_PORT: '9002' }, cwd });
    expect([withEnv.gateway.port, withEnv.nats.port]).toEqual([9002, 5000]);
    const withFlag = loadConfig({ argv: ['--gateway.port', '9003', '--nats.port=5001'], env: { SHOAL_GATEWAY_PORT: '9002' }, cwd });
    expect([withFlag.gateway.port, withFlag.nats.port]).toEqual([9003, 5001]);
  });

  it('takes request bodies up to 1 GiB (larger than one NATS message: they are pulled in chunks), 64 MiB by default', () => {
    expect(loadConfig({ argv: [], env: {}, cwd: dir() }).gateway.bodyLimitBytes).toBe(64 * 1024 * 1024);
    expect(loadConfig({ argv: ['--gateway.bodyLimitBytes', String(512 * 1024 * 1024)], env: {}, cwd: dir() }).gateway.bodyLimitBytes).toBe(512 * 1024 * 1024);
    expect(configError(() => loadConfig({ argv: ['--gateway.bodyLimitBytes', String(2 * 1024 * 1024 * 1024)], env: {}, cwd: dir() })).message).toMatch(/gateway\.bodyLimitBytes/);
  });

  it('derives env names from the schema', () => {
    expect(envName(['membership', 'heartbeatMs'])).toBe('SHOAL_MEMBERSHIP_HEARTBEAT_MS');
    const c = loadConfig({ argv: [], env: { SHOAL_MEMBERSHIP_HEARTBEAT_MS: '250', SHOAL_LOG_PRETTY: 'false' }, cwd: dir() });
    expect(c.membership.heartbeatMs).toBe(250);
    expect(c.log.pretty).toBe(false);
  });

  it('holds the compute settings under the env names they always had, with the same precedence', () => {
    const d = loadConfig({ argv: [], env: {}, cwd: dir() });
    expect(d.kernels).toEqual({ backend: 'auto', matmulBk: 16 });
    expect(d.gpu.adapter).toBeUndefined();
    const env = { SHOAL_GPU_ADAPTER: 'llvmpipe', SHOAL_KERNELS_BACKEND: 'cpu', SHOAL_KERNELS_CACHE: '/tmp/k', SHOAL_KERNELS_MATMUL_BK: '32', SHOAL_LOG_LEVEL: 'debug' };
    const c = loadConfig({ argv: [], env, cwd: dir() });
    expect([c.gpu.adapter, c.kernels.backend, c.kernels.cache, c.kernels.matmulBk, c.log.level]).toEqual(['llvmpipe', 'cpu', '/tmp/k', 32, 'debug']);
    // Flags beat env, the log level included (the logger no longer reads SHOAL_LOG_LEVEL itself).
    const f = loadConfig({ argv: ['--kernels.backend', 'gpu', '--log.level', 'warn'], env, cwd: dir() });
    expect([f.kernels.backend, f.log.level]).toEqual(['gpu', 'warn']);
    // SHOAL_TRAINING_BACKEND is the older name of kernels.backend; the derived name wins.
    expect(loadConfig({ argv: [], env: { SHOAL_TRAINING_BACKEND: 'cpu' }, cwd: dir() }).kernels.backend).toBe('cpu');
    expect(loadConfig({ argv: [], env: { SHOAL_TRAINING_BACKEND: 'cpu', SHOAL_KERNELS_BACKEND: 'gpu' }, cwd: dir() }).kernels.backend).toBe('gpu');
    expect(configError(() => loadConfig({ argv: [], env: { SHOAL_TRAINING_BACKEND: 'tpu' }, cwd: dir() })).message).toMatch(/kernels\.backend.*"tpu".*env SHOAL_TRAINING_BACKEND/);
    expect(configError(() => loadConfig({ argv: [], env: { SHOAL_KERNELS_MATMUL_BK: '24' }, cwd: dir() })).message).toMatch(/kernels\.matmulBk.*env SHOAL_KERNELS_MATMUL_BK/);
  });

  it('names the exact field and the source of a bad value', () => {
    expect(configError(() => loadConfig({ argv: ['--gateway.port', '70000'], env: {}, cwd: dir() })).message).toMatch(/gateway\.port.*65535.*"70000".*flag --gateway\.port/);
    expect(configError(() => loadConfig({ argv: [], env: { SHOAL_NATS_PORT: 'abc' }, cwd: dir() })).message).toMatch(/nats\.port.*"abc".*env SHOAL_NATS_PORT/);
    expect(configError(() => loadConfig({ argv: [], env: { SHOAL_LOG_LEVEL: 'loud' }, cwd: dir() })).message).toMatch(/log\.level: expected one of .*"info".*got "loud"/);
  });

  it('names nested fields inside a config file', () => {
    const cwd = dir();
    writeFileSync(join(cwd, 'bad.json'), JSON.stringify({ nodes: [{ name: 'gpu', labels: { pool: 'g', zone: 'z', spot: 'yes', pricePerHour: 1 } }] }));
    expect(configError(() => loadConfig({ argv: ['--config', 'bad.json'], env: {}, cwd })).message).toMatch(/nodes\.0\.labels\.spot.*bad\.json/);
  });

  it('refuses unknown fields, unknown flags and unreadable files', () => {
    const cwd = dir();
    writeFileSync(join(cwd, 'shoal.config.json'), JSON.stringify({ gatway: { port: 1 } }));
    expect(configError(() => loadConfig({ argv: [], env: {}, cwd })).message).toMatch(/gatway: unknown field/);
    expect(configError(() => loadConfig({ argv: ['--gateway.prot', '1'], env: {}, cwd: dir() })).message).toMatch(/unknown flag --gateway\.prot/);
    expect(configError(() => loadConfig({ argv: ['--config', 'missing.json'], env: {}, cwd: dir() })).message).toMatch(/cannot read .*missing\.json/);
    writeFileSync(join(cwd, 'broken.json'), '{ nope');
    expect(configError(() => loadConfig({ argv: ['--config', 'broken.json'], env: {}, cwd })).message).toMatch(/not valid JSON/);
  });
});
