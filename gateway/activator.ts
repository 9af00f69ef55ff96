/**
 * The activator (Knative's name): requests for a model scaled to zero are held here, in a
 * bounded queue per model, while the scheduler leader's controller starts a replica
 * (ml/serving/zero-controller.ts), then released to the dispatcher. Past the model's hold
 * deadline a held request gets 503 SHOAL_ERR_COLD_START_TIMEOUT (with the reason); beyond its
 * queue bound, 503 SHOAL_ERR_COLD_QUEUE_FULL at once. Nothing held is dropped silently: each
 * request is released, or answered with one of those errors.
 *
 * Release comes from whichever arrives first: the wake reply (the replica serves) or the
 * deployment record without its `zero` mark (KV watch, for wakes another gateway sent).
 */
import { errorCode, request, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { MlErrors, SCALE_TO_ZERO_DEFAULTS, WAKE_SERVICE, type ScaleToZero, type WakeReply } from '../ml/index.ts';
import type { RoutingTable } from './routing-table.ts';
import type { GatewayMetrics } from './metrics.ts';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Held {
  version: number;
  since: number;
  waiters: Set<Waiter>;
  /** Why the last wake attempt failed (for the timeout's message). */
  lastError?: string;
}

/** Codes that end a hold at once: retrying the wake would not change them. */
const FINAL = new Set(['SHOAL_ERR_DEPLOYMENT_NOT_FOUND', 'SHOAL_ERR_MODEL_NOT_READY', 'SHOAL_ERR_BAD_REQUEST', 'SHOAL_ERR_VALIDATION']);
const RETRY_MS = 250;

export interface ActivatorOptions {
  nc: NatsConnection;
  subjects: Subjects;
  routing: RoutingTable;
  metrics: GatewayMetrics;
  log: Logger;
}

export class Activator {
  readonly #o: ActivatorOptions;
  readonly #held = new Map<string, Held>();

  constructor(o: ActivatorOptions) {
    this.#o = o;
    o.routing.onDeploymentChange((name) => this.#onChange(name));
  }

  /** Requests held now, by model (for tests and status). */
  held(model: string): number {
    return this.#held.get(model)?.waiters.size ?? 0;
  }

  /**
   * Resolves at once unless `name`'s stable version (the one the request would reach) is scaled
   * to zero; then holds the request until a replica serves, or throws a 503.
   */
  admit(name: string, versionRef: string | undefined): Promise<void> | undefined {
    const t = this.#o.routing.deployments.get(name)?.stable;
    if (!t?.zero) return undefined;
    if (versionRef !== undefined && this.#o.routing.versionOf(name, versionRef) !== t.version) return undefined;
    return this.#hold(name, t.version, t.scaleToZero ?? SCALE_TO_ZERO_DEFAULTS);
  }

  stop(): void {
    for (const [name, h] of this.#held) this.#rejectAll(name, h, MlErrors.COLD_START_TIMEOUT(name, 0, 'the gateway is stopping'));
  }

  #hold(name: string, version: number, cfg: ScaleToZero): Promise<void> {
    let h = this.#held.get(name);
    if (h && h.waiters.size >= cfg.maxHeld) {
      this.#o.metrics.coldHeld.labels(name, 'queue-full').inc();
      return Promise.reject(MlErrors.COLD_QUEUE_FULL(name, cfg.maxHeld));
    }
    const fresh = !h;
    if (!h) {
      h = { version, since: performance.now(), waiters: new Set() };
      this.#held.set(name, h);
    }
    const held = h;
    const p = new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          held.waiters.delete(w);
          this.#o.metrics.coldHeld.labels(name, 'timeout').inc();
          reject(MlErrors.COLD_START_TIMEOUT(name, cfg.holdTimeoutMs, held.lastError ?? 'its replica is still starting'));
          if (held.waiters.size === 0 && this.#held.get(name) === held) this.#held.delete(name);
        }, cfg.holdTimeoutMs),
      };
      held.waiters.add(w);
    });
    if (fresh) void this.#wake(name, held, cfg);
    return p;
  }

  /** Asks the leader's controller to start the model, again while requests wait and it fails. */
  async #wake(name: string, h: Held, cfg: ScaleToZero): Promise<void> {
    const { nc, subjects, log } = this.#o;
    while (this.#held.get(name) === h && h.waiters.size > 0) {
      try {
        const r = await request<WakeReply>(nc, subjects.service(WAKE_SERVICE), { type: 'wake', model: name }, { timeoutMs: cfg.holdTimeoutMs });
        this.#release(name, h, r.started);
        return;
      } catch (err) {
        const code = errorCode(err);
        h.lastError = (err as Error).message;
        if (code && FINAL.has(code)) {
          this.#rejectAll(name, h, err as Error);
          return;
        }
        log.warn({ model: name, err: h.lastError }, 'wake from zero failed; retrying while requests wait');
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  #onChange(name: string): void {
    const h = this.#held.get(name);
    if (!h) return;
    const d = this.#o.routing.deployments.get(name);
    if (!d) this.#rejectAll(name, h, MlErrors.DEPLOYMENT_NOT_FOUND(name));
    else if (!d.stable.zero) this.#release(name, h, true);
  }

  #release(name: string, h: Held, coldStart: boolean): void {
    if (this.#held.get(name) !== h) return;
    this.#held.delete(name);
    if (coldStart && h.waiters.size > 0) this.#o.metrics.coldStart.labels(name, String(h.version)).observe((performance.now() - h.since) / 1000);
    if (h.waiters.size > 0) this.#o.metrics.coldHeld.labels(name, 'released').inc(h.waiters.size);
    for (const w of h.waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
    h.waiters.clear();
  }

  #rejectAll(name: string, h: Held, err: Error): void {
    if (this.#held.get(name) === h) this.#held.delete(name);
    for (const w of h.waiters) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    h.waiters.clear();
  }
}
