import { html } from '../html.js';

/** A topic's error (the gateway could not read it) as a readable message; null when fine. */
export function TopicError({ value, what }) {
  if (!value) return html`<p class="muted" role="status">Waiting for ${what}…</p>`;
  if (value.error) return html`<p class="error" role="alert"><strong>${what} unavailable:</strong> ${value.error}</p>`;
  return null;
}

export const Badge = ({ kind = '', children }) => html`<span class=${`badge ${kind}`}>${children}</span>`;

export const stateKind = (s) => (/^(ready|running|alive|succeeded|placed|checkpointed|live)$/.test(s) ? 'ok' : /^(failed|dead|cancelled|rolled-back|canary-failed)$/.test(s) ? 'bad' : 'warn');

export function Table({ caption, head, rows, empty = 'None.', testid }) {
  return html`<div class="table-wrap">
    <table data-testid=${testid}>
      <caption>${caption}</caption>
      <thead><tr>${head.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead>
      <tbody>
        ${rows.length === 0 ? html`<tr><td colspan=${head.length} class="muted">${empty}</td></tr>` : rows.map((r) => html`<tr>${r.map((c, i) => (i === 0 ? html`<th scope="row">${c}</th>` : html`<td>${c}</td>`))}</tr>`)}
      </tbody>
    </table>
  </div>`;
}

export const Tile = ({ label, value, testid }) => html`<div class="tile" data-testid=${testid}><div class="tile-value">${value}</div><div class="tile-label">${label}</div></div>`;
