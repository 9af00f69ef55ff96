/**
 * The `shoal` command. The commands, their flags and handlers are a table (cli/commands.ts);
 * cli/parser.ts builds the yargs parser from it: `shoal --help`, `shoal <command> --help`,
 * `shoal <command> <subcommand> --help`, `shoal completion`. Config flags (`--gateway.port 8081`,
 * `--config FILE`, …) apply to every command.
 */
import { fail } from '../cluster/index.ts';
import { runCli } from './parser.ts';

async function main(): Promise<number> {
  const r = await runCli(process.argv.slice(2));
  if (r.output) process.stdout.write(r.output.endsWith('\n') ? r.output : `${r.output}\n`);
  if (r.error !== undefined) fail(r.error);
  return r.code;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => fail(err),
);
