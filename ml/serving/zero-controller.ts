/**
 * The scale-to-zero controller, on the scheduler leader (one owner of the decision, like the
 * rollout controller). It watches the deployment records and the gateways' outcome reports
 * (`shoal.gw.outcomes`, every half second from every gateway that served a request): a
 * `minReplicas: 0` track with no request for its idle timeout is scaled to zero — first the
 * record says so (gateways then hold new requests instead of sending them), then its replicas
 * stop. A wake (a gateway holding a request, `shoal.svc.scale-from-zero`) spawns the replicas
 * again from the spec kept in the record; they load the model and warm up before they subscribe,
 * so the record is cleared (and the held requests released) only once one serves. The time
 * from wake to serving is kept in the record as the track's last cold start.
 *
 * Wakes and scale-downs of one model run one at a time, in order; concurrent wakes share one start.
 */
import type { Subscription } from '@nats-io/transport-node';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { decode, encode, every, serve, systemClock, type Clock, type Logger, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import { MlErrors } from '../errors.ts';
import { OutcomeReport, TrackState, isDeployment, type Deployment, type Track } from './canary.ts';
import type { ModelDeployments } from './deployments.ts';
import { WAKE_SERVICE, WakeRequest, type WakeReply } from './scale-to-zero-spec.ts';

const isOutcomeReport = TypeCompiler.Compile(OutcomeReport);
const HISTORY = 50;

export interface ZeroControllerOptions {
  nc: NatsConnection;
  subjects: Subjects;
  deployments: ModelDeployments;
  log: Logger;
  /** How often idle tracks are looked for. @default 250 */
  checkEveryMs?: number;
  /**
   * Between the record saying "zero" (gateways hold from then on) and stopping the replicas, so
   * requests sent just before a gateway saw the record are still answered. @default 1000
   */
  drainMs?: number;
  /** How long a start from zero may take before the wake fails. @default 60000 */
  startTimeoutMs?: number;
  clock?: Clock;
}

export class ZeroController {
  /** Deployments as last seen (KV watch on `deploy.*`). */
  readonly deployments = new Map<string, Deployment>();
  readonly #o: ZeroControllerOptions;
  readonly #clock: Clock;
  /** Last request seen per model (clock ms); a track not seen yet counts from when this controller first saw it. */
  readonly #lastActive = new Map<string, number>();
  /** Per model: the tail of its serialized scale-downs and wakes. */
  readonly #chain = new Map<string, Promise<unknown>>();
  readonly #waking = new Map<string, Promise<WakeReply>>();
  readonly #stopping = new Set<string>();
  /** Scale-downs waiting out their drain, by model: a wake cuts the wait short (and keeps the replicas). */
  readonly #drains = new Map<string, () => void>();
  #subs: Subscription[] = [];
  #stopWatch: (() => void) | undefined;
  #stopTimer: (() => void) | undefined;

  constructor(o: ZeroControllerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
  }

  async start(): Promise<void> {
    const { nc, subjects, deployments, log } = this.#o;
    this.#subs.push(nc.subscribe(subjects.gatewayOutcomes, { callback: (err, m) => void (err || this.#onReport(m.data)) }));
    this.#subs.push(serve(nc, subjects.service(WAKE_SERVICE), WakeRequest, (m) => this.wake(m.model), { queue: WAKE_SERVICE, log }));
    this.#stopWatch = await deployments.registry.watch((key, value) => {
      if (!key.startsWith('deploy.')) return;
      const name = key.slice('deploy.'.length);
      if (value !== undefined && isDeployment.Check(value)) {
        this.deployments.set(name, value);
        if (!this.#lastActive.has(name)) this.#lastActive.set(name, this.#clock.now());
      } else this.deployments.delete(name);
    });
    this.#stopTimer = every(this.#clock, this.#o.checkEveryMs ?? 250, () => void this.check());
    log.info('scale-to-zero controller: idle minReplicas-0 tracks stop, wakes start them');
  }

  stop(): void {
    this.#stopTimer?.();
    this.#stopWatch?.();
    for (const s of this.#subs) s.unsubscribe();
  }

  /** Marks a model as used now (a request seen by a gateway, or a wake). */
  touch(model: string): void {
    this.#lastActive.set(model, this.#clock.now());
  }

  #onReport(data: Uint8Array): void {
    let m: unknown;
    try {
      m = decode(data);
    } catch {
      return;
    }
    if (!isOutcomeReport.Check(m)) return;
    for (const c of m.counts) if (c.requests > 0) this.touch(c.model);
  }

  /** One pass: scales every idle scale-to-zero track down. */
  async check(): Promise<void> {
    const now = this.#clock.now();
    const work: Promise<unknown>[] = [];
    for (const [name, d] of this.deployments) {
      const t = d.stable;
      if (!t.scaleToZero || t.zero || t.state !== TrackState.READY || d.canary || this.#stopping.has(name) || this.#waking.has(name)) continue;
      if (now - (this.#lastActive.get(name) ?? now) < t.scaleToZero.idleTimeoutMs) continue;
      this.#stopping.add(name);
      work.push(this.#serial(name, () => this.#scaleDown(name)).finally(() => this.#stopping.delete(name)));
    }
    await Promise.all(work);
  }

  /** Starts the replicas of a model scaled to zero and answers once one serves (shared by concurrent wakes). */
  wake(model: string): Promise<WakeReply> {
    this.touch(model);
    let p = this.#waking.get(model);
    if (!p) {
      p = this.#serial(model, () => this.#wake(model)).finally(() => this.#waking.delete(model));
      this.#waking.set(model, p);
      this.#drains.get(model)?.();
    }
    return p;
  }

  #serial<T>(model: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#chain.get(model) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(fn);
    this.#chain.set(model, next);
    void next.catch(() => undefined).then(() => {
      if (this.#chain.get(model) === next) this.#chain.delete(model);
    });
    return next;
  }

  async #scaleDown(name: string): Promise<void> {
    const { deployments, log } = this.#o;
    const d = await deployments.get(name);
    const t = d?.stable;
    if (!d || !t?.scaleToZero || t.zero || d.canary || t.state !== TrackState.READY) return;
    // A request may have come while this waited its turn.
    if (this.#clock.now() - (this.#lastActive.get(name) ?? 0) < t.scaleToZero.idleTimeoutMs) return;
    const spec = await deployments.replicaSpec(t);
    if (!spec) {
      log.warn({ model: name, service: t.service }, 'not scaling to zero: its first replica is not in the directory');
      return;
    }
    const at = Date.now();
    let changed = false;
    await deployments.change(name, (cur) => {
      changed = false;
      if (!cur || cur.stable.service !== t.service || cur.stable.zero || cur.canary) return undefined;
      changed = true;
      return withEvent({ ...cur, stable: { ...cur.stable, zero: { since: at, spec } }, updatedAt: at }, 'scaled-to-zero', t.version, `idle ${t.scaleToZero!.idleTimeoutMs} ms`);
    });
    if (!changed) return;
    // Routing moves off the replicas (gateways hold instead) as each sees the record: then they may stop.
    await new Promise<void>((r) => {
      const cancel = this.#clock.after(this.#o.drainMs ?? 1000, r);
      this.#drains.set(name, () => (cancel(), r()));
    });
    this.#drains.delete(name);
    // A wake came while draining: keep the replicas (the wake, next in line, clears the mark at once).
    if (this.#waking.has(name)) return;
    await deployments.stopReplicas(t);
    log.info({ model: name, version: t.version, replicas: t.replicas }, 'scaled to zero');
    this.#o.nc.publish(this.#o.subjects.event('model-scaled'), encode({ model: name, version: t.version, replicas: 0, at }));
  }

  async #wake(name: string): Promise<WakeReply> {
    const { deployments, log } = this.#o;
    const d = await deployments.get(name);
    if (!d) throw MlErrors.DEPLOYMENT_NOT_FOUND(name);
    const t: Track = d.stable;
    if (!t.zero) return { model: name, version: t.version, started: false };
    const t0 = performance.now();
    await deployments.startReplicas(name, t, t.zero.spec, this.#o.startTimeoutMs ?? 60_000);
    const seconds = (performance.now() - t0) / 1000;
    const at = Date.now();
    await deployments.change(name, (cur) => {
      if (!cur || cur.stable.service !== t.service || !cur.stable.zero) return undefined;
      const { zero: _z, ...rest } = cur.stable;
      return withEvent({ ...cur, stable: { ...rest, coldStart: { at, seconds } }, updatedAt: at }, 'woke', t.version, `cold start ${seconds.toFixed(3)} s`);
    });
    this.touch(name);
    log.info({ model: name, version: t.version, coldStartSeconds: seconds }, 'started from zero');
    this.#o.nc.publish(this.#o.subjects.event('model-scaled'), encode({ model: name, version: t.version, replicas: t.replicas, coldStartSeconds: seconds, at }));
    return { model: name, version: t.version, started: true, coldStartSeconds: seconds };
  }
}

function withEvent(d: Deployment, event: string, version: number, detail: string): Deployment {
  return { ...d, history: [...d.history, { at: Date.now(), event, version, detail }].slice(-HISTORY) };
}
