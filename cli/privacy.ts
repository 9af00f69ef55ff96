/**
 * `shoal privacy forget <column>=<value>[,<column>=<value>] [--reason TEXT] [--json]` (issue #20):
 * erases one entity — online features, offline feature log and its Parquet files, prediction log,
 * labels — through the scheduler's privacy service, and prints what it removed and which datasets
 * and model versions were built from the entity's data (to rebuild and retrain). An entity with no
 * record removes nothing and exits 0.
 */
import { ACTOR_HEADER } from '../ml/index.ts';
import { cliActor } from './governance.ts';
import { Errors, parseFlags, request, subjects, type Config } from '../cluster/index.ts';
import { formatForget, parseEntity, type ForgetResult } from '../ml/index.ts';
import { connectClient } from './status.ts';

export const PRIVACY_FLAGS = ['json', 'reason'];

const USAGE = 'usage: shoal privacy forget <key column>=<value>[,<key column>=<value>] [--reason TEXT] [--json]';

export async function privacyCommand(args: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(args);
  const [sub, arg] = positionals;
  if (sub !== 'forget' || !arg) throw Errors.USAGE(USAGE);
  const entity = parseEntity(arg);
  const reason = flags.get('reason');
  const nc = await connectClient(config);
  try {
    // A scan of the logs: minutes on a large stream, so a generous timeout.
    const r = await request<ForgetResult>(nc, subjects(config.subjectPrefix).privacyForget, { entity, ...(reason && reason !== 'true' ? { reason } : {}) }, { timeoutMs: 600_000, headers: { [ACTOR_HEADER]: cliActor() } });
    process.stdout.write(flags.has('json') ? `${JSON.stringify(r, null, 2)}\n` : `${formatForget(r)}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
