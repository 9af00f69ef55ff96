/**
 * The `shoal` argument parser: yargs, built from the command table (cli/commands.ts). yargs
 * checks the command line — known command and subcommand, known flags, required positionals —
 * and writes `--help` for every level and the bash completion script; the handler then gets the
 * raw arguments (`rest`) and parses its own, as it always has, so table output and behaviour are
 * unchanged. Config flags (`--config FILE`, `--gateway.port 8081`, any `--<field>` of
 * cluster/config.ts) are accepted on every command and hidden from the per-command help.
 */
import yargs, { type Argv } from 'yargs';
import { CONFIG_FLAGS, Errors, SHOAL_VERSION, loadConfig, type Config } from '../cluster/index.ts';
import { COMMANDS, type CommandSpec, type SubcommandSpec } from './commands.ts';
import { ARG_DOCS, FLAG_DOCS, SWITCHES } from './flag-docs.ts';

const EPILOG = `Config flags on every command: --config FILE, and --<field> VALUE for any config field (e.g. --gateway.port 8081, --nats.port 0); then SHOAL_* environment variables and ./shoal.config.json. See docs/operations.md.`;

export interface CliResult {
  /** Exit code: 0, 1 (the command failed), 2 (usage). */
  code: number;
  /** What yargs wrote (help, completion script); a handler writes to stdout itself. */
  output: string;
  /** A usage error or the handler's error. */
  error?: unknown;
  /** The command path yargs matched and would run (e.g. ['models', 'deploy']); empty for help. */
  ran: string[];
}

function addFlags(y: Argv, args: string | undefined, flags: readonly string[], docs: Readonly<Record<string, string>> = {}, argDocs: Readonly<Record<string, string>> = {}): Argv {
  // Declared, so strict option checking knows positionals are not flags.
  for (const m of (args ?? '').matchAll(/[<[]([\w-]+)(\.\.)?[>\]]/g)) {
    const describe = argDocs[m[1]!] ?? ARG_DOCS[m[1]!];
    y.positional(m[1]!, { type: 'string', ...(describe ? { describe } : {}), ...(m[2] ? { array: true } : {}) });
  }
  for (const f of flags) {
    y.option(f, {
      describe: docs[f] ?? FLAG_DOCS[f] ?? '(see README)',
      ...(SWITCHES.has(f) ? { type: 'boolean' as const } : { type: 'string' as const, requiresArg: false }),
    });
  }
  return y;
}

/** The command path the raw arguments name (for error messages): command, then subcommand. */
export function commandPath(argv: readonly string[], table: readonly CommandSpec[] = COMMANDS): string[] {
  const pos = argv.filter((a) => !a.startsWith('-'));
  const cmd = table.find((c) => c.name === pos[0]);
  if (!cmd) return [];
  const sub = cmd.subcommands?.find((s) => s.name === pos[1]);
  return sub ? [cmd.name, sub.name] : [cmd.name];
}

/**
 * Builds the parser for a table. `run(spec, rest, sub)` is called for the matched command;
 * tests pass one that records instead of running.
 */
export function buildParser(table: readonly CommandSpec[], run: (spec: CommandSpec, rest: string[], sub?: SubcommandSpec) => Promise<void>, argv: string[]): Argv {
  const y = yargs(argv)
    .scriptName('shoal')
    .usage(`shoal ${SHOAL_VERSION} — a cluster for the AI features of SaaS products\n\nusage: shoal <command> [subcommand] [flags]`)
    .parserConfiguration({ 'dot-notation': false, 'camel-case-expansion': false, 'boolean-negation': false, 'duplicate-arguments-array': false })
    .version(false)
    .help('help')
    .alias('help', 'h')
    .option('config', { type: 'string', describe: 'config file (default ./shoal.config.json)', global: true, hidden: true })
    .epilog(EPILOG)
    .completion('completion', 'print a bash completion script (shoal completion >> ~/.bashrc)')
    .strictOptions()
    .strictCommands()
    .demandCommand(1, 'name a command')
    .wrap(process.stdout.isTTY ? Math.min(120, process.stdout.columns) : null);
  for (const f of CONFIG_FLAGS) y.option(f, { type: 'string', global: true, hidden: true });
  // The command's own position in argv: everything else is `rest`, as the old dispatch gave it.
  const restOf = (name: string) => {
    const at = argv.indexOf(name);
    return at >= 0 ? [...argv.slice(0, at), ...argv.slice(at + 1)] : argv;
  };
  for (const spec of table) {
    y.command({
      command: spec.subcommands ? `${spec.name} <subcommand>` : `${spec.name}${spec.args ? ` ${spec.args}` : ''}`,
      describe: spec.describe,
      builder: (c: Argv) => {
        if (!spec.subcommands) return addFlags(c, spec.args, spec.flags ?? [], spec.flagDocs, spec.argDocs);
        for (const sub of spec.subcommands) {
          c.command({
            command: `${sub.name}${sub.args ? ` ${sub.args}` : ''}`,
            describe: sub.describe,
            builder: (s: Argv) => addFlags(s, sub.args, sub.flags ?? spec.flags ?? [], spec.flagDocs, sub.argDocs),
            handler: () => run(spec, restOf(spec.name), sub),
          });
        }
        return c.demandCommand(1, 'name a subcommand');
      },
      handler: () => run(spec, restOf(spec.name)),
    });
  }
  return y;
}

