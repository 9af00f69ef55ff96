/**
 * The Pipelines page (issue #16 item 5): every continuous-training pipeline — its model, triggers,
 * gates and rollout — and its last runs as a timeline, trigger → data snapshot → training job →
 * gates report → (shadow) → canary steps → decision, the run in flight highlighted at its current
 * stage. Selecting a run shows its full record: each gate check with its message, the AUC
 * comparison, the canary steps and the decision's reason.
 *
 * Everything is the run records as the runner wrote them (topic `pipelines`,
 * gateway/ui-pipelines.ts); nothing is recomputed here. A state this page does not know (a stage
 * added later) is shown by its name, so the page keeps working as the runner grows stages.
 */
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { registerPage, registerPanel } from '../panels.js';
import { since, time } from '../format.js';
import { Badge, TopicError } from './common.js';

registerPage({ id: 'pipelines', title: 'Pipelines', order: 60 });

/** Gate numbers are shown with three decimals, as the gate messages write them. */
const f3 = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(3) : '—');
const signed = (x) => (typeof x === 'number' && x >= 0 ? `+${f3(x)}` : f3(x));
const outcomeKind = (o) => (o === 'promoted' ? 'ok' : o ? 'bad' : 'warn');
const passText = (p) => (p === true ? 'pass' : p === false ? 'fail' : '—');

/** Which timeline stage a known in-flight state is working on; unknown states get their own stage. */
const CURRENT = { triggered: 'snapshot', snapshotted: 'job', training: 'job', trained: 'gates', evaluated: 'canary', rollout: 'canary' };

function triggersText(t) {
  if (!t) return 'manual only';
  const out = ['manual'];
  if (t.interval != null) out.push(`every ${t.interval}`);
  if (t.onAlert && t.onAlert.length) out.push(`on ${t.onAlert.join(' or ')} alert`);
  if (t.newLabels != null) out.push(`after ${t.newLabels} new labels`);
  return out.join(' · ');
}

function gatesText(g) {
  if (!g) return '—';
  const out = [`${g.metric || 'auc'} may drop at most ${g.maxDrop} (${Math.round((g.confidence || 0.95) * 100)}% lower bound)`];
  if (g.maxEce != null) out.push(`ECE ≤ ${g.maxEce}`);
  if (g.fairness) out.push('fairness policy');
  if (g.holdout) out.push(`holdout ${g.holdout}`);
  return out.join(' · ');
}

const rolloutText = (r) => (!r ? '—' : r.direct ? 'direct (no canary)' : r.steps ? `canary ${r.steps.join(' → ')}%` : 'canary');

const check = (r, gate) => r.report && r.report.checks && r.report.checks.find((c) => c.gate === gate);

