/**
 * Autoscaling on this machine, as the scheduler process runs it when `autoscaler.enabled`: the
 * local provider (node agents as child processes, in per-pool node-id slots) driven by the
 * autoscaler, which starts nodes for pending actors and stops idle ones, and spot preemption
 * notices. Its catalogue is the one built from the configured node profiles
 * (`catalogueFromProfiles`, catalogue.ts).
 */
import { nodeCredential, request, type Config, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { Autoscaler } from './autoscaler/autoscaler.ts';
import { ScalingController } from './autoscaler/controller.ts';
import { LocalProvider } from './providers/local.ts';
import { PoolRisk } from './spot/pool-risk.ts';
import type { Catalogue, PlacementRequest } from './types.ts';
import type { ClusterPlacer } from './actor-placer.ts';
import type { SchedulerMetrics } from './scheduler-metrics.ts';

/** Node ids the autoscaler may give nodes of each profile's pool: `<pool>-auto-<k>`, k ≤ `autoscaler.maxPerPool` (empty when it is off). */
export function autoscalerNodeIds(config: Config): string[] {
  if (!config.autoscaler.enabled) return [];
  return [...new Set(config.nodes.map((p) => p.labels.pool))].flatMap((pool) => Array.from({ length: config.autoscaler.maxPerPool }, (_, i) => `${pool}-auto-${i + 1}`));
}

/** `args` without `--<flag> value` / `--<flag>=value`. */
export function withoutFlag(args: readonly string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${flag}`) {
      i++;
      continue;
    }
    if (a.startsWith(`--${flag}=`)) continue;
    out.push(a);
  }
  return out;
}

export interface AutoscalingOptions {
  config: Config;
  nc: NatsConnection;
  subjects: Subjects;
  placer: ClusterPlacer;
  risk: PoolRisk;
  catalogue: Catalogue;
  pending: () => PlacementRequest[];
  log: Logger;
  /** Flags every launched node agent gets (the cluster's own config flags). */
  nodeArgs: string[];
  /** Counts autoscaler decisions and spot notices. */
  metrics?: SchedulerMetrics;
}

export interface Autoscaling {
  provider: LocalProvider | undefined;
  /** A spot preemption notice for `nodeId`: drain it within the notice, mark its pool risky. */
  preempt(nodeId: string, pool: string | undefined, noticeMs: number): Promise<void>;
  stop(): Promise<void>;
}

export function startAutoscaling(o: AutoscalingOptions): Autoscaling {
  const { config, log } = o;
  let provider: LocalProvider | undefined;
  let timer: NodeJS.Timeout | undefined;
  let controller: ScalingController | undefined;
  if (config.autoscaler.enabled) {
    const secret = config.nats.nodeSecret;
    if (!secret) log.error('autoscaler.enabled but nats.nodeSecret (SHOAL_NATS_NODE_SECRET) is not set: cannot give launched nodes their credentials');
    else {
      // Launched nodes get their own credential (derived here) and never the secret itself.
      const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LOG_PRETTY: 'false' };
      delete env.SHOAL_NATS_NODE_SECRET;
      // `shoal up` gives the scheduler its metrics port this way: not the launched nodes' to take.
      delete env.SHOAL_METRICS_PORT;
      provider = new LocalProvider({
        catalogue: o.catalogue,
        nc: o.nc,
        env,
        credential: (nodeId) => nodeCredential(secret, nodeId),
        slotsPerPool: config.autoscaler.maxPerPool,
        args: withoutFlag(o.nodeArgs, 'nats.nodeSecret'),
        subjectPrefix: config.subjectPrefix,
        noticeMs: config.autoscaler.noticeMs,
        onLine: (nodeId, line) => process.stdout.write(line.startsWith('{') ? `${line}\n` : `[${nodeId}] ${line}\n`),
      });
      controller = new ScalingController({
        autoscaler: new Autoscaler({ catalogue: o.catalogue, budgetPerHour: config.autoscaler.budgetPerHour, idleTimeoutMs: config.autoscaler.idleTimeoutMs, risk: o.risk }),
        provider,
        placer: o.placer.placer,
        log,
      });
      controller.start();
      let busy = false;
      timer = setInterval(() => {
        if (busy) return;
        busy = true;
        controller!
          .reconcile(o.pending())
          .then((r) => {
            const m = o.metrics;
            if (m) {
              for (const n of r.launched) m.autoscaled('launch', n.pool);
              for (const f of r.failed) m.autoscaled('launch-failed', f.pool);
              // Launched nodes are named `<pool>-auto-<k>` (autoscalerNodeIds).
              for (const id of r.terminated) m.autoscaled('terminate', id.replace(/-auto-\d+$/, ''));
            }
            if (r.launched.length || r.terminated.length || r.failed.length) log.info({ launched: r.launched.map((n) => n.nodeId), terminated: r.terminated, failed: r.failed, unmet: r.plans.at(-1)?.unmet }, 'autoscaler round');
          })
          .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'autoscaler round failed'))
          .finally(() => (busy = false));
      }, config.autoscaler.intervalMs);
      log.info({ budgetPerHour: config.autoscaler.budgetPerHour, pools: o.catalogue.pools.map((p) => `${p.name}≤${p.max}`) }, 'autoscaler on (local provider)');
    }
  }
  return {
    provider,
    async preempt(nodeId, pool, noticeMs) {
      o.metrics?.spotNotice(pool ?? 'unknown');
      if (pool) o.risk.mark(pool);
      if (provider && (await provider.list()).some((n) => n.nodeId === nodeId)) {
        void provider.preempt(nodeId, noticeMs).catch((err: unknown) => log.warn({ nodeId, err: (err as Error).message }, 'preemption failed'));
        return;
      }
      // A node we did not launch (started by `shoal up`): the notice is a drain with a deadline.
      await request(o.nc, o.subjects.nodeCtl(nodeId), { type: 'drain', deadlineMs: noticeMs }, { timeoutMs: 5000 });
    },
    async stop() {
      if (timer) clearInterval(timer);
      controller?.stop();
      if (provider) await provider.close();
    },
  };
}
