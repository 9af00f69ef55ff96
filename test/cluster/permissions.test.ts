/**
 * The permission matrix, generated from the role table (cluster/roles.ts) and checked against a
 * real nats-server with the generated config: for every role (a node as itself, `node-a`, beside
 * another node, `node-b`) and every sensitive subject — each core subject family, each
 * JetStream API verb on each stream, bucket and object store, each KV/object write subject — the
 * server allows or refuses exactly as the table says. A second server with the cluster's
 * resources runs the real client operations (KV get/keys/watch/put/create/delete, object
 * get/put/replace/delete, JetStream publish, a durable consumer) per role, as the table says.
 *
 * Tenants' own NATS users (`tenant-<name>`, an NKey each; README "Tenants over NATS") are a row
 * of the table too: the matrix runs for tenant `acme` beside tenant `globex` (its own subjects
 * only, its own inbox only, no JetStream/KV/object store at all).
 *
 * Completeness: every subject builder in `subjects()`, every resource in `resources()` and every
 * stream the scheduler creates must be classified here, so a new one cannot be added without
 * deciding who may use it. Policy invariants that must hold whatever the table says (only the
 * scheduler commands nodes; no `$JS.API.>` wildcard outside the scheduler; gateway and client
 * write no KV) are asserted on the table itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream, jetstreamManager, AckPolicy } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import {
  KvOp,
  REGISTRY_OPS,
  ROLES,
  ROLE_TABLE,
  Role,
  TENANT_ROLE,
  newTenantNkey,
  SCHEDULER_ONLY,
  SCHEDULER_OPS,
  StoreOp,
  StreamOp,
  ensureResources,
  inboxOf,
  opsOf,
  permissionsFor,
  resourceList,
  resources,
  streamSubjects,
  subjects,
  type GrantRole,
  type NatsConnection,
  type ResourceRef,
  type StreamKey,
  type Subjects,
} from '../../cluster/index.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';

const SELF = 'node-a';
const OTHER = 'node-b';
/** The tenant whose user connects, and another tenant. */
const TENANT = 'acme';
const OTHER_TENANT = 'globex';
/** Every row of the table: the process roles, then the tenant user. */
const ALL_ROLES: readonly GrantRole[] = [...ROLES, TENANT_ROLE];
const s = subjects();

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const t = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i;
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}
const anyMatch = (patterns: readonly string[], subject: string) => patterns.some((p) => matches(p, subject));

/**
 * Concrete subjects to probe for each subject builder of `subjects()`. `satisfies` makes adding a
 * builder without probes a type error; the completeness test below checks it at run time too.
 */
