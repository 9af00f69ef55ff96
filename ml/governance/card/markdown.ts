/** A model card as Markdown: the same facts as the JSON, as headings and tables. */
import type { AuditEntry } from '../audit/log.ts';
import type { ModelCard } from './card.ts';

const num = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
/** Free text in a table cell or a line: no pipes or newlines breaking the layout. */
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

export function cardMarkdown(c: ModelCard): string {
  const out: string[] = [];
  out.push(`# Model card: ${c.model} v${c.version}`, '');
  out.push(`Registered ${c.createdAt}${c.aliases.length ? ` · aliases: ${c.aliases.join(', ')}` : ''} · ${c.artifact.format}, sha256 \`${c.artifact.sha256.slice(0, 16)}…\`, ${c.artifact.sizeBytes} bytes`, '');
  if (c.description) out.push(c.description, '');

  out.push('## Intended use', '', c.intendedUse ?? '_Not stated at registration._', '');
  out.push('## Limitations', '', c.limitations ?? '_Not stated at registration._', '');

  out.push('## Lineage', '');
  const l = c.lineage;
  out.push(`- Dataset: ${l.dataset ? `${l.dataset.name ? `${l.dataset.name} ` : ''}\`sha256:${l.dataset.digest.slice(0, 16)}…\`${l.dataset.rows !== undefined ? `, ${l.dataset.rows} rows` : ''}${l.dataset.sensitiveAttribute ? `, sensitive attribute \`${l.dataset.sensitiveAttribute}\`` : ''}` : 'not recorded'}`);
  if (l.features) out.push(`- Feature views: ${cell(JSON.stringify((l.features as { views?: unknown }).views ?? l.features))}`);
  out.push(`- Training job: ${l.trainingJobId ?? 'not recorded'}`);
  out.push(`- Code: ${l.codeVersion ?? 'not recorded'}`);
  if (l.hyperParameters) out.push(`- Hyper-parameters: \`${cell(JSON.stringify(l.hyperParameters))}\``);
  out.push(`- Inputs: ${c.signature.inputs.map((t) => `${t.name} ${t.datatype}[${t.shape.join(', ')}]`).join('; ')}`, '');

  out.push('## Metrics', '');
  const m = c.metrics;
  if (m.rows !== undefined) out.push(`Holdout: ${m.rows} rows, threshold ${num(m.threshold)}, ${Math.round((m.confidence ?? 0.95) * 100)}% intervals.`, '');
  out.push('| metric | value | interval |', '|---|---|---|');
  for (const v of m.values) out.push(`| ${v.name} | ${num(v.value)} | ${v.low !== undefined ? `[${num(v.low)}, ${num(v.high)}]` : '—'} |`);
  out.push('');

  out.push('## Fairness', '');
  if (!c.fairness) out.push('_No fairness audit: the version was not trained on a dataset that declares a sensitive attribute._', '');
  else {
    const a = c.fairness.audit;
    out.push(`Holdout of ${a.rows} rows at threshold ${num(a.threshold)}; groups under ${a.minGroupSize} rows are too small to judge; ${Math.round(a.bootstrap.confidence * 100)}% bootstrap intervals (${a.bootstrap.samples} resamples, seed ${a.bootstrap.seed}).`, '');
    for (const at of a.attributes) {
      out.push(`### ${at.attribute}`, '');
      out.push('| group | size | positives | selection rate | TPR | FPR | precision | AUC |', '|---|---|---|---|---|---|---|---|');
      for (const g of at.groups) out.push(`| ${cell(g.group)}${g.tooSmall ? ' (too small to judge)' : ''} | ${g.size} | ${g.positives} | ${num(g.selectionRate)} | ${num(g.tpr)} | ${num(g.fpr)} | ${num(g.precision)} | ${num(g.auc)} |`);
      out.push('', '| summary | value | interval |', '|---|---|---|');
      for (const [k, s] of Object.entries(at.summary)) out.push(`| ${k} | ${num(s.value)} | [${num(s.low)}, ${num(s.high)}] |`);
      out.push('');
    }
    const p = c.fairness.policy;
    if (!p) out.push('No fairness policy is set for this model.', '');
    else {
      out.push(`Policy (set by ${p.setBy}): \`${JSON.stringify(p.policy)}\` — **${c.fairness.verdict?.pass ? 'passes' : 'fails'}**.`, '');
      for (const v of c.fairness.verdict?.violations ?? []) out.push(`- ${v.message}`);
      if (c.fairness.verdict?.violations.length) out.push('');
    }
  }

  out.push('## Global importance', '');
  if (!c.importance) out.push('_Not stored with this version._', '');
  else {
    out.push(`Mean |attribution| (${c.importance.method}, ${c.importance.link} scale) over ${c.importance.rows} holdout rows.`, '', '| feature | importance |', '|---|---|');
    for (const f of c.importance.columns) out.push(`| ${cell(f.name)} | ${num(f.importance, 4)} |`);
    out.push('');
  }

  out.push('## Approvals', '');
  out.push(...auditLines(c.approvals), '');
  out.push('## Overrides', '');
  out.push(...auditLines(c.overrides), '');
  return out.join('\n');
}

function auditLines(es: readonly AuditEntry[]): string[] {
  if (es.length === 0) return ['_None._'];
  return es.map((e) => `- ${new Date(e.at).toISOString()} · ${e.action} by ${cell(e.who)}${e.why ? ` — “${cell(e.why)}”` : ''}`);
}
