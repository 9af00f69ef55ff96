/**
 * `shoal monitor <model> [--json] [--watch MS] [--window 5m]`: the model's monitors as a table —
 * per monitored version, its lag and counters, then per window size the newest closed window:
 * each feature's drift test, statistic, p-value or distance, PSI and status; prediction drift,
 * confidence, estimated and labeled quality, live fairness per group; then quality over the kept windows. `--json` prints
 * the same as `GET /v1/models/{m}/monitoring`; `--watch` redraws every MS.
 */
import { Errors, parseFlags, subjects, type Config } from '../cluster/index.ts';
import { modelMonitoring, type ModelMonitoring, type WindowReport } from '../ml/index.ts';
import { connectClient } from './status.ts';

export const MONITOR_FLAGS = ['json', 'watch', 'window'];

const fmt = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const pfmt = (v: number | undefined) => (v === undefined ? '-' : v < 1e-4 ? v.toExponential(1) : v.toFixed(4));
const time = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function windowTable(w: WindowReport): string {
  const out: string[] = [`  window ${w.window} ${time(w.start)} – ${time(w.end)}${w.partial ? ' (partial)' : ''}: ${w.rows} rows, ${w.labeled} labeled`];
  if (w.skipped) out.push(`    drift not tested: ${w.skipped}`);
  const rows: string[][] = [['feature', 'test', 'statistic', 'p-value', 'threshold', 'psi', 'status']];
  for (const f of [...(w.drift?.features ?? []), ...(w.predictionDrift?.features ?? []).map((f) => ({ ...f, feature: `prediction:${f.feature}` }))]) {
    rows.push([f.feature, f.test, fmt(f.statistic, 4), pfmt(f.adjustedPValue ?? f.pValue), String(f.threshold), fmt(f.psi, 3), f.drifted ? 'DRIFT' : 'ok']);
  }
  if (rows.length > 1) out.push(table(rows).replace(/^/gm, '    '));
  if (w.drift) out.push(`    dataset drift: ${w.drift.datasetDrift ? 'YES' : 'no'} (${w.drift.drifted}/${w.drift.features.length} features, share ${fmt(w.drift.share, 2)} vs ${w.drift.driftShare})`);
  if (w.confidence) out.push(`    confidence: ${fmt(w.confidence.currentMean)} vs reference ${fmt(w.confidence.referenceMean)} (p=${pfmt(w.confidence.pValue)})${w.confidence.fired ? ' DROP' : ''}`);
  if (w.estimated) out.push(`    estimated (CBPE): accuracy ${fmt(w.estimated.accuracy)} [${fmt(w.estimated.accuracyInterval.lower)}, ${fmt(w.estimated.accuracyInterval.upper)}], precision ${fmt(w.estimated.precision)}, recall ${fmt(w.estimated.recall)}, f1 ${fmt(w.estimated.f1)}, auc ${fmt(w.estimated.auc)}`);
  if (w.quality) {
    const q = w.quality;
    out.push(`    labeled (${q.rows} rows): ${(['accuracy', 'precision', 'recall', 'f1', 'auc', 'ece'] as const).map((m) => `${m} ${fmt(q[m].value)} [${fmt(q[m].lower)}, ${fmt(q[m].upper)}]`).join(', ')}`);
  }
  if (w.fairness) {
    const f = w.fairness;
    out.push(`    fairness (${f.rows} labeled rows with groups, groups under ${f.minGroupSize} rows not judged)${f.tooSmall ? `: ${f.tooSmall}` : ''}`);
    for (const a of f.attributes) {
      const s = a.summary;
      const iv = (x: { value: number; low: number; high: number }) => `${fmt(x.value)} [${fmt(x.low)}, ${fmt(x.high)}]`;
      out.push(`      ${a.attribute}: ${a.groups.map((g) => `${g.group} n=${g.size}${g.tooSmall ? ' (too small)' : ''} sel ${fmt(g.selectionRate)}`).join(', ')}${a.skipped ? ` — ${a.skipped}` : ''}`);
      if (a.judgedGroups >= 2) out.push(`        parity diff ${iv(s.demographicParityDifference)}, equalized odds diff ${iv(s.equalizedOddsDifference)}, disparate impact ${iv(s.disparateImpact)}`);
    }
    if (f.verdict) out.push(`      policy: ${f.verdict.pass ? 'no bound demonstrably violated' : 'VIOLATED'}${f.verdict.notes.length ? ` (${f.verdict.notes.join('; ')})` : ''}`);
  }
  for (const a of w.alerts) out.push(`    ALERT ${a.severity} ${a.rule}${a.feature ? ` ${a.feature}` : ''}: ${a.message}`);
  return out.join('\n');
}

