/**
 * Tenancy of job submissions (`POST /v1/jobs`): the job, and the model a training job will
 * register, are recorded as the caller's tenant's before the job is queued; a training spec that
 * names another tenant's dataset or feature view is refused as if it did not exist; and the
 * job's `budget` is reserved against the tenant's training dollars per day (ml/governance/tenancy).
 * A caller of the `default` tenant (an open gateway) records nothing.
 */
import { randomUUID } from 'node:crypto';
import type { NatsConnection } from '../cluster/index.ts';
import { DEFAULT_TENANT, MlErrors, ModelRegistry, OwnedKind, TrainingSpend, mayAccess, type JobClient, type TenantQuotas } from '../ml/index.ts';
import type { Caller, TenantGuard } from './tenants.ts';

export interface JobTenancy {
  /** A fresh job id when the caller gave none (so it is owned before it is queued). */
  newId(): string;
  /**
   * Checks and records what the job will own and spend; returns the undo: the spend reservation
   * released, and with `failed` (the job was not queued) the job id's claim too when this
   * admission made it (a refused submission leaves no job owned).
   */
  admit(c: Caller, id: string, spec: Record<string, unknown>): Promise<(failed?: boolean) => Promise<void>>;
}

/** Feature views a training spec reads (`dataset.features`: `view` or `view@<version>`). */
function viewsOf(spec: Record<string, unknown>): string[] {
  const d = spec.dataset as { features?: unknown; labels?: { view?: unknown } } | undefined;
  if (typeof d !== 'object' || d === null) return [];
  const out = Array.isArray(d.features) ? d.features.filter((f): f is string => typeof f === 'string').map((f) => f.split('@')[0]!) : [];
  if (typeof d.labels?.view === 'string') out.push(d.labels.view);
  return out;
}

export function jobTenancy(nc: NatsConnection, prefix: string, guard: TenantGuard, quotas: TenantQuotas): JobTenancy {
  let spend: Promise<TrainingSpend> | undefined;
  let registry: Promise<ModelRegistry> | undefined;
  const exists = async (model: string) => {
    try {
      await (await (registry ??= ModelRegistry.open(nc, prefix))).get(model);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === MlErrors.MODEL_NOT_FOUND.code) return false;
      throw err;
    }
  };
  return {
    newId: () => randomUUID().replaceAll('-', ''),
    async admit(c, id, spec) {
      const owners = guard.owners;
      if (owners && !c.admin) {
        if (typeof spec.dataset === 'string') {
          const name = spec.dataset.split('@')[0]!;
          if (!mayAccess(owners.ownerOf(OwnedKind.DATASET, name), c.tenant, false)) throw MlErrors.DATASET_NOT_FOUND(spec.dataset);
        }
        for (const v of viewsOf(spec)) if (!mayAccess(owners.ownerOf(OwnedKind.VIEW, v), c.tenant, false)) throw MlErrors.FEATURE_VIEW_NOT_FOUND(v);
      }
      const owned = owners && c.tenant !== DEFAULT_TENANT ? owners : undefined;
      if (owned) {
        // Another tenant's job id is refused before anything is recorded.
        if (owned.ownerOf(OwnedKind.JOB, id) !== DEFAULT_TENANT && owned.ownerOf(OwnedKind.JOB, id) !== c.tenant) throw MlErrors.NAME_TAKEN(`job ${id}`);
        const model = (spec.model as { name?: unknown } | undefined)?.name;
        if (typeof model === 'string') {
          // A model that exists without an owner is the shared `default` tenant's: a tenant's job may not take it over.
          if (owned.ownerOf(OwnedKind.MODEL, model) !== c.tenant && (await exists(model))) throw MlErrors.NAME_TAKEN(`model ${model}`);
          await owned.claim(OwnedKind.MODEL, model, c.tenant);
        }
      }
      const release = quotas[c.tenant]?.trainingDollarsPerDay === undefined ? async () => {} : await (await (spend ??= TrainingSpend.open(nc, prefix, quotas))).reserve(c.tenant, id, spec);
      // The job id last: a submission refused above (a taken name, the budget) leaves no job owned.
      let claimed = false;
      if (owned) {
        try {
          claimed = (await owned.fetchOwner(OwnedKind.JOB, id)) !== c.tenant;
          await owned.claim(OwnedKind.JOB, id, c.tenant);
        } catch (err) {
          await release().catch(() => undefined);
          throw err;
        }
      }
      return async (failed = false) => {
        await release();
        if (failed && claimed) await owned!.assign(OwnedKind.JOB, id, DEFAULT_TENANT);
      };
    },
  };
}

/** A job submission as `POST /v1/jobs` and a tenant's `<prefix>.t.<tenant>.jobs.submit` take it. */
export interface JobSubmission {
  id?: string | undefined;
  actorType?: string | undefined;
  spec: Record<string, unknown>;
}

/**
 * The one submission path of HTTP and NATS: owned and its budget reserved (with `tenancy`) before
 * it is queued, undone when queueing fails or the id was queued already. `chargeTo`: the tenant
 * charged for its cost (none without API keys).
 */
export async function submitJob(jobs: JobClient, tenancy: JobTenancy | undefined, c: Caller, sub: JobSubmission, chargeTo: string | undefined): Promise<{ id: string; duplicate: boolean }> {
  const id = sub.id ?? tenancy?.newId();
  const undo = tenancy && id ? await tenancy.admit(c, id, sub.spec) : undefined;
  let r: { id: string; duplicate: boolean };
  try {
    r = await jobs.submit(sub.spec, { ...(id ? { id } : {}), ...(sub.actorType ? { actorType: sub.actorType } : {}), ...(chargeTo ? { tenant: chargeTo } : {}) });
  } catch (err) {
    await undo?.(true).catch(() => undefined);
    throw err;
  }
  if (r.duplicate) await undo?.().catch(() => undefined);
  return r;
}
