/**
 * Scheduler entry point. Today it ensures the cluster's JetStream resources, keeps the
 * membership view and serves `shoal.sched.status`; placement, autoscaling and the job-queue
 * consumer arrive with their issues (4, 7).
 */
import { hostname } from 'node:os';
import {
  Lifecycle,
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
    const bucket = await openBucket(ctx.nc, resources(ctx.config.subjectPrefix).buckets.nodes);
    const membership = new MembershipView(bucket, ctx.config.membership.deadAfterMs, componentLogger(ctx.log, 'membership'));
    await membership.start();
    serve(ctx.nc, ctx.subjects.scheduler('status'), SchedulerStatusRequest, (): SchedulerStatus => ({ schedulerId, nodes: membership.view() }), { log });
    announce(ctx.nc, ctx.subjects, { role: Role.SCHEDULER, id: schedulerId, state: () => state, details: () => ({ nodes: membership.view().length }) }, log);
    state = Lifecycle.RUNNING;
    return {
      stop: async () => {
        state = Lifecycle.STOPPED;
        membership.stop();
      },
    };
  },
});
