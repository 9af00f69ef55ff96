/**
 * The `shoal` parser, driven by the same command table it is built from (cli/commands.ts), so a
 * command added there is checked here without editing this file: `--help` for every command and
 * subcommand lists its description and flags; an unknown flag is a usage error that names the
 * command; a good command line reaches the handler with the arguments the handler always got.
 * Then the real binary: `shoal models --help` beside a broken config file, an unknown flag,
 * and the completion script.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, type CommandSpec, type SubcommandSpec } from '../../cli/commands.ts';
import { runCli } from '../../cli/parser.ts';
import { ARG_DOCS } from '../../cli/flag-docs.ts';
import { SHOAL, shoalEnv } from '../harness/shoal-cli.ts';

interface Level {
  path: string[];
  describe: string;
  args?: string;
  argDocs?: Readonly<Record<string, string>>;
  flags: readonly string[];
}

// Every command, and every subcommand of one that has them.
const LEVELS: Level[] = COMMANDS.flatMap((c: CommandSpec) => [
  { path: [c.name], describe: c.describe, ...(c.args ? { args: c.args } : {}), ...(c.argDocs ? { argDocs: c.argDocs } : {}), flags: c.subcommands ? [] : (c.flags ?? []) },
  ...(c.subcommands ?? []).map((s: SubcommandSpec) => ({ path: [c.name, s.name], describe: s.describe, ...(s.args ? { args: s.args } : {}), ...(s.argDocs ? { argDocs: s.argDocs } : {}), flags: s.flags ?? c.flags ?? [] })),
]);

/** A value for each required positional (`<x>`), so only the flag can be wrong. */
const fill = (args?: string) => [...(args ?? '').matchAll(/<([\w-]+)(\.\.)?>/g)].map((m) => `${m[1]}-value`);

// Records what would run instead of connecting to a cluster.
const record = async () => 0;

