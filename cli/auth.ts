/**
 * `shoal node-user <nodeId>…`: what an operator of an external NATS (`nats.servers`) adds for a
 * node: its user entry for nats-server's `authorization { users = [...] }` (user `node-<id>`, its
 * derived password, and its permissions from the role table), and with `--env` the variables
 * the node process needs instead. The node secret comes from `nats.nodeSecret`
 * (`SHOAL_NATS_NODE_SECRET`), else from the credentials a local `shoal up` wrote.
 */
import { resolve } from 'node:path';
import { Errors, nodeCredential, nodeUserEntry, parseFlags, readCredentials, type Config } from '../cluster/index.ts';

export const AUTH_FLAGS = ['env', 'json'] as const;

export function nodeUserCommand(argv: string[], config: Config): number {
  const { flags, positionals } = parseFlags(argv);
  if (positionals.length === 0) throw Errors.USAGE('usage: shoal node-user <nodeId>… [--env | --json]');
  const secret = config.nats.nodeSecret ?? readCredentials(resolve(config.dataDir)).nodeSecret;
  if (!secret) throw Errors.BAD_CONFIG('nats.nodeSecret', 'not set, and the local credentials have none');
  const out: string[] = [];
  for (const nodeId of positionals) {
    const cred = nodeCredential(secret, nodeId);
    if (flags.has('env')) out.push(`SHOAL_NATS_USER=${cred.user}`, `SHOAL_NATS_PASS=${cred.pass}`);
    else if (flags.has('json')) out.push(JSON.stringify({ nodeId, ...cred }));
    else out.push(nodeUserEntry(secret, nodeId, config.subjectPrefix));
  }
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}
