/**
 * Per-tenant quotas that hold across the cluster (config `tenants.<name>`):
 *
 * - replicas: checked by the registry service at deploy and canary, against the replicas of every
 *   deployment the tenant owns (stable + canary tracks, from the deployment records in KV);
 * - training dollars per UTC day: reserved at submit from the job spec's `budget` (the most the
 *   job may spend: the coordinator stops it there), as a CAS counter per tenant and day in the
 *   `tenantSpend` bucket — so two gateways cannot both hand out the last dollars. A refused or
 *   failed submission gives its reservation back. A tenant with a daily limit must give a budget.
 *
 * The `default` tenant (operators over NATS, an open gateway) has the quotas `tenants.default`
 * gives, for spend; replica counts need owner records, which `default` resources do not have,
 * so its replicas are not limited.
 */
import { Kvm } from '@nats-io/kv';
import { WindowCounter, resources, type NatsConnection, type TenantQuota } from '../../../cluster/index.ts';
import { MlErrors } from '../../errors.ts';
import { DEFAULT_TENANT, OwnedKind, type OwnerBook } from './owners.ts';

export type TenantQuotas = Readonly<Record<string, TenantQuota>>;

const DAY_MS = 86_400_000;

/** A deployment record's replicas per track (the parts of `Deployment` this needs). */
export interface ReplicaCounts {
  stable: { replicas: number };
  canary?: { replicas: number } | undefined;
}

/**
 * Refuses a deploy (`track: 'stable'`) or canary of `model` with `replicas` when its owner would
 * then run more replicas than `maxReplicas`. `current(name)` reads a deployment record.
 */
export async function checkReplicaQuota(
  quotas: TenantQuotas,
  owners: OwnerBook,
  current: (name: string) => Promise<ReplicaCounts | undefined>,
  model: string,
  track: 'stable' | 'canary',
  replicas: number,
): Promise<void> {
  const tenant = await owners.fetchOwner(OwnedKind.MODEL, model);
  const max = quotas[tenant]?.maxReplicas;
  if (max === undefined || tenant === DEFAULT_TENANT) return;
  let used = 0;
  for (const name of new Set([...owners.ownedBy(OwnedKind.MODEL, tenant), model])) {
    const d = await current(name);
    if (!d) continue;
    // The track being replaced does not count: its replicas go when the new ones come.
    if (!(name === model && track === 'stable')) used += d.stable.replicas;
    if (d.canary && !(name === model && track === 'canary')) used += d.canary.replicas;
  }
  if (used + replicas > max) throw MlErrors.QUOTA_EXCEEDED(tenant, `${track} of ${model} asks ${replicas} replicas; the tenant runs ${used} of its ${max}`);
}

/** The training budget per tenant and UTC day, counted in cents in NATS KV. */
export class TrainingSpend {
  readonly #counter: WindowCounter;
  readonly #quotas: TenantQuotas;

  constructor(counter: WindowCounter, quotas: TenantQuotas) {
    this.#counter = counter;
    this.#quotas = quotas;
  }

  static async open(nc: NatsConnection, prefix: string, quotas: TenantQuotas, now?: () => number): Promise<TrainingSpend> {
    const kv = await new Kvm(nc).open(resources(prefix).buckets.tenantSpend);
    return new TrainingSpend(new WindowCounter(kv, { windowMs: DAY_MS, ...(now ? { now } : {}) }), quotas);
  }

  /**
   * Reserves a job's budget against its tenant's day; returns the release (call it when the
   * submission fails), or throws QUOTA_EXCEEDED / BAD_JOB. No limit: nothing is counted.
   */
  async reserve(tenant: string, jobId: string, spec: Record<string, unknown>): Promise<() => Promise<void>> {
    const limit = this.#quotas[tenant]?.trainingDollarsPerDay;
    if (limit === undefined) return async () => {};
    const budget = spec.budget;
    if (typeof budget !== 'number' || !Number.isFinite(budget) || budget < 0) {
      throw MlErrors.BAD_JOB(jobId, `tenant ${tenant} has a training budget of $${limit} per day: the spec must give budget (dollars, the most this job may spend)`);
    }
    const cents = Math.ceil(budget * 100);
    if (cents === 0) return async () => {};
    const c = await this.#counter.add(tenant, cents);
    const release = async () => {
      await this.#counter.add(tenant, -cents);
    };
    if (c.current > Math.round(limit * 100)) {
      await release();
      const before = (c.current - cents) / 100;
      throw MlErrors.QUOTA_EXCEEDED(tenant, `training budget $${budget} on top of $${before.toFixed(2)} already reserved today exceeds $${limit} per day`);
    }
    return release;
  }
}
