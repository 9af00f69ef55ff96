/**
 * `shoal pipelines apply <file.json> | run <name> [--reason TEXT] | runs <name>` (issue #16):
 * continuous training. `apply` stores the pipeline (refused naming the bad field), `run` triggers
 * it by hand (or is coalesced into the run in flight), `runs` lists its runs with each stage's
 * record: trigger, data digest, job, gate report, shadow report, canary steps, decision.
 */
import { readFileSync } from 'node:fs';
import { Errors, parseFlags, subjects, type Config } from '../cluster/index.ts';
import { PipelineClient, type RunRecord } from '../ml/index.ts';
import { connectClient } from './status.ts';

export const PIPELINES_FLAGS = ['json', 'reason'];

const USAGE = 'usage: shoal pipelines apply <file.json> | run <name> [--reason TEXT] | runs <name> [--json]';

/** One run, a few lines: what triggered it, how far it got, and why it ended as it did. */
export function formatRun(r: RunRecord): string {
  const lines = [`run ${r.run}  ${r.state === 'done' ? (r.decision?.outcome ?? 'done') : r.state}  trigger ${r.trigger.kind}${r.trigger.detail ? ` (${r.trigger.detail})` : ''}${r.coalesced.length ? `, ${r.coalesced.length} coalesced` : ''}`];
  if (r.snapshot) {
    const labeled = r.snapshot.labeledRows !== undefined ? `, ${r.snapshot.labeledRows} labeled rows appended${r.snapshot.skippedRows ? `, ${r.snapshot.skippedRows} skipped` : ''}` : '';
    const views = r.snapshot.views ? `, from ${r.snapshot.views.map((v) => `${v.name}@${v.version}`).join(', ')} with labels up to ${new Date(r.snapshot.labels?.until ?? 0).toISOString()}` : '';
    lines.push(`  data     ${r.snapshot.dataset ? `${r.snapshot.dataset} ` : ''}sha256:${r.snapshot.digest.slice(0, 12)}… (${r.snapshot.rows} rows${labeled}${views})`);
  }
  if (r.jobId) lines.push(`  job      ${r.jobId}${r.candidate ? ` → v${r.candidate.version}` : ''}`);
  if (r.report) for (const c of r.report.checks) lines.push(`  gate     ${c.pass ? 'pass' : 'FAIL'} ${c.gate}: ${c.message}`);
  const sh = r.shadowReport;
  if (sh) lines.push(sh.skipped ? `  shadow   skipped: ${sh.reason}` : `  shadow   ${sh.pass ? 'pass' : 'FAIL'} ${sh.compared} rows, agreement ${(sh.agreement * 100).toFixed(1)}%, PSI ${sh.distance.toFixed(3)}`);
  for (const s of r.steps) {
    lines.push(`  canary   ${s.percent}% ${s.pass ? 'pass' : `FAIL ${s.reason ?? ''}`}`);
    // Why the step passed (or the quality failure above): the basis and what it rested on.
    if (s.quality && s.pass) lines.push(`           quality ${s.quality.basis}, n=${s.quality.n}: ${s.quality.reason}`);
  }
  if (r.decision) lines.push(`  decision ${r.decision.outcome}: ${r.decision.reason}`);
  return lines.join('\n');
}

export async function pipelinesCommand(args: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(args);
  const [sub, arg] = positionals;
  if (!sub || !arg || !['apply', 'run', 'runs'].includes(sub)) throw Errors.USAGE(USAGE);
  const json = flags.has('json');
  const nc = await connectClient(config);
  try {
    const client = new PipelineClient(nc, subjects(config.subjectPrefix));
    if (sub === 'apply') {
      let spec: unknown;
      try {
        spec = JSON.parse(readFileSync(arg, 'utf8'));
      } catch (err) {
        throw Errors.USAGE(`${arg}: ${(err as Error).message}`);
      }
      const r = await client.apply(spec);
      process.stdout.write(json ? `${JSON.stringify(r, null, 2)}\n` : `pipeline ${r.name} ${r.created ? 'applied' : 'unchanged'} (revision ${r.revision}) for model ${r.spec.model}\n`);
      return 0;
    }
    if (sub === 'run') {
      const reason = flags.get('reason');
      const r = await client.run(arg, reason && reason !== 'true' ? reason : undefined);
      process.stdout.write(json ? `${JSON.stringify(r)}\n` : r.coalesced ? `run ${r.run} already in flight: this trigger was coalesced into it\n` : `run ${r.run} started (shoal pipelines runs ${arg})\n`);
      return 0;
    }
    const runs = await client.runs(arg);
    if (!runs) throw Errors.USAGE(`no pipeline named "${arg}"`);
    process.stdout.write(json ? `${JSON.stringify(runs, null, 2)}\n` : runs.length ? `${runs.map(formatRun).join('\n')}\n` : `pipeline ${arg} has no runs yet\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
