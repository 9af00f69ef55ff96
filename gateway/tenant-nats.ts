/**
 * Tenants' job requests over NATS (README "Tenants over NATS"): `<prefix>.t.<tenant>.jobs.<op>`
 * (`submit`, `status`, `cancel`, `list`), served by every gateway in one queue group, so N
 * gateways share them. The tenant is the SUBJECT's: nats-server lets only that tenant's own user
 * (`tenant-<name>`, an NKey; cluster/auth.ts) publish there, so whoever sent the request is that
 * tenant. Each request runs the path of its HTTP twin with that tenant as the caller (never an
 * admin): `submit` is `POST /v1/jobs` (gateway/job-tenancy.ts: the job and the model it trains
 * owned by the tenant, a model name another tenant or the shared `default` tenant has is
 * `SHOAL_ERR_NAME_TAKEN`, the budget reserved against `trainingDollarsPerDay`), `status` and
 * `cancel` are `GET` / `DELETE /v1/jobs/{id}` (another tenant's job is the `SHOAL_ERR_JOB_NOT_FOUND`
 * of an unknown one, checked against the owners bucket itself), `list` is the tenant's own job ids
 * as this gateway's copy of the owners book has them (a job submitted through another gateway a
 * moment ago may be missing for a KV watch delivery). Each request counts against the
 * tenant's cluster-wide rate limit, as an HTTP request does. Bad input is a typed error reply
 * (`Shoal-Error-Code` / `Shoal-Error-Message` headers, cluster/rpc.ts), in the request's
 * content-type (JSON with `content-type: application/json`, else MessagePack).
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import { Type, type TSchema } from '@sinclair/typebox';
import { Errors, TENANT_JOB_OPS, serve, validate, type Logger, type NatsConnection, type Subjects, type TenantJobOp } from '../cluster/index.ts';
import { DEFAULT_TENANT, JobClient, OwnedKind, mayAccess } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import { submitJob, type JobTenancy } from './job-tenancy.ts';
import { humanSeconds } from './rate-limit.ts';
import { JobId, JobSubmitBody } from './routes/jobs.ts';
import type { Caller, TenantGuard } from './tenants.ts';

/** The gateways' queue group for tenants' requests. */
export const TENANT_QUEUE = 'shoal-gateway-tenants';

const IdBody = Type.Object({ id: JobId }, { additionalProperties: false });
const ListBody = Type.Union([Type.Null(), Type.Object({}, { additionalProperties: false })]);
const BODIES: Readonly<Record<TenantJobOp, TSchema>> = { submit: JobSubmitBody, status: IdBody, cancel: IdBody, list: ListBody };

export interface TenantNatsOptions {
  nc: NatsConnection;
  subjects: Subjects;
  guard: TenantGuard;
  tenancy: JobTenancy;
  log?: Logger;
}

export interface TenantNatsService {
  stop(): void;
}

/** `<prefix>.t.<tenant>.jobs.<op>` → tenant and op (the prefix is one token: subjects.ts). */
function parse(subject: string): { tenant: string; op: TenantJobOp } {
  const [, , tenant, , op] = subject.split('.');
  if (!tenant || !(TENANT_JOB_OPS as readonly string[]).includes(op ?? '')) throw GatewayErrors.NOT_FOUND(`operation "${op}" (tenant job operations: ${TENANT_JOB_OPS.join(', ')})`);
  // `default` (the shared tenant of an open gateway) is refused by admitTenant: no NATS user may act as it.
  return { tenant, op: op as TenantJobOp };
}

/**
 * A tenant's request admitted: never an admin, counted against its requests per minute (as an
 * HTTP request is), with the owners book it is checked against.
 */
export async function admitTenant(guard: TenantGuard, tenant: string): Promise<{ caller: Caller; owners: NonNullable<TenantGuard['owners']> }> {
  if (tenant === DEFAULT_TENANT) throw GatewayErrors.FORBIDDEN(`the ${DEFAULT_TENANT} tenant has no NATS requests`);
  const caller: Caller = { tenant, admin: false };
  const limit = guard.limitOf(caller);
  const hit = await guard.counter.hit(`tenant:${tenant}`, limit);
  if (hit.current > limit) throw GatewayErrors.RATE_LIMITED(tenant, limit, humanSeconds(Math.ceil(hit.ttlMs / 1000)));
  // Ownership decides everything here: without the owners book nothing could be checked or recorded.
  const owners = await guard.followOwners();
  if (!owners) throw GatewayErrors.TENANCY_UNAVAILABLE('the owners bucket is not there yet (a scheduler creates it)');
  return { caller, owners };
}

/** Starts serving tenants' job requests on this gateway's connection (queue group {@link TENANT_QUEUE}). */
export function startTenantNats(o: TenantNatsOptions): TenantNatsService {
  let client: Promise<JobClient> | undefined;
  const jobs = () => (client ??= JobClient.open(o.nc, o.subjects.prefix).catch((err: unknown) => {
    client = undefined;
    throw err;
  }));
  const handle = async (body: unknown, m: Msg): Promise<unknown> => {
    const { tenant, op } = parse(m.subject);
    // The rate limit first (as HTTP's onRequest hook), then the body.
    const { caller: c, owners } = await admitTenant(o.guard, tenant);
    const req = validate(BODIES[op], body ?? null, m.subject) as Record<string, unknown>;
    switch (op) {
      case 'submit': {
        const sub = req as { id?: string; actorType?: string; spec: Record<string, unknown> };
        return submitJob(await jobs(), o.tenancy, c, sub, tenant);
      }
      case 'status':
      case 'cancel': {
        // The owner as the bucket has it now (one round trip), not this gateway's cache: the job may
        // have been submitted through another gateway a moment ago.
        const id = req.id as string;
        if (!mayAccess(await owners.fetchOwner(OwnedKind.JOB, id), c.tenant, false)) throw Errors.JOB_NOT_FOUND(id);
        return op === 'status' ? (await jobs()).get(id) : (await jobs()).cancel(id);
      }
      case 'list':
        return { tenant, ids: owners.ownedBy(OwnedKind.JOB, tenant).sort() };
    }
  };
  const sub: Subscription = serve(o.nc, o.subjects.tenantJobsAny, Type.Unknown(), handle, { queue: TENANT_QUEUE, ...(o.log ? { log: o.log } : {}) });
  return { stop: () => sub.unsubscribe() };
}
