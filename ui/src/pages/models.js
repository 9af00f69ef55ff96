import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { bytes, num, pct, since, time } from '../format.js';

const lastSet = (v) => {
  for (let i = v.length - 1; i >= 0; i--) if (v[i] != null) return v[i];
  return null;
};
import { Chart } from '../chart.js';
import { Badge, Table, TopicError, stateKind } from './common.js';

registerPage({ id: 'models', title: 'Models', order: 20 });

function TrafficSplit({ m }) {
  if (!m.traffic) return html`<p class="muted">Not deployed.</p>`;
  const d = m.deployment;
  const c = m.traffic.canary;
  return html`<div class="split" data-testid=${`split-${m.name}`}>
    <div class="split-bar" role="img" aria-label=${`Traffic: stable v${d.stable.version} ${pct(1 - c)}, canary ${d.canary ? `v${d.canary.version} ${pct(c)}` : 'none'}`}>
      <div class="split-stable" style=${{ width: pct(1 - c) }}>${1 - c >= 0.12 ? `v${d.stable.version} ${pct(1 - c)}` : ''}</div>
      ${c > 0 ? html`<div class="split-canary" style=${{ width: pct(c) }}>${c >= 0.12 ? `v${d.canary.version} ${pct(c)}` : ''}</div>` : null}
    </div>
  </div>`;
}

function Tracks({ m }) {
  const d = m.deployment;
  if (!d) return null;
  const row = (role, t) => [
    role,
    `v${t.version}`,
    html`<${Badge} kind=${stateKind(t.state)}>${t.state}<//>`,
    t.replicas,
    `≤ ${t.maxBatchSize} rows, ${t.maxQueueDelayMs} ms`,
    role === 'canary' ? html`<span data-testid=${`canary-weight-${m.name}`}>${pct(t.weight)}</span>${t.sticky ? ' (sticky)' : ''}` : pct(m.traffic.stable),
    since(t.since),
  ];
  return html`<${Table}
    caption="Deployment"
    testid=${`tracks-${m.name}`}
    head=${['Track', 'Version', 'State', 'Replicas', 'Batching', 'Traffic', 'Since']}
    rows=${[row('stable', d.stable), ...(d.canary ? [row('canary', d.canary)] : [])]}
  />`;
}

function Versions({ m }) {
  const aliasesOf = (v) => Object.entries(m.aliases).filter(([, n]) => n === v).map(([a]) => a);
  return html`<${Table}
    caption="Versions and aliases"
    testid=${`versions-${m.name}`}
    head=${['Version', 'Aliases', 'Format', 'Size', 'Metrics', 'Registered']}
    rows=${m.versions.map((v) => [
      `v${v.version}`,
      aliasesOf(v.version).map((a) => html`<${Badge}>${a}<//> `),
      v.format,
      bytes(v.sizeBytes),
      Object.entries(v.metrics || {}).map(([k, x]) => `${k} ${num(x)}`).join(', ') || '—',
      time(v.createdAt),
    ])}
  />`;
}

function History({ m }) {
  const h = m.deployment ? m.deployment.history : [];
  return html`<${Table}
    caption="Canary and rollout history (newest first)"
    testid=${`history-${m.name}`}
    head=${['Event', 'Version', 'At', 'Detail']}
    rows=${h.map((e) => [html`<${Badge} kind=${stateKind(e.event)}>${e.event}<//>`, `v${e.version}`, time(e.at), e.detail || ''])}
    empty="No rollout events."
  />`;
}

function Traffic({ m, sampleMs }) {
  const s = m.series;
  if (!s) return html`<p class="muted">No requests through this gateway yet (sampled every ${sampleMs / 1000} s).</p>`;
  // Rates: the mean over the last minute; latency and batch size: the latest sample that had requests.
  const n = Math.max(1, Math.min(s.t.length, Math.round(60_000 / sampleMs)));
  const mean = (v) => v.slice(-n).reduce((a, x) => a + x, 0) / n;
  return html`<div class="stats" data-testid=${`stats-${m.name}`}>
      <span><strong>${num(mean(s.rps), 2)}</strong> req/s (last min)</span>
      <span><strong>${num(mean(s.errorsPerSec), 2)}</strong> errors/s (last min)</span>
      <span><strong>${num(lastSet(s.p50Ms), 2)}</strong> ms p50</span>
      <span><strong>${num(lastSet(s.p99Ms), 2)}</strong> ms p99</span>
      <span><strong>${num(lastSet(s.batch), 1)}</strong> rows per batch</span>
    </div>
    <div class="charts">
      <${Chart} title="Requests per second" x=${s.t} series=${[{ label: 'all', values: s.rps }, { label: 'canary', values: s.canaryRps }, { label: 'errors', values: s.errorsPerSec }]} />
      <${Chart} title="Latency at the gateway (ms)" x=${s.t} series=${[{ label: 'p50', values: s.p50Ms }, { label: 'p99', values: s.p99Ms }]} />
      <${Chart} title="Mean batch size (rows)" x=${s.t} series=${[{ label: 'batch', values: s.batch }]} />
    </div>`;
}

registerPanel({
  page: 'models',
  id: 'models',
  title: 'Registered models',
  order: 10,
  topic: 'models',
  render: ({ value }) => {
    if (!value || value.error) return html`<${TopicError} value=${value} what="the model registry" />`;
    if (value.models.length === 0) return html`<p class="muted">No model is registered. Register one with <code>shoal models register</code>.</p>`;
    return html`<nav class="jump" aria-label="Models on this page">${value.models.map((m) => html`<a href=${`#/models/${m.name}`} onClick=${(e) => { e.preventDefault(); document.getElementById(`model-${m.name}`)?.scrollIntoView(); }}>${m.name}</a>`)}</nav>
      ${value.models.map((m) => html`<section class="card" id=${`model-${m.name}`} aria-labelledby=${`model-h-${m.name}`} data-testid=${`model-${m.name}`}>
        <h3 id=${`model-h-${m.name}`}>${m.name} <span class="muted">latest v${m.latest}</span> ${Object.entries(m.aliases).map(([a, v]) => html`<${Badge}>${a} → v${v}<//> `)}</h3>
        <${TrafficSplit} m=${m} />
        <div class="two">
          <div><${Tracks} m=${m} /><${Versions} m=${m} /></div>
          <div><${History} m=${m} /></div>
        </div>
        <h4>Traffic through this gateway</h4>
        <${Traffic} m=${m} sampleMs=${value.sampleMs} />
      </section>`)}`;
  },
});
