/**
 * Asking the leader for cost (`<prefix>.sched.cost`), shared by `shoal cost` and the gateway's
 * `GET /v1/cost`: the request, `--since` durations (`90s`, `15m`, `1h`, `7d`), and the text
 * tables.
 */
import { request, type NatsConnection, type Subjects } from '../../cluster/index.ts';
import type { CostAdvice, CostGroup, CostReport } from './cost-wire.ts';

const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `1h`, `15m`, `90s`, `7d`, `500ms` → milliseconds; undefined when it is not one. */
export function parseSince(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT[m[2]!]!;
  return ms >= 1 ? Math.round(ms) : undefined;
}

export const COST_GROUPS: readonly CostGroup[] = ['tenant', 'model', 'job', 'owner'];

export function costReport(nc: NatsConnection, s: Subjects, o: { by?: CostGroup; sinceMs?: number } = {}): Promise<CostReport> {
  return request<CostReport>(nc, s.scheduler('cost'), { type: 'report', ...(o.by ? { by: o.by } : {}), ...(o.sinceMs !== undefined ? { sinceMs: o.sinceMs } : {}) }, { timeoutMs: 5000, idempotent: true });
}

export function costAdvice(nc: NatsConnection, s: Subjects): Promise<CostAdvice> {
  return request<CostAdvice>(nc, s.scheduler('cost'), { type: 'recommend' }, { timeoutMs: 5000, idempotent: true });
}

/** Three significant digits under a dollar (node prices are cents per hour), cents above. */
const usd = (x: number) => (x === 0 ? '$0' : Math.abs(x) < 1 ? `$${Number(x.toPrecision(3))}` : `$${x.toFixed(2)}`);
const signed = (x: number) => `${x > 0 ? '+' : x < 0 ? '−' : ''}${usd(Math.abs(x))}/h`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function formatCostReport(r: CostReport): string {
  const span = r.from === null ? 'since the ledger began' : `since ${new Date(r.from).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  const head = r.by === 'owner' ? ['tenant', 'model', 'job'] : [r.by];
  const rows: string[][] = [[...head, 'dollars', ...(r.by === 'model' ? ['predictions', '$/1k predictions'] : [])]];
  for (const x of r.rows) {
    const who = r.by === 'owner' ? [x.tenant ?? '', x.model || '-', x.job || '-'] : [String(x[r.by] ?? '')];
    rows.push([...who, usd(x.dollars), ...(r.by === 'model' ? [String(x.predictions ?? 0), x.dollarsPer1kPredictions !== undefined ? usd(x.dollarsPer1kPredictions) : '-'] : [])]);
  }
  const lines = [`cost by ${r.by} ${span}: total ${usd(r.totalDollars)}; the fleet costs ${usd(r.fleetDollarsPerHour)}/h now, ${usd(r.idleDollarsPerHour)}/h of it asked for by no actor (tenant _idle)`];
  lines.push(rows.length > 1 ? table(rows) : '(nothing charged yet)');
  return lines.join('\n');
}

export function formatCostAdvice(a: CostAdvice): string {
  const lines: string[] = [];
  if (a.recommendations.length === 0) lines.push('no change recommended');
  else {
    const rows: string[][] = [['kind', 'target', 'current', 'proposed', 'change', 'why']];
    for (const r of a.recommendations) rows.push([r.kind, r.model ? `${r.target} (${r.model})` : r.target, String(r.current), String(r.proposed), signed(r.dollarsPerHourChange), r.reason]);
    lines.push(table(rows), `expected change: ${signed(a.dollarsPerHourChange)}`);
  }
  for (const s of a.skipped) lines.push(`skipped ${s.target}: ${s.reason}`);
  return lines.join('\n');
}
