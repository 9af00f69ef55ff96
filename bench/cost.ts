/**
 * `npm run bench:cost` (issue #17): every cost-and-elasticity section side by side, written to
 * bench/results/cost.md. Each part is its own file exporting a function that returns its
 * markdown section (bench/cost-coldstart.ts: "## Cold start"); the other parts of the issue add
 * theirs here.
 */
import { coldStartBench } from './cost-coldstart.ts';
import { batchBench } from './cost-batch.ts';
import { writeCostSection } from './lib/cost-sections.ts';

const parts: [string, () => Promise<string>][] = [
  ['cold start', coldStartBench],
  ['batch scoring', batchBench],
];
for (const [name, run] of parts) {
  process.stderr.write(`bench:cost — ${name}\n`);
  writeCostSection(await run());
}
process.exit(0);
