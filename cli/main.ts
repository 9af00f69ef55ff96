/**
 * The `shoal` command: `up`, `status`, `version`, `help`. Config flags (`--gateway.port 8081`,
 * `--config FILE`, …) apply to every subcommand.
 */
import { Errors, SHOAL_VERSION, fail, loadConfig, parseFlags } from '../cluster/index.ts';
import { up } from './up.ts';
import { NODES_FLAGS, nodeOpCommand } from './nodes.ts';
import { JOBS_FLAGS, jobsCommand } from './jobs.ts';
import { collectStatus, connectClient, formatStatus } from './status.ts';
import { MODELS_FLAGS, modelsCommand } from './models.ts';
import { FEATURES_FLAGS, featuresCommand } from './features.ts';
import { AUTH_FLAGS, nodeUserCommand } from './auth.ts';
import { MONITOR_FLAGS, monitorCommand } from './monitor.ts';
import { KEYS_FLAGS, keysCommand } from './keys.ts';

const HELP = `shoal ${SHOAL_VERSION} — a cluster for the AI features of SaaS products

usage: shoal <command> [--config FILE] [--<field> VALUE ...]

commands:
  up        start the embedded cluster (nats-server, scheduler, node agents, gateway)
  status    list the processes and nodes seen over NATS   [--json] [--wait MS]
  models    model registry and serving: register, list, show, alias, rollback, deploy, canary, promote, abort
  datasets  generate fraud [--rows N --seed S --drift D] | import <file.csv> --name N --label COL … | show <ref>
  features  feature store: apply VIEW.json [--snapshot rows.json] | list | show NAME | get VIEW key=value… | push VIEW EVENT.json
            | materialize VIEW | build-dataset --views a,b@N (--labels L.jsonl | --label-view V --label F) [--name N]
  monitor   a deployed model's monitors: drift per feature, confidence, estimated and labeled quality, alerts, lag
            <model> [--json] [--watch MS] [--window 5m]
  submit    submit a training job (job.json) and follow it with a progress bar   [--id ID] [--no-wait]
  jobs      show a job's state and metrics   <jobId>
  cancel    cancel a job   <jobId>
  drain     drain a node: no new actors, finish and hand off the rest   <nodeId> [--deadline MS]
  preempt   send a spot preemption notice: drain within the notice, mark its pool risky   <nodeId> [--notice MS]
  node-user a node's NATS user for an external nats-server (entry with permissions, or --env)   <nodeId>… [--env|--json]
  keys      API keys: hash KEY | hash --stdin (the keyHash for gateway.apiKeys) | new --tenant T [--role admin|inference]
  version   print the version
  help      this text

config: shoal.config.json in the working directory, SHOAL_* environment variables
(e.g. SHOAL_GATEWAY_PORT), then flags (e.g. --gateway.port 8081). See README.md.`;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const { positionals } = parseFlags(argv);
  const cmd = positionals[0] ?? 'help';
  const at = argv.indexOf(cmd);
  const rest = at >= 0 ? [...argv.slice(0, at), ...argv.slice(at + 1)] : argv;
  switch (cmd) {
    case 'up':
      return up(loadConfig({ argv: rest }));
    case 'status': {
      const { flags } = parseFlags(rest);
      const config = loadConfig({ argv: rest }, ['json', 'wait']);
      const nc = await connectClient(config);
      try {
        const report = await collectStatus(nc, config, Number(flags.get('wait') ?? 500));
        process.stdout.write(flags.has('json') ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report)}\n`);
        return report.processes.length > 0 ? 0 : 1;
      } finally {
        await nc.close();
      }
    }
    case 'models':
      return modelsCommand(rest, loadConfig({ argv: rest }, MODELS_FLAGS));
    case 'features':
      return featuresCommand(rest, loadConfig({ argv: rest }, FEATURES_FLAGS));
    case 'monitor':
      return monitorCommand(rest, loadConfig({ argv: rest }, MONITOR_FLAGS));
    case 'submit':
    case 'jobs':
    case 'cancel':
    case 'datasets':
      return jobsCommand(cmd, rest, loadConfig({ argv: rest }, JOBS_FLAGS));
    case 'drain':
    case 'preempt':
      return nodeOpCommand(cmd, rest, loadConfig({ argv: rest }, NODES_FLAGS));
    case 'node-user':
      return nodeUserCommand(rest, loadConfig({ argv: rest }, AUTH_FLAGS));
    case 'keys':
      return keysCommand(rest, loadConfig({ argv: rest }, KEYS_FLAGS));
    case 'version':
    case '--version':
      process.stdout.write(`${SHOAL_VERSION}\n`);
      return 0;
    case 'help':
    case '--help':
      process.stdout.write(`${HELP}\n`);
      return 0;
    default:
      throw Errors.USAGE(`unknown command "${cmd}"\n\n${HELP}`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => fail(err),
);