const SUBJECT_PROBES = {
  prefix: () => [],
  all: (x: Subjects) => [`${x.prefix}.unclassified.thing`],
  nodeCtl: (x: Subjects) => [x.nodeCtl(SELF), x.nodeCtl(OTHER)],
  nodeOwn: (x: Subjects) => [`${x.prefix}.node.${SELF}.other`, `${x.prefix}.node.${OTHER}.other`],
  nodeAll: (x: Subjects) => [`${x.prefix}.node.${OTHER}.ctl`],
  nodeBeat: (x: Subjects) => [x.nodeBeat(SELF), x.nodeBeat(OTHER)],
  nodeBeatAll: (x: Subjects) => [x.nodeBeat('node-c')],
  actor: (x: Subjects) => [x.actor('probe-actor'), `${x.actor('probe-actor')}.sys`],
  actorSys: (x: Subjects) => [x.actorSys('probe-actor')],
  actorAll: (x: Subjects) => [x.actor('another-actor')],
  service: (x: Subjects) => [x.service('model-probe-v1')],
  serviceAll: (x: Subjects) => [x.service('svc-probe')],
  jobsSubmit: (x: Subjects) => [x.jobsSubmit],
  jobsAll: (x: Subjects) => [`${x.prefix}.jobs.other`],
  event: (x: Subjects) => [x.event('node-dead'), x.event('model-rollback')],
  eventsAll: (x: Subjects) => [x.event('probe')],
  sysPing: (x: Subjects) => [x.sysPing],
  sysAll: (x: Subjects) => [`${x.prefix}.sys.other`],
  scheduler: (x: Subjects) => [...SCHEDULER_OPS.map((op) => x.scheduler(op)), x.scheduler('place')],
  schedulerAll: (x: Subjects) => [`${x.prefix}.sched.other`],
  registry: (x: Subjects) => REGISTRY_OPS.map((op) => x.registry(op)),
  registryAll: (x: Subjects) => [`${x.prefix}.registry.other`],
  gatewayOutcomes: (x: Subjects) => [x.gatewayOutcomes],
  gatewayShadow: (x: Subjects) => [x.gatewayShadow],
  gatewayAll: (x: Subjects) => [`${x.prefix}.gw.other`],
  payloadGateway: (x: Subjects) => [`${x.payloadGateway('gw1')}.t1.0`],
  payloadGateways: (x: Subjects) => [`${x.prefix}.payload.gw.gw2.t1.3`],
  payloadNode: (x: Subjects) => [`${x.payloadNode(SELF)}.t1.0`, `${x.payloadNode(OTHER)}.t1.0`],
  payloadNodes: (x: Subjects) => [`${x.prefix}.payload.node.node-c.t1.2`, `${x.prefix}.payload.other.t1.0`],
  featuresApply: (x: Subjects) => [x.featuresApply],
  featuresMaterialize: (x: Subjects) => [x.featuresMaterialize],
  featuresBuild: (x: Subjects) => [x.featuresBuild],
  featurePush: (x: Subjects) => [x.featurePush('txn_stats')],
  featurePushAll: (x: Subjects) => [x.featurePush('other_view')],
  featuresAll: (x: Subjects) => [`${x.prefix}.features.other`],
  featureLog: (x: Subjects) => [x.featureLog('txn_stats')],
  featureLogAll: (x: Subjects) => [`${x.prefix}.featlog.other`],
  predictions: (x: Subjects) => [x.predictions('fraud')],
  predictionsAll: (x: Subjects) => [`${x.prefix}.predictions.other`],
  feedback: (x: Subjects) => [x.feedback('fraud')],
  feedbackAll: (x: Subjects) => [`${x.prefix}.feedback.other`],
  feedbackLog: (x: Subjects) => [x.feedbackLog('fraud')],
  feedbackLogAll: (x: Subjects) => [`${x.prefix}.feedlog.other`],
  labeled: (x: Subjects) => [x.labeled('fraud')],
  labeledAll: (x: Subjects) => [`${x.prefix}.labeled.other`],
  feedbackJoinStats: (x: Subjects) => [x.feedbackJoinStats],
  audit: (x: Subjects) => [x.audit('promote')],
  auditAll: (x: Subjects) => [`${x.prefix}.audit.other`],
  privacyForget: (x: Subjects) => [x.privacyForget],
  pipelines: (x: Subjects) => [x.pipelines('apply'), x.pipelines('run')],
  pipelinesAll: (x: Subjects) => [x.pipelinesAll],
  tenantOwn: (x: Subjects) => [`${x.prefix}.t.${TENANT}.infer.m1`, `${x.prefix}.t.${OTHER_TENANT}.infer.m1`],
  tenantJobs: (x: Subjects) => [x.tenantJobs(TENANT, 'submit'), x.tenantJobs(OTHER_TENANT, 'submit'), x.tenantJobs(OTHER_TENANT, 'cancel')],
  tenantJobsAny: (x: Subjects) => [x.tenantJobs('tenant-c', 'list')],
  tenantInfer: (x: Subjects) => [x.tenantInfer(TENANT, 'fraud'), x.tenantInfer(OTHER_TENANT, 'fraud')],
  tenantInferAny: (x: Subjects) => [x.tenantInfer('tenant-c', 'churn')],
  tenantAll: (x: Subjects) => [`${x.prefix}.t.${TENANT}`, `${x.prefix}.t.${OTHER_TENANT}.other.deep`],
} satisfies Record<keyof Subjects, (x: Subjects) => string[]>;

/** Subjects outside the prefix that must be probed too: inboxes and JetStream's global API. */
const USERS = [inboxOf(Role.SCHEDULER), inboxOf(Role.GATEWAY), inboxOf(Role.CLIENT), inboxOf(Role.NODE, SELF), inboxOf(Role.NODE, OTHER), inboxOf(TENANT_ROLE, TENANT), inboxOf(TENANT_ROLE, OTHER_TENANT)];
const INBOX_PROBES = [...USERS.map((i) => `${i}.x1`), '_INBOX.x1'];
const GLOBAL_JS = ['$JS.API.INFO', '$JS.API.STREAM.NAMES', '$JS.API.STREAM.LIST', '$JS.API.STREAM.CREATE.ROGUE', '$JS.API.CONSUMER.CREATE.ROGUE.c1', '$JS.API.META.LEADER.STEPDOWN'];