describe('shoal --help, from the command table', () => {
  it('the table has the commands the README names, and each has a description', () => {
    const names = COMMANDS.map((c) => c.name);
    for (const n of ['up', 'demo', 'status', 'models', 'datasets', 'features', 'monitor', 'submit', 'jobs', 'cancel', 'drain', 'preempt', 'node-user', 'version']) expect(names).toContain(n);
    expect(new Set(names).size).toBe(names.length);
    for (const l of LEVELS) expect(l.describe.length, l.path.join(' ')).toBeGreaterThan(5);
  });

  it('shoal --help lists every command with its description', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.ran).toEqual([]);
    for (const c of COMMANDS) {
      expect(r.output).toContain(`shoal ${c.name}`);
      expect(r.output).toContain(c.describe);
    }
    expect(r.output).toContain('shoal completion');
  });

  for (const l of LEVELS) {
    it(`shoal ${l.path.join(' ')} --help: its description and every flag, and runs nothing`, async () => {
      const r = await runCli([...l.path, '--help'], COMMANDS, record);
      expect(r.error).toBeUndefined();
      expect(r.code).toBe(0);
      expect(r.ran).toEqual([]);
      expect(r.output).toContain(`shoal ${l.path.join(' ')}`);
      expect(r.output).toContain(l.describe);
      for (const f of l.flags) expect(r.output, `--${f}`).toMatch(new RegExp(`--${f}\\s`));
      // Each positional with its line of help.
      for (const [, name] of (l.args ?? '').matchAll(/[<[]([\w-]+)(?:\.\.)?[>\]]/g)) {
        const doc = l.argDocs?.[name!] ?? ARG_DOCS[name!];
        expect(doc, `a help line for <${name}> of ${l.path.join(' ')}`).toBeDefined();
        expect(r.output).toMatch(new RegExp(`^\\s+${name}\\s+${doc!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'm'));
      }
      const spec = COMMANDS.find((c) => c.name === l.path[0])!;
      if (l.path.length === 1) for (const s of spec.subcommands ?? []) expect(r.output).toContain(`shoal ${spec.name} ${s.name}`);
    });

    it(`shoal ${l.path.join(' ')} --no-such-flag: a usage error naming the command`, async () => {
      const spec = COMMANDS.find((c) => c.name === l.path[0])!;
      if (spec.subcommands && l.path.length === 1) return; // the subcommands are checked one by one
      const r = await runCli([...l.path, ...fill(l.args), '--no-such-flag', '1'], COMMANDS, record);
      expect(r.code).toBe(2);
      expect(r.ran).toEqual([]);
      expect((r.error as Error).message).toBe(`shoal ${l.path.join(' ')}: unknown flag --no-such-flag (see shoal ${l.path.join(' ')} --help)`);
    });
  }

  it('a good command line reaches the handler with the old arguments; config flags pass on every command', async () => {
    let got: { spec: string; rest: string[]; sub?: string } | undefined;
    const r = await runCli(['models', 'deploy', 'churn', '--replicas', '2', '--gateway.port', '8081', '--config', 'x.json'], COMMANDS, async (spec, rest, sub) => {
      got = { spec: spec.name, rest, ...(sub ? { sub: sub.name } : {}) };
      return 0;
    });
    expect(r.error).toBeUndefined();
    expect(r.ran).toEqual(['models', 'deploy']);
    expect(got).toEqual({ spec: 'models', sub: 'deploy', rest: ['deploy', 'churn', '--replicas', '2', '--gateway.port', '8081', '--config', 'x.json'] });
    const s = await runCli(['status', '--json', '--nats.port=4333'], COMMANDS, record);
    expect(s.ran).toEqual(['status']);
  });

  it('the handler gets the config loaded from its config flags, and its exit code is the result', async () => {
    let port = 0;
    const table: CommandSpec[] = [{ name: 'probe', describe: 'a probe command', flags: ['json'], run: (_rest, config) => ((port = config.gateway.port), 7) }];
    const r = await runCli(['probe', '--json', '--gateway.port', '8099'], table);
    expect(r.code).toBe(7);
    expect(port).toBe(8099);
    const bad = await runCli(['probe', '--gateway.port', 'abc'], table);
    expect(bad.code).toBe(1);
    expect((bad.error as { code?: string }).code).toBe('SHOAL_ERR_BAD_CONFIG');
  });

  it('a missing subcommand, an unknown command and a missing argument are usage errors', async () => {
    const none = await runCli(['models'], COMMANDS, record);
    expect(none.code).toBe(2);
    expect((none.error as Error).message).toMatch(/^shoal models: name a subcommand/);
    const unknown = await runCli(['frobnicate'], COMMANDS, record);
    expect(unknown.code).toBe(2);
    expect((unknown.error as Error).message).toBe('shoal: unknown command "frobnicate" (see shoal --help)');
    const sub = await runCli(['models', 'frobnicate', 'x'], COMMANDS, record);
    expect(sub.code).toBe(2);
    expect(sub.ran).toEqual([]);
    expect((sub.error as Error).message).toMatch(/^shoal models: unknown subcommand "frobnicate" \(one of: register, list, /);
    const extra = await runCli(['models', 'list', 'extra'], COMMANDS, record);
    expect((extra.error as Error).message).toBe('shoal models list: unexpected argument "extra" (see shoal models list --help)');
    const missing = await runCli(['jobs'], COMMANDS, record);
    expect(missing.code).toBe(2);
    expect((missing.error as Error).message).toMatch(/^shoal jobs: /);
  });
});

describe('the shoal binary', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'shoal-help-'));
  // A broken config file: help must not read it.
  writeFileSync(join(cwd, 'shoal.config.json'), '{ not json');
  const shoal = (args: string[]) => spawnSync(process.execPath, [SHOAL, ...args], { cwd, env: shoalEnv(), encoding: 'utf8', timeout: 60_000 });

  it('shoal models --help works beside a broken config file; a real command then names the config error', () => {
    const help = shoal(['models', '--help']);
    expect(help.stderr).toBe('');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('shoal models deploy <name>');
    const real = shoal(['models', 'list']);
    expect(real.status).toBe(1);
    expect(real.stderr).toContain('SHOAL_ERR_BAD_CONFIG');
  });

  it('an unknown flag exits 2 with the command named', () => {
    const r = shoal(['models', 'deploy', 'churn', '--replica', '2']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('shoal models deploy: unknown flag --replica');
  });

  it('shoal completion prints a bash completion script, and completions come from the table', () => {
    const script = shoal(['completion']);
    expect(script.status).toBe(0);
    expect(script.stdout).toContain('complete -o bashdefault -o default -F _shoal_yargs_completions shoal');
    const words = shoal(['--get-yargs-completions', 'shoal', 'models', '']);
    expect(words.status).toBe(0);
    for (const s of COMMANDS.find((c) => c.name === 'models')!.subcommands!) expect(words.stdout.split('\n')).toContain(s.name);
  });
});
