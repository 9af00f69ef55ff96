/**
 * Every NATS subject, stream, bucket and header name Shoal uses is built here and nowhere else.
 * The prefix is configurable (`subjectPrefix`, default `shoal`) so several clusters can share
 * one NATS account.
 */

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** The scheduler's request subjects (`<prefix>.sched.<op>`), served by the leader. */
export const SCHEDULER_OPS = ['status', 'actors', 'nodes', 'jobs', 'cost'] as const;
export type SchedulerOp = (typeof SCHEDULER_OPS)[number];

/**
 * The registry/control service's request subjects (`<prefix>.registry.<op>`), served by every
 * scheduler process in a queue group: the only way anyone but the scheduler changes models,
 * aliases, deployments and datasets. One subject per operation, so each role is allowed exactly
 * the operations it needs.
 */
export const REGISTRY_OPS = ['register', 'alias', 'delete-alias', 'rollback-alias', 'deploy', 'canary', 'weight', 'promote', 'abort', 'undeploy', 'register-dataset', 'fairness-policy', 'card', 'audit', 'owner'] as const;
export type RegistryOp = (typeof REGISTRY_OPS)[number];

/**
 * A tenant's job requests over NATS (`<prefix>.t.<tenant>.jobs.<op>`, README "Tenants over NATS"),
 * served by the gateways in a queue group: the tenant is the subject's, which only that tenant's
 * NATS user may publish to.
 */
export const TENANT_JOB_OPS = ['submit', 'status', 'cancel', 'list'] as const;
export type TenantJobOp = (typeof TENANT_JOB_OPS)[number];

function token(kind: string, value: string): string {
  if (!TOKEN.test(value)) throw new Error(`invalid ${kind} "${value}": use letters, digits, '_' and '-' only`);
  return value;
}

