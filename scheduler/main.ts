/**
 * Scheduler entry point. Every scheduler process ensures the cluster's JetStream resources and
 * contends for the leader lease (KV `leases`, revision CAS). The leader alone places actors
 * (`shoal.sched.actors`: spawn / stop, cost-aware placement), keeps them placed (re-placement
 * after a node dies or drains), declares silent nodes dead and serves `shoal.sched.status`; a
 * standby only answers presence pings until the lease comes to it.
 *
 * Every scheduler process also runs the control modules of `scheduler.modules` (by default the
 * registry service, `shoal:ml/control.ts`): those marked `leaderOnly` while it leads, the others
 * all the time (see cluster/control.ts).
 */
import { hostname } from 'node:os';
import {
  Directory,
  LifecycleState,
  RAFT_ELECTION_MAX_MS,
  Role,
  announce,
  componentLogger,
  dialTimeoutMs,
  discover,
  encode,
  ensureResources,
  loadControlModules,
  openBucket,
  replicasFor,
  parseFlags,
  resources,
  runProcess,
  systemClock,
  type ControlContext,
  type ControlHandle,
  type ControlModule,
  type ProcessContext,
  type ProcessState,
} from '../cluster/index.ts';
import { MembershipView } from './membership-view.ts';
import { ActorManager } from './actor-manager.ts';
import { ClusterPlacer } from './actor-placer.ts';
import { LeaderLease, startLeading } from './leader.ts';
import { PoolRisk } from './spot/pool-risk.ts';
import { catalogueFromProfiles } from './catalogue.ts';
import { startAutoscaling, withoutFlag } from './local-autoscaling.ts';
import { ServiceScaler } from './service-scaler.ts';
import { JobQueue } from './job-queue.ts';
import { serveSchedulerApi } from './api.ts';
import { createSchedulerMetrics, type SchedulerMetrics } from './scheduler-metrics.ts';
import { CostAccountant } from './cost/cost-accountant.ts';

const { flags } = parseFlags(process.argv.slice(2));
const schedulerId = flags.get('scheduler-id') ?? `scheduler-${hostname().replace(/[^A-Za-z0-9_-]/g, '-')}-${process.pid}`;

/** Starts control modules; returns their stop function (in reverse order). */
async function startControls(modules: ControlModule[], context: (m: ControlModule) => ControlContext): Promise<() => Promise<void>> {
  const handles: ControlHandle[] = [];
  try {
    for (const m of modules) handles.push(await step(`control module ${m.name}`, async () => m.start(context(m))));
  } catch (err) {
    // Not left half-started: the ones that did start are stopped before the failure is passed on.
    for (const h of handles.reverse()) await Promise.resolve().then(() => h.stop()).catch(() => undefined);
    throw err;
  }
  return async () => {
    for (const h of handles.reverse()) await h.stop();
  };
}

/** Runs one start step of the leader's; its failure names the step (a bare "timeout" said nothing). */
async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    // The same error (its class, code and stack kept), its message prefixed: wrapping it as a
    // cause made the logger print the message twice.
    if (err instanceof Error) {
      err.message = `${name}: ${err.message}`;
      throw err;
    }
    throw new Error(`${name}: ${String(err)}`);
  }
}

/** What only the leader runs; returns its stop function. */
/** Where the scrape-time series read the leader's state; empty while standing by. */
interface LeaderParts {
  actors: ActorManager;
  membership: MembershipView;
  cost: CostAccountant;
}

