/**
 * Shadow mirroring on the gateway: after the stable version has answered a request (the caller
 * already has that answer), the same request body goes to the model's ready shadow version for
 * a `fraction` of requests, off the caller's path — fire-and-forget, at most `maxInflight`
 * mirrored requests at once (more are dropped and counted, never queued), its own deadline, and
 * no failure of it ever reaches a caller. The two answers are compared per row (agreement, score
 * histograms: ml/serving/shadow.ts) and tallied; the tallies go to the rollout controller on
 * `shoal.gw.shadow` with the outcome reports, and the shadow's answer is thrown away.
 */
import { ShadowTally, compareInto, responseRows, type JsonItem } from '../ml/index.ts';
import { encode, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import type { InferenceDispatcher } from './dispatcher.ts';
import type { ShadowTarget } from './routing-table.ts';

export interface ShadowMirrorOptions {
  nc: NatsConnection;
  subjects: Subjects;
  dispatcher: Pick<InferenceDispatcher, 'infer'>;
  log: Logger;
  /** Mirrored requests in flight at once on this gateway. @default 32 */
  maxInflight?: number;
  /** Deadline of one mirrored request. @default 10000 */
  timeoutMs?: number;
  random?: () => number;
}

export class ShadowMirror {
  readonly #o: ShadowMirrorOptions;
  readonly #tally = new ShadowTally();
  readonly #random: () => number;
  #inflight = 0;

  constructor(o: ShadowMirrorOptions) {
    this.#o = o;
    this.#random = o.random ?? Math.random;
  }

  /** Mirrored requests in flight now (tests, metrics). */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Maybe mirrors one request whose stable answer is `stableBody`; returns at once (the
   * comparison settles later). Binary-output answers are not compared.
   */
  offer(shadow: ShadowTarget, stableVersion: number, item: JsonItem, stableBody: Uint8Array, stableHeaderLength: number | undefined): void {
    if (stableHeaderLength !== undefined || item.headerLength !== undefined) return;
    if (shadow.fraction <= 0 || this.#random() >= shadow.fraction) return;
    // Looked up when counting: a report may have taken the tally meanwhile.
    const tally = () => this.#tally.of(shadow.model, shadow.version, stableVersion, shadow.since);
    if (this.#inflight >= (this.#o.maxInflight ?? 32)) {
      tally().dropped++;
      return;
    }
    this.#inflight++;
    // Neither the request id nor the tenant: the shadow's answer is logged for nobody and billed to nobody.
    const copy: JsonItem = { format: item.format, body: item.body };
    const deadline = Date.now() + (this.#o.timeoutMs ?? 10_000);
    void this.#o.dispatcher
      .infer(shadow.service, shadow.maxBatchSize, copy, deadline)
      .then((r) => {
        const stable = responseRows(stableBody);
        // Stable's answer not comparable (strings, a shape we do not read): nothing to count.
        if (!stable) return;
        const mine = r.headerLength === undefined ? responseRows(r.body) : undefined;
        if (!mine) tally().errors++;
        else compareInto(tally(), stable, mine);
      })
      .catch(() => {
        tally().errors++;
      })
      .finally(() => {
        this.#inflight--;
      });
  }

  /** Publishes the tallies since the last report (called on the outcome report's timer). */
  report(): void {
    const counts = this.#tally.take();
    if (counts.length === 0 || this.#o.nc.isClosed()) return;
    try {
      this.#o.nc.publish(this.#o.subjects.gatewayShadow, encode({ type: 'shadow', counts }));
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, 'could not publish shadow tallies');
    }
  }
}
