/**
 * Dashboard topics added after the first pages (issue #18): `monitoring`, `cost` and
 * `pipelines`. Kept out of ui-feed.ts so that file stops growing; each later panel adds its
 * source here the same way: a read function handed to {@link polledSource}.
 *
 * All read what the HTTP API reads — nothing is recomputed for the page:
 * - monitoring: for every deployed model, `modelMonitoring()` (what `GET /v1/models/{m}/monitoring`
 *   answers: per-feature drift, prediction drift, confidence, labeled and estimated quality,
 *   alerts); a monitor that does not answer keeps its error next to the gateway's last copy of its
 *   windows;
 * - cost: the scheduler leader's spend report by tenant, model and job (`costReport()`, as
 *   `GET /v1/cost`) and its right-sizing advice (`costAdvice()`, as `GET /v1/cost/recommendations`);
 * - pipelines: every pipeline's spec and last run records (ui-pipelines.ts, as
 *   `GET /v1/pipelines/{name}/runs`).
 *
 * They are asked every `pollMs` of the feed's clock while a page is open (`feed.watched()`); a
 * failed read is shown on the panel as a readable message, never a blank.
 */
import { every, kvKeys, openBucket, resources, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { modelMonitoring, registryKeys, type WindowReport } from '../ml/index.ts';
import { costAdvice, costReport } from '../scheduler/index.ts';
import type { MonitoringGauges } from './monitoring.ts';
import type { DashboardFeed, DashboardSource } from './ui-feed.ts';
import { readPipelines } from './ui-pipelines.ts';

interface PanelDeps {
  nc: NatsConnection;
  subjects: Subjects;
  gauges: MonitoringGauges;
  /** How often the sources ask while a page is open. @default 2000 */
  pollMs?: number;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A topic whose snapshot is the last result of `read`: read once on start, then every `pollMs`
 * on the feed's clock while a page is open; a read still going is not started again, and a
 * failed one becomes `{ error }`.
 */
export function polledSource(feed: Pick<DashboardFeed, 'clock' | 'watched'>, topic: string, pollMs: number, read: () => Promise<unknown>): DashboardSource {
  let value: unknown = undefined;
  let busy = false;
  let stopLoop: (() => void) | undefined;
  const poll = async (always: boolean) => {
    if (busy || (!always && !feed.watched())) return;
    busy = true;
    try {
      value = await read();
    } catch (err) {
      value = { error: message(err) };
    } finally {
      busy = false;
    }
  };
  return {
    topic,
    async start() {
      stopLoop = every(feed.clock, pollMs, () => void poll(false));
      await poll(true);
    },
    snapshot: () => value,
    stop: () => stopLoop?.(),
  };
}

/** Drift, confidence, quality and alerts of every deployed model's monitored versions. */
async function readMonitoring(deps: PanelDeps): Promise<unknown> {
  const kv = await openBucket(deps.nc, resources(deps.subjects.prefix).buckets.models);
  const prefix = registryKeys.deployment('');
  const names = (await kvKeys(kv, `${prefix}>`)).map((k) => k.slice(prefix.length));
  const models = await Promise.all(
    names.map(async (name) => {
      try {
        const m = await modelMonitoring(deps.nc, deps.subjects, name);
        if (!m) return { model: name, versions: [] };
        return {
          model: name,
          versions: m.versions.map((v) => {
            if ('report' in v) return { version: v.version, role: v.role, windows: v.report.windows.slice(0, 24) as WindowReport[] };
            return { version: v.version, role: v.role, error: v.error, windows: deps.gauges.cached(name, v.version).sort((a, b) => b.end - a.end) };
          }),
        };
      } catch (err) {
        return { model: name, error: message(err), versions: [] };
      }
    }),
  );
  return { models };
}

/** Spend by tenant, model and job, and the right-sizing advice. */
async function readCost(deps: PanelDeps): Promise<unknown> {
  const { nc, subjects } = deps;
  const settle = <T>(p: Promise<T>) => p.then((value) => ({ value }), (err: unknown) => ({ error: message(err) }));
  const [tenant, model, job, advice] = await Promise.all([settle(costReport(nc, subjects, { by: 'tenant' })), settle(costReport(nc, subjects, { by: 'model' })), settle(costReport(nc, subjects, { by: 'job' })), settle(costAdvice(nc, subjects))]);
  return { tenant, model, job, advice };
}

/** Adds the monitoring, cost and pipelines topics to the gateway's dashboard feed. */
export function addPanelSources(feed: DashboardFeed, deps: PanelDeps): void {
  const pollMs = deps.pollMs ?? 2000;
  feed.addSource(polledSource(feed, 'monitoring', pollMs, () => readMonitoring(deps)));
  feed.addSource(polledSource(feed, 'cost', pollMs, () => readCost(deps)));
  feed.addSource(polledSource(feed, 'pipelines', pollMs, readPipelines(deps)));
}