async function lead(ctx: ProcessContext, metrics: SchedulerMetrics, leaderParts: { current?: LeaderParts }, startLeaderControls: () => Promise<() => Promise<void>>, isLeader: () => boolean): Promise<() => Promise<void>> {
  const log = componentLogger(ctx.log, 'scheduler');
  const res = resources(ctx.config.subjectPrefix);
  // What has started so far, stopped again if a later step fails (JetStream not answering just
  // after a failover): the caller then tries again from a clean state.
  const started: (() => unknown)[] = [];
  try {
    // The roll call a quiet spell falls back on: every node answers presence pings over core NATS.
    const askNodes = async () =>
      (await discover(ctx.nc, ctx.subjects, Math.min(1000, ctx.config.membership.deadAfterMs / 8)))
        .filter((p) => p.role === Role.NODE)
        .map((p) => ({ nodeId: p.id, incarnation: typeof p.details.incarnation === 'string' ? p.details.incarnation : undefined }));
    const membership = new MembershipView(await step('nodes bucket', () => openBucket(ctx.nc, res.buckets.nodes)), ctx.config.membership.deadAfterMs, componentLogger(ctx.log, 'membership'), {
      askNodes,
      beats: (onBeat) => {
        const sub = ctx.nc.subscribe(ctx.subjects.nodeBeatAll, { callback: (err, m) => void (err || onBeat(m.subject.split('.').at(-2)!, m.data)) });
        return () => sub.unsubscribe();
      },
    });
    membership.onDead((nodeId, why) => ctx.nc.publish(ctx.subjects.event('node-dead'), encode({ nodeId, why, at: Date.now() })));
    await step('membership watch', () => membership.start());
    started.push(() => membership.stop());
    const catalogue = catalogueFromProfiles(ctx.config);
    const risk = new PoolRisk();
    const placer = new ClusterPlacer({ strategy: ctx.config.scheduler.strategy, catalogue, risk: (pool) => risk.multiplier(pool) });
    const actors = new ActorManager({
      nc: ctx.nc,
      subjects: ctx.subjects,
      directory: new Directory(await step('actors bucket', () => openBucket(ctx.nc, res.buckets.actors))),
      membership,
      placer,
      log: componentLogger(ctx.log, 'actors'),
      onPlacement: (outcome, seconds) => metrics.placement(outcome, seconds),
      isLeader,
    });
    await step('actor manager', () => actors.start());
    started.push(() => actors.stop());
    const autoscaling = startAutoscaling({
      config: ctx.config,
      nc: ctx.nc,
      subjects: ctx.subjects,
      placer,
      risk,
      catalogue,
      pending: () => actors.pendingRequests(),
      log: componentLogger(ctx.log, 'autoscaler'),
      // A launched node serves no metrics on the scheduler's port.
      nodeArgs: withoutFlag(
        process.argv.slice(2).filter((a, i, all) => a !== '--scheduler-id' && all[i - 1] !== '--scheduler-id'),
        'metrics.port',
      ),
      metrics,
    });
    started.push(() => autoscaling.stop());
    const jobs = new JobQueue({
      nc: ctx.nc,
      subjects: ctx.subjects,
      prefix: ctx.config.subjectPrefix,
      actors,
      log: componentLogger(ctx.log, 'jobs'),
      nodes: () => membership.view(),
      stall: { floorMs: ctx.config.scheduler.jobStallMs, maxRestarts: ctx.config.scheduler.jobMaxRestarts },
    });
    await step('job queue', () => jobs.start());
    started.push(() => jobs.stop());
    const services = new ServiceScaler({ host: actors, membership, nc: ctx.nc, subjects: ctx.subjects, log: componentLogger(ctx.log, 'services') });
    services.start();
    started.push(() => services.stop());
    const subs = serveSchedulerApi({ ctx, schedulerId, membership, actors, jobs, autoscaling, log });
    started.push(() => subs.forEach((x) => x.unsubscribe()));
    const cost = new CostAccountant({
      nc: ctx.nc,
      subjects: ctx.subjects,
      config: ctx.config,
      clock: systemClock,
      nodes: () => membership.view(),
      directory: new Directory(await step('actors bucket', () => openBucket(ctx.nc, res.buckets.actors))),
      jobs: await step('jobs bucket', () => openBucket(ctx.nc, res.buckets.jobs)),
      kv: await step('cost bucket', () => openBucket(ctx.nc, res.buckets.cost)),
      log: componentLogger(ctx.log, 'cost'),
    });
    await step('cost accountant', () => cost.start());
    started.push(() => cost.stop());
    const stopControls = await step('leader-only control modules', startLeaderControls);
    leaderParts.current = { actors, membership, cost };
    log.info({ strategy: ctx.config.scheduler.strategy }, 'leading: placing actors');
    return async () => {
      leaderParts.current = undefined;
      // What changes the fleet stops first, at once; then what may wait on NATS to flush (a
      // leader that lost its server waits seconds for those, and must not place meanwhile).
      actors.stop();
      services.stop();
      jobs.stop();
      for (const s of subs) s.unsubscribe();
      membership.stop();
      await stopControls();
      await cost.stop();
      await autoscaling.stop();
    };
  } catch (err) {
    for (const stop of started.reverse()) await Promise.resolve().then(stop).catch(() => undefined);
    throw err;
  }
}

