/**
 * Alert webhooks (issue #15 item 6): each alert is POSTed as JSON to every configured URL,
 * retried with exponential backoff when the receiver is unreachable or answers 5xx / 429 (a 4xx
 * other than 429 is the receiver refusing it: not retried). Delivery runs beside the monitor,
 * never holding it up; what could not be delivered is counted.
 */
import { systemClock, type Clock } from '../../cluster/index.ts';
import type { Alert } from './monitor-core.ts';

export interface WebhookOptions {
  /** Tries per URL and alert. @default 5 */
  attempts?: number;
  /** First wait between tries, doubled each time (capped at 30 s). @default 500 */
  backoffMs?: number;
  /** Each POST's time limit. @default 5000 */
  timeoutMs?: number;
  clock?: Clock;
  fetch?: typeof fetch;
}

export interface WebhookStats {
  delivered: number;
  failed: number;
  retries: number;
}

export class Webhooks {
  readonly stats: WebhookStats = { delivered: 0, failed: 0, retries: 0 };
  readonly #inflight = new Set<Promise<void>>();

  constructor(
    readonly urls: readonly string[],
    readonly o: WebhookOptions = {},
  ) {}

  /** Starts delivering `alert` to every URL (returns at once). */
  send(alert: Alert): void {
    for (const url of this.urls) {
      const p = this.deliver(url, alert).finally(() => this.#inflight.delete(p));
      this.#inflight.add(p);
    }
  }

  /** Waits for deliveries in flight. */
  async idle(): Promise<void> {
    while (this.#inflight.size) await Promise.all([...this.#inflight]);
  }

  /** One alert to one URL, with retries. Resolves either way (counted). */
  async deliver(url: string, alert: Alert): Promise<void> {
    const attempts = this.o.attempts ?? 5;
    const clock = this.o.clock ?? systemClock;
    const doFetch = this.o.fetch ?? fetch;
    let wait = this.o.backoffMs ?? 500;
    for (let i = 1; i <= attempts; i++) {
      let retry = true;
      try {
        const res = await doFetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-shoal-alert-id': alert.id }, body: JSON.stringify(alert), signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000) });
        await res.body?.cancel().catch(() => undefined);
        if (res.ok) {
          this.stats.delivered++;
          return;
        }
        retry = res.status >= 500 || res.status === 429;
      } catch {
        retry = true;
      }
      if (!retry || i === attempts) break;
      this.stats.retries++;
      await new Promise<void>((r) => clock.after(wait, r));
      wait = Math.min(wait * 2, 30_000);
    }
    this.stats.failed++;
  }
}
