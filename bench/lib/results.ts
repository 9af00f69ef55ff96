/**
 * Writing a benchmark's results file: the generated part is replaced on every run, and whatever
 * stands below the notes marker — hand-written analysis, earlier figures kept for comparison —
 * survives the rewrite.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const NOTES_MARKER = '<!-- notes: everything below is kept when the benchmark rewrites this file -->';
/** The marker bench:serving wrote before the helper was shared (still recognised). */
const OLD_MARKER = '<!-- notes: everything below is kept when npm run bench:serving rewrites this file -->';

export function writeResults(file: string, generated: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = old.includes(NOTES_MARKER) ? old.split(NOTES_MARKER)[1] : old.includes(OLD_MARKER) ? old.split(OLD_MARKER)[1] : undefined;
  writeFileSync(file, [generated.replace(/\n*$/, '\n'), NOTES_MARKER, at?.replace(/^\n*/, '\n') ?? '\n'].join('\n'));
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
}