const any = (ops: readonly string[], ...want: string[]) => want.some((w) => ops.includes(w));
const readish = (ops: readonly string[], r: ResourceRef) => any(ops, 'read') || (r.kind === 'stream' && any(ops, StreamOp.CONSUME));

/**
 * Each JetStream verb on one resource and the operation that needs it — the policy, stated here
 * independently of how permissionsFor() builds its lists.
 */
function verbs(r: ResourceRef): { verb: string; subject: string; allowed: (ops: readonly string[]) => boolean }[] {
  const st = r.stream;
  const filter = r.kind === 'kv' ? `$KV.${r.name}.k1` : r.kind === 'store' ? `$O.${r.name}.M.x` : `${s.prefix}.x`;
  const list = [
    { verb: 'STREAM.INFO', subject: `$JS.API.STREAM.INFO.${st}`, allowed: (ops: readonly string[]) => ops.length > 0 },
    { verb: 'STREAM.MSG.GET', subject: `$JS.API.STREAM.MSG.GET.${st}`, allowed: (ops: readonly string[]) => readish(ops, r) || (r.kind === 'store' && any(ops, StoreOp.PUT)) },
    { verb: 'DIRECT.GET', subject: `$JS.API.DIRECT.GET.${st}`, allowed: (ops: readonly string[]) => any(ops, 'read') },
    { verb: 'DIRECT.GET (last by subject)', subject: `$JS.API.DIRECT.GET.${st}.${filter}`, allowed: (ops: readonly string[]) => any(ops, 'read') },
    { verb: 'CONSUMER.CREATE (ordered, filtered)', subject: `$JS.API.CONSUMER.CREATE.${st}.oc_probe_1.${filter}`, allowed: (ops: readonly string[]) => readish(ops, r) },
    { verb: 'CONSUMER.CREATE (named)', subject: `$JS.API.CONSUMER.CREATE.${st}.oc_probe_1`, allowed: (ops: readonly string[]) => readish(ops, r) },
    { verb: 'CONSUMER.INFO', subject: `$JS.API.CONSUMER.INFO.${st}.oc_probe_1`, allowed: (ops: readonly string[]) => readish(ops, r) },
    { verb: 'CONSUMER.DELETE', subject: `$JS.API.CONSUMER.DELETE.${st}.oc_probe_1`, allowed: (ops: readonly string[]) => readish(ops, r) },
    { verb: '$JS.FC (flow control)', subject: `$JS.FC.${st}.oc_probe_1.x`, allowed: (ops: readonly string[]) => any(ops, 'read') },
    { verb: 'CONSUMER.DURABLE.CREATE', subject: `$JS.API.CONSUMER.DURABLE.CREATE.${st}.scheduler`, allowed: (ops: readonly string[]) => r.kind === 'stream' && any(ops, StreamOp.CONSUME) },
    { verb: 'CONSUMER.MSG.NEXT', subject: `$JS.API.CONSUMER.MSG.NEXT.${st}.scheduler`, allowed: (ops: readonly string[]) => r.kind === 'stream' && any(ops, StreamOp.CONSUME) },
    { verb: '$JS.ACK', subject: `$JS.ACK.${st}.scheduler.1.1.1.1.0`, allowed: (ops: readonly string[]) => r.kind === 'stream' && any(ops, StreamOp.CONSUME) },
    // A purge can be granted only with object puts (nats.js purges replaced chunks); never on KV or plain streams.
    { verb: 'STREAM.PURGE', subject: `$JS.API.STREAM.PURGE.${st}`, allowed: (ops: readonly string[]) => r.kind === 'store' && any(ops, StoreOp.PUT) },
    { verb: 'STREAM.MSG.DELETE', subject: `$JS.API.STREAM.MSG.DELETE.${st}`, allowed: () => false },
    { verb: 'STREAM.CREATE', subject: `$JS.API.STREAM.CREATE.${st}`, allowed: () => false },
    { verb: 'STREAM.UPDATE', subject: `$JS.API.STREAM.UPDATE.${st}`, allowed: () => false },
    { verb: 'STREAM.DELETE', subject: `$JS.API.STREAM.DELETE.${st}`, allowed: () => false },
  ];
  if (r.kind === 'kv') {
    list.push(
      { verb: 'KV write (any key)', subject: `$KV.${r.name}.some-key`, allowed: (ops) => any(ops, KvOp.WRITE) },
      { verb: 'KV write (own node key)', subject: `$KV.${r.name}.${SELF}`, allowed: (ops) => any(ops, KvOp.WRITE, KvOp.WRITE_OWN) },
      { verb: 'KV write (another node key)', subject: `$KV.${r.name}.${OTHER}`, allowed: (ops) => any(ops, KvOp.WRITE) },
    );
  } else if (r.kind === 'store') {
    list.push(
      { verb: 'object chunk put', subject: `$O.${r.name}.C.probe`, allowed: (ops) => any(ops, StoreOp.PUT) },
      { verb: 'object meta put/delete', subject: `$O.${r.name}.M.cHJvYmU=`, allowed: (ops) => any(ops, StoreOp.PUT) },
    );
  } else {
    for (const subj of streamSubjects(r.key as StreamKey, s)) list.push({ verb: `publish into the stream (${subj})`, subject: subj.replace(/>$/, 'probe'), allowed: (ops) => any(ops, StreamOp.PUBLISH) });
  }
  return list;
}

