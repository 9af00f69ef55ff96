/**
 * Groups the ledger's rows for a report: by tenant, model version, job, or the full owner
 * (tenant × model × job), with predictions and cost per 1,000 predictions for model versions.
 */
import type { CostLedger, CostRow } from './ledger.ts';
import type { CostGroup, CostReportRow } from './cost-wire.ts';

export function groupRows(rows: readonly CostRow[], predictions: ReadonlyMap<string, number>, by: CostGroup): CostReportRow[] {
  const out = new Map<string, CostReportRow>();
  for (const r of rows) {
    const pick: Omit<CostReportRow, 'dollars'> = by === 'tenant' ? { tenant: r.tenant } : by === 'model' ? { model: r.model } : by === 'job' ? { job: r.job } : { tenant: r.tenant, model: r.model, job: r.job };
    // Spend that has no model (or no job) is left out of a by-model (by-job) report.
    if ((by === 'model' && !r.model) || (by === 'job' && !r.job)) continue;
    const k = JSON.stringify(pick);
    const e = out.get(k) ?? { ...pick, dollars: 0 };
    e.dollars += r.dollars;
    out.set(k, e);
  }
  if (by === 'model') {
    for (const e of out.values()) {
      const n = predictions.get(e.model!) ?? 0;
      e.predictions = n;
      if (n > 0) e.dollarsPer1kPredictions = (e.dollars / n) * 1000;
    }
  }
  return [...out.values()].sort((a, b) => b.dollars - a.dollars);
}

/** The report's rows and total, from the ledger's totals or its history since `since`. */
export function reportRows(ledger: CostLedger, by: CostGroup, since?: number): { rows: CostReportRow[]; totalDollars: number } {
  const raw = ledger.rows(since);
  return { rows: groupRows(raw, ledger.predictions(since), by), totalDollars: raw.reduce((s, r) => s + r.dollars, 0) };
}