await runProcess({
  role: Role.SCHEDULER,
  id: schedulerId,
  extraFlags: ['scheduler-id'],
  async start(ctx) {
    let state: ProcessState = LifecycleState.STARTING;
    const log = componentLogger(ctx.log, 'scheduler');
    // On a NATS cluster: R3 (or nats.replicas), and a wait for JetStream's meta leader first.
    const replicas = replicasFor(ctx.config.nats.url, ctx.config.nats.replicas);
    await ensureResources(ctx.nc, { prefix: ctx.config.subjectPrefix, replicas });
    log.info({ replicas }, 'JetStream resources ready');
    // On a cluster a node whose server's host is cut off is heard again only once its client has
    // given that server up (two unanswered pings, then a reconnect): declared dead before that,
    // its actors are re-placed though the node is fine.
    const { deadAfterMs } = ctx.config.membership;
    const pingMs = ctx.config.nats.pingIntervalMs;
    // Two unanswered pings, then a reconnect whose first dial may go to the cut host (5 s timeout).
    const reconnectMs = 3 * pingMs + dialTimeoutMs(pingMs);
    if (replicas > 1 && deadAfterMs < reconnectMs) log.warn({ deadAfterMs, pingIntervalMs: pingMs, reconnectMs }, 'membership.deadAfterMs is under the time a client takes to leave a cut-off NATS server (3 × nats.pingIntervalMs + one dial, 2–5 s): a node attached to it will be declared dead before it reconnects to another (lower nats.pingIntervalMs or raise membership.deadAfterMs)');
    // A lease stream whose leader died with the scheduler leader takes no write until nats-server
    // elects another (after 4–9 s of silence, then a campaign of up to 0.8 s): a shorter TTL cannot
    // be kept to then.
    const { leaseTtlMs } = ctx.config.scheduler;
    if (replicas > 1 && leaseTtlMs < RAFT_ELECTION_MAX_MS) log.warn({ leaseTtlMs, raftElectionMaxMs: RAFT_ELECTION_MAX_MS }, `scheduler.leaseTtlMs is under nats-server's RAFT election time (up to ${RAFT_ELECTION_MAX_MS} ms): when the lease stream's leader dies with the scheduler leader, the standby takes over only once JetStream has elected another, later than leaseTtlMs`);
    const controls = await loadControlModules(ctx.config.scheduler.modules);
    const controlContext = (m: ControlModule): ControlContext => ({
      nc: ctx.nc,
      subjects: ctx.subjects,
      config: ctx.config,
      log: componentLogger(ctx.log, `control:${m.name}`),
      schedulerId,
      isLeader: () => lease.isLeader(),
    });
    // A lease step waits at most one renewal interval for JetStream (not its default 5 s): a step
    // asked of a server that died silently must not hold the next one up longer than the TTL allows.
    const stepTimeoutMs = Math.max(500, Math.min(5000, Math.floor(ctx.config.scheduler.leaseTtlMs / 3)));
    const lease = new LeaderLease({
      kv: await openBucket(ctx.nc, resources(ctx.config.subjectPrefix).buckets.leases, { timeoutMs: stepTimeoutMs }),
      holderId: schedulerId,
      ttlMs: ctx.config.scheduler.leaseTtlMs,
      log: componentLogger(ctx.log, 'lease'),
    });
    const metrics = createSchedulerMetrics(ctx.metrics);
    const leaderParts: { current?: LeaderParts } = {};
    metrics.setSources({
      isLeader: () => lease.isLeader(),
      pendingByReason: () => leaderParts.current?.actors.pendingByReason() ?? new Map(),
      nodesByState: () => {
        const out = new Map<string, number>();
        for (const n of leaderParts.current?.membership.view() ?? []) {
          const state = !n.alive ? 'dead' : n.state === 'running' ? 'alive' : n.state;
          out.set(state, (out.get(state) ?? 0) + 1);
        }
        return out;
      },
      costRows: () => leaderParts.current?.cost.ledger.rows() ?? [],
      costPerPrediction: () => leaderParts.current?.cost.ledger.predictions() ?? new Map(),
    });
    let stopLeading: (() => Promise<void>) | undefined;
    // Leadership changes are applied one at a time, in order.
    let chain = Promise.resolve();
    lease.onChange((leading) => {
      if (state !== LifecycleState.STOPPED) metrics.leadership(leading);
      chain = chain.then(async () => {
        if (leading && !stopLeading) {
          stopLeading = await startLeading({
            start: () => lead(ctx, metrics, leaderParts, () => startControls(controls.filter((m) => m.leaderOnly), controlContext), () => lease.isLeader()),
            holding: () => lease.isLeader() && state !== LifecycleState.STOPPED,
            log,
          });
        } else if (!leading && stopLeading) {
          log.warn('lost the leader lease: standing by');
          const stop = stopLeading;
          stopLeading = undefined;
          await stop();
        }
      }).catch((err: unknown) => log.error({ err }, 'a leadership change failed'));
    });
    const stopControls = await startControls(controls.filter((m) => !m.leaderOnly), controlContext);
    if (controls.length) log.info({ modules: controls.map((m) => `${m.name}${m.leaderOnly ? ' (leader only)' : ''}`) }, 'control modules loaded');
    announce(ctx.nc, ctx.subjects, { role: Role.SCHEDULER, id: schedulerId, state: () => state, details: () => ({ leader: lease.isLeader() }) }, log);
    await lease.start();
    // Back on NATS after losing a server: a step at once (a standby whose server died with the
    // leader's host learns only now that the lease went quiet).
    void (async () => {
      for await (const st of ctx.nc.status()) if (st.type === 'reconnect') void lease.tick();
    })().catch(() => undefined);
    await chain;
    if (!lease.isLeader()) log.info({ leader: lease.leader() }, 'standing by');
    state = LifecycleState.RUNNING;
    return {
      info: { leader: lease.isLeader() },
      stop: async () => {
        state = LifecycleState.STOPPED;
        // Cleared first: releasing the lease below reports "not leading", which must not stop the
        // leader's modules a second time nor warn about a lost lease on an orderly shutdown.
        const leading = stopLeading;
        stopLeading = undefined;
        await leading?.();
        await stopControls();
        await lease.stop({ release: true });
      },
    };
  },
});
