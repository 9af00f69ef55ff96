/**
 * Starting, stopping and asking a deployed version's monitor (monitor-actor.ts): what the
 * deployment code, the gateway's `GET /v1/models/{m}/monitoring` and `shoal monitor` use.
 */
import { ActorClient, Errors, openBucket, resources, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { isDeployment, type Deployment } from '../serving/canary.ts';
import { keys } from '../registry/schemas.ts';
import { monitorId, monitorSpec, type MonitorReport } from './monitor-actor.ts';
import type { MonitoringSpec } from './records.ts';

/** Whether a track deployed with `spec` gets a monitor. */
export const wantsMonitor = (spec: MonitoringSpec | undefined): spec is MonitoringSpec => spec !== undefined && spec.monitor !== false;

/** Spawns the version's monitor (already running is fine). A failure is logged, never fails the deploy. */
export async function startMonitor(client: ActorClient, model: string, version: number, spec: MonitoringSpec, log?: Logger): Promise<void> {
  try {
    await client.spawn(monitorSpec(model, version, spec), { timeoutMs: 30_000 });
    log?.info({ model, version, actorId: monitorId(model, version) }, 'model monitor spawned');
  } catch (err) {
    if (Errors.ACTOR_ALREADY_RUNNING.is(err)) return;
    log?.warn({ model, version, err: (err as Error).message }, 'model monitor not spawned (serving goes on; deploying the version again retries)');
  }
}

export async function stopMonitor(client: ActorClient, model: string, version: number, log?: Logger): Promise<void> {
  await client.stop(monitorId(model, version)).catch((err: unknown) => {
    if (!Errors.ACTOR_NOT_FOUND.is(err)) log?.warn({ model, version, err: (err as Error).message }, 'could not stop the model monitor');
  });
}

/** What `GET /v1/models/{m}/monitoring` answers: one entry per monitored track. */
export interface ModelMonitoring {
  model: string;
  versions: ({ version: number; role: 'stable' | 'canary'; actorId: string } & ({ report: MonitorReport } | { error: string }))[];
}

const fromUtf8 = new TextDecoder();

/** The deployment record of `model` (undefined when it is not deployed). */
export async function readDeployment(nc: NatsConnection, prefix: string, model: string): Promise<Deployment | undefined> {
  const kv = await openBucket(nc, resources(prefix).buckets.models);
  const e = await kv.get(keys.deployment(model));
  if (!e || e.operation !== 'PUT' || e.value.length === 0) return undefined;
  const d = JSON.parse(fromUtf8.decode(e.value)) as unknown;
  return isDeployment.Check(d) ? d : undefined;
}

/**
 * Asks the monitor of each monitored track of `model` for its report. Undefined when the model
 * is not deployed; a track whose monitor does not answer has `error`.
 */
export async function modelMonitoring(nc: NatsConnection, subjects: Subjects, model: string, timeoutMs = 3000): Promise<ModelMonitoring | undefined> {
  const dep = await readDeployment(nc, subjects.prefix, model);
  if (!dep) return undefined;
  const client = new ActorClient(nc, subjects);
  const tracks = [{ t: dep.stable, role: 'stable' as const }, ...(dep.canary ? [{ t: dep.canary, role: 'canary' as const }] : [])].filter((x) => wantsMonitor(x.t.monitoring));
  const versions = await Promise.all(
    tracks.map(async ({ t, role }) => {
      const actorId = monitorId(model, t.version);
      try {
        return { version: t.version, role, actorId, report: await client.ref(actorId).ask<MonitorReport>({ type: 'report' }, { timeoutMs }) };
      } catch (err) {
        return { version: t.version, role, actorId, error: (err as Error).message };
      }
    }),
  );
  return { model, versions };
}
