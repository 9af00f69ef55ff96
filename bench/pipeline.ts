/**
 * `npm run bench:pipeline`: the wall time from an injected population shift to a promoted model
 * (issue #16), broken down by stage — detect, data, train, gates, shadow, canary — on this
 * machine, with the fraud data. Each round runs the same scenario as test/e2e/pipeline-drift.test.ts
 * (test/harness/ct-scenario.ts) on a fresh cluster, so rounds do not share a warm model, a
 * monitor's state or a label backlog: reference traffic, then the generator's drift knob at t0,
 * feedback labels for the drifted rows, the monitor's alert, the run to its decision.
 *
 * The figures come from the run record (`entered[state]`, trigger.at) and t0, all epoch ms on
 * one machine. Most of the time is configuration, not compute: the monitor's window (2 s) and
 * lateness (300 ms) bound detect, `rollout.stepMs` (4 s per step, 2 steps) and the monitors'
 * windows bound the canary. `BENCH_ROUNDS` (default 3) sets the rounds. Results (median and range
 * per stage) go to bench/results/pipeline.md.
 */
import { cpus, loadavg } from 'node:os';
import { CtScenario, secs, type StageTimings } from '../test/harness/ct-scenario.ts';
import { median, writeResults } from './lib/results.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STAGES: { key: keyof StageTimings; what: string }[] = [
  { key: 'detect', what: 't0 (traffic switched to drifted rows) → the run triggered by the monitor’s drift alert' },
  { key: 'data', what: 'trigger → training entered: dataset + labeled rows snapshotted as a new version, job queued' },
  { key: 'train', what: 'the training job (queue, placement, 80 Adam steps, ONNX export, reference profile, registration)' },
  { key: 'gates', what: 'both versions scored on the fresh holdout with onnxruntime, DeLong AUC check' },
  { key: 'shadow', what: 'the candidate as shadow: half the traffic mirrored for 3 s, compared with v1 (agreement, PSI), judged, cleared' },
  { key: 'canary', what: 'canary started, steps 25 % → 100 % (4 s each + the quality verdict from the monitors), promotion' },
  { key: 'total', what: 't0 → promoted' },
];

async function main(): Promise<void> {
  const load = loadavg();
  const startedAt = new Date().toISOString();
  const rounds: StageTimings[] = [];
  const outcomes: string[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const log = (line: string) => console.log(`[round ${i + 1}/${ROUNDS}] ${line}`);
    const sc = await CtScenario.start({ model: `fraud-b${i + 1}`, log });
    try {
      sc.serveReference();
      const res = await sc.driftToDecision();
      outcomes.push(res.record.decision?.outcome ?? 'none');
      if (res.record.decision?.outcome !== 'promoted') {
        log(`not promoted: ${JSON.stringify(res.record.decision)} — round left out of the table`);
        continue;
      }
      rounds.push(res.timings);
      log(STAGES.map((s) => `${s.key} ${secs(res.timings[s.key])}`).join(', '));
    } finally {
      await sc.stop();
    }
  }

  const row = (s: (typeof STAGES)[number]) => {
    const xs = rounds.map((r) => r[s.key]).filter((x): x is number => x !== undefined);
    if (xs.length === 0) return `| ${s.key} | n/a (no shadow stage recorded) | — | ${s.what} |`;
    return `| ${s.key} | ${secs(median(xs))} | ${secs(Math.min(...xs))} – ${secs(Math.max(...xs))} | ${s.what} |`;
  };
  const md = [
    '# Pipeline: injected drift → promoted model (`npm run bench:pipeline`)',
    '',
    `Command: \`${ROUNDS === 3 ? '' : `BENCH_ROUNDS=${ROUNDS} `}npm run bench:pipeline\` — started ${startedAt}; ${rounds.length} of ${ROUNDS} round(s) promoted (outcomes: ${outcomes.join(', ') || 'none'}).`,
    '',
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), load average at start ${load.map((x) => x.toFixed(2)).join(' / ')} (1 / 5 / 15 min), Node ${process.version}. A shared machine: other work ran beside the benchmark.`,
    '',
    'Scenario (test/harness/ct-scenario.ts, the same as test/e2e/pipeline-drift.test.ts), a fresh cluster per round: nats-server, one scheduler, two node agents, the gateway in-process; fraud data (`generateFraud`, 4,000 reference rows), v1 (logreg) deployed on 2 replicas with monitoring on 2 s windows; reference traffic (20-row requests, one at a time), then at t0 the generator’s `drift: 1` rows with their labels sent back as feedback; the pipeline `onAlert: ["drift"]`, data = 1,500 recent (drifted) rows + the labeled rows, gates on a fresh drifted holdout (maxDrop 0.05), a shadow on half the traffic for 3 s (at least 100 rows compared), canary [25, 100] % at 4 s a step.',
    '',
    '| stage | median | range | what it covers |',
    '|---|---|---|---|',
    ...STAGES.map(row),
    '',
    'Per round (s): ' + rounds.map((r, i) => `#${i + 1} ${STAGES.map((s) => `${s.key} ${r[s.key] === undefined ? 'n/a' : (r[s.key]! / 1000).toFixed(1)}`).join(', ')}`).join('; '),
    '',
  ].join('\n');
  console.log(`\n${md}`);
  writeResults(new URL('./results/pipeline.md', import.meta.url).pathname, md);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
