export { OwnerBook, OwnedKind, DEFAULT_TENANT, mayAccess } from './owners.ts';
export { checkReplicaQuota, TrainingSpend, type TenantQuotas, type ReplicaCounts } from './quotas.ts';
