/**
 * The deploy-time check of a scale-to-zero deployment: its options are coherent, and some alive
 * node could start its replica again — a model no node can host would otherwise look deployed
 * and fail every cold start, minutes later, in front of a user.
 */
import { Errors, request, type NatsConnection, type SchedulerStatus, type Subjects } from '../../cluster/index.ts';
import { liveHostReason } from '../../scheduler/index.ts';
import { MlErrors } from '../errors.ts';
import { INFERENCE_ACTOR_TYPE } from './messages.ts';
import { resolveScaleToZero, type ScaleToZero } from './scale-to-zero-spec.ts';
import type { TrackOptions } from './deployments.ts';

/** The resolved options when `o` asks for scale-to-zero (`minReplicas: 0`), else undefined; throws a 4xx when refused. */
export async function checkScaleToZero(nc: NatsConnection, subjects: Subjects, model: string, o: TrackOptions): Promise<ScaleToZero | undefined> {
  if (o.minReplicas === undefined) {
    if (o.scaleToZero) throw Errors.USAGE('scaleToZero options need minReplicas 0');
    return undefined;
  }
  if (o.minReplicas > 0) throw Errors.USAGE(`minReplicas ${o.minReplicas}: only 0 (scale to zero) is taken here; for a replica range use autoscale { minReplicas, maxReplicas }`);
  if (o.autoscale) throw Errors.USAGE('minReplicas 0 (scale to zero) and autoscale cannot be combined yet: use one of them');
  const status = await request<SchedulerStatus>(nc, subjects.scheduler('status'), { type: 'status' }, { timeoutMs: 5000 });
  const why = liveHostReason(
    { type: INFERENCE_ACTOR_TYPE, kind: 'inference', ...(o.resources ? { resources: o.resources } : {}), ...(o.constraints ? { constraints: o.constraints } : {}) },
    status.nodes,
  );
  if (why) throw MlErrors.SCALE_TO_ZERO_REFUSED(model, `no alive node could start its replica again (${why})`);
  return resolveScaleToZero(o.scaleToZero);
}
