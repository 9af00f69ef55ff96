/**
 * Model monitoring at the edge (issue #15 item 6): the monitors' latest results as Prometheus
 * gauges on `/metrics`, and `GET /v1/models/{name}/monitoring`.
 *
 * Every monitor publishes each closed (or re-judged, when labels came) window's report on
 * `<prefix>.events.monitor`; the gateway keeps the newest report per model, version and window
 * size (and, apart, the newest one with labeled quality) and renders them at scrape time:
 *
 * - `shoal_model_drift{model,version,window,feature,test}`: the test's statistic (KS D, χ²,
 *   normalized Wasserstein, Jensen-Shannon distance) and, under `test="psi"`, the PSI; prediction
 *   drift has `feature="prediction:<output>"`;
 * - `shoal_model_drift_p_value{…}` (KS and χ², corrected) and `shoal_model_drift_detected{…}` (0/1);
 * - `shoal_model_dataset_drift_share{model,version,window}`;
 * - `shoal_model_quality{model,version,window,metric,source}`: `source="labeled"` (accuracy,
 *   precision, recall, f1, auc, ece on labeled rows) or `source="estimated"` (CBPE, before labels);
 * - `shoal_model_confidence_mean{model,version,window}`;
 * - `shoal_model_fairness{model,version,window,metric,attribute}`: the point estimate of each
 *   summary fairness metric (demographicParityDifference, equalizedOddsDifference,
 *   disparateImpact) on the labeled rows with groups; only the attribute's name is a label, never
 *   a group value.
 *
 * The route asks each monitored track's monitor actor for its report (lag included); a monitor
 * that does not answer is reported with its error and the gateway's last copy of its windows.
 */
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import client from 'prom-client';
import type { Subscription } from '@nats-io/transport-node';
import type { NatsConnection, Subjects } from '../cluster/index.ts';
import { MlErrors, modelMonitoring, type WindowReport } from '../ml/index.ts';

type App = FastifyInstance<any, any, any, any, TypeBoxTypeProvider>; // eslint-disable-line @typescript-eslint/no-explicit-any

const fromUtf8 = new TextDecoder();

export class MonitoringGauges {
  /** `<model>|<version>|<window>` → newest report, and newest report with labeled quality. */
  readonly latest = new Map<string, WindowReport>();
  readonly latestQuality = new Map<string, WindowReport>();
  /** `<model>|<version>|<window>` → newest report with a fairness block. */
  readonly latestFairness = new Map<string, WindowReport>();
  #sub: Subscription | undefined;

