/**
 * `shoal audit [--since TIME] [--model NAME] [--limit N] [--json]`: the audit log, oldest first —
 * when, who, what, which model and version, why. TIME is ISO 8601 or a duration back from now
 * (`30m`, `2h`, `7d`). The CLI's client role may ask; the gateway's GET /v1/audit is admin-only.
 */
import { Errors, parseFlags, subjects, type Config } from '../cluster/index.ts';
import { RegistryClient, type AuditEntry } from '../ml/index.ts';
import { cliActor } from './governance.ts';
import { connectClient } from './status.ts';

export const AUDIT_FLAGS = ['since', 'model', 'limit', 'json'];

const UNIT: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `since` as epoch ms: ISO 8601, epoch ms, or a duration back from `now`. */
export function sinceOf(v: string, now: number): number {
  const d = /^(\d+(?:\.\d+)?)([smhd])$/.exec(v);
  if (d) return now - Number(d[1]) * UNIT[d[2]!]!;
  const t = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw Errors.USAGE(`--since: "${v}" is not a time (ISO 8601, epoch ms, or a duration like 30m, 2h, 7d)`);
  return t;
}

export function formatAudit(es: readonly AuditEntry[]): string {
  if (es.length === 0) return 'no audit entries';
  return es
    .map((e) => `${new Date(e.at).toISOString()}  ${e.action.padEnd(16)} ${`${e.target}${e.version ? ` v${e.version}` : ''}`.padEnd(24)} by ${e.who}${e.why ? ` — ${e.why}` : ''}`)
    .join('\n');
}

export async function auditCommand(args: string[], config: Config): Promise<number> {
  const { flags } = parseFlags(args);
  const limit = flags.has('limit') ? Number(flags.get('limit')) : undefined;
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1)) throw Errors.USAGE(`--limit: a positive integer, got "${flags.get('limit')}"`);
  const since = flags.has('since') ? sinceOf(flags.get('since')!, Date.now()) : undefined;
  const nc = await connectClient(config);
  try {
    const entries = await new RegistryClient(nc, subjects(config.subjectPrefix), cliActor()).audit({ ...(since !== undefined ? { since } : {}), ...(flags.get('model') ? { target: flags.get('model')! } : {}), ...(limit ? { limit } : {}) });
    process.stdout.write(flags.has('json') ? `${JSON.stringify(entries, null, 2)}\n` : `${formatAudit(entries)}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
