/**
 * Training jobs over HTTP: `POST /v1/jobs` queues a job (idempotent by `id` in the body or the
 * `idempotency-key` header: the same id twice runs once) and answers 202 with its id;
 * `GET /v1/jobs/{id}` is its state, progress and result; `DELETE /v1/jobs/{id}` cancels it (both
 * 404 `SHOAL_ERR_JOB_NOT_FOUND` for an id with no job).
 *
 * What is checked where: the body's shape by the route's schema (closed: an unknown top-level
 * field is a 400, the gateway's Ajv refuses what it does not allow instead of dropping it); the
 * job type by `JobClient.submit` (one no live node offers as a job type is a 400,
 * `SHOAL_ERR_UNKNOWN_JOB_TYPE`); a training spec (the default job type) also by
 * `JobClient.submit`, before queueing, so a bad field is a 400 naming it. The `training-job`
 * actor validates the spec again when the job starts, for submitters that publish on
 * `shoal.jobs.submit` without the gateway; a bad one there shows up as `failed` with the reason.
 * Other job types' specs are checked only by their job's actor (`failed` with the reason).
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { JobClient } from '../../ml/index.ts';
import { tenantOf } from '../tenants.ts';
import { submitJob, type JobTenancy } from '../job-tenancy.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const JobId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
/** A submission's body (HTTP `POST /v1/jobs`, and a tenant's `<prefix>.t.<tenant>.jobs.submit` over NATS). */
export const JobSubmitBody = Type.Object({ id: Type.Optional(JobId), actorType: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })), spec: Type.Record(Type.String(), Type.Unknown()) }, { additionalProperties: false });

export function registerJobRoutes(app: App, open: () => Promise<JobClient>, tenancy?: JobTenancy): void {
  // Opened on first use: the jobs bucket is created by the scheduler, which may start later.
  let client: Promise<JobClient> | undefined;
  const jobs = () => (client ??= open().catch((err: unknown) => {
    client = undefined;
    throw err;
  }));
  app.post(
    '/v1/jobs',
    {
      schema: {
        body: JobSubmitBody,
        headers: Type.Object({ 'idempotency-key': Type.Optional(JobId) }),
      },
    },
    async (req, reply) => {
      // With tenants, the job (and the model it trains) is owned and its budget reserved before it is queued.
      const t = tenantOf(req);
      const r = await submitJob(await jobs(), tenancy, { tenant: req.shoalTenant, admin: req.shoalAdmin }, { id: req.body.id ?? req.headers['idempotency-key'], actorType: req.body.actorType, spec: req.body.spec }, t === 'anonymous' ? undefined : t);
      return reply.status(202).header('location', `/v1/jobs/${r.id}`).send({ id: r.id, duplicate: r.duplicate });
    },
  );
  app.get('/v1/jobs/:id', { schema: { params: Type.Object({ id: JobId }) } }, async (req) => (await jobs()).get(req.params.id));
  app.delete('/v1/jobs/:id', { schema: { params: Type.Object({ id: JobId }) } }, async (req) => (await jobs()).cancel(req.params.id));
}
