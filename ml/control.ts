/**
 * The control modules Shoal's scheduler runs by default (`scheduler.modules`:
 * `["shoal:ml/control.ts"]`; see cluster/control.ts): the registry/control service, through
 * which every other role changes models, aliases, deployments and datasets; and, on the leader
 * only, the rollout controller, the one owner of canary verdicts, and the periodic compaction of
 * the feature log to Parquet.
 */
import { defineControlModule } from '../cluster/index.ts';
import { startFeatureCompactor } from './features/offline.ts';
import { startFeatureService } from './features/service.ts';
import { startRegistryService } from './registry/service.ts';
import { ModelDeployments } from './serving/deployments.ts';
import { RolloutController } from './serving/rollout.ts';

export const controlModules = [
  defineControlModule({
    name: 'registry',
    // CAS writes: every scheduler process serves, in one queue group.
    start: (ctx) => startRegistryService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
  defineControlModule({
    name: 'features',
    // Feature views (CAS) and pushes (offline log first, then the online store by CAS): every scheduler serves, in one queue group.
    start: (ctx) => startFeatureService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
  defineControlModule({
    name: 'features-compactor',
    // The feature log compacted to Parquet every 10 minutes, by one scheduler (manifest updates are CAS, so a
    // compaction requested meanwhile through the features service is safe too).
    leaderOnly: true,
    start: (ctx) => startFeatureCompactor({ nc: ctx.nc, prefix: ctx.subjects.prefix, log: ctx.log }),
  }),
  defineControlModule({
    name: 'rollout',
    // One place decides: started when this scheduler takes the lease, stopped when it loses it;
    // the standby's controller rebuilds its window from the gateways' next reports.
    leaderOnly: true,
    async start(ctx) {
      const controller = new RolloutController({ nc: ctx.nc, subjects: ctx.subjects, deployments: await ModelDeployments.open(ctx.nc, ctx.subjects, ctx.log), log: ctx.log });
      await controller.start();
      return controller;
    },
  }),
];
