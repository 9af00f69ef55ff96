/**
 * The fairness gate: a model's policy (models KV, key `fairness.<name>`, written by the registry
 * service only) judged against the audit stored with a version, before that version takes
 * traffic — `canary`, `promote`, `deploy` and a training job's automatic canary all pass through
 * the registry service, which asks here first. No policy: nothing is checked. A blocked version
 * goes ahead only with an override that gives a reason (recorded in the audit log by the caller).
 */
import { DatasetStore } from '../../datasets/store.ts';
import { MlErrors } from '../../errors.ts';
import type { ModelRegistry } from '../../registry/registry.ts';
import { fairnessOf, type FairnessAudit } from './audit.ts';
import { declaredAttributes, judge, undeclared, type FairnessPolicy, type Verdict } from './policy.ts';

export const policyKey = (model: string) => `fairness.${model}`;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export interface StoredPolicy {
  policy: FairnessPolicy;
  setBy: string;
  setAt: number;
  reason?: string;
}

export async function getPolicy(registry: ModelRegistry, model: string): Promise<StoredPolicy | undefined> {
  const e = await registry.kv.get(policyKey(model));
  if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
  return JSON.parse(fromUtf8.decode(e.value)) as StoredPolicy;
}

/** The audit stored with a version (inside its reference profile), if any. */
export async function versionAudit(registry: ModelRegistry, model: string, version: number): Promise<FairnessAudit | undefined> {
  return fairnessOf(await registry.loadReference(await registry.version(model, version)));
}

/**
 * Sets (or with `null` clears) a model's policy. Refused (SHOAL_ERR_BAD_FAIRNESS_POLICY) when it
 * names an attribute that neither the latest version's audit nor its dataset declares.
 */
export async function setPolicy(registry: ModelRegistry, datasets: DatasetStore | undefined, model: string, policy: FairnessPolicy | null, by: { who: string; reason?: string }): Promise<StoredPolicy | null> {
  if (policy === null) {
    await registry.kv.delete(policyKey(model));
    return null;
  }
  const rec = await registry.get(model);
  if (rec.latest === 0) throw MlErrors.BAD_FAIRNESS_POLICY(model, 'the model has no version yet to declare sensitive attributes');
  const declared = await versionAttributes(registry, datasets, model, rec.latest);
  const missing = undeclared(policy, declared);
  if (missing.length > 0) throw MlErrors.BAD_FAIRNESS_POLICY(model, `attribute${missing.length > 1 ? 's' : ''} ${missing.map((a) => `"${a}"`).join(', ')} not declared (declared: ${declared.length ? declared.map((a) => `"${a}"`).join(', ') : 'none'})`);
  const stored: StoredPolicy = { policy, setBy: by.who, setAt: Date.now(), ...(by.reason ? { reason: by.reason } : {}) };
  await registry.kv.put(policyKey(model), utf8.encode(JSON.stringify(stored)));
  return stored;
}

/**
 * The sensitive attributes a version declares: those of its audit (intersections included) and of
 * its dataset — `sensitive`/`extraSensitive`, which a training set built from feature views fills
 * from the views' sensitive features (ml/features/training-set.ts).
 */
export async function versionAttributes(registry: ModelRegistry, datasets: DatasetStore | undefined, model: string, version: number): Promise<string[]> {
  const mv = await registry.version(model, version);
  const audit = fairnessOf(await registry.loadReference(mv).catch(() => undefined));
  const fromDataset: string[] = [];
  if (datasets && mv.lineage.datasetDigest) {
    const dv = await datasets.resolve(`sha256:${mv.lineage.datasetDigest}`).catch(() => undefined);
    if (dv?.sensitiveName) fromDataset.push(dv.sensitiveName);
    fromDataset.push(...(dv?.extraSensitiveNames ?? []));
  }
  return declaredAttributes(audit, fromDataset);
}

export interface GateResult {
  /** A policy was checked. */
  checked: boolean;
  verdict?: Verdict;
  /** The version failed and went ahead on an override. */
  overridden: boolean;
}

/** Throws SHOAL_ERR_FAIRNESS_BLOCKED when `version` fails the model's policy and no override is given. */
export async function fairnessGate(registry: ModelRegistry, model: string, version: number, op: string, override?: { reason: string }): Promise<GateResult> {
  const stored = await getPolicy(registry, model);
  if (!stored) return { checked: false, overridden: false };
  const verdict = judge(stored.policy, await versionAudit(registry, model, version), `v${version}`);
  if (verdict.pass) return { checked: true, verdict, overridden: false };
  if (!override) throw MlErrors.FAIRNESS_BLOCKED(model, version, op, verdict.violations.map((v) => v.message).join('; '));
  return { checked: true, verdict, overridden: true };
}
