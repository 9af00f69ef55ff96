/**
 * Continuous training (issue #16): `GET /v1/pipelines/{name}/runs` — a pipeline's runs, oldest
 * first, each with its trigger, data digest, job, gate report, shadow report, canary steps and decision. A
 * pipeline is its model's: another tenant's key gets the same 404 as for a pipeline that does not
 * exist (tenancy as for `/v1/models/{name}`); admin keys see every pipeline.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { NatsConnection, Subjects } from '../../cluster/index.ts';
import { OwnedKind, OwnerBook, PipelineClient, mayAccess } from '../../ml/index.ts';
import { GatewayErrors } from '../errors.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function registerPipelineRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects }): void {
  const client = new PipelineClient(deps.nc, deps.subjects);
  let owners: Promise<OwnerBook> | undefined;
  app.get(
    '/v1/pipelines/:name/runs',
    {
      schema: {
        tags: ['v1'],
        summary: "A pipeline's runs (continuous training): trigger, data snapshot, training job, gate report, shadow report, canary steps, decision",
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }),
      },
    },
    async (req) => {
      const { name } = req.params;
      const spec = await client.spec(name);
      const notFound = GatewayErrors.NOT_FOUND(`pipeline "${name}"`);
      if (!spec) throw notFound;
      if (!req.shoalAdmin && req.shoalTenant !== undefined) {
        owners ??= OwnerBook.open(deps.nc, deps.subjects.prefix);
        if (!mayAccess(await (await owners).fetchOwner(OwnedKind.MODEL, spec.spec.model), req.shoalTenant, false)) throw notFound;
      }
      return { pipeline: name, model: spec.spec.model, revision: spec.revision, runs: (await client.runs(name)) ?? [] };
    },
  );
}
