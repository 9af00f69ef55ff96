/**
 * Scheduler entry point: ensures the cluster's JetStream resources, keeps the membership view
 * (declaring silent nodes dead), places actors (`shoal.sched.actors`: spawn / stop) and keeps
 * them placed (re-placement after a node dies or drains), and serves `shoal.sched.status`.
 * Cost-aware placement, autoscaling and the leader lease arrive with issue 4.
 */
import { hostname } from 'node:os';
import {
  Directory,
  Lifecycle,
  SchedulerActorRequest,
  Role,
  SchedulerStatusRequest,
  announce,
  componentLogger,
  ensureResources,
  openBucket,
  parseFlags,
  resources,
  runProcess,
  serve,
  type SchedulerStatus,
} from '../cluster/index.ts';
import { MembershipView } from './membership-view.ts';
import { ActorManager } from './actor-manager.ts';
import { LeastLoadedPlacer } from './simple-placement.ts';
import { encode } from '../cluster/index.ts';

const { flags } = parseFlags(process.argv.slice(2));
const schedulerId = flags.get('scheduler-id') ?? `scheduler-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

await runProcess({
  role: Role.SCHEDULER,
  id: schedulerId,
  extraFlags: ['scheduler-id'],
  async start(ctx) {
    let state: Lifecycle = Lifecycle.STARTING;
    const log = componentLogger(ctx.log, 'scheduler');
    await ensureResources(ctx.nc, { prefix: ctx.config.subjectPrefix });
    log.info('JetStream resources ready');
    const res = resources(ctx.config.subjectPrefix);
    const membership = new MembershipView(await openBucket(ctx.nc, res.buckets.nodes), ctx.config.membership.deadAfterMs, componentLogger(ctx.log, 'membership'));
    membership.onDead((nodeId) => ctx.nc.publish(ctx.subjects.event('node-dead'), encode({ nodeId, at: Date.now() })));
    await membership.start();
    const actors = new ActorManager({
      nc: ctx.nc,
      subjects: ctx.subjects,
      directory: new Directory(await openBucket(ctx.nc, res.buckets.actors)),
      membership,
      placer: new LeastLoadedPlacer(),
      log: componentLogger(ctx.log, 'actors'),
    });
    await actors.start();
    serve(ctx.nc, ctx.subjects.scheduler('status'), SchedulerStatusRequest, (): SchedulerStatus => ({ schedulerId, nodes: membership.view(), pending: actors.pending(), actors: actors.count() }), { log });
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
    );
    announce(ctx.nc, ctx.subjects, { role: Role.SCHEDULER, id: schedulerId, state: () => state, details: () => ({ nodes: membership.view().length }) }, log);
    state = Lifecycle.RUNNING;
    return {
      stop: async () => {
        state = Lifecycle.STOPPED;
        actors.stop();
        membership.stop();
      },
    };
  },
});
