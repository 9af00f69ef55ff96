import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Errors, ShoalError, fromWireError, registeredErrorCodes, toWireError } from '../cluster/index.ts';

const ROOT = join(import.meta.dirname, '..');

// Import every package's errors module so all codes are registered.
const modules = ['cluster', 'kernels', 'scheduler', 'nodes', 'gateway', 'ml', 'cli']
  .map((d) => join(ROOT, d, 'errors.ts'))
  .filter((f) => existsSync(f));
await Promise.all(modules.map((m) => import(m)));

describe('error codes', () => {
  const codes = [...registeredErrorCodes().keys()];

  it('registers the runtime codes and every package errors module', () => {
    expect(codes).toContain(Errors.BAD_CONFIG.code);
    expect(modules.length).toBeGreaterThanOrEqual(2);
  });

  it('every code is SHOAL_ERR_ upper snake case', () => {
    for (const c of codes) expect(c).toMatch(/^SHOAL_ERR_[A-Z0-9_]+$/);
  });

  it('every code is documented once in docs/errors.md, with its HTTP status', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    for (const [code, { status }] of registeredErrorCodes()) {
      const rows = doc.split('\n').filter((l) => l.startsWith(`| \`${code}\` |`));
      expect(rows, `${code} documented once`).toHaveLength(1);
      expect(rows[0], `${code} status`).toContain(`| ${status} |`);
    }
  });

  it('documents no code that does not exist', () => {
    const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `(SHOAL_ERR_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    for (const c of documented) expect(codes).toContain(c);
  });

  it('a code cannot be defined twice', async () => {
    const { defineError } = await import('../cluster/errors.ts');
    expect(() => defineError('SHOAL_ERR_BAD_CONFIG', 400, () => 'x')).toThrow(/duplicate/);
  });

  it('round-trips over the wire as code + message, not as an instance', () => {
    const e = Errors.PORT_IN_USE('NATS', 4222);
    const w = JSON.parse(JSON.stringify(toWireError(e))) as { code: string; message: string };
    expect(w).toEqual({ code: 'SHOAL_ERR_PORT_IN_USE', message: e.message });
    const back = fromWireError(w);
    expect(back).toBeInstanceOf(ShoalError);
    expect(Errors.PORT_IN_USE.is(back)).toBe(true);
    expect(back.status).toBe(500);
    expect(toWireError(new Error('boom')).code).toBe('SHOAL_ERR_INTERNAL');
  });
});

describe('package layout', () => {
  it('has the top-level folders of the design', () => {
    const dirs = readdirSync(ROOT);
    for (const d of ['cluster', 'kernels', 'scheduler', 'nodes', 'gateway', 'ml', 'cli', 'bench', 'test']) expect(dirs).toContain(d);
  });
});
