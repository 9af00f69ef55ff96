/**
 * The leader's request/reply API (`shoal.sched.<op>`): status, actor spawn/stop, node drain and
 * preemption notices, job cancel. Each request is checked against its TypeBox schema by
 * `serve()`, and a refusal is a typed error reply.
 */
import type { Subscription } from '@nats-io/transport-node';
import {
  SchedulerActorRequest,
  SchedulerJobRequest,
  SchedulerNodeRequest,
  SchedulerStatusRequest,
  encode,
  request,
  serve,
  type Logger,
  type ProcessContext,
  type SchedulerStatus,
} from '../cluster/index.ts';
import type { ActorManager } from './actor-manager.ts';
import type { Autoscaling } from './local-autoscaling.ts';
import { SchedulerErrors } from './errors.ts';
import type { JobQueue } from './job-queue.ts';
import type { MembershipView } from './membership-view.ts';

export interface SchedulerApiOptions {
  ctx: ProcessContext;
  schedulerId: string;
  membership: MembershipView;
  actors: ActorManager;
  jobs: JobQueue;
  autoscaling: Autoscaling;
  log: Logger;
}

export function serveSchedulerApi({ ctx, schedulerId, membership, actors, jobs, autoscaling, log }: SchedulerApiOptions): Subscription[] {
  return [
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
    serve(
      ctx.nc,
      ctx.subjects.scheduler('nodes'),
      SchedulerNodeRequest,
      async (req) => {
        const node = membership.view().find((n) => n.nodeId === req.nodeId);
        if (!node) throw SchedulerErrors.UNKNOWN_NODE(req.nodeId);
        if (req.type === 'preempt') {
          const noticeMs = req.noticeMs ?? ctx.config.autoscaler.noticeMs;
          log.warn({ nodeId: req.nodeId, pool: node.labels.pool, noticeMs }, 'spot preemption notice');
          ctx.nc.publish(ctx.subjects.event('preemption-notice'), encode({ nodeId: req.nodeId, pool: node.labels.pool, noticeMs, at: Date.now() }));
          await autoscaling.preempt(req.nodeId, node.labels.pool, noticeMs);
        } else {
          await request(ctx.nc, ctx.subjects.nodeCtl(req.nodeId), { type: 'drain', ...(req.deadlineMs !== undefined ? { deadlineMs: req.deadlineMs } : {}) }, { timeoutMs: 5000 });
        }
        return { nodeId: req.nodeId, state: 'draining' };
      },
      { log },
    ),
    serve(ctx.nc, ctx.subjects.scheduler('jobs'), SchedulerJobRequest, (req) => jobs.cancel(req.jobId), { log }),
  ];
}
