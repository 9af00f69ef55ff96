import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { num, pct, time } from '../format.js';
import { Chart } from '../chart.js';
import { Badge, Table, TopicError } from './common.js';

registerPage({ id: 'monitoring', title: 'Monitoring', order: 40 });

const yes = (b, id) => html`<span data-testid=${id}><${Badge} kind=${b ? 'bad' : 'ok'}>${b ? 'drifted' : 'no'}<//></span>`;
const pOf = (f) => (f.adjustedPValue ?? f.pValue);
const interval = (m) => (m ? `${num(m.value)}${m.lower != null ? ` [${num(m.lower)}, ${num(m.upper)}]` : ''}` : '—');

function DriftTable({ report, caption, testid }) {
  if (!report) return null;
  return html`<${Table}
    caption=${caption}
    testid=${testid}
    head=${['Feature', 'Test', 'Statistic', 'p-value (corrected)', 'PSI', 'Drifted', 'Rows (reference / window)']}
    rows=${report.features.map((f) => [f.feature, f.test, num(f.statistic, 4), pOf(f) == null ? '—' : num(pOf(f), 4), num(f.psi, 3), yes(f.drifted, `drifted-${testid}-${f.feature}`), `${report.referenceRows} / ${report.currentRows}`])}
  />`;
}

function Quality({ windows }) {
  const pts = [...windows].reverse();
  const labeled = pts.filter((w) => w.quality);
  const estimated = pts.filter((w) => w.estimated);
  return html`<${Table}
      caption="Quality per window (labeled rows with their intervals; estimated (CBPE) before labels)"
      head=${['Window end', 'Labeled rows', 'Accuracy', 'AUC', 'F1', 'Estimated accuracy', 'Estimated AUC']}
      rows=${pts.map((w) => [time(w.end), w.labeled, interval(w.quality?.accuracy), interval(w.quality?.auc), interval(w.quality?.f1), w.estimated ? `${num(w.estimated.accuracy)} [${num(w.estimated.accuracyInterval.lower)}, ${num(w.estimated.accuracyInterval.upper)}]` : '—', w.estimated ? num(w.estimated.auc) : '—'])}
      empty="No closed window yet."
    />
    ${pts.length > 1 && (labeled.length || estimated.length) ? html`<div class="charts"><${Chart} title="Quality over time" x=${pts.map((w) => w.end)} series=${[{ label: 'labeled AUC', values: pts.map((w) => w.quality?.auc.value ?? null) }, { label: 'estimated accuracy', values: pts.map((w) => w.estimated?.accuracy ?? null) }]} /></div>` : null}`;
}

function Version({ model, v }) {
  const w = v.windows[0];
  const id = `${model}-v${v.version}`;
  const alerts = v.windows.flatMap((x) => x.alerts || []);
  return html`<section class="card" aria-labelledby=${`mon-h-${id}`} data-testid=${`monitor-${id}`}>
    <h3 id=${`mon-h-${id}`}>${model} v${v.version} <span class="muted">${v.role}</span></h3>
    ${v.error ? html`<p class="error" role="alert"><strong>The monitor did not answer:</strong> ${v.error} (showing the gateway's last copy)</p>` : null}
    ${!w ? html`<p class="muted">No closed window yet: the monitor reports when a window closes.</p>` : html`
      <div class="stats" data-testid=${`monitor-stats-${id}`}>
        <span>window <strong>${w.window}</strong> ending ${time(w.end)}${w.partial ? ' (flushed early)' : ''}</span>
        <span><strong>${w.rows}</strong> rows tested (${w.source})</span>
        ${w.drift ? html`<span>dataset drift share <strong data-testid=${`share-${id}`}>${pct(w.drift.share)}</strong> ${w.drift.datasetDrift ? html`<${Badge} kind="bad">dataset drifted<//>` : html`<${Badge} kind="ok">no dataset drift<//>`}</span>` : null}
        ${w.confidence ? html`<span>confidence ${num(w.confidence.currentMean)} (reference ${num(w.confidence.referenceMean)}) ${w.confidence.fired ? html`<${Badge} kind="bad">confidence-drop alert<//>` : html`<${Badge} kind="ok">no confidence drop<//>`}</span>` : null}
      </div>
      ${w.skipped ? html`<p class="muted">Drift not tested: ${w.skipped}</p>` : null}
      <${DriftTable} report=${w.drift} caption="Feature drift (newest window)" testid=${`drift-${id}`} />
      <${DriftTable} report=${w.predictionDrift} caption="Prediction drift (newest window)" testid=${`pdrift-${id}`} />
      <${Quality} windows=${v.windows} />
      <${Table}
        caption="Alerts (kept windows, newest first)"
        testid=${`alerts-${id}`}
        head=${['Rule', 'Severity', 'Feature', 'Value', 'Threshold', 'Message']}
        rows=${alerts.map((a) => [a.rule, html`<${Badge} kind=${a.severity === 'critical' ? 'bad' : 'warn'}>${a.severity}<//>`, a.feature || '—', num(a.value, 4), num(a.threshold, 4), a.message])}
        empty="No alerts."
      />`}
  </section>`;
}

registerPanel({
  page: 'monitoring',
  id: 'monitoring',
  title: 'Drift and quality of deployed models',
  order: 10,
  topic: 'monitoring',
  render: ({ value }) => {
    if (!value || value.error) return html`<${TopicError} value=${value} what="model monitoring" />`;
    if (value.models.length === 0) return html`<p class="muted">No model is deployed.</p>`;
    return value.models.map((m) => html`<div data-testid=${`monitoring-${m.model}`}>
      ${m.error ? html`<p class="error" role="alert"><strong>${m.model}: monitoring unavailable:</strong> ${m.error}</p>` : null}
      ${!m.error && m.versions.length === 0 ? html`<p class="muted">${m.model}: deployed without a monitor (deploy with <code>monitoring</code> to get one).</p>` : null}
      ${m.versions.map((v) => html`<${Version} model=${m.model} v=${v} />`)}
    </div>`);
  },
});
