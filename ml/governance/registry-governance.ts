/**
 * Governance around the registry service's operations: the fairness gate before a version takes
 * traffic (`deploy`, `canary`, `promote`), an audit entry after every governed change (register,
 * alias move, deploy, canary, promote, rollback, undeploy, dataset, fairness policy, override),
 * and the governance reads (`fairness-policy`, `card`, `audit`). The registry service wraps its
 * handlers with this once; the handlers themselves stay as they were.
 *
 * Who: the `Shoal-Actor` header of the request (the CLI, gateway and training jobs set it), else
 * `unknown`. An audit append that fails after the change succeeded is logged as an error (the
 * change is not undone).
 */
import type { Msg } from '@nats-io/transport-node';
import type { Logger, NatsConnection, RegistryOp, Subjects } from '../../cluster/index.ts';
import type { DatasetStore } from '../datasets/store.ts';
import type { RegistryRequest } from '../registry/protocol.ts';
import { resolveRef, type ModelRegistry } from '../registry/registry.ts';
import type { ModelDeployments } from '../serving/deployments.ts';
import { ACTOR_HEADER, appendAudit, readAudit, type AuditEntry } from './audit/log.ts';
import { buildCard } from './card/card.ts';
import { fairnessGate, setPolicy, type GateResult } from './fairness/gate.ts';

type Handler<Op extends RegistryOp> = (req: RegistryRequest<Op>, m?: Msg) => Promise<unknown>;
export type RegistryHandlers = { [Op in RegistryOp]: Handler<Op> };
/** The operations as the registry service writes them (without the governance reads). */
export type BaseHandlers = Omit<RegistryHandlers, 'fairness-policy' | 'card' | 'audit'>;

export interface GovernanceContext {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  registry: ModelRegistry;
  deployments: ModelDeployments;
  datasets: DatasetStore;
}

export const actorOf = (m?: Msg): string => {
  const h = m?.headers?.get(ACTOR_HEADER);
  return h ? h.slice(0, 256) : 'unknown';
};

export function governHandlers(h: BaseHandlers, ctx: GovernanceContext): RegistryHandlers {
  const { registry, deployments } = ctx;
  const record = async (e: Omit<AuditEntry, 'at' | 'seq'>) => {
    try {
      await appendAudit(ctx.nc, ctx.subjects, e);
    } catch (err) {
      ctx.log.error({ action: e.action, target: e.target, version: e.version, err }, 'audit append failed (the change itself went through)');
    }
  };
  /** Gate, then (when overridden) record the override before the change. */
  const gate = async (op: string, name: string, version: number, who: string, override?: { reason: string }): Promise<GateResult> => {
    const g = await fairnessGate(registry, name, version, op, override);
    if (g.overridden)
      await record({ who, action: 'override', target: name, version, why: override!.reason, details: { op, violations: g.verdict!.violations.map((v) => ({ metric: v.metric, attribute: v.attribute, groups: v.groups, value: v.value, interval: v.interval })) } });
    return g;
  };
  const fairnessDetails = (g: GateResult) => (g.checked ? { fairness: g.overridden ? 'overridden' : 'passed' } : {});

  return {
    ...h,
    register: async (req, m) => {
      const mv = (await h.register(req, m)) as { version: number; sha256: string };
      await record({ who: actorOf(m), action: 'register', target: req.name, version: mv.version, details: { sha256: mv.sha256, ...(req.aliases ? { aliases: req.aliases } : {}) } });
      return mv;
    },
    'register-dataset': async (req, m) => {
      const v = (await h['register-dataset'](req, m)) as { digest: string; rows: number };
      await record({ who: actorOf(m), action: 'register-dataset', target: req.name, details: { digest: v.digest, rows: v.rows } });
      return v;
    },
    alias: async (req, m) => {
      const r = await h.alias(req, m);
      await record({ who: actorOf(m), action: 'alias', target: req.name, version: req.version, details: { alias: req.alias } });
      return r;
    },
    'delete-alias': async (req, m) => {
      const r = await h['delete-alias'](req, m);
      await record({ who: actorOf(m), action: 'alias', target: req.name, details: { alias: req.alias, deleted: true } });
      return r;
    },
    'rollback-alias': async (req, m) => {
      const r = (await h['rollback-alias'](req, m)) as { from: number; to: number };
      await record({ who: actorOf(m), action: 'rollback-alias', target: req.name, version: r.to, details: { alias: req.alias ?? 'production', from: r.from } });
      return r;
    },
    deploy: async (req, m) => {
      const { fairnessOverride, ...rest } = req;
      const rec = await registry.get(req.name);
      const version = req.version === undefined ? (rec.aliases.production ?? resolveRef(rec, 'latest')) : resolveRef(rec, req.version);
      const who = actorOf(m);
      const g = await gate('deploy', req.name, version, who, fairnessOverride);
      const r = await h.deploy(rest, m);
      await record({ who, action: 'deploy', target: req.name, version, details: { replicas: req.replicas ?? 1, ...fairnessDetails(g) } });
      return r;
    },
    canary: async (req, m) => {
      const { fairnessOverride, ...rest } = req;
      const version = resolveRef(await registry.get(req.name), req.version ?? 'latest');
      const who = actorOf(m);
      const g = await gate('canary', req.name, version, who, fairnessOverride);
      const r = await h.canary(rest, m);
      await record({ who, action: 'canary', target: req.name, version, details: { weight: req.weight ?? 0.1, ...fairnessDetails(g) } });
      return r;
    },
    promote: async (req, m) => {
      const { fairnessOverride, ...rest } = req;
      const canary = (await deployments.get(req.name))?.canary?.version;
      const who = actorOf(m);
      // No canary: the promote itself says so.
      const g = canary !== undefined ? await gate('promote', req.name, canary, who, fairnessOverride) : undefined;
      const r = await h.promote(rest, m);
      await record({ who, action: 'promote', target: req.name, ...(canary !== undefined ? { version: canary } : {}), details: g ? fairnessDetails(g) : {} });
      return r;
    },
    abort: async (req, m) => {
      const canary = (await deployments.get(req.name))?.canary?.version;
      const r = (await h.abort(req, m)) as { rolledBack: boolean };
      if (r.rolledBack) await record({ who: actorOf(m), action: 'rollback', target: req.name, ...(canary !== undefined ? { version: canary } : {}), why: req.reason ?? 'rolled back on request' });
      return r;
    },
    undeploy: async (req, m) => {
      const r = await h.undeploy(req, m);
      await record({ who: actorOf(m), action: 'undeploy', target: req.name });
      return r;
    },
    'fairness-policy': async (req, m) => {
      const who = actorOf(m);
      const stored = await setPolicy(registry, ctx.datasets, req.name, req.policy, { who, ...(req.reason ? { reason: req.reason } : {}) });
      await record({ who, action: 'fairness-policy', target: req.name, ...(req.reason ? { why: req.reason } : {}), details: { policy: req.policy } });
      return { name: req.name, policy: stored };
    },
    owner: async (req, m) => {
      const r = (await h.owner(req, m)) as { previous: string };
      await record({ who: actorOf(m), action: 'owner', target: req.name, ...(req.reason ? { why: req.reason } : {}), details: { kind: req.kind, tenant: req.tenant, previous: r.previous } });
      return r;
    },
    card: (req) => buildCard(ctx.nc, ctx.subjects.prefix, registry, ctx.datasets, req.name, req.version),
    audit: async (req) => ({ entries: await readAudit(ctx.nc, ctx.subjects.prefix, req) }),
  };
}
