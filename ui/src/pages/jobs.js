import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { money, num, since } from '../format.js';
import { Chart } from '../chart.js';
import { Badge, TopicError, stateKind } from './common.js';

registerPage({ id: 'jobs', title: 'Jobs', order: 30 });

function Progress({ j }) {
  if (j.steps == null) return '—';
  const f = Math.min(1, (j.step || 0) / j.steps);
  return html`<progress max=${j.steps} value=${j.step || 0} aria-label=${`step ${j.step || 0} of ${j.steps}`}></progress> <span>${j.step || 0}/${j.steps} (${Math.round(f * 100)}%)</span>`;
}

function Jobs({ value }) {
  const [picked, pick] = useState(null);
  if (!value) return html`<${TopicError} value=${value} what="jobs" />`;
  const jobs = value.jobs || [];
  const sel = jobs.find((j) => j.id === picked) || jobs[0];
  return html`${value.error ? html`<p class="error" role="alert"><strong>Jobs unavailable:</strong> ${value.error}</p>` : null}
    <div class="table-wrap"><table data-testid="jobs">
      <caption>Jobs, newest first (select one for its curves)</caption>
      <thead><tr>${['Job', 'State', 'Progress', 'Loss', 'Val AUC', 'Workers', 'Cost', 'Submitted', 'Reason'].map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>
        ${jobs.length === 0 ? html`<tr><td colspan="9" class="muted">No jobs. Submit one with <code>shoal submit</code> or <code>POST /v1/jobs</code>.</td></tr>` : null}
        ${jobs.map((j) => html`<tr class=${sel && sel.id === j.id ? 'selected' : ''}>
          <th scope="row"><button class="link" aria-pressed=${sel && sel.id === j.id ? 'true' : 'false'} onClick=${() => pick(j.id)}>${j.id}</button></th>
          <td><${Badge} kind=${stateKind(j.state)}>${j.state}<//></td>
          <td><${Progress} j=${j} /></td>
          <td>${num(j.loss, 4)}</td>
          <td>${num(j.valAuc, 3)}</td>
          <td>${j.workers ?? '—'}</td>
          <td>${money(j.cost)}</td>
          <td>${since(j.submittedAt)}</td>
          <td>${j.reason || ''}</td>
        </tr>`)}
      </tbody>
    </table></div>
    ${sel ? html`<section class="card" aria-label=${`Curves of job ${sel.id}`} data-testid="job-curves">
      <h3>${sel.id} <span class="muted">${sel.actorType}</span></h3>
      ${sel.curve.length === 0 ? html`<p class="muted">No progress points yet.</p>` : html`<div class="charts">
        <${Chart} title="Training loss" xTime=${false} xLabel="step" x=${sel.curve.map((p) => p.step)} series=${[{ label: 'loss', values: sel.curve.map((p) => p.loss ?? null) }]} />
        <${Chart} title="Validation AUC (at checkpoints)" xTime=${false} xLabel="step" x=${sel.curve.filter((p) => p.valAuc != null).map((p) => p.step)} series=${[{ label: 'val AUC', values: sel.curve.filter((p) => p.valAuc != null).map((p) => p.valAuc) }]} />
      </div>`}
      ${sel.result ? html`<details><summary>Result</summary><pre>${JSON.stringify(sel.result, null, 2)}</pre></details>` : null}
    </section>` : null}`;
}

registerPanel({ page: 'jobs', id: 'jobs', title: 'Training and other jobs', order: 10, topic: 'jobs', render: ({ value }) => html`<${Jobs} value=${value} />` });
