/**
 * `shoal cost [--by tenant|model|job|owner] [--since 1h] [--json]`: spend attributed by the
 * scheduler leader's cost ledger — per tenant, per model version (with predictions and dollars
 * per 1,000 of them), per job, or per full owner. `shoal cost recommend [--json]`: right-sizing
 * advice (replicas, instances, node profiles, batching) with the expected $/h change.
 */
import { Errors, parseFlags, subjects, type Config } from '../cluster/index.ts';
import { COST_GROUPS, costAdvice, costReport, formatCostAdvice, formatCostReport, parseSince, type CostGroup } from '../scheduler/index.ts';
import { connectClient } from './status.ts';

export const COST_FLAGS = ['by', 'since', 'json'];

const USAGE = 'usage: shoal cost [--by tenant|model|job|owner] [--since 1h] [--json] | shoal cost recommend [--json]';

export async function costCommand(args: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(args);
  const sub = positionals[0];
  if (sub !== undefined && sub !== 'recommend') throw Errors.USAGE(`unknown subcommand "${sub}"\n${USAGE}`);
  const by = (flags.get('by') ?? (sub ? undefined : 'owner')) as CostGroup | undefined;
  if (by !== undefined && !COST_GROUPS.includes(by)) throw Errors.USAGE(`--by: one of ${COST_GROUPS.join(', ')}, got "${by}"`);
  const sinceText = flags.get('since');
  const sinceMs = sinceText === undefined ? undefined : parseSince(sinceText);
  if (sinceText !== undefined && sinceMs === undefined) throw Errors.USAGE(`--since: a duration such as 90s, 15m, 1h or 7d, got "${sinceText}"`);
  const nc = await connectClient(config);
  try {
    const s = subjects(config.subjectPrefix);
    if (sub === 'recommend') {
      const a = await costAdvice(nc, s);
      process.stdout.write(`${flags.has('json') ? JSON.stringify(a, null, 2) : formatCostAdvice(a)}\n`);
      return 0;
    }
    const r = await costReport(nc, s, { ...(by ? { by } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}) });
    process.stdout.write(`${flags.has('json') ? JSON.stringify(r, null, 2) : formatCostReport(r)}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
