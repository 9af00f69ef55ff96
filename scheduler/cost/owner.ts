/**
 * Who owns an actor, for cost: a model version's inference replicas (service
 * `model-<name>-v<version>`) and its monitor (`monitor-<name>-v<version>`), a job's coordinator and workers (group or id `job-<id>`), else
 * nobody (control and user actors, charged to `_system`). The scheduler knows this from the
 * directory entry alone; the tenant of a job comes from its record.
 */
import type { DirectoryEntry, NodeView } from '../../cluster/index.ts';
import type { NodePrice, Owner } from './ledger.ts';

const MODEL_SERVICE = /^model-(.+)-v(\d+)$/;
/** A deployed version's monitor actor (ml/monitoring): its cost is the version's too. */
const MONITOR_ACTOR = /^monitor-(.+)-v(\d+)$/;

/** The model version a service serves (`name@v<version>`), if it is a model version's service. */
export function modelOfService(service: string | undefined): string | undefined {
  const m = service ? MODEL_SERVICE.exec(service) : null;
  return m ? `${m[1]}@v${m[2]}` : undefined;
}

/** The job an actor works for, from its group (workers) or its own id (the coordinator). */
export function jobOf(e: Pick<DirectoryEntry, 'actorId' | 'spec'>): string | undefined {
  const g = e.spec.group ?? e.actorId;
  return g.startsWith('job-') ? g.slice(4) : undefined;
}

export function ownerOf(e: Pick<DirectoryEntry, 'actorId' | 'spec'>, jobTenant: (jobId: string) => string | undefined): Owner {
  const model = modelOfService(e.spec.service);
  if (model) return { model };
  const monitor = MONITOR_ACTOR.exec(e.actorId);
  if (monitor && e.spec.type === 'model-monitor') return { model: `${monitor[1]}@v${monitor[2]}` };
  const job = jobOf(e);
  if (job) {
    const tenant = jobTenant(job);
    return { job, ...(tenant ? { tenant } : {}) };
  }
  return {};
}

/** A node's price and capacity as the ledger needs them. */
export function nodePrice(n: Pick<NodeView, 'labels' | 'capabilities'>): NodePrice {
  return {
    pricePerHour: n.labels.pricePerHour,
    cpus: n.capabilities.cpus,
    memoryBytes: n.capabilities.memoryBytes,
    gpus: n.capabilities.gpu ? 1 : 0,
    spot: n.labels.spot,
    pool: n.labels.pool,
  };
}