/** The run's stages in order, each `{ key, label, text, status }` (status: done | current | fail | pending). */
function stages(r) {
  const rep = r.report;
  const fair = check(r, 'fairness');
  const list = [
    { key: 'trigger', label: 'Trigger', text: `${r.trigger.kind}${r.trigger.detail ? `: ${r.trigger.detail}` : ''}${r.coalesced && r.coalesced.length ? ` (+${r.coalesced.length} coalesced)` : ''}`, filled: true },
    { key: 'snapshot', label: 'Snapshot', text: r.snapshot ? `${r.snapshot.digest.slice(0, 12)} · ${r.snapshot.rows} rows` : '', filled: !!r.snapshot },
    { key: 'job', label: 'Job', text: r.jobId ? `${r.jobId}${r.candidate ? ` → v${r.candidate.version}` : ''}` : '', filled: !!r.candidate },
    {
      key: 'gates',
      label: 'Gates',
      text: rep
        ? [rep.auc ? `AUC ${f3(rep.auc.candidate)} vs ${f3(rep.auc.production)}` : check(r, 'auc') ? check(r, 'auc').message : '', rep.ece != null ? `ECE ${f3(rep.ece)}` : '', fair ? `fairness ${passText(fair.pass)}` : ''].filter(Boolean).join(' · ')
        : '',
      filled: !!rep,
      fail: rep && !rep.pass,
    },
  ];
  if (r.shadowReport || r.state === 'shadow') {
    const s = r.shadowReport;
    list.push({ key: 'shadow', label: 'Shadow', text: s ? (s.skipped ? `skipped: ${s.reason}` : `agreement ${f3(s.agreement)} · ${passText(s.pass)}`) : '', filled: !!s, fail: s && s.pass === false });
  }
  const steps = r.steps || [];
  list.push({ key: 'canary', label: 'Canary', text: steps.map((s) => `${s.percent}% ${s.pass ? '✓' : '✗'}`).join(' → '), filled: steps.length > 0 && (r.state === 'done' || steps.some((s) => !s.pass)), fail: steps.some((s) => !s.pass) });
  const d = r.decision;
  list.push({ key: 'decision', label: 'Decision', text: d ? d.outcome : '', filled: !!d, fail: d && d.outcome !== 'promoted' });

  const done = r.state === 'done';
  const known = Object.prototype.hasOwnProperty.call(CURRENT, r.state) || r.state === 'shadow';
  if (!done && !known) {
    // A stage this page does not know: shown by its state name after the last filled stage.
    const at = list.reduce((i, s, j) => (s.filled ? j : i), 0) + 1;
    list.splice(at, 0, { key: r.state, label: r.state, text: 'in progress', filled: false, unknown: true });
  }
  const currentKey = done ? undefined : known ? (r.state === 'shadow' ? 'shadow' : CURRENT[r.state]) : r.state;
  return list.map((s) => ({ ...s, status: s.key === currentKey ? 'current' : s.fail ? 'fail' : s.filled ? 'done' : s.key === 'canary' && done && !s.text ? 'skipped' : 'pending' }));
}

function Timeline({ r, id }) {
  return html`<ol class="timeline" aria-label=${`Stages of run ${r.run}`} data-testid=${`timeline-${id}`}>
    ${stages(r).map((s) => html`<li class=${`stage stage-${s.status}`} data-stage=${s.key} data-testid=${`stage-${id}-${s.key}`} aria-current=${s.status === 'current' ? 'step' : undefined}>
      <strong>${s.label}</strong>${s.status === 'current' ? html` <span class="muted">(now)</span>` : null}${s.status === 'skipped' ? html` <span class="muted">skipped</span>` : null}
      ${s.text ? html`<span class="stage-text">${s.text}</span>` : null}
    </li>`)}
  </ol>`;
}

function Field({ label, children }) {
  return html`<div><dt>${label}</dt><dd>${children}</dd></div>`;
}

