/**
 * Dashboard topics added after the first pages (issue #18): `monitoring` and `cost`. Kept out of
 * ui-feed.ts so that file stops growing; each later panel adds its source here the same way.
 *
 * Both read what the HTTP API reads — nothing is recomputed for the page:
 * - monitoring: for every deployed model, `modelMonitoring()` (what `GET /v1/models/{m}/monitoring`
 *   answers: per-feature drift, prediction drift, confidence, labeled and estimated quality,
 *   alerts); a monitor that does not answer keeps its error next to the gateway's last copy of its
 *   windows;
 * - cost: the scheduler leader's spend report by tenant, model and job (`costReport()`, as
 *   `GET /v1/cost`) and its right-sizing advice (`costAdvice()`, as `GET /v1/cost/recommendations`).
 *
 * They are asked every `pollMs` while a page is open (`feed.watched()`); a failed read is shown
 * on the panel as a readable message, never a blank.
 */
import { kvKeys, openBucket, resources, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { modelMonitoring, registryKeys, type WindowReport } from '../ml/index.ts';
import { costAdvice, costReport } from '../scheduler/index.ts';
import type { MonitoringGauges } from './monitoring.ts';
import type { DashboardFeed, DashboardSource } from './ui-feed.ts';

interface PanelDeps {
  nc: NatsConnection;
  subjects: Subjects;
  gauges: MonitoringGauges;
  /** How often the sources ask while a page is open. @default 2000 */
  pollMs?: number;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** A source whose snapshot is the last result of an async read, redone every `pollMs` while watched. */
abstract class PolledSource implements DashboardSource {
  abstract readonly topic: string;
  #value: unknown = undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #busy = false;

  constructor(
    private readonly feed: DashboardFeed,
    private readonly pollMs: number,
  ) {}

  protected abstract read(): Promise<unknown>;

  async start(): Promise<void> {
    this.#timer = setInterval(() => void this.#poll(false), this.pollMs);
    this.#timer.unref?.();
    await this.#poll(true);
  }

  async #poll(always: boolean): Promise<void> {
    if (this.#busy || (!always && !this.feed.watched())) return;
    this.#busy = true;
    try {
      this.#value = await this.read();
    } catch (err) {
      this.#value = { error: message(err) };
    } finally {
      this.#busy = false;
    }
  }

  snapshot(): unknown {
    return this.#value;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Drift, confidence, quality and alerts of every deployed model's monitored versions. */
class MonitoringSource extends PolledSource {
  readonly topic = 'monitoring';

  constructor(
    feed: DashboardFeed,
    pollMs: number,
    private readonly deps: PanelDeps,
  ) {
    super(feed, pollMs);
  }

  protected async read(): Promise<unknown> {
    const kv = await openBucket(this.deps.nc, resources(this.deps.subjects.prefix).buckets.models);
    const prefix = registryKeys.deployment('');
    const names = (await kvKeys(kv, `${prefix}>`)).map((k) => k.slice(prefix.length));
    const models = await Promise.all(
      names.map(async (name) => {
        try {
          const m = await modelMonitoring(this.deps.nc, this.deps.subjects, name);
          if (!m) return { model: name, versions: [] };
          return {
            model: name,
            versions: m.versions.map((v) => {
              if ('report' in v) return { version: v.version, role: v.role, windows: v.report.windows.slice(0, 24) as WindowReport[] };
              return { version: v.version, role: v.role, error: v.error, windows: this.deps.gauges.cached(name, v.version).sort((a, b) => b.end - a.end) };
            }),
          };
        } catch (err) {
          return { model: name, error: message(err), versions: [] };
        }
      }),
    );
    return { models };
  }
}

/** Spend by tenant, model and job, and the right-sizing advice. */
class CostSource extends PolledSource {
  readonly topic = 'cost';

  constructor(
    feed: DashboardFeed,
    pollMs: number,
    private readonly deps: PanelDeps,
  ) {
    super(feed, pollMs);
  }

  protected async read(): Promise<unknown> {
    const { nc, subjects } = this.deps;
    const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (err: unknown) => ({ error: message(err) }));
    const [tenant, model, job, advice] = await Promise.all([settle(costReport(nc, subjects, { by: 'tenant' })), settle(costReport(nc, subjects, { by: 'model' })), settle(costReport(nc, subjects, { by: 'job' })), settle(costAdvice(nc, subjects))]);
    return { tenant, model, job, advice };
  }
}

/** Adds the monitoring and cost topics to the gateway's dashboard feed. */
export function addPanelSources(feed: DashboardFeed, deps: PanelDeps): void {
  const pollMs = deps.pollMs ?? 2000;
  feed.addSource(new MonitoringSource(feed, pollMs, deps));
  feed.addSource(new CostSource(feed, pollMs, deps));
}