const isAdmin = (role: GrantRole) => ROLE_TABLE[role].admin === true;
/** The id a row's grants are built with: the node's id (node), the tenant's name (tenant). */
const nodeIdOf = (role: GrantRole) => (role === Role.NODE ? SELF : role === TENANT_ROLE ? TENANT : '');
/** The JetStream account info every role but the tenant users may ask. */
const jsInfo = (role: GrantRole) => ROLE_TABLE[role].noJetStream !== true;

/** What the table says about a core subject (streams' `publish` adds their subjects). */
function tablePublish(role: GrantRole, subject: string): boolean {
  const g = ROLE_TABLE[role];
  const streams = resourceList().filter((r) => r.kind === 'stream' && opsOf(role, r).includes(StreamOp.PUBLISH)).flatMap((r) => streamSubjects(r.key as StreamKey, s));
  return anyMatch([...g.publish(s, nodeIdOf(role)), ...streams], subject);
}
function tableSubscribe(role: GrantRole, subject: string): boolean {
  const g = ROLE_TABLE[role];
  return anyMatch([...g.subscribe(s, nodeIdOf(role)), `${inboxOf(role, nodeIdOf(role) || undefined)}.>`, ...(isAdmin(role) ? ['$JS.>'] : [])], subject);
}

/** Watches a connection's permission errors; `allowed()` runs an action and says whether the server refused it. */
function watchViolations(nc: NatsConnection) {
  const seen: string[] = [];
  void (async () => {
    for await (const st of nc.status()) if (st.type === 'error') seen.push(String((st as { error?: Error }).error?.message ?? ''));
  })();
  return async (kind: 'Publish' | 'Subscription', subject: string, act: () => void): Promise<boolean> => {
    seen.length = 0;
    act();
    await nc.flush();
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    return !seen.some((m) => m.includes(`Permissions Violation for ${kind} to "${subject}"`));
  };
}

