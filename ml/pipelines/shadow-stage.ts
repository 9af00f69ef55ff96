/**
 * The shadow stage of a run, between the gates and the canary: the candidate is started as the
 * deployment's shadow track (ml/serving/shadow-track.ts), gateways mirror `fraction` of the stable
 * version's requests to it and tally how its answers compare (gateway/shadow-mirror.ts), the
 * rollout controller adds the tallies up, and after `durationMs` this stage asks it for the sums
 * (`shoal.sched.shadow-report`) and judges them (ml/serving/shadow.ts `judgeShadow`). The shadow
 * is cleared whatever the outcome — pass, fail or error — and production is never touched.
 *
 * Resumable: the time is measured from the shadow track's `since` in the deployment record, and a
 * shadow already at the candidate is reused, so a new leader resuming the run continues the same
 * shadow instead of starting a second one. Too few compared rows by `maxWaitMs` fails the run
 * (the candidate was not shown to be wrong, so it is not marked rejected).
 */
import { Errors, request, type Clock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { TrackState, type Deployment } from '../serving/canary.ts';
import type { ModelDeployments } from '../serving/deployments.ts';
import { judgeShadow, type ShadowCounts } from '../serving/shadow.ts';
import { MlErrors } from '../errors.ts';
import type { RunRecord, ShadowStageReport } from './store.ts';

export interface ShadowStageOptions {
  nc: NatsConnection;
  subjects: Subjects;
  deployments: ModelDeployments;
  log: Logger;
  clock: Clock;
  /** How often the sums are asked for once the duration is over. @default 1000 */
  pollMs?: number;
}

const skipped = (reason: string): ShadowStageReport => ({ compared: 0, agreement: 0, distance: 0, pass: true, skipped: true, reason });

export async function shadowStage(o: ShadowStageOptions, r: RunRecord): Promise<ShadowStageReport> {
  const spec = r.spec.shadow;
  const model = r.spec.model;
  const version = r.candidate!.version;
  if (!spec) return skipped('no shadow in the pipeline spec');
  if (r.spec.rollout.direct) return skipped('rollout.direct: promoted without shadow or canary');
  const dep = await o.deployments.get(model);
  if (!dep) return skipped(`${model} is not deployed: nothing to mirror`);
  if (dep.stable.version === version) return skipped(`v${version} already serves`);
  const wait = (ms: number) => new Promise<void>((resolve) => o.clock.after(ms, resolve));
  const pollMs = o.pollMs ?? 1000;
  let ended = 'judged';
  try {
    let d: Deployment = dep;
    if (d.shadow?.version !== version || d.shadow.state !== TrackState.READY) {
      d = await o.deployments.shadow(model, { version, fraction: spec.fraction, replicas: 1, maxBatchSize: dep.stable.maxBatchSize, maxQueueDelayMs: dep.stable.maxQueueDelayMs });
      o.log.info({ pipeline: r.pipeline, run: r.run, model, version, fraction: spec.fraction }, 'pipeline candidate serves as a shadow');
    }
    const since = d.shadow!.since;
    const judgeAt = since + spec.durationMs;
    const giveUpAt = since + Math.max(spec.durationMs, spec.maxWaitMs);
    for (;;) {
      // The leader's clock is the wall clock (systemClock), as the track's `since` is.
      const now = o.clock.now();
      if (now >= judgeAt) {
        const sums = await request<ShadowCounts>(o.nc, o.subjects.scheduler('shadow-report'), { model, version, since }, { timeoutMs: 5000 });
        const j = judgeShadow(spec, sums);
        if (j.pass !== undefined) {
          ended = j.pass ? 'passed' : 'failed';
          o.log.info({ pipeline: r.pipeline, run: r.run, model, version, compared: j.compared, agreement: j.agreement, distance: j.distance, pass: j.pass }, 'pipeline shadow judged');
          return { compared: j.compared, agreement: j.agreement, distance: j.distance, errors: j.errors, pass: j.pass, reason: j.reason };
        }
        if (now >= giveUpAt) {
          ended = 'too few rows';
          throw Errors.TIMEOUT(`shadow of ${model} v${version} (${j.reason})`, giveUpAt - since);
        }
      }
      await wait(Math.max(1, Math.min(pollMs, judgeAt - now > 0 ? judgeAt - now : pollMs)));
      const cur = (await o.deployments.get(model))?.shadow;
      if (cur?.version !== version || cur.since !== since) {
        ended = 'removed';
        throw MlErrors.CANARY_NOT_READY(model, `the shadow v${version} was removed or replaced while it ran`);
      }
    }
  } finally {
    // Every outcome clears the shadow (only this candidate's: another version's is not ours).
    await o.deployments.clearShadow(model, `pipeline ${r.pipeline} run ${r.run}: ${ended}`, version).catch((err: unknown) => o.log.warn({ model, version, err }, 'could not clear the shadow'));
  }
}