/** yargs' words for a bad command line, with the command it was given to. */
function usageError(msg: string, argv: readonly string[], table: readonly CommandSpec[]): Error {
  const path = commandPath(argv, table);
  const where = path.length ? `shoal ${path.join(' ')}` : 'shoal';
  const unknown = /^Unknown arguments?: (.*)$/.exec(msg);
  const spec = table.find((c) => c.name === path[0]);
  const named = argv.filter((a) => !a.startsWith('-'))[1];
  if (spec?.subcommands && path.length === 1 && named !== undefined) msg = `unknown subcommand "${named}" (one of: ${spec.subcommands.map((x) => x.name).join(', ')})`;
  else if (/^Unknown command: /.test(msg)) msg = path.length > 0 ? `unexpected argument "${msg.replace(/^Unknown command: /, '')}"` : `unknown command "${msg.replace(/^Unknown command: /, '')}"`;
  if (/^Not enough non-option arguments/.test(msg)) msg = spec?.subcommands && path.length === 1 ? 'name a subcommand' : `missing an argument (${msg.replace(/^Not enough non-option arguments: /, '')})`;
  const what = unknown ? `unknown flag${unknown[1]!.includes(',') ? 's' : ''} ${unknown[1]!.split(', ').map((a) => (a.length > 1 ? `--${a}` : `-${a}`)).join(', ')}` : msg.split('\n')[0]!;
  return Errors.USAGE(`${where}: ${what} (see ${where} --help)`);
}

/** Loads the config with the command's flags let through, then runs its handler. */
export async function runCommand(spec: CommandSpec, rest: string[], sub?: SubcommandSpec): Promise<number> {
  const flags = [...(spec.flags ?? []), ...(sub?.flags ?? []), ...(spec.subcommands ?? []).flatMap((s) => s.flags ?? [])];
  const config = spec.noConfig ? (undefined as unknown as Config) : loadConfig({ argv: rest }, flags);
  return spec.run(rest, config);
}

/** Parses and runs one command line. Never exits the process; the caller does. */
export async function runCli(argv: string[], table: readonly CommandSpec[] = COMMANDS, handle: (spec: CommandSpec, rest: string[], sub?: SubcommandSpec) => Promise<number> = runCommand): Promise<CliResult> {
  if (argv.length === 0) argv = ['--help'];
  if (argv[0] === '--version') argv = ['version'];
  if (argv[0] === 'help') argv = [...argv.slice(1), '--help'];
  let code = 0;
  let error: unknown;
  let ran: string[] = [];
  const run = async (spec: CommandSpec, rest: string[], sub?: SubcommandSpec) => {
    ran = sub ? [spec.name, sub.name] : [spec.name];
    try {
      code = await handle(spec, rest, sub);
    } catch (err) {
      error = err;
      code = 1;
    }
  };
  let output = '';
  let failure: Error | undefined;
  const parser = buildParser(table, run, argv).fail((msg: string | null, err: Error | undefined) => {
    // Throwing stops yargs here: a bad command line runs nothing.
    failure = err ?? usageError(msg ?? 'bad command line', argv, table);
    throw failure;
  });
  try {
    await parser.parseAsync(argv, {}, (_err: Error | undefined, _argv: unknown, out: string) => {
      output = out;
    });
  } catch (err) {
    failure ??= err as Error;
  }
  if (failure) return { code: 2, output: '', error: failure, ran };
  return { code, output, ...(error !== undefined ? { error } : {}), ran };
}