describe('permission matrix: completeness and policy invariants of the role table', () => {
  it('every subject builder of subjects() has probes here', () => {
    for (const key of Object.keys(s)) expect(SUBJECT_PROBES, `subjects().${key} is not classified in the permission matrix`).toHaveProperty(key);
  });

  it('every resource in resources() is classified (a bucket, a store or a stream)', () => {
    const leaves: string[] = [];
    const walk = (v: unknown): void => {
      if (typeof v === 'string') leaves.push(v);
      else if (v && typeof v === 'object') Object.values(v).forEach(walk);
    };
    walk(resources());
    const known = resourceList().map((r) => r.name);
    for (const name of leaves) expect(known, `resources() has "${name}", which the role table does not classify`).toContain(name);
  });

  it('every resource is decided: granted to some role besides the scheduler, or declared scheduler-only (not both)', () => {
    for (const r of resourceList()) {
      const granted = ROLES.filter((role) => !isAdmin(role) && opsOf(role, r).length > 0);
      const only = `${r.kind}:${r.key}` in SCHEDULER_ONLY;
      expect(granted.length > 0 !== only, `${r.kind} ${r.name}: ${only ? `declared scheduler-only but granted to ${granted.join(', ')}` : 'no role besides the scheduler has it, and it is not declared in SCHEDULER_ONLY'}`).toBe(true);
    }
    const keys = new Set(resourceList().map((r) => `${r.kind}:${r.key}`));
    for (const k of Object.keys(SCHEDULER_ONLY)) expect(keys, `SCHEDULER_ONLY names ${k}, which is no resource`).toContain(k);
  });

  it('every role has a row', () => {
    for (const role of ALL_ROLES) expect(ROLE_TABLE[role], role).toBeDefined();
  });

  it("a tenant user: its own subjects and inbox only, nothing of JetStream, KV or object stores; the gateways serve its job requests", () => {
    expect(permissionsFor(TENANT_ROLE, { tenant: TENANT })).toEqual({ publish: [`${s.prefix}.t.${TENANT}.>`], subscribe: [`_INBOX_tenant-${TENANT}.>`] });
    for (const r of resourceList()) expect(opsOf(TENANT_ROLE, r), `tenant on ${r.name}`).toEqual([]);
    expect(() => permissionsFor(TENANT_ROLE, {}), 'a tenant row needs the tenant').toThrow(/tenant/);
    expect(() => permissionsFor(TENANT_ROLE, { tenant: 'a.b' }), 'a tenant name with a dot is no subject token').toThrow(/tenant/);
    const gw = permissionsFor(Role.GATEWAY);
    for (const op of ['submit', 'status', 'cancel', 'list'] as const) expect(anyMatch(gw.subscribe, s.tenantJobs(OTHER_TENANT, op)), `gateway serves ${op}`).toBe(true);
    expect(anyMatch(gw.subscribe, s.tenantInfer(OTHER_TENANT, 'fraud')), 'gateway serves inference').toBe(true);
    // Nobody else answers tenants, and the gateway may not speak as one.
    expect(anyMatch(gw.publish, s.tenantJobs(TENANT, 'submit'))).toBe(false);
    for (const role of [Role.NODE, Role.CLIENT]) expect(anyMatch(permissionsFor(role, { nodeId: SELF }).subscribe, s.tenantJobs(TENANT, 'submit')), `${role} reads tenants' requests`).toBe(false);
  });

  it('only the scheduler administers JetStream or commands nodes; gateway and client write no KV', () => {
    for (const role of ROLES.filter((r) => !isAdmin(r))) {
      const perms = permissionsFor(role, { nodeId: SELF });
      for (const wide of ['>', '$JS.>', '$JS.API.>', '$KV.>', '$O.>', '$JS.API.STREAM.>', '$JS.API.CONSUMER.>']) expect(perms.publish, `${role} has ${wide}`).not.toContain(wide);
      expect(perms.publish.some((p) => matches(p, s.nodeCtl(OTHER)) || matches(p, s.nodeCtl(SELF))), `${role} may publish node commands`).toBe(false);
      expect(perms.subscribe.some((p) => matches(p, s.nodeCtl(OTHER))), `${role} may read another node's commands`).toBe(false);
      for (const r of resourceList()) {
        // One exception: a node's streaming feature aggregate actor consumes the feature log (its own pull consumer; it never appends).
        if (role === Role.NODE && r.key === 'featureEvents') expect(opsOf(role, r), `${role} on ${r.name}`).toEqual([StreamOp.CONSUME]);
        // And a node's model monitor consumes the prediction log and the joined labeled rows (never appending labeled rows).
        else if (role === Role.NODE && r.key === 'predictions') expect(opsOf(role, r), `${role} on ${r.name}`).toEqual([StreamOp.PUBLISH, StreamOp.CONSUME]);
        else if (role === Role.NODE && r.key === 'labeled') expect(opsOf(role, r), `${role} on ${r.name}`).toEqual([StreamOp.CONSUME]);
        else if (r.key === 'leases' || r.kind === 'stream') expect(opsOf(role, r).filter((o) => o !== StreamOp.PUBLISH), `${role} on ${r.name}`).toEqual([]);
      }
    }
    // One exception: the gateway admits requests, so it counts them — the cluster-wide rate-limit
    // windows and the tenants' training spend (CAS counters) — and records the owner of what a
    // tenant's key submits (the owners bucket). It writes no other KV; the client writes none.
    const GATEWAY_COUNTERS = new Set(['rateWindows', 'tenantSpend', 'owners']);
    for (const role of [Role.GATEWAY, Role.CLIENT]) {
      for (const r of resourceList().filter((x) => x.kind === 'kv')) {
        if (role === Role.GATEWAY && GATEWAY_COUNTERS.has(r.key)) continue;
        expect(opsOf(role, r), `${role} writes ${r.name}`).not.toContain(KvOp.WRITE);
      }
    }
    expect(isAdmin(Role.SCHEDULER)).toBe(true);
  });

  it('heartbeats: a node beats on its own subject only; no other role may beat for a node, and only the scheduler reads beats', () => {
    const node = permissionsFor(Role.NODE, { nodeId: SELF });
    expect(anyMatch(node.publish, s.nodeBeat(SELF)), 'node beats').toBe(true);
    expect(anyMatch(node.publish, s.nodeBeat(OTHER)), 'node beats for another').toBe(false);
    for (const role of ROLES.filter((r) => !isAdmin(r))) {
      const perms = permissionsFor(role, { nodeId: SELF });
      if (role !== Role.NODE) expect(anyMatch(perms.publish, s.nodeBeat(OTHER)), `${role} beats for a node`).toBe(false);
      expect(anyMatch(perms.subscribe, s.nodeBeat(OTHER)), `${role} reads another node's beats`).toBe(false);
    }
  });

  it('monitoring: a node appends predictions, never labels or joined rows; gateway and client send feedback, never store labels directly', () => {
    const node = permissionsFor(Role.NODE, { nodeId: SELF });
    expect(anyMatch(node.publish, s.predictions('fraud')), 'node logs predictions').toBe(true);
    for (const subject of [s.feedback('fraud'), s.feedbackLog('fraud'), s.labeled('fraud')]) expect(anyMatch(node.publish, subject), `node publishes ${subject}`).toBe(false);
    for (const role of [Role.GATEWAY, Role.CLIENT]) {
      const perms = permissionsFor(role);
      expect(anyMatch(perms.publish, s.feedback('fraud')), `${role} sends feedback`).toBe(true);
      for (const subject of [s.predictions('fraud'), s.feedbackLog('fraud'), s.labeled('fraud')]) expect(anyMatch(perms.publish, subject), `${role} publishes ${subject}`).toBe(false);
    }
  });

  it('monitoring: a node (its model monitor) consumes the prediction log and labeled rows, nothing else of the labels', () => {
    const node = permissionsFor(Role.NODE, { nodeId: SELF });
    const r = resources();
    for (const stream of [r.streams.predictions, r.streams.labeled]) {
      expect(anyMatch(node.publish, `$JS.API.CONSUMER.CREATE.${stream}.m1`), `node creates a consumer on ${stream}`).toBe(true);
      expect(anyMatch(node.publish, `$JS.API.CONSUMER.MSG.NEXT.${stream}.m1`), `node pulls from ${stream}`).toBe(true);
    }
    expect(anyMatch(node.publish, `$JS.API.CONSUMER.CREATE.${r.streams.feedback}.m1`), 'node reads stored labels').toBe(false);
    expect(anyMatch(node.publish, `$JS.API.STREAM.PURGE.${r.streams.labeled}`), 'node purges labeled rows').toBe(false);
    for (const gw of [Role.GATEWAY, Role.CLIENT]) expect(anyMatch(permissionsFor(gw).publish, `$JS.API.CONSUMER.CREATE.${r.streams.labeled}.x`), `${gw} reads labeled rows`).toBe(false);
  });

  it('a node may ask the features service to build a training set, and no other features operation', () => {
    const perms = permissionsFor(Role.NODE, { nodeId: SELF });
    expect(anyMatch(perms.publish, s.featuresBuild), 'node builds training sets').toBe(true);
    for (const subject of [s.featuresApply, s.featuresMaterialize, s.featurePush('txn_stats'), s.featureLog('txn_stats')]) expect(anyMatch(perms.publish, subject), `node publishes ${subject}`).toBe(false);
  });

  it('a node reads feature views (replicas predict by entity) but never writes them; it reads and writes the online store (streaming-aggregate actors)', () => {
    for (const r of resourceList().filter((x) => x.kind === 'kv' && x.key === 'features')) expect(opsOf(Role.NODE, r), `node on ${r.name}`).toEqual([KvOp.READ]);
    for (const r of resourceList().filter((x) => x.kind === 'kv' && x.key === 'online')) expect(opsOf(Role.NODE, r), `node on ${r.name}`).toEqual([KvOp.READ, KvOp.WRITE]);
  });
});