/** One run's full record: the gate checks with their messages, the AUC comparison, the canary, the decision. */
function RunDetail({ r, id }) {
  const rep = r.report;
  const sh = r.shadowReport;
  return html`<section class="card" aria-label=${`Run ${r.run} of ${r.pipeline}`} data-testid=${`run-detail-${id}`}>
    <h3>${r.pipeline} run ${r.run} <${Badge} kind=${r.state === 'done' ? outcomeKind(r.decision && r.decision.outcome) : 'warn'}>${r.state === 'done' && r.decision ? r.decision.outcome : r.state}<//></h3>
    ${r.decision ? html`<p data-testid=${`decision-${id}`}><strong>${r.decision.outcome}</strong>: <span data-testid=${`reason-${id}`}>${r.decision.reason}</span> <span class="muted">(${time(r.decision.at)})</span></p>` : html`<p class="muted">In flight: ${r.state}.</p>`}
    <dl class="fields">
      <${Field} label="Trigger">${r.trigger.kind}${r.trigger.detail ? ` — ${r.trigger.detail}` : ''} (${time(r.trigger.at)})<//>
      <${Field} label="Coalesced triggers">${r.coalesced && r.coalesced.length ? r.coalesced.map((t) => `${t.kind}${t.detail ? ` (${t.detail})` : ''} at ${time(t.at)}`).join('; ') : 'none'}<//>
      <${Field} label="Spec revision">${r.specRevision}<//>
      <${Field} label="Data snapshot">${r.snapshot ? html`<code>${r.snapshot.digest}</code> · ${r.snapshot.rows} rows` : '—'}<//>
      <${Field} label="Training job">${r.jobId || '—'}<//>
      <${Field} label="Candidate / production">${r.candidate ? `v${r.candidate.version}` : '—'} / ${r.production ? `v${r.production.version}` : '—'}<//>
      <${Field} label="Last moved by">${r.by || '—'}, ${since(r.updatedAt)}<//>
    </dl>
    <h4>Gates report</h4>
    ${rep
      ? html`<p>${rep.pass ? html`<${Badge} kind="ok">passed<//>` : html`<${Badge} kind="bad">failed<//>`} on ${rep.holdoutRows} holdout rows</p>
        ${rep.auc ? html`<div class="table-wrap"><table data-testid=${`auc-${id}`}>
          <caption>AUC, candidate vs production on the same holdout (DeLong)</caption>
          <thead><tr>${['Candidate', 'Production', 'Δ', 'Std. error', `${Math.round(rep.auc.confidence * 100)}% lower bound of Δ`].map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
          <tbody><tr>
            <td data-testid=${`auc-candidate-${id}`}>${f3(rep.auc.candidate)}</td><td data-testid=${`auc-production-${id}`}>${f3(rep.auc.production)}</td>
            <td>${signed(rep.auc.delta)}</td><td>${f3(rep.auc.se)}</td><td data-testid=${`auc-low-${id}`}>${signed(rep.auc.low)}</td>
          </tr></tbody>
        </table></div>` : null}
        ${rep.ece != null ? html`<p>ECE <strong data-testid=${`ece-${id}`}>${f3(rep.ece)}</strong></p>` : null}
        <div class="table-wrap"><table data-testid=${`checks-${id}`}>
          <caption>Gate checks</caption>
          <thead><tr><th scope="col">Gate</th><th scope="col">Result</th><th scope="col">Message</th></tr></thead>
          <tbody>${rep.checks.map((c) => html`<tr><th scope="row">${c.gate}</th><td><${Badge} kind=${c.pass ? 'ok' : 'bad'}>${passText(c.pass)}<//></td><td>${c.message}</td></tr>`)}</tbody>
        </table></div>`
      : html`<p class="muted">Not evaluated yet.</p>`}
    ${sh && sh.skipped ? html`<h4>Shadow comparison</h4><p class="muted" data-testid=${`shadow-${id}`}>Skipped: ${sh.reason}</p>` : null}
    ${sh && !sh.skipped ? html`<h4>Shadow comparison</h4><dl class="fields" data-testid=${`shadow-${id}`}>
      <${Field} label="Compared">${sh.compared ?? '—'}<//>
      <${Field} label="Agreement">${f3(sh.agreement)}<//>
      <${Field} label="Distance">${f3(sh.distance)}<//>
      <${Field} label="Result">${passText(sh.pass)}<//>
    </dl>` : null}
    <h4>Canary</h4>
    ${r.steps && r.steps.length
      ? html`<div class="table-wrap"><table data-testid=${`steps-${id}`}>
          <caption>Canary steps</caption>
          <thead><tr><th scope="col">Traffic</th><th scope="col">Result</th><th scope="col">At</th><th scope="col">Reason</th></tr></thead>
          <tbody>${r.steps.map((s) => html`<tr><th scope="row">${s.percent}%</th><td><${Badge} kind=${s.pass ? 'ok' : 'bad'}>${passText(s.pass)}<//></td><td>${time(s.at)}</td><td>${s.reason || ''}</td></tr>`)}</tbody>
        </table></div>`
      : html`<p class="muted">${r.state === 'done' ? 'No canary step (see the decision: rejected at the gates, rolled out directly, or no deployment to canary).' : 'Not started.'}</p>`}
    <details><summary>Raw record</summary><pre>${JSON.stringify(r, null, 2)}</pre></details>
  </section>`;
}

