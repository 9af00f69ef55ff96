/**
 * Every `shoal` command, as data: name, positional arguments, one line of description, flags, and
 * the handler. cli/parser.ts turns this table into the yargs parser (help on every command and
 * subcommand, unknown flags named with their command, bash completion); the help test walks the
 * same table, so a command added here is tested without touching the test.
 *
 * Plugging a command in is one entry. Handlers keep the old signature
 * `(rest: string[], config: Config) => Promise<number>`: `rest` is argv without the command's own
 * name (a subcommand's name is kept, as `modelsCommand` expects), and `config` comes from
 * loadConfig with the entry's flags (and its subcommands') let through. For example:
 *
 *   { name: 'cost', describe: 'cost per tenant and model', flags: COST_FLAGS, run: costCommand },
 *
 * and a `shoal models` subcommand is one line in MODELS_SUBCOMMANDS.
 */
import { SHOAL_VERSION, type Config } from '../cluster/index.ts';
import { up } from './up.ts';
import { demoCommand, DEMO_FLAGS } from './demo.ts';
import { nodeOpCommand } from './nodes.ts';
import { JOBS_FLAGS, jobsCommand } from './jobs.ts';
import { STATUS_FLAGS, statusCommand } from './status-command.ts';
import { MODELS_FLAGS, modelsCommand } from './models.ts';
import { FEATURES_FLAGS, featuresCommand } from './features.ts';
import { AUTH_FLAGS, nodeUserCommand } from './auth.ts';
import { MONITOR_FLAGS, monitorCommand } from './monitor.ts';
import { AUDIT_FLAGS, auditCommand } from './audit.ts';
import { COST_FLAGS, costCommand } from './cost.ts';
import { PRIVACY_FLAGS, privacyCommand } from './privacy.ts';
import { PIPELINES_FLAGS, pipelinesCommand } from './pipelines.ts';
import { KEYS_FLAGS, keysCommand } from './keys.ts';
import { BATCH_FLAGS, batchCommand } from './batch.ts';

export type Handler = (rest: string[], config: Config) => Promise<number> | number;

export interface SubcommandSpec {
  name: string;
  /** Positional arguments in yargs syntax: `<name>` required, `[file]` optional, `[keys..]` variadic. */
  args?: string;
  describe: string;
  /** Help lines for positionals not in ARG_DOCS (cli/flag-docs.ts), or that mean something else here. */
  argDocs?: Readonly<Record<string, string>>;
  /** Flags this subcommand takes; default: all of the parent's. */
  flags?: readonly string[];
}

export interface CommandSpec {
  name: string;
  args?: string;
  describe: string;
  /** Every flag the command (or any of its subcommands) takes: its `<NAME>_FLAGS`. */
  flags?: readonly string[];
  /** Help lines for flags not in cli/flag-docs.ts (or to say more for this command). */
  flagDocs?: Readonly<Record<string, string>>;
  argDocs?: Readonly<Record<string, string>>;
  subcommands?: readonly SubcommandSpec[];
  /** Runs without loading the config (e.g. `version`). */
  noConfig?: boolean;
  run: Handler;
}

const J = ['json'] as const;
const SERVE = ['version', 'replicas', 'max-batch', 'max-delay-ms', 'max-queue-rows', 'autoscale', 'instances', 'intra-op-threads', 'threads', 'warmup', 'batching', 'batch-axes', 'monitoring', 'json'];

export const MODELS_SUBCOMMANDS: SubcommandSpec[] = [
  { name: 'register', args: '<name> [path]', describe: 'register a model version: FILE.onnx, a directory or a tarball (or --pipeline spec.json)', flags: ['alias', 'metrics', 'lineage', 'description', 'sample', 'processor', 'reference', 'reference-dataset', 'file', 'pipeline', 'intended-use', 'limitations', 'json'] },
  { name: 'list', describe: 'list the registered models', flags: J },
  { name: 'show', args: '<name>', describe: "a model's versions, aliases and metrics", flags: ['version', 'json'] },
  { name: 'status', args: '<name>', describe: "a model's deployment: tracks, replicas, batching, canary state", flags: J },
  { name: 'alias', args: '<name> <alias> <version>', describe: 'point an alias at a version', flags: J },
  { name: 'rollback', args: '<name>', describe: 'move an alias back to its previous version', flags: ['alias', 'json'] },
  { name: 'deploy', args: '<name>', describe: 'serve a version with replicas (the stable track); --min-replicas 0 scales it to zero when idle', flags: [...SERVE, 'override-fairness', 'allow-rejected', 'min-replicas', 'idle-timeout-ms', 'hold-timeout-ms', 'max-held'] },
  { name: 'canary', args: '<name>', describe: "start a canary of another version beside the stable one", flags: [...SERVE, 'weight', 'sticky', 'override-fairness', 'allow-rejected'] },
  { name: 'weight', args: '<name> <weight>', describe: "change the canary's traffic share", flags: J },
  { name: 'promote', args: '<name>', describe: 'canary → stable (and the production alias)', flags: ['override-fairness', 'allow-rejected', 'json'] },
  { name: 'abort', args: '<name>', describe: 'roll the canary back', flags: J },
  { name: 'undeploy', args: '<name>', describe: 'stop serving the model', flags: J },
  { name: 'quantize', args: '<ref>', argDocs: { ref: 'NAME@VERSION' }, describe: 'a quantized version (int8 or fp16) with its size/latency/holdout report; rejected if slower or worse', flags: ['int8', 'fp16', 'format', 'rounds', 'iterations', 'weight-bits', 'json'] },
  { name: 'card', args: '<ref>', argDocs: { ref: 'NAME@VERSION' }, describe: "a version's model card: lineage, metrics, fairness, importance, approvals (Markdown; --json)", flags: ['markdown', 'json'] },
  { name: 'fairness', args: '<name>', describe: "a model's fairness policy: show it, set it (--policy JSON --reason) or --clear it", flags: ['policy', 'reason', 'clear', 'json'] },
];

