/**
 * The control modules Shoal's scheduler runs by default (`scheduler.modules`:
 * `["shoal:ml/control.ts"]`; see cluster/control.ts): the registry/control service, through
 * which every other role changes models, aliases, deployments and datasets; and, on the leader
 * only, the rollout controller, the one owner of canary verdicts, and the periodic compaction of
 * the feature log to Parquet.
 */
import { appendAudit } from './governance/audit/log.ts';
import { defineControlModule, replicasFor } from '../cluster/index.ts';
import { startFeatureCompactor } from './features/offline.ts';
import { startFeatureService } from './features/service.ts';
import { startPrivacyService } from './governance/privacy/service.ts';
import { startPipelineService } from './pipelines/service.ts';
import { startPipelineRunner } from './pipelines/leader.ts';
import { startRegistryService } from './registry/service.ts';
import { ModelDeployments } from './serving/deployments.ts';
import { RolloutController } from './serving/rollout.ts';
import { ZeroController } from './serving/zero-controller.ts';
import { FeedbackJoin, startFeedbackService, startMonitoringStreams, type MonitoringLimits } from './monitoring/feedback.ts';
import type { ControlContext } from '../cluster/index.ts';

const limitsOf = (ctx: ControlContext): MonitoringLimits => {
  const m = ctx.config.monitoring;
  return { horizonMs: m.joinHorizonMs, predictionsMaxAgeMs: m.predictionsMaxAgeMs, predictionsMaxBytes: m.predictionsMaxBytes, labelsMaxAgeMs: m.labelsMaxAgeMs, labeledMaxBytes: m.labeledMaxBytes, replicas: replicasFor(ctx.config.nats.url, ctx.config.nats.replicas) };
};

export const controlModules = [
  defineControlModule({
    name: 'registry',
    // CAS writes: every scheduler process serves, in one queue group.
    start: (ctx) => startRegistryService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log, tenants: ctx.config.tenants }),
  }),
  defineControlModule({
    name: 'features',
    // Feature views (CAS) and pushes (offline log first, then the online store by CAS): every scheduler serves, in one queue group.
    start: (ctx) => startFeatureService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
  defineControlModule({
    name: 'privacy',
    // Erasure of an entity (GDPR Art. 17): online store, offline log and its Parquet files, prediction log; every scheduler serves, one at a time each.
    start: (ctx) => startPrivacyService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
  defineControlModule({
    name: 'features-compactor',
    // The feature log compacted to Parquet every 10 minutes, by one scheduler (manifest updates are CAS, so a
    // compaction requested meanwhile through the features service is safe too).
    leaderOnly: true,
    start: (ctx) => startFeatureCompactor({ nc: ctx.nc, prefix: ctx.subjects.prefix, log: ctx.log }),
  }),
  defineControlModule({
    name: 'feedback',
    // Model monitoring's streams (prediction log, labels, joined rows; idempotent) and the feedback
    // service: every scheduler serves labels, in one queue group (each is checked, then appended).
    async start(ctx) {
      await startMonitoringStreams(ctx.nc, ctx.subjects.prefix, limitsOf(ctx));
      if (!ctx.config.monitoring.feedback) return { stop: () => undefined };
      return startFeedbackService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log });
    },
  }),
  defineControlModule({
    name: 'feedback-join',
    // The join of labels with logged predictions: one place holds the pending labels and the
    // counters; its durable consumers resume where the last leader's stopped.
    leaderOnly: true,
    async start(ctx) {
      if (!ctx.config.monitoring.feedback) return { stop: () => undefined };
      await startMonitoringStreams(ctx.nc, ctx.subjects.prefix, limitsOf(ctx));
      const m = ctx.config.monitoring;
      return FeedbackJoin.start({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log, horizonMs: m.joinHorizonMs, maxPending: m.maxPendingLabels });
    },
  }),
  defineControlModule({
    name: 'rollout',
    // One place decides: started when this scheduler takes the lease, stopped when it loses it;
    // the standby's controller rebuilds its window from the gateways' next reports.
    leaderOnly: true,
    async start(ctx) {
      const controller = new RolloutController({
        nc: ctx.nc,
        subjects: ctx.subjects,
        deployments: await ModelDeployments.open(ctx.nc, ctx.subjects, ctx.log),
        log: ctx.log,
        // Automatic rollbacks go in the audit log too (ml/governance/audit).
        onRollback: (model, version, verdict) =>
          void appendAudit(ctx.nc, ctx.subjects, { who: 'system:rollout', action: 'rollback', target: model, version, why: verdict.reason ?? 'canary breached its rollback policy' }).catch((err: unknown) => ctx.log.error({ model, version, err }, 'audit append failed')),
      });
      await controller.start();
      return controller;
    },
  }),
  defineControlModule({
    name: 'scale-to-zero',
    // Idle minReplicas-0 tracks stop and wakes start them: decided in one place (zero-controller.ts).
    leaderOnly: true,
    async start(ctx) {
      const controller = new ZeroController({ nc: ctx.nc, subjects: ctx.subjects, deployments: await ModelDeployments.open(ctx.nc, ctx.subjects, ctx.log), log: ctx.log });
      await controller.start();
      return controller;
    },
  }),
  defineControlModule({
    name: 'pipelines',
    // Applying pipelines and manual triggers (CAS in KV): every scheduler serves, in one queue group.
    start: (ctx) => startPipelineService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
  defineControlModule({
    name: 'pipeline-runner',
    // Continuous training (ml/pipelines): interval and alert triggers, and every run driven stage by
    // stage from its KV record, so the standby continues the same run after a failover.
    leaderOnly: true,
    async start(ctx) {
      return startPipelineRunner({ nc: ctx.nc, subjects: ctx.subjects, deployments: await ModelDeployments.open(ctx.nc, ctx.subjects, ctx.log), log: ctx.log, instance: ctx.schedulerId });
    },
  }),
];