export function subjects(prefix = 'shoal') {
  const p = token('subject prefix', prefix);
  return {
    prefix: p,
    /** Everything under the prefix (for permissions). */
    all: `${p}.>`,
    /** Node control, request/reply: spawn, stop, drain, describe. */
    nodeCtl: (nodeId: string) => `${p}.node.${token('node id', nodeId)}.ctl`,
    /** Everything under one node's own subject (its control subject and any later per-node subject). */
    nodeOwn: (nodeId: string) => `${p}.node.${token('node id', nodeId)}.>`,
    nodeAll: `${p}.node.>`,
    /** A node's heartbeat (core NATS): published by that node only, read by the scheduler leader. */
    nodeBeat: (nodeId: string) => `${p}.node.${token('node id', nodeId)}.beat`,
    nodeBeatAll: `${p}.node.*.beat`,
    /** An actor's mailbox. */
    actor: (actorId: string) => `${p}.actor.${token('actor id', actorId)}`,
    /** An actor's system messages from the runtime (supervision), beside its mailbox. */
    actorSys: (actorId: string) => `${p}.actor.${token('actor id', actorId)}.sys`,
    actorAll: `${p}.actor.>`,
    /** A replicated service (queue group). */
    service: (name: string) => `${p}.svc.${token('service name', name)}`,
    serviceAll: `${p}.svc.>`,
    /** Job submission (JetStream work-queue stream). */
    jobsSubmit: `${p}.jobs.submit`,
    jobsAll: `${p}.jobs.>`,
    /** Events stream. */
    event: (kind: string) => `${p}.events.${token('event kind', kind)}`,
    eventsAll: `${p}.events.>`,
    /** Presence: every process answers a ping with its ProcessInfo (request-many). */
    sysPing: `${p}.sys.ping`,
    sysAll: `${p}.sys.>`,
    /** The active scheduler's own API (status, placement requests). */
    scheduler: (op: string) => `${p}.sched.${token('scheduler op', op)}`,
    schedulerAll: `${p}.sched.>`,
    /** The registry/control service (models, aliases, deployments, datasets). */
    registry: (op: RegistryOp) => `${p}.registry.${token('registry op', op)}`,
    registryAll: `${p}.registry.>`,
    /** Gateways' outcome tallies per model version (every gateway judges canaries on all of them). */
    gatewayOutcomes: `${p}.gw.outcomes`,
    /** Gateways' shadow comparison tallies (ml/serving/shadow.ts), added up by the rollout controller. */
    gatewayShadow: `${p}.gw.shadow`,
    gatewayAll: `${p}.gw.>`,
    /**
     * Bodies larger than one NATS message, held by their sender and pulled in chunks by the one
     * that needs them (`cluster/payloads.ts`): a gateway's request bodies (under its own random
     * id), and a node's replies (its replicas' response bodies).
     */
    payloadGateway: (gatewayId: string) => `${p}.payload.gw.${token('gateway id', gatewayId)}`,
    payloadGateways: `${p}.payload.gw.>`,
    payloadNode: (nodeId: string) => `${p}.payload.node.${token('node id', nodeId)}`,
    payloadNodes: `${p}.payload.node.>`,
    /** Feature store (ml/features): apply a view definition (request to the features service). */
    featuresApply: `${p}.features.apply`,
    /** Compact one view's offline log to Parquet (request to the features service). */
    featuresMaterialize: `${p}.features.materialize`,
    /** Build a point-in-time-correct training set as a dataset version (request to the features service). */
    featuresBuild: `${p}.features.build`,
    /** Push one feature event for a view (request to the features service; the gateway's POST /v1/features/{view} too). */
    featurePush: (view: string) => `${p}.features.push.${token('feature view', view)}`,
    featurePushAll: `${p}.features.push.>`,
    featuresAll: `${p}.features.>`,
    /** Erase one entity (GDPR Art. 17; request to the privacy service, ml/governance/privacy). */
    privacyForget: `${p}.privacy.forget`,
    /** Continuous training (ml/pipelines): apply a pipeline, trigger a run by hand (requests to the pipelines service). */
    pipelines: (op: 'apply' | 'run') => `${p}.pipelines.${op}`,
    pipelinesAll: `${p}.pipelines.>`,
    /** The offline log of one view's accepted events (captured by the feature events stream; written only by the features service). */
    featureLog: (view: string) => `${p}.featlog.${token('feature view', view)}`,
    featureLogAll: `${p}.featlog.>`,
    /** Model monitoring (ml/monitoring): a replica's prediction-log batches (captured by the predictions stream). */
    predictions: (model: string) => `${p}.predictions.${token('model name', model)}`,
    predictionsAll: `${p}.predictions.>`,
    /** Labels for a model's logged predictions (request to the feedback service; the gateway's POST /v1/models/{m}/feedback too). */
    feedback: (model: string) => `${p}.feedback.${token('model name', model)}`,
    feedbackAll: `${p}.feedback.>`,
    /** Accepted labels (captured by the feedback stream; written only by the feedback service). */
    feedbackLog: (model: string) => `${p}.feedlog.${token('model name', model)}`,
    feedbackLogAll: `${p}.feedlog.>`,
    /** Predictions joined with their labels (captured by the labeled stream; written only by the join). */
    labeled: (model: string) => `${p}.labeled.${token('model name', model)}`,
    labeledAll: `${p}.labeled.>`,
    /** The label join's counters (request to the scheduler leader's join). */
    feedbackJoinStats: `${p}.feedjoin.stats`,
    /** Everything a tenant's own NATS user may publish (`<prefix>.t.<tenant>.>`): its requests to the cluster. */
    tenantOwn: (tenant: string) => `${p}.t.${token('tenant', tenant)}.>`,
    /** A tenant's job request (submit, status, cancel, list), answered by a gateway. */
    tenantJobs: (tenant: string, op: TenantJobOp) => `${p}.t.${token('tenant', tenant)}.jobs.${op}`,
    /** What the gateways serve, in a queue group: every tenant's job requests. */
    tenantJobsAny: `${p}.t.*.jobs.*`,
    /** A tenant's inference request for one model (an OIP v2 JSON body), answered by a gateway. */
    tenantInfer: (tenant: string, model: string) => `${p}.t.${token('tenant', tenant)}.infer.${token('model name', model)}`,
    /** What the gateways serve, in a queue group: every tenant's inference requests. */
    tenantInferAny: `${p}.t.*.infer.*`,
    tenantAll: `${p}.t.>`,
    /** The audit log (ml/governance/audit): one entry per governed action, appended by the registry service (captured by the audit stream). */
    audit: (action: string) => `${p}.audit.${token('audit action', action)}`,
    auditAll: `${p}.audit.>`,
  };
}
export type Subjects = ReturnType<typeof subjects>;