export const FEATURES_SUBCOMMANDS: SubcommandSpec[] = [
  { name: 'apply', args: '<view>', describe: 'create or update a feature view from VIEW.json', flags: ['snapshot', 'json'] },
  { name: 'list', describe: 'list the feature views', flags: J },
  { name: 'show', args: '<name>', argDocs: { name: 'feature view name' }, describe: "a view's definition, versions and freshness", flags: ['version', 'json'] },
  { name: 'get', args: '<view> [keys..]', describe: 'online features for entity keys (key=value …)', flags: J },
  { name: 'push', args: '<view> <event>', describe: 'push an event (EVENT.json) into a view', flags: J },
  { name: 'materialize', args: '<view>', describe: "compact a view's events to its offline store", flags: J },
  { name: 'build-dataset', describe: 'a point-in-time training set from views and labels', flags: ['views', 'labels', 'label-view', 'label', 'since', 'until', 'name', 'json'] },
];

export const DATASETS_SUBCOMMANDS: SubcommandSpec[] = [
  { name: 'generate', args: '<kind>', describe: 'generate a synthetic dataset (kind: fraud)', flags: ['rows', 'seed', 'drift', 'name', 'split-seed', 'json'] },
  { name: 'import', args: '<file>', describe: 'import a CSV file as a dataset', flags: ['name', 'label', 'numeric', 'categorical', 'sensitive', 'pii', 'split-seed', 'json'] },
  { name: 'show', args: '<ref>', describe: "a dataset's rows, columns and splits", flags: J },
];

