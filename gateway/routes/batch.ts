/**
 * Batch inference over HTTP: `POST /v1/batch` queues a batch scoring job (the same job queue as
 * `POST /v1/jobs`, actor type `batch-score-job`) and answers 202 with its id, the model version
 * the alias resolved to and the input's digest; follow it with `GET /v1/jobs/{id}` (progress:
 * shards done, rows/s; result: the scores dataset and its lineage), cancel it with
 * `DELETE /v1/jobs/{id}`.
 *
 * Checked before anything is queued: the body by its schema (a 400 naming the field); the model
 * and the dataset exist and the dataset's columns are the model's (a 400 `SHOAL_ERR_BAD_JOB`
 * naming the columns); with tenants, the caller may read the model and the dataset (another
 * tenant's answer as if they did not exist) and the job is recorded as the caller's, as for
 * `POST /v1/jobs`.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { NatsConnection } from '../../cluster/index.ts';
import { BatchSpec, OwnedKind, submitBatch, type JobClient } from '../../ml/index.ts';
import { tenantOf, type TenantGuard } from '../tenants.ts';
import type { JobTenancy } from '../job-tenancy.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

// The spec's fields (ml/batch/spec.ts), each optional where the spec has a default, plus the job id.
const p = BatchSpec.properties;
const BatchBody = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'job id; the same id twice runs once' })),
    model: Type.String({ ...p.model, description: 'name, name@alias (fraud@production) or name@version' }),
    dataset: Type.String({ ...p.dataset, description: 'the dataset to score: name, name@<digest prefix> or sha256:<digest>' }),
    out: Type.Optional(Type.String({ ...p.out, description: 'name of the scores dataset (default <dataset>-scores)' })),
    shardRows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'rows per shard, the unit of work and checkpoint (default 2000)' })),
    replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'model replicas the shards are mapped over (default 2)' })),
    spotOk: Type.Optional(Type.Boolean({ description: 'replicas may run on spot capacity (default true)' })),
  },
  { additionalProperties: false },
);

export function registerBatchRoutes(app: App, deps: { nc: NatsConnection; prefix: string; jobs: () => Promise<JobClient>; tenancy?: JobTenancy; guard?: TenantGuard }): void {
  // Opened on first use (the jobs bucket is the scheduler's, which may start later); reopened after a failure.
  let client: Promise<JobClient> | undefined;
  const jobs = () => (client ??= deps.jobs().catch((err: unknown) => {
    client = undefined;
    throw err;
  }));
  app.post('/v1/batch', { schema: { tags: ['jobs'], summary: 'Queue a batch scoring job: a dataset scored with a model version on spot workers (follow it at /v1/jobs/{id})', body: BatchBody } }, async (req, reply) => {
    const { id: given, ...spec } = req.body;
    const caller = { tenant: req.shoalTenant, admin: req.shoalAdmin };
    deps.guard?.checkAccess(caller, OwnedKind.MODEL, spec.model.split('@')[0]!, '/v1/batch');
    const id = given ?? deps.tenancy?.newId();
    const undo = deps.tenancy && id ? await deps.tenancy.admit(caller, id, spec) : undefined;
    let r: Awaited<ReturnType<typeof submitBatch>>;
    try {
      const t = tenantOf(req);
      r = await submitBatch(deps.nc, deps.prefix, await jobs(), spec, { ...(id ? { id } : {}), ...(t === 'anonymous' ? {} : { tenant: t }) });
    } catch (err) {
      await undo?.().catch(() => undefined);
      throw err;
    }
    if (r.duplicate) await undo?.().catch(() => undefined);
    return reply
      .status(202)
      .header('location', `/v1/jobs/${r.id}`)
      .send({ id: r.id, duplicate: r.duplicate, model: r.plan.mv.name, version: r.plan.mv.version, dataset: `${r.plan.dv.name}@sha256:${r.plan.dv.digest}`, rows: r.plan.dv.rows, out: r.plan.out });
  });
}