describe('permission matrix: subjects and JetStream API verbs (real nats-server, generated permissions)', () => {
  let nats: TestNats;
  let tenantSeed = '';
  beforeAll(async () => {
    // No JetStream resources here: the probes are raw publishes, and an allowed admin verb must
    // find nothing to delete.
    nats = await startTestNats({ nodeIds: [SELF, OTHER] });
    const [mine, theirs] = [newTenantNkey(), newTenantNkey()];
    tenantSeed = mine.seed;
    await nats.addTenants([{ tenant: TENANT, nkey: mine.nkey }, { tenant: OTHER_TENANT, nkey: theirs.nkey }]);
  }, 30_000);
  afterAll(async () => nats?.stop());

  it('the server enforces the table for every role, subject and verb', async () => {
    const mismatches: string[] = [];
    let probes = 0;
    for (const role of ALL_ROLES) {
      const nc = role === TENANT_ROLE ? await nats.connectTenant(TENANT, tenantSeed) : await nats.connect(role, role === Role.NODE ? { nodeId: SELF } : {});
      const allowed = watchViolations(nc);
      const data = new Uint8Array(0);
      const check = async (kind: 'Publish' | 'Subscription', subject: string, expected: boolean, what: string) => {
        probes++;
        const got = await allowed(kind, subject, () => {
          if (kind === 'Publish') nc.publish(subject, data);
          else {
            const sub = nc.subscribe(subject);
            void (async () => {
              try {
                for await (const _ of sub) void _;
              } catch {
                /* refused: the subscription ends with the permission error */
              }
            })();
            setTimeout(() => sub.unsubscribe(), 50);
          }
        });
        if (got !== expected) mismatches.push(`${role}: ${kind.toLowerCase()} ${subject} (${what}) — table says ${expected ? 'allowed' : 'refused'}, server ${got ? 'allowed' : 'refused'}`);
      };
      const core = [...new Set(Object.values(SUBJECT_PROBES).flatMap((f) => f(s))), ...INBOX_PROBES];
      for (const subject of core) {
        await check('Publish', subject, isAdmin(role) ? subject.startsWith(`${s.prefix}.`) : tablePublish(role, subject), 'core');
        await check('Subscription', subject, tableSubscribe(role, subject), 'core');
      }
      for (const subject of GLOBAL_JS) await check('Publish', subject, isAdmin(role) || (subject === '$JS.API.INFO' && jsInfo(role)), 'JetStream API');
      for (const r of resourceList()) {
        const ops = opsOf(role, r);
        for (const v of verbs(r)) await check('Publish', v.subject, isAdmin(role) || v.allowed(ops), `${v.verb} on ${r.kind} ${r.name}`);
      }
      await nc.close();
    }
    expect(mismatches).toEqual([]);
    expect(probes).toBeGreaterThan(500);
  });
});

