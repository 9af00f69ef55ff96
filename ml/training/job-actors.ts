/**
 * What a job's coordinator (a training job, a batch scoring job) does to get its worker actors
 * running: spawn the ones that do not answer — all at once as a gang when none does and the job
 * asks for it — wait until every one answers, and keep trying while the cluster is short of
 * capacity (the record says so) rather than failing the job. A spec no node can ever take fails
 * the job at once. Also the nodes' prices, which both coordinators put in their cost records.
 */
import { Errors, errorCode, request, type ActorContext, type SchedulerStatus, type SpawnSpec } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';

/** Whether the actor answers an `info` ask within 5 s. */
export function answers(ctx: ActorContext, id: string): Promise<boolean> {
  return ctx.system
    .ref(id)
    .ask({ type: 'info' }, { timeoutMs: 5000 })
    .then(() => true)
    .catch(() => false);
}

/** $/hour of each node, from the scheduler's view (empty when it does not answer). */
export async function nodePrices(ctx: ActorContext): Promise<Map<string, number>> {
  try {
    const st = await request<SchedulerStatus>(ctx.nc, ctx.subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 2000 });
    return new Map(st.nodes.map((n) => [n.nodeId, n.labels.pricePerHour]));
  } catch {
    return new Map();
  }
}

export interface StartActorsOptions {
  jobId: string;
  /** The spawn spec every actor shares (its id is set per actor). */
  base: SpawnSpec;
  ids: readonly string[];
  /** Spawn a fresh set of more than one as one gang (all placed or none) under this id (its replicas are `<id>-1…`, which must be `ids`). */
  gang?: string;
  stopped: () => boolean;
  /** Records that the job waits for capacity (its PLACING state and reason). */
  waiting: (reason: string) => Promise<unknown>;
  /** Between tries while capacity is short. @default 2000 */
  retryMs?: number;
  /** Tries before giving up. @default 60 */
  attempts?: number;
}

/** Starts the actors of `ids` that do not answer and waits until all do. */
export async function startJobActors(ctx: ActorContext, o: StartActorsOptions): Promise<void> {
  const { ids, base } = o;
  // An id already running (or pending) is fine: the runtime keeps it placed.
  const ok = (err: unknown) => {
    if (!Errors.ACTOR_ALREADY_RUNNING.is(err)) throw err;
  };
  for (let attempt = 0; ; attempt++) {
    const missing: string[] = [];
    for (const id of ids) if (!(await answers(ctx, id))) missing.push(id);
    if (missing.length === 0) return;
    try {
      if (o.gang && missing.length === ids.length && ids.length > 1) await ctx.system.spawn({ ...base, id: o.gang }, { replicas: ids.length, gang: true }).catch(ok);
      else for (const id of missing) await ctx.system.spawn({ ...base, id }).catch(ok);
      // Wait for them to answer (a pending one is being placed).
      for (const id of ids) await ctx.system.ref(id).ask({ type: 'info' }, { timeoutMs: 10_000, retry: { attempts: 20, delayMs: 250 } });
      return;
    } catch (err) {
      if (errorCode(err) === 'SHOAL_ERR_UNSCHEDULABLE' || Errors.UNKNOWN_ACTOR_TYPE.is(err)) throw MlErrors.BAD_JOB(o.jobId, (err as Error).message);
      if (attempt > (o.attempts ?? 60) || o.stopped()) throw err;
      await o.waiting(`waiting for capacity: ${(err as Error).message}`);
      await new Promise((res) => setTimeout(res, o.retryMs ?? 2000));
    }
  }
}
