import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { money, num } from '../format.js';
import { Table, TopicError } from './common.js';

registerPage({ id: 'cost', title: 'Cost', order: 50 });

/** One `{ value } | { error }` part of the cost topic: its error as a readable message. */
const failed = (part, what) => (part && part.error ? html`<p class="error" role="alert"><strong>${what} unavailable:</strong> ${part.error}</p>` : null);

function Spend({ part, by, head, cells }) {
  if (!part || part.error) return failed(part, `Cost by ${by}`);
  const r = part.value;
  return html`<${Table}
    caption=${`Spend by ${by}`}
    testid=${`cost-${by}`}
    head=${head}
    rows=${r.rows.map(cells)}
    empty="Nothing charged yet."
  />`;
}

registerPanel({
  page: 'cost',
  id: 'cost-spend',
  title: 'Spend per tenant, model and job',
  order: 10,
  topic: 'cost',
  render: ({ value }) => {
    if (!value || value.error) return html`<${TopicError} value=${value} what="cost" />`;
    const fleet = value.tenant && value.tenant.value;
    return html`${fleet ? html`<div class="stats"><span>spent <strong>${money(fleet.totalDollars)}</strong> in all (idle nodes included)</span><span>fleet <strong>${money(fleet.fleetDollarsPerHour)}</strong>/h</span><span>idle <strong>${money(fleet.idleDollarsPerHour)}</strong>/h (no actor asked for it)</span></div>` : null}
      <div class="two">
        <${Spend} part=${value.tenant} by="tenant" head=${['Tenant', 'Cost']} cells=${(r) => [r.tenant ?? '—', money(r.dollars)]} />
        <${Spend} part=${value.job} by="job" head=${['Job', 'Cost']} cells=${(r) => [r.job ?? '—', money(r.dollars)]} />
      </div>
      <${Spend} part=${value.model} by="model" head=${['Model version', 'Cost', 'Requests served', 'Cost per 1,000 requests']} cells=${(r) => [r.model ?? '—', money(r.dollars), r.predictions ?? '—', money(r.dollarsPer1kPredictions)]} />
      <p class="muted">Requests are counted per call to the model, not per row in a batch.</p>`;
  },
});

registerPanel({
  page: 'cost',
  id: 'cost-advice',
  title: 'Right-sizing recommendations',
  order: 20,
  topic: 'cost',
  render: ({ value }) => {
    if (!value || value.error) return html`<${TopicError} value=${value} what="cost" />`;
    const a = value.advice;
    if (!a || a.error) return failed(a, 'Recommendations');
    const v = a.value;
    return html`<p>Expected change if all are applied: <strong>${money(Math.abs(v.dollarsPerHourChange))}/h ${v.dollarsPerHourChange <= 0 ? 'saved' : 'more'}</strong></p>
      <${Table}
        caption="Recommendations"
        testid="cost-recommendations"
        head=${['Target', 'Kind', 'Current', 'Proposed', '$/h change', 'Reason']}
        rows=${v.recommendations.map((r) => [r.target, r.kind, String(r.current), String(r.proposed), num(r.dollarsPerHourChange, 4), r.reason])}
        empty="No recommendation: nothing looks over- or under-sized."
      />
      <${Table} caption="Skipped" head=${['Target', 'Why']} rows=${v.skipped.map((s) => [s.target, s.reason])} empty="Nothing skipped." />`;
  },
});