/** JetStream resource names derived from the prefix (stream and bucket names cannot contain dots). */
export function resources(prefix = 'shoal') {
  const p = token('subject prefix', prefix);
  const up = p.toUpperCase().replace(/-/g, '_');
  return {
    /** Plain streams. */
    streams: {
      /** Job submissions (work queue; only the scheduler consumes it). */
      jobs: `${up}_JOBS`,
      /** Events (`<prefix>.events.>`). */
      events: `${up}_EVENTS`,
      /** The audit log (`<prefix>.audit.<action>`): who did what, when and why, append-only. */
      audit: `${up}_AUDIT`,
      /** Feature events, the offline log (`<prefix>.featlog.<view>`): every accepted push, with event and ingestion time. */
      featureEvents: `${up}_FEATURE_EVENTS`,
      /** The prediction log (`<prefix>.predictions.<model>`): replicas' sampled records, in batches. */
      predictions: `${up}_PREDICTIONS`,
      /** Accepted labels (`<prefix>.feedlog.<model>`). */
      feedback: `${up}_FEEDBACK`,
      /** Predictions joined with their labels (`<prefix>.labeled.<model>`): what a monitor reads. */
      labeled: `${up}_LABELED`,
    },
    /** KV buckets (stream `KV_<bucket>`). */
    buckets: {
      nodes: `${p}-nodes`,
      actors: `${p}-actors`,
      models: `${p}-models`,
      jobs: `${p}-jobs`,
      /** Feature view versions (definition + fitted parameters). */
      features: `${p}-features`,
      /** Online features: one key per view and entity (`<view>.<key…>`), the latest raw values. */
      online: `${p}-online-features`,
      leases: `${p}-leases`,
      /** Small actor-state checkpoints (key = actor id); large ones go to the checkpoint store. */
      checkpoints: `${p}-checkpoints`,
      /** Dataset metadata (the data itself is in the artifacts store under its sha256). */
      datasets: `${p}-datasets`,
      /** The label join's index: logged predictions by `<model>.<request id>`, aged out after the join horizon (created by the feedback service, TTL = horizon). */
      predictionIndex: `${p}-prediction-index`,
      /** The cost ledger (totals, history, budget state), written by the scheduler leader only. */
      cost: `${p}-cost`,
      /** Cluster-wide rate-limit windows (cluster/window-counter.ts): `w<minute>.<key>`, aged out by the bucket's TTL. */
      rateWindows: `${p}-rate-windows`,
      /** Per-tenant training spend per UTC day (`w<day>.<tenant>`, cents), aged out by the bucket's TTL. */
      tenantSpend: `${p}-tenant-spend`,
      /** Who owns what: `<kind>.<name>` → tenant (ml/governance/tenancy); absent = the `default` tenant. */
      owners: `${p}-owners`,
      /** Continuous training (ml/pipelines): `spec.<name>` (versioned by history), `run.<name>.<n>`, `active.<name>`. */
      pipelines: `${p}-pipelines`,
    },
    /** Object stores (stream `OBJ_<store>`). */
    stores: {
      /** Registered models and datasets, content-addressed by sha256; written only by the registry service. */
      artifacts: `${p}-artifacts`,
      /** Large actor checkpoints (training jobs' parameters and optimiser state). */
      checkpoints: `${p}-checkpoint-objects`,
      /** Bytes on their way into the registry: a caller puts them here, the registry service takes them (and deletes them). */
      uploads: `${p}-uploads`,
    },
  };
}
export type Resources = ReturnType<typeof resources>;

/** Header names. */
export const Headers = {
  CONTENT_TYPE: 'content-type',
  ERROR_CODE: 'Shoal-Error-Code',
  ERROR_MESSAGE: 'Shoal-Error-Message',
} as const;