  constructor(registry: client.Registry) {
    const labels = ['model', 'version', 'window', 'feature', 'test'] as const;
    const self = this;
    new client.Gauge({
      name: 'shoal_model_drift',
      help: 'Drift statistic per feature of the newest closed window (KS D, chi-squared, normalized Wasserstein, Jensen-Shannon distance; test="psi": PSI)',
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) for (const f of driftRows(r)) {
          this.labels(r.model, String(r.version), r.window, f.feature, f.test).set(f.statistic);
          this.labels(r.model, String(r.version), r.window, f.feature, 'psi').set(f.psi);
        }
      },
    });
    new client.Gauge({
      name: 'shoal_model_drift_p_value',
      help: 'Corrected p-value of the KS / chi-squared drift test per feature of the newest closed window',
      labelNames: labels,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) for (const f of driftRows(r)) {
          const p = f.adjustedPValue ?? f.pValue;
          if (p !== undefined) this.labels(r.model, String(r.version), r.window, f.feature, f.test).set(p);
        }
      },
    });
    new client.Gauge({
      name: 'shoal_model_drift_detected',
      help: '1 when the feature drifted in the newest closed window',
      labelNames: ['model', 'version', 'window', 'feature'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) for (const f of driftRows(r)) this.labels(r.model, String(r.version), r.window, f.feature).set(f.drifted ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'shoal_model_dataset_drift_share',
      help: 'Share of features drifted in the newest closed window',
      labelNames: ['model', 'version', 'window'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) if (r.drift) this.labels(r.model, String(r.version), r.window).set(r.drift.share);
      },
    });
    new client.Gauge({
      name: 'shoal_model_confidence_mean',
      help: 'Mean prediction confidence in the newest closed window',
      labelNames: ['model', 'version', 'window'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) if (r.confidence) this.labels(r.model, String(r.version), r.window).set(r.confidence.currentMean);
      },
    });
    new client.Gauge({
      name: 'shoal_model_quality',
      help: 'Model quality per window: source="labeled" on labeled rows, source="estimated" from calibrated scores (CBPE) before labels',
      labelNames: ['model', 'version', 'window', 'metric', 'source'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latest.values()) {
          const e = r.estimated;
          if (e) for (const m of ['accuracy', 'precision', 'recall', 'f1', 'auc'] as const) if (Number.isFinite(e[m])) this.labels(r.model, String(r.version), r.window, m, 'estimated').set(e[m]);
        }
        for (const r of self.latestQuality.values()) {
          const q = r.quality!;
          for (const m of ['accuracy', 'precision', 'recall', 'f1', 'auc', 'ece'] as const) if (Number.isFinite(q[m].value)) this.labels(r.model, String(r.version), r.window, m, 'labeled').set(q[m].value);
        }
      },
    });
    new client.Gauge({
      name: 'shoal_model_fairness',
      help: 'Fairness summary metric (point estimate) per sensitive attribute on the labeled rows with groups of the newest window that had some',
      labelNames: ['model', 'version', 'window', 'metric', 'attribute'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.latestFairness.values())
          for (const a of r.fairness!.attributes)
            for (const [m, v] of Object.entries(a.summary)) if (typeof v?.value === 'number' && Number.isFinite(v.value)) this.labels(r.model, String(r.version), r.window, m, a.attribute).set(v.value);
      },
    });
  }

  /** Keeps `r` where it is the newest of its model, version and window size. */
  add(r: WindowReport): void {
    const key = `${r.model}|${r.version}|${r.window}`;
    const cur = this.latest.get(key);
    if (!cur || r.end >= cur.end) this.latest.set(key, r);
    if (r.quality) {
      const q = this.latestQuality.get(key);
      if (!q || r.end >= q.end) this.latestQuality.set(key, r);
    }
    if (r.fairness) {
      const f = this.latestFairness.get(key);
      if (!f || r.end >= f.end) this.latestFairness.set(key, r);
    }
  }

  /** Follows the monitors' reports. */
  start(nc: NatsConnection, subjects: Subjects): this {
    this.#sub = nc.subscribe(subjects.event('monitor'), {
      callback: (err, m) => {
        if (err) return;
        try {
          const r = JSON.parse(fromUtf8.decode(m.data)) as WindowReport;
          if (typeof r?.model === 'string' && typeof r.version === 'number' && typeof r.window === 'string') this.add(r);
        } catch {
          // A malformed report is ignored (monitors are cluster members; nothing outside can publish here).
        }
      },
    });
    return this;
  }

  stop(): void {
    this.#sub?.unsubscribe();
  }

  /** The gateway's copies of a model version's newest windows. */
  cached(model: string, version: number): WindowReport[] {
    return [...this.latest.values()].filter((r) => r.model === model && r.version === version);
  }
}

function driftRows(r: WindowReport) {
  return [...(r.drift?.features ?? []), ...(r.predictionDrift?.features ?? []).map((f) => ({ ...f, feature: `prediction:${f.feature}` }))];
}

export function registerMonitoringRoutes(app: App, deps: { nc: NatsConnection; subjects: Subjects; gauges: MonitoringGauges }): void {
  app.get(
    '/v1/models/:name/monitoring',
    {
      schema: {
        tags: ['v1'],
        summary: "The model's monitors: latest windows (per-feature drift test, statistic, p-value or distance, drifted; prediction drift; confidence; labeled quality with intervals; estimated quality), open windows, counters and lag",
        params: Type.Object({ name: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }) }),
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'closed windows per window size (newest first) @default 3' })) }),
      },
    },
    async (req) => {
      const m = await modelMonitoring(deps.nc, deps.subjects, req.params.name);
      if (!m) throw MlErrors.DEPLOYMENT_NOT_FOUND(req.params.name);
      const limit = req.query.limit ?? 3;
      const keep = (windows: WindowReport[]) => {
        const per = new Map<string, number>();
        return windows.filter((w) => {
          const n = per.get(w.window) ?? 0;
          per.set(w.window, n + 1);
          return n < limit;
        });
      };
      return {
        model: m.model,
        versions: m.versions.map((v) =>
          'report' in v
            ? { role: v.role, actorId: v.actorId, ...v.report, windows: keep(v.report.windows) }
            : { version: v.version, role: v.role, actorId: v.actorId, error: v.error, windows: keep(deps.gauges.cached(m.model, v.version).sort((a, b) => b.end - a.end)) },
        ),
      };
    },
  );
}
