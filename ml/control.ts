/**
 * The control modules Shoal's scheduler runs by default (`scheduler.modules`:
 * `["shoal:ml/control.ts"]`; see cluster/control.ts): the registry/control service, through
 * which every other role changes models, aliases, deployments and datasets.
 */
import { defineControlModule } from '../cluster/index.ts';
import { startRegistryService } from './registry/service.ts';

export const controlModules = [
  defineControlModule({
    name: 'registry',
    // CAS writes: every scheduler process serves, in one queue group.
    start: (ctx) => startRegistryService({ nc: ctx.nc, subjects: ctx.subjects, log: ctx.log }),
  }),
];
