/**
 * Scheduler entry point. Every scheduler process ensures the cluster's JetStream resources and
 * contends for the leader lease (KV `leases`, revision CAS). The leader alone places actors
 * (`shoal.sched.actors`: spawn / stop, cost-aware placement), keeps them placed (re-placement
 * after a node dies or drains), declares silent nodes dead and serves `shoal.sched.status`; a
 * standby only answers presence pings until the lease comes to it.
 */
import { hostname } from 'node:os';
import type { Subscription } from '@nats-io/transport-node';
import {
  Directory,
  Lifecycle,
  Role,
  SchedulerActorRequest,
  SchedulerStatusRequest,
  announce,
  componentLogger,
  encode,
  ensureResources,
  openBucket,
  parseFlags,
  resources,
  runProcess,
  serve,
  type ProcessContext,
  type SchedulerStatus,
} from '../cluster/index.ts';
import { MembershipView } from './membership-view.ts';
import { ActorManager } from './actor-manager.ts';
import { ClusterPlacer } from './runtime-placer.ts';
import { LeaderLease } from './leader.ts';

const { flags } = parseFlags(process.argv.slice(2));
const schedulerId = flags.get('scheduler-id') ?? `scheduler-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

/** What only the leader runs; returns its stop function. */
async function lead(ctx: ProcessContext): Promise<() => void> {
  const log = componentLogger(ctx.log, 'scheduler');
  const res = resources(ctx.config.subjectPrefix);
  const membership = new MembershipView(await openBucket(ctx.nc, res.buckets.nodes), ctx.config.membership.deadAfterMs, componentLogger(ctx.log, 'membership'));
  membership.onDead((nodeId) => ctx.nc.publish(ctx.subjects.event('node-dead'), encode({ nodeId, at: Date.now() })));
  await membership.start();
  const actors = new ActorManager({
    nc: ctx.nc,
    subjects: ctx.subjects,
    directory: new Directory(await openBucket(ctx.nc, res.buckets.actors)),
    membership,
    placer: new ClusterPlacer({ strategy: ctx.config.scheduler.strategy }),
    log: componentLogger(ctx.log, 'actors'),
  });
  await actors.start();
  const subs: Subscription[] = [
    serve(ctx.nc, ctx.subjects.scheduler('status'), SchedulerStatusRequest, (): SchedulerStatus => ({ schedulerId, nodes: membership.view(), pending: actors.pending(), actors: actors.count() }), { log }),
    serve(
      ctx.nc,
      ctx.subjects.scheduler('actors'),
      SchedulerActorRequest,
      async (req) => {
        if (req.type === 'spawn') return actors.spawn(req.spec, req.replicas ?? 1, req.gang ?? false);
        await actors.stopActor(req.actorId);
        return { actorId: req.actorId, state: 'stopped' };
      },
      { log },
    ),
  ];
  log.info({ strategy: ctx.config.scheduler.strategy }, 'leading: placing actors');
  return () => {
    for (const s of subs) s.unsubscribe();
    actors.stop();
    membership.stop();
  };
}

await runProcess({
  role: Role.SCHEDULER,
  id: schedulerId,
  extraFlags: ['scheduler-id'],
  async start(ctx) {
    let state: Lifecycle = Lifecycle.STARTING;
    const log = componentLogger(ctx.log, 'scheduler');
    await ensureResources(ctx.nc, { prefix: ctx.config.subjectPrefix });
    log.info('JetStream resources ready');
    const lease = new LeaderLease({
      kv: await openBucket(ctx.nc, resources(ctx.config.subjectPrefix).buckets.leases),
      holderId: schedulerId,
      ttlMs: ctx.config.scheduler.leaseTtlMs,
      log: componentLogger(ctx.log, 'lease'),
    });
    let stopLeading: (() => void) | undefined;
    // Leadership changes are applied one at a time, in order.
    let chain = Promise.resolve();
    lease.onChange((leading) => {
      chain = chain.then(async () => {
        if (leading && !stopLeading) stopLeading = await lead(ctx);
        else if (!leading && stopLeading) {
          log.warn('lost the leader lease: standing by');
          stopLeading();
          stopLeading = undefined;
        }
      });
    });
    announce(ctx.nc, ctx.subjects, { role: Role.SCHEDULER, id: schedulerId, state: () => state, details: () => ({ leader: lease.isLeader() }) }, log);
    await lease.start();
    await chain;
    if (!lease.isLeader()) log.info({ leader: lease.leader() }, 'standing by');
    state = Lifecycle.RUNNING;
    return {
      info: { leader: lease.isLeader() },
      stop: async () => {
        state = Lifecycle.STOPPED;
        stopLeading?.();
        await lease.stop({ release: true });
      },
    };
  },
});
