/**
 * The rollout controller: the one owner of canary verdicts, as Ray Serve's controller owns
 * deployment state. Gateways report their outcome tallies per version (`shoal.gw.outcomes`,
 * every half second); the controller adds them up, judges every deployment whose canary is
 * ready against its policy (error rate and p99 relative to stable, after enough requests), and
 * rolls a breaching canary back. It runs on the scheduler leader (a control module), so a
 * verdict is taken once, in one place: gateways route, limit and report; they do not decide.
 *
 * Its soft state — the last ten minutes of outcomes — is rebuilt from the reports after a
 * failover; the deployment records it acts on are in KV, changed by compare-and-swap, so a
 * human's promote or abort racing a verdict is never lost.
 *
 * It also adds up the gateways' shadow tallies (`shoal.gw.shadow`, shadow.ts) per shadow track and
 * answers `shoal.sched.shadow-report` with the sums, which the pipeline's shadow stage judges. Like
 * the outcome window, those sums are soft state: after a failover they start again from the
 * gateways' next reports (the stage then waits for enough compared rows again).
 */
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { Subscription } from '@nats-io/transport-node';
import { decode, every, serve, systemClock, type Clock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { CanaryMonitor, OutcomeReport, TrackState, isDeployment, type Deployment, type Verdict } from './canary.ts';
import type { ModelDeployments } from './deployments.ts';
import { ShadowReportMsg, ShadowReportRequest, ShadowTally, emptyCounts, type ShadowCounts } from './shadow.ts';

const isOutcomeReport = TypeCompiler.Compile(OutcomeReport);
const isShadowReport = TypeCompiler.Compile(ShadowReportMsg);

export interface RolloutControllerOptions {
  nc: NatsConnection;
  subjects: Subjects;
  deployments: ModelDeployments;
  log: Logger;
  /** How often canaries are judged. @default 500 */
  judgeEveryMs?: number;
  clock?: Clock;
  /** Called after each automatic rollback (metrics, tests). */
  onRollback?: (model: string, version: number, verdict: Verdict) => void;
}

export class RolloutController {
  readonly monitor: CanaryMonitor;
  /** Every gateway's shadow tallies, summed per shadow track. */
  readonly shadows = new ShadowTally();
  /** Deployments as last seen (KV watch on `deploy.*`). */
  readonly deployments = new Map<string, Deployment>();
  readonly #o: RolloutControllerOptions;
  readonly #clock: Clock;
  readonly #rollingBack = new Set<string>();
  #sub: Subscription | undefined;
  readonly #shadowSubs: Subscription[] = [];
  #stopWatch: (() => void) | undefined;
  #stopTimer: (() => void) | undefined;

  constructor(o: RolloutControllerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.monitor = new CanaryMonitor(() => this.#clock.now());
  }

  async start(): Promise<void> {
    const { nc, subjects, deployments, log } = this.#o;
    this.#sub = nc.subscribe(subjects.gatewayOutcomes, { callback: (err, m) => void (err || this.#onReport(m.data)) });
    this.#shadowSubs.push(
      nc.subscribe(subjects.gatewayShadow, { callback: (err, m) => void (err || this.#onShadowReport(m.data)) }),
      serve(nc, subjects.scheduler('shadow-report'), ShadowReportRequest, (req) => this.shadowReport(req.model, req.version, req.since), { log }),
    );
    this.#stopWatch = await deployments.registry.watch((key, value) => {
      if (!key.startsWith('deploy.')) return;
      const name = key.slice('deploy.'.length);
      if (value !== undefined && isDeployment.Check(value)) this.deployments.set(name, value);
      else this.deployments.delete(name);
      // A shadow that ended (or was replaced) has no more use for its sums.
      const d = this.deployments.get(name);
      this.shadows.forget(name, d?.shadow?.since);
    });
    this.#stopTimer = every(this.#clock, this.#o.judgeEveryMs ?? 500, () => void this.judge());
    log.info('rollout controller: judging canaries on every gateway\'s outcomes');
  }

  stop(): void {
    this.#stopTimer?.();
    this.#stopWatch?.();
    this.#sub?.unsubscribe();
    for (const sub of this.#shadowSubs) sub.unsubscribe();
  }

  /** The cluster's sums for one shadow track (zeros until a gateway reported). */
  shadowReport(model: string, version: number, since: number): ShadowCounts {
    const c = this.shadows.get(model, version, since);
    return c ? structuredClone(c) : emptyCounts(model, version, this.deployments.get(model)?.stable.version ?? 1, since);
  }

  #onShadowReport(data: Uint8Array): void {
    let m: unknown;
    try {
      m = decode(data);
    } catch {
      return;
    }
    if (!isShadowReport.Check(m)) {
      this.#o.log.warn('ignored a malformed shadow report');
      return;
    }
    for (const c of m.counts) {
      // Only tallies of the shadow the record has now (a late report of a cleared one is dropped).
      const s = this.deployments.get(c.model)?.shadow;
      if (s && s.version === c.version && s.since === c.since) this.shadows.add(c);
    }
  }

  #onReport(data: Uint8Array): void {
    let m: unknown;
    try {
      m = decode(data);
    } catch {
      return;
    }
    if (!isOutcomeReport.Check(m)) {
      this.#o.log.warn('ignored a malformed outcome report');
      return;
    }
    for (const c of m.counts) this.monitor.addCounts(c);
  }

  /** One round of verdicts: rolls back each ready, auto-judged canary past its policy. */
  async judge(): Promise<void> {
    const { deployments, log } = this.#o;
    const work: Promise<void>[] = [];
    for (const [name, d] of this.deployments) {
      if (!d.canary || d.canary.state !== TrackState.READY || !d.policy.auto || this.#rollingBack.has(name)) continue;
      const verdict = this.monitor.judge(d);
      if (!verdict?.rollback) continue;
      const version = d.canary.version;
      this.#rollingBack.add(name);
      work.push(
        deployments
          .rollback(name, `automatic: ${verdict.reason}`, version)
          .then((done) => {
            if (!done) return; // promoted or aborted meanwhile
            log.warn({ model: name, version, reason: verdict.reason, canary: verdict.canary, stable: verdict.stable }, 'canary breached its policy: rolled back');
            this.#o.onRollback?.(name, version, verdict);
          })
          .catch((err: unknown) => log.error({ model: name, err: (err as Error).message }, 'automatic rollback failed'))
          .finally(() => this.#rollingBack.delete(name)),
      );
    }
    await Promise.all(work);
  }
}