function Pipeline({ p, picked, pick }) {
  const sel = p.runs.find((r) => `${p.name}-${r.run}` === picked);
  return html`<section class="card" aria-label=${`Pipeline ${p.name}`} data-testid=${`pipeline-${p.name}`}>
    <h3>${p.name} <span class="muted">model ${p.model ?? '—'} · spec revision ${p.revision ?? '—'} · ${p.runCount} run${p.runCount === 1 ? '' : 's'}</span>
      ${p.inFlight != null ? html` <${Badge} kind="warn">run ${p.inFlight} in flight<//>` : null}</h3>
    ${p.error ? html`<p class="error" role="alert"><strong>Pipeline ${p.name} unavailable:</strong> ${p.error}</p>` : null}
    <dl class="fields">
      <${Field} label="Triggers">${triggersText(p.triggers)}<//>
      <${Field} label="Gates">${gatesText(p.gates)}<//>
      <${Field} label="Rollout">${rolloutText(p.rollout)}<//>
    </dl>
    <div class="table-wrap"><table data-testid=${`runs-${p.name}`}>
      <caption>Last runs, newest first (select one for its full record)</caption>
      <thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Timeline</th><th scope="col">Started</th></tr></thead>
      <tbody>
        ${p.runs.length === 0 ? html`<tr><td colspan="4" class="muted">No run yet. Start one with <code>shoal pipelines run ${p.name}</code>.</td></tr>` : null}
        ${p.runs.map((r) => {
          const id = `${p.name}-${r.run}`;
          const flying = r.state !== 'done';
          return html`<tr class=${[flying ? 'inflight' : '', sel === r ? 'selected' : ''].join(' ').trim()} data-testid=${`run-${id}`}>
            <th scope="row"><button class="link" aria-pressed=${sel === r ? 'true' : 'false'} aria-expanded=${sel === r ? 'true' : 'false'} onClick=${() => pick(sel === r ? null : id)}>run ${r.run}</button></th>
            <td data-testid=${`state-${id}`}>${flying ? html`<${Badge} kind="warn">in flight: ${r.state}<//>` : html`<${Badge} kind=${outcomeKind(r.decision && r.decision.outcome)}>${r.decision ? r.decision.outcome : r.state}<//>`}</td>
            <td><${Timeline} r=${r} id=${id} /></td>
            <td>${since(r.trigger.at)}</td>
          </tr>`;
        })}
      </tbody>
    </table></div>
    ${sel ? html`<${RunDetail} r=${sel} id=${`${p.name}-${sel.run}`} />` : null}
  </section>`;
}

function Pipelines({ value }) {
  const [picked, pick] = useState(null);
  if (!value || value.error) return html`<${TopicError} value=${value} what="pipelines" />`;
  const runner = value.runner || {};
  return html`${runner.error ? html`<p class="error" role="alert" data-testid="pipelines-runner"><strong>Pipeline runner unavailable:</strong> ${runner.error}. Runs in flight wait until a scheduler leads again; the records below are the last written.</p>` : null}
    ${value.pipelines.length === 0 ? html`<p class="muted">No pipeline. Apply one with <code>shoal pipelines apply</code>.</p>` : null}
    ${value.pipelines.map((p) => html`<${Pipeline} p=${p} picked=${picked} pick=${pick} />`)}
    ${value.truncated ? html`<p class="muted">More pipelines than shown.</p>` : null}`;
}

registerPanel({ page: 'pipelines', id: 'pipelines', title: 'Continuous-training pipelines and their runs', order: 10, topic: 'pipelines', render: ({ value }) => html`<${Pipelines} value=${value} />` });
