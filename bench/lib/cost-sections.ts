/**
 * bench/results/cost.md is written by several parts of `npm run bench:cost` (cold start, cost
 * accounting, quantization, batch scoring): each owns one `## ` section. A part run alone
 * replaces its own section and keeps the others (and the hand-written notes below the marker).
 */
import { existsSync, readFileSync } from 'node:fs';
import { NOTES_MARKER, writeResults } from './results.ts';

export const COST_RESULTS = 'bench/results/cost.md';
export const COST_HEADER = '# Cost and elasticity — `npm run bench:cost`\n';

/** Replaces (or appends) the section that starts with `section`'s first line (`## Title`). */
export function writeCostSection(section: string, file = COST_RESULTS): void {
  const heading = section.split('\n', 1)[0]!;
  const old = existsSync(file) ? readFileSync(file, 'utf8').split(NOTES_MARKER)[0]! : COST_HEADER;
  const parts = old.split(/\n(?=## )/);
  const i = parts.findIndex((p) => p.split('\n', 1)[0] === heading);
  if (i >= 0) parts[i] = section.trimEnd() + '\n';
  else parts.push(section.trimEnd() + '\n');
  writeResults(file, parts.map((p) => p.trimEnd()).join('\n\n'));
}