/** The text `shoal monitor` prints. */
export function formatMonitoring(m: ModelMonitoring, only?: string): string {
  const out: string[] = [];
  if (m.versions.length === 0) return `${m.model}: deployed without monitoring (deploy with --monitoring '{...}')`;
  for (const v of m.versions) {
    if ('error' in v) {
      out.push(`${m.model} v${v.version} (${v.role}): monitor ${v.actorId} not answering: ${v.error}`);
      continue;
    }
    const r = v.report;
    const c = r.counters;
    out.push(`${m.model} v${v.version} (${v.role}) — monitor on ${r.nodeId}${r.hasReference ? '' : ', NO reference profile'}; lag: ${r.lag.predictions} prediction / ${r.lag.labeled} labeled messages pending, ${r.lag.behindMs} ms behind`);
    out.push(`  records ${c.records}, late ${c.late}, replica-profiled rows ${c.profiled ?? 0}, labeled ${c.labeled} (too late ${c.labeledTooLate}), windows closed ${c.windowsClosed}, alerts ${c.alerts}`);
    for (const o of r.open) if (!only || o.window === only) out.push(`  open ${o.window} ${time(o.start)} – ${time(o.end)}: ${o.rows} rows, ${o.labeled} labeled`);
    const sizes = [...new Set(r.windows.map((w) => w.window))].filter((s) => !only || s === only);
    for (const size of sizes) {
      const ws = r.windows.filter((w) => w.window === size);
      out.push(windowTable(ws[0]!));
      const hist: string[][] = [['window start', 'rows', 'drifted', 'conf', 'est auc', 'labeled', 'auc', 'f1']];
      for (const w of ws) hist.push([time(w.start), String(w.rows), w.drift ? `${w.drift.drifted}` : '-', fmt(w.confidence?.currentMean), fmt(w.estimated?.auc), String(w.labeled), fmt(w.quality?.auc.value), fmt(w.quality?.f1.value)]);
      out.push(`  ${size} windows over time:`);
      out.push(table(hist).replace(/^/gm, '    '));
    }
  }
  return out.join('\n');
}

export async function monitorCommand(args: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(args);
  const model = positionals[0];
  if (!model) throw Errors.USAGE('usage: shoal monitor <model> [--json] [--watch MS] [--window 5m]');
  const nc = await connectClient(config);
  try {
    const s = subjects(config.subjectPrefix);
    const w = flags.get('watch');
    const watch = w === undefined ? 0 : w === 'true' ? 5000 : Number(w);
    if (!(watch >= 0)) throw Errors.USAGE(`--watch: a number of milliseconds, got "${w}"`);
    const only = flags.get('window');
    for (;;) {
      const m = await modelMonitoring(nc, s, model);
      if (!m) {
        process.stderr.write(`model "${model}" is not deployed\n`);
        return 1;
      }
      // --json: the shape GET /v1/models/{m}/monitoring answers (each report's fields beside version and role).
      const flat = { model: m.model, versions: m.versions.map((v) => ('report' in v ? { role: v.role, actorId: v.actorId, ...v.report } : v)) };
      const text = flags.has('json') ? JSON.stringify(flat, null, 2) : formatMonitoring(m, only);
      process.stdout.write(watch ? `\x1b[2J\x1b[H${text}\n` : `${text}\n`);
      if (!watch) return 0;
      await new Promise((r) => setTimeout(r, watch));
    }
  } finally {
    await nc.close();
  }
}
