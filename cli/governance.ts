/**
 * Governance from the command line (issue #20): `shoal models card NAME@V [--json|--markdown]`,
 * `shoal models fairness NAME --policy JSON [--reason TEXT] | --clear | (show)`, the
 * `--override-fairness REASON` flag of deploy/canary/promote, and who the CLI says it is in the
 * audit log (`cli:<login name>`, or `SHOAL_ACTOR` when set).
 */
import { userInfo } from 'node:os';
import { Errors } from '../cluster/index.ts';
import { FairnessPolicy, ModelRegistry, cardMarkdown, getPolicy, type ModelCard, type RegistryClient } from '../ml/index.ts';
import { Value } from '@sinclair/typebox/value';

export const GOVERNANCE_MODEL_FLAGS = ['override-fairness', 'markdown', 'policy', 'reason', 'clear', 'intended-use', 'limitations'] as const;

/** Who the CLI is in the audit log. */
export function cliActor(): string {
  const env = process.env.SHOAL_ACTOR;
  if (env) return env;
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli:unknown';
  }
}

/** `{fairnessOverride: {reason}}` from `--override-fairness REASON`, or nothing. */
export function overrideOf(flags: Map<string, string>): { fairnessOverride?: { reason: string } } {
  if (!flags.has('override-fairness')) return {};
  const reason = flags.get('override-fairness')!;
  if (reason === 'true' || reason.trim().length < 3) throw Errors.USAGE('--override-fairness needs a reason (at least 3 characters), e.g. --override-fairness "approved by risk, ticket RISK-42"');
  return { fairnessOverride: { reason } };
}

/** `--intended-use` / `--limitations` for `register`. */
export function cardTextOf(flags: Map<string, string>): { intendedUse?: string; limitations?: string } {
  return { ...(flags.has('intended-use') ? { intendedUse: flags.get('intended-use')! } : {}), ...(flags.has('limitations') ? { limitations: flags.get('limitations')! } : {}) };
}

interface GovCtx {
  need(i: number, what: string): string;
  flags: Map<string, string>;
  control: RegistryClient;
  registry: ModelRegistry;
  print(value: unknown, text: string): void;
}

/** `NAME@V` (or `NAME --version V`; default latest). */
function nameAndVersion(c: GovCtx): { name: string; version: number | string } {
  const ref = c.need(0, 'NAME@VERSION');
  const [name, at] = ref.split('@', 2) as [string, string | undefined];
  const v = at ?? c.flags.get('version') ?? 'latest';
  return { name, version: /^\d+$/.test(v) ? Number(v) : v };
}

export async function cardCommand(c: GovCtx): Promise<number> {
  const { name, version } = nameAndVersion(c);
  const card: ModelCard = await c.control.card(name, version);
  if (c.flags.has('json')) process.stdout.write(`${JSON.stringify(card, null, 2)}\n`);
  else process.stdout.write(`${cardMarkdown(card)}\n`);
  return 0;
}

export async function fairnessCommand(c: GovCtx): Promise<number> {
  const name = c.need(0, 'NAME');
  if (c.flags.has('clear')) {
    await c.control.setFairnessPolicy(name, null, c.flags.get('reason'));
    c.print({ name, policy: null }, `${name}: fairness policy cleared`);
    return 0;
  }
  if (!c.flags.has('policy')) {
    const p = await getPolicy(c.registry, name);
    c.print({ name, policy: p ?? null }, p ? `${name}: ${JSON.stringify(p.policy)} (set by ${p.setBy} ${new Date(p.setAt).toISOString()}${p.reason ? `: ${p.reason}` : ''})` : `${name}: no fairness policy`);
    return 0;
  }
  let policy: unknown;
  try {
    policy = JSON.parse(c.flags.get('policy')!);
  } catch (err) {
    throw Errors.USAGE(`--policy: not JSON (${(err as Error).message}); e.g. --policy '{"disparateImpact":{"min":0.8},"equalizedOddsDifference":{"max":0.1}}'`);
  }
  const bad = [...Value.Errors(FairnessPolicy, policy)][0];
  if (bad) throw Errors.USAGE(`--policy${bad.path || ''}: ${bad.message}`);
  const r = await c.control.setFairnessPolicy(name, policy as FairnessPolicy, c.flags.get('reason'));
  c.print(r, `${name}: fairness policy set: ${JSON.stringify(policy)}`);
  return 0;
}