export const COMMANDS: CommandSpec[] = [
  { name: 'up', describe: 'start the embedded cluster: nats-server, scheduler, node agents, gateway', flags: ['demo'], run: (rest, config) => up(config, { demo: rest.includes('--demo') }) },
  { name: 'demo', describe: 'against a running cluster: generate the fraud data, train, deploy, print a curl', flags: DEMO_FLAGS, run: demoCommand },
  { name: 'status', describe: 'list the processes and nodes seen over NATS', flags: STATUS_FLAGS, run: statusCommand },
  { name: 'models', describe: 'model registry and serving', flags: MODELS_FLAGS, subcommands: MODELS_SUBCOMMANDS, run: modelsCommand },
  { name: 'datasets', describe: 'get data in: generate, import, show', flags: JOBS_FLAGS, subcommands: DATASETS_SUBCOMMANDS, run: (rest, config) => jobsCommand('datasets', rest, config) },
  { name: 'features', describe: 'feature store: views, online features, training sets', flags: FEATURES_FLAGS, subcommands: FEATURES_SUBCOMMANDS, run: featuresCommand },
  { name: 'monitor', args: '<model>', describe: "a deployed model's monitors: drift per feature, confidence, quality, alerts, lag", flags: MONITOR_FLAGS, run: monitorCommand },
  { name: 'submit', args: '<job>', describe: 'submit a training job (job.json) and follow it with a progress bar', flags: ['id', 'no-wait', 'json'], run: (rest, config) => jobsCommand('submit', rest, config) },
  {
    name: 'batch',
    describe: 'batch inference: score a dataset with a model version as a job on spot workers, with a progress bar',
    flags: BATCH_FLAGS,
    flagDocs: { model: 'NAME, NAME@ALIAS (fraud@production) or NAME@VERSION', dataset: 'the dataset to score: NAME, NAME@<digest prefix> or sha256:<digest>', out: 'name of the scores dataset (default <dataset>-scores)', 'shard-rows': 'rows per shard, the unit of work and checkpoint (default 2000)', replicas: 'model replicas the shards are mapped over (default 2)' },
    subcommands: [{ name: 'score', describe: 'score --dataset with --model; the scores become a dataset with lineage (model version, input digest)', flags: BATCH_FLAGS }],
    run: batchCommand,
  },
  { name: 'jobs', args: '<jobId>', describe: "show a job's state and metrics", flags: J, run: (rest, config) => jobsCommand('jobs', rest, config) },
  { name: 'cancel', args: '<jobId>', describe: 'cancel a job', flags: J, run: (rest, config) => jobsCommand('cancel', rest, config) },
  { name: 'drain', args: '<nodeId>', describe: 'drain a node: no new actors, finish and hand off the rest', flags: ['deadline', ...J], run: (rest, config) => nodeOpCommand('drain', rest, config) },
  { name: 'preempt', args: '<nodeId>', describe: 'send a spot preemption notice: drain within the notice, mark its pool risky', flags: ['notice', ...J], run: (rest, config) => nodeOpCommand('preempt', rest, config) },
  {
    name: 'cost',
    describe: 'what the cluster cost, by tenant, model or job, with $ per 1,000 predictions; `cost recommend` for right-sizing advice',
    args: '[recommend]',
    argDocs: { recommend: 'right-sizing advice: replicas, instances, batch sizes, node profiles, with the $/h change' },
    flags: COST_FLAGS,
    flagDocs: { by: 'group by tenant | model | job | owner', since: 'from this long ago (1h, 30m) or this ISO time' },
    run: costCommand,
  },
  {
    name: 'pipelines',
    describe: 'continuous training: pipelines that retrain, gate and canary a model on a schedule, on alerts or by hand',
    flags: PIPELINES_FLAGS,
    flagDocs: { reason: 'why (recorded with the manual trigger)' },
    subcommands: [
      { name: 'apply', args: '<file>', argDocs: { file: 'PIPELINE.json (name, model, triggers, data, training, gates, rollout)' }, describe: 'create or update a pipeline (refused naming the bad field)', flags: J },
      { name: 'run', args: '<name>', argDocs: { name: 'pipeline name' }, describe: 'trigger a run by hand (coalesced into the run in flight, if any)', flags: ['reason', 'json'] },
      { name: 'runs', args: '<name>', argDocs: { name: 'pipeline name' }, describe: "a pipeline's runs: trigger, data, job, gate report, canary steps, decision", flags: J },
    ],
    run: pipelinesCommand,
  },
  {
    name: 'privacy',
    describe: 'privacy: erase an entity (GDPR Art. 17) from the online and offline feature store and the prediction log',
    flags: PRIVACY_FLAGS,
    flagDocs: { reason: 'why (recorded in the audit log; never the entity itself)' },
    subcommands: [{ name: 'forget', args: '<entity>', argDocs: { entity: 'key column=value[,column=value], e.g. customer_id=c-17' }, describe: 'remove the entity everywhere and list what was built from it', flags: ['reason', 'json'] }],
    run: privacyCommand,
  },
  {
    name: 'keys',
    describe: 'API keys: the keyHash of a key for gateway.apiKeys, or a new key with its config entry',
    flags: KEYS_FLAGS,
    flagDocs: { stdin: 'read the key from standard input', tenant: 'the tenant the new key belongs to', role: 'admin | inference (default inference)', nats: "instead of an API key: the tenant's own NATS user (an NKey: the seed printed once, the users entry for nats-server, the nats.tenantUsers entry)" },
    subcommands: [
      { name: 'hash', args: '[key]', argDocs: { key: 'the API key (or --stdin)' }, describe: 'print sha256:<hex> of a key, for gateway.apiKeys[].keyHash', flags: ['stdin', 'json'] },
      { name: 'new', describe: 'make a new key (printed once) and its config entry; with --nats, the tenant\'s NATS user', flags: ['tenant', 'role', 'nats', 'json'] },
    ],
    run: keysCommand,
  },
  { name: 'audit', describe: 'the audit log: who registered, deployed, promoted, overrode what, when and why', flags: AUDIT_FLAGS, flagDocs: { since: 'from this long ago (2h, 30m) or this ISO time', model: 'only this model', limit: 'at most this many entries' }, run: auditCommand },
  { name: 'node-user', args: '<nodeIds..>', describe: "a node's NATS user for an external nats-server", flags: AUTH_FLAGS, run: nodeUserCommand },
  {
    name: 'version',
    describe: 'print the version',
    noConfig: true,
    run: async () => {
      process.stdout.write(`${SHOAL_VERSION}\n`);
      return 0;
    },
  },
];
