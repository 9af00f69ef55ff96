/**
 * CSV import with a schema: which column is the label (0/1), which are numeric (standardised),
 * which are categorical (one-hot over the values seen), and which is the sensitive attribute
 * (kept out of the features). A value that does not parse names its row and column.
 */
import { MlErrors } from '../errors.ts';
import type { Dataset } from './dataset.ts';

export interface CsvSchema {
  label: string;
  numeric?: string[];
  categorical?: string[];
  sensitive?: string;
  /** Source columns that are personal data (issue #20): every output column made from one is marked PII. */
  pii?: string[];
}

function parseLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export function importCsv(text: string, schema: CsvSchema): Dataset {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length < 2) throw MlErrors.BAD_DATASET('csv', 'needs a header and at least one row');
  const header = parseLine(lines[0]!).map((h) => h.trim());
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw MlErrors.BAD_DATASET('csv', `column "${name}" is not in the header (${header.join(', ')})`);
    return i;
  };
  const li = col(schema.label);
  const numeric = (schema.numeric ?? []).map((n) => ({ name: n, i: col(n) }));
  const categorical = (schema.categorical ?? []).map((n) => ({ name: n, i: col(n) }));
  const si = schema.sensitive ? col(schema.sensitive) : -1;
  const cells = lines.slice(1).map(parseLine);
  const levels = categorical.map((c) => [...new Set(cells.map((r) => r[c.i] ?? ''))].sort());
  const columns = [...numeric.map((n) => n.name), ...categorical.flatMap((c, k) => levels[k]!.map((v) => `${c.name}_${v}`))];
  const rows = cells.length;
  const D = columns.length;
  const features = new Float32Array(rows * D);
  const labels = new Uint8Array(rows);
  const sensitiveLevels = si >= 0 ? [...new Set(cells.map((r) => r[si] ?? ''))].sort() : [];
  const sensitive = si >= 0 ? new Uint8Array(rows) : undefined;
  cells.forEach((r, row) => {
    const lab = (r[li] ?? '').trim();
    if (lab !== '0' && lab !== '1' && lab !== 'true' && lab !== 'false') throw MlErrors.BAD_DATASET('csv', `row ${row + 2}, column "${schema.label}": label must be 0/1, got "${lab}"`);
    labels[row] = lab === '1' || lab === 'true' ? 1 : 0;
    numeric.forEach((n, k) => {
      const v = Number((r[n.i] ?? '').trim());
      if (!Number.isFinite(v)) throw MlErrors.BAD_DATASET('csv', `row ${row + 2}, column "${n.name}": not a number ("${r[n.i] ?? ''}")`);
      features[row * D + k] = v;
    });
    let off = numeric.length;
    categorical.forEach((c, k) => {
      features[row * D + off + levels[k]!.indexOf(r[c.i] ?? '')] = 1;
      off += levels[k]!.length;
    });
    if (sensitive) sensitive[row] = sensitiveLevels.indexOf(r[si] ?? '');
  });
  // Standardise numeric columns (mean 0, sd 1) so optimisers behave.
  numeric.forEach((_, k) => {
    let m = 0;
    for (let i = 0; i < rows; i++) m += features[i * D + k]!;
    m /= rows;
    let v = 0;
    for (let i = 0; i < rows; i++) v += (features[i * D + k]! - m) ** 2;
    const sd = Math.sqrt(v / rows) || 1;
    for (let i = 0; i < rows; i++) features[i * D + k] = (features[i * D + k]! - m) / sd;
  });
  const piiSrc = new Set(schema.pii ?? []);
  for (const p of piiSrc) if (!numeric.some((n) => n.name === p) && !categorical.some((c) => c.name === p)) throw MlErrors.BAD_DATASET('csv', `pii column "${p}" is not a numeric or categorical column of the schema`);
  const pii = [...numeric.filter((n) => piiSrc.has(n.name)).map((n) => n.name), ...categorical.flatMap((c, k) => (piiSrc.has(c.name) ? levels[k]!.map((v) => `${c.name}_${v}`) : []))];
  return { columns, rows, features, labels, ...(sensitive ? { sensitive, sensitiveName: schema.sensitive! } : {}), ...(pii.length ? { pii } : {}) };
}
