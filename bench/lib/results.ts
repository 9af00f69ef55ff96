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

/** One connection count measured in turns: each target's cells (one per round) and Shoal/naive per round. */
export interface InTurns<C> {
  connections: number;
  cells: C[][];
  ratios: number[];
}

/**
 * Measures each target (naive first, then Shoal) at each connection count, `rounds` rounds with
 * the order rotated every round, so a slow minute on a shared machine does not land on one
 * target only. `score` is the figure the per-round ratio compares (req/s, MB/s).
 */
export async function measureInTurns<C>(
  targets: readonly { name: string; url: string }[],
  connections: readonly number[],
  rounds: number,
  run: (url: string, connections: number) => Promise<C>,
  score: (c: C) => number,
  log: (target: string, connections: number, round: number, cell: C) => void,
): Promise<InTurns<C>[]> {
  const out: InTurns<C>[] = [];
  for (const c of connections) {
    const cells = targets.map(() => [] as C[]);
    const ratios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < targets.length; k++) {
        const i = (k + round) % targets.length;
        const cell = await run(targets[i]!.url, c);
        log(targets[i]!.name, c, round + 1, cell);
        cells[i]!.push(cell);
      }
      const [naive, shoal] = cells.map((cs) => cs[round]!);
      if (naive && shoal && score(naive) > 0) ratios.push(score(shoal) / score(naive));
    }
    out.push({ connections: c, cells, ratios });
  }
  return out;
}

/** `| c | 1.02× [0.95–1.10] |`: the median per-round ratio and its range. */
export function ratioRow(connections: number, ratios: readonly number[]): string {
  return `| ${connections} | ${median(ratios).toFixed(2)}× [${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}] |`;
}