describe('permission matrix: real client operations per role (resources as the scheduler creates them)', () => {
  let nats: TestNats;
  let admin: NatsConnection;
  const enc = new TextEncoder();

  beforeAll(async () => {
    nats = await startTestNats({ nodeIds: [SELF, OTHER] });
    admin = await nats.connect(Role.SCHEDULER);
    await ensureResources(admin);
    const kvm = new Kvm(admin);
    for (const r of resourceList().filter((x) => x.kind === 'kv')) await (await kvm.open(r.name)).put('seed', enc.encode('seed'));
    for (const r of resourceList().filter((x) => x.kind === 'store')) await (await new Objm(admin).open(r.name)).putBlob({ name: 'seed' }, enc.encode('seed'));
  }, 30_000);
  afterAll(async () => nats?.stop());

  it('every stream on the server is in the table', async () => {
    const jsm = await jetstreamManager(admin);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) names.push(n);
    const known = resourceList().map((r) => r.stream);
    for (const n of names) expect(known, `stream ${n} exists but the role table does not classify it`).toContain(n);
    expect(names.length).toBe(known.length);
  });

  for (const role of ALL_ROLES) {
    it(`${role}: each operation on each bucket, store and stream works or is refused as the table says`, async () => {
      let nc: NatsConnection;
      if (role === TENANT_ROLE) {
        const k = newTenantNkey();
        await nats.addTenants([{ tenant: TENANT, nkey: k.nkey }]);
        nc = await nats.connectTenant(TENANT, k.seed);
      } else nc = await nats.connect(role, role === Role.NODE ? { nodeId: SELF } : {});
      const mismatches: string[] = [];
      const expectOp = async (what: string, expected: boolean, op: () => Promise<unknown>) => {
        const ok = await Promise.race([
          op().then(
            () => true,
            () => false,
          ),
          new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
        ]);
        if (ok !== expected) mismatches.push(`${role}: ${what} — table says ${expected ? 'allowed' : 'refused'}, got ${ok ? 'allowed' : 'refused'}`);
      };
      for (const r of resourceList()) {
        const ops = opsOf(role, r);
        const can = (o: string) => isAdmin(role) || ops.includes(o);
        if (r.kind === 'kv') {
          const kv = await new Kvm(nc).open(r.name).catch(() => undefined);
          if (!kv) {
            // Opening needs some right on the bucket (a tenant user has none).
            expect(ops.length === 0 && !isAdmin(role), `${role} could not open ${r.name}`).toBe(true);
            continue;
          }
          await expectOp(`get ${r.name}`, can(KvOp.READ), async () => kv.get('seed'));
          await expectOp(`keys ${r.name}`, can(KvOp.READ), async () => {
            for await (const _ of await kv.keys()) void _;
          });
          await expectOp(`watch ${r.name}`, can(KvOp.READ), async () => {
            const w = await kv.watch({ key: 'seed' });
            for await (const e of w) {
              if (e.key === 'seed') break;
            }
            w.stop();
          });
          await expectOp(`put a key in ${r.name}`, can(KvOp.WRITE), () => kv.put(`probe-${role}`, enc.encode('x')));
          await expectOp(`create a key in ${r.name}`, can(KvOp.WRITE), () => kv.create(`probe-new-${role}`, enc.encode('x')));
          await expectOp(`delete a key in ${r.name}`, can(KvOp.WRITE), () => kv.delete('seed'));
          await expectOp(`put own node key in ${r.name}`, can(KvOp.WRITE) || can(KvOp.WRITE_OWN), () => kv.put(SELF, enc.encode('me')));
          await expectOp(`put another node's key in ${r.name}`, can(KvOp.WRITE), () => kv.put(OTHER, enc.encode('not me')));
          if (can(KvOp.WRITE)) await (await new Kvm(admin).open(r.name)).put('seed', enc.encode('seed')); // put back for the next role
        } else if (r.kind === 'store') {
          const store = await new Objm(nc).open(r.name).catch(() => undefined);
          if (!store) {
            // Opening (account info + stream info) needs some right on the store.
            expect(ops.length === 0 && !isAdmin(role), `${role} could not open ${r.name}`).toBe(true);
            continue;
          }
          await expectOp(`get from ${r.name}`, can(StoreOp.READ), async () => {
            if (!(await store.getBlob('seed'))) throw new Error('missing');
          });
          await expectOp(`list ${r.name}`, can(StoreOp.READ), () => store.list());
          await expectOp(`put into ${r.name}`, can(StoreOp.PUT), () => store.putBlob({ name: `probe-${role}` }, new Uint8Array(300_000)));
          await expectOp(`replace in ${r.name} (purges the old chunks)`, can(StoreOp.PUT), () => store.putBlob({ name: `probe-${role}` }, new Uint8Array([1])));
          await expectOp(`delete from ${r.name}`, can(StoreOp.PUT), () => store.delete('seed'));
          if (can(StoreOp.PUT)) await (await new Objm(admin).open(r.name)).putBlob({ name: 'seed' }, enc.encode('seed')); // put back for the next role
          await expectOp(`purge ${r.name} whole`, r.kind === 'store' && can(StoreOp.PUT), async () => (await jetstreamManager(nc, { checkAPI: false })).streams.purge(`OBJ_${r.name}`, { filter: `$O.${r.name}.C.none` }));
        } else {
          const jsm = await jetstreamManager(nc, { checkAPI: false });
          const subject = streamSubjects(r.key as StreamKey, s)[0]!.replace(/>$/, 'probe');
          await expectOp(`JetStream publish into ${r.name}`, can(StreamOp.PUBLISH), () => jetstream(nc).publish(subject, enc.encode(JSON.stringify({ id: `probe-${role}`, spec: {} })), { msgID: `probe-${role}-${r.key}` }));
          await expectOp(`stream info of ${r.name}`, isAdmin(role) || ops.length > 0, () => jsm.streams.info(r.name));
          await expectOp(`get a message of ${r.name}`, can(StreamOp.READ) || can(StreamOp.CONSUME), () => jsm.streams.getMessage(r.name, { seq: 1 }));
          await expectOp(`durable consumer on ${r.name}`, can(StreamOp.CONSUME), () => jsm.consumers.add(r.name, { durable_name: `probe-${role}`, ack_policy: AckPolicy.Explicit }));
          await expectOp(`purge ${r.name}`, isAdmin(role), () => jsm.streams.purge(r.name, { filter: `${s.prefix}.none` }));
        }
      }
      expect(mismatches).toEqual([]);
      await nc.close();
    });
  }
});
