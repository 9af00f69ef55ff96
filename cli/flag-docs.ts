/**
 * One line of `--help` text per command flag, by name. A command's table entry (cli/commands.ts)
 * lists its flags by name (its `<NAME>_FLAGS`); the help shows the line from here, or the one the
 * entry gives in its own `flagDocs`. Flags that take no value are listed in `SWITCHES`.
 */
export const FLAG_DOCS: Readonly<Record<string, string>> = {
  json: 'print JSON instead of a table',
  // scale to zero
  'min-replicas': '0: release the replicas after --idle-timeout-ms without requests (scale to zero)',
  'idle-timeout-ms': 'scale to zero after this long without a request (default 300000)',
  'hold-timeout-ms': 'how long a gateway holds a request while a replica starts (default 30000)',
  'max-held': 'requests a gateway holds per model while it starts (default 256); more get 503 at once',
  pii: 'columns that are personal data (comma-separated): never logged by a model trained on them',
  // quantization
  int8: 'dynamic int8 weights, per output channel',
  fp16: 'half-precision weights (cast to float at load)',
  format: 'int8 graph form: integer (MatMulInteger, default) | qdq',
  rounds: 'timing rounds of the latency report',
  iterations: 'runs per round and batch size',
  'weight-bits': 'int8 weight bits: 7 (default, avoids u8×s8 saturation without VNNI) | 8',
  'allow-rejected': 'serve a version marked rejected anyway',
  // governance
  'override-fairness': 'go past a failing fairness policy, with this reason (audited)',
  markdown: 'print the card as Markdown (the default; --json for JSON)',
  policy: "the fairness policy, a JSON object (e.g. '{\"disparateImpact\":{\"min\":0.8}}')",
  reason: 'why (recorded in the audit log)',
  clear: 'remove the fairness policy',
  'intended-use': 'intended use of the model (free text on its card)',
  limitations: 'known limitations of the model (free text on its card)',
  wait: 'milliseconds to wait for processes to answer (status)',
  demo: 'then generate the fraud data, train, deploy and print a curl that works',
  // models
  alias: 'alias name (register: set it to the new version; rollback: which alias, default production)',
  metrics: 'metrics of the version, a JSON object',
  lineage: 'lineage of the version, a JSON object',
  description: 'free text stored with the version',
  sample: 'an OIP v2 infer request body (JSON file) stored with the version, for warm-up',
  reference: 'a reference profile (JSON file) that monitoring compares live traffic with',
  'reference-dataset': 'a registered dataset to profile as the monitoring reference',
  file: 'the model file (stands for the positional FILE)',
  processor: 'a pre/post-processing module (.ts) stored with the version',
  pipeline: 'register a pipeline model from this DAG spec (JSON file)',
  version: 'a version number or an alias',
  replicas: 'number of replicas (default 1)',
  'max-batch': 'largest batch a replica runs',
  'max-delay-ms': 'longest a request waits for its batch to fill, in ms',
  'max-queue-rows': 'rows queued per replica before requests are refused',
  autoscale: 'MIN:MAX[:TARGET] replicas follow load',
  instances: 'onnxruntime sessions per replica',
  'intra-op-threads': 'onnxruntime intra-op threads per session',
  threads: 'same as --intra-op-threads',
  warmup: 'sample | synthetic | off',
  batching: 'true | false: dynamic batching',
  'batch-axes': 'JSON object: input name → batch axis',
  monitoring: 'JSON object: prediction log and monitors (sampleRate, logExclude, labelType, …)',
  weight: 'canary traffic share, 0..1 (default 0.1)',
  sticky: 'keep a caller on the same track (canary)',
  // jobs, datasets
  id: 'job id (submitting the same id again is a no-op)',
  'no-wait': 'return once submitted, without following the job',
  rows: 'number of rows to generate',
  seed: 'random seed',
  drift: 'shift the generated distribution by this amount',
  name: 'dataset name',
  label: 'label column (import) or label field (build-dataset)',
  numeric: 'comma-separated numeric columns',
  categorical: 'comma-separated categorical columns',
  sensitive: 'comma-separated sensitive columns (kept, never features)',
  'split-seed': 'seed of the 70/15/15 split',
  // features
  snapshot: 'rows (JSON file) to load into the view when applying it',
  views: 'comma-separated views, each optionally @VERSION',
  labels: 'labels as a JSONL file',
  'label-view': 'take labels from this view',
  since: 'earliest label time (ISO or ms)',
  until: 'latest label time (ISO or ms)',
  // monitor
  watch: 'redraw every MS milliseconds',
  window: 'only this window size (e.g. 5m)',
  // nodes, auth
  deadline: 'milliseconds the node has to drain',
  notice: 'milliseconds of preemption notice',
  env: 'print as environment variables',
};

/** Flags that take no value: shown as [boolean] in help. Everything else takes one. */
export const SWITCHES: ReadonlySet<string> = new Set(['json', 'demo', 'sticky', 'no-wait', 'env', 'markdown', 'clear', 'int8', 'fp16', 'allow-rejected', 'stdin']);

/** One line of help per positional argument, by the name the command table gives it. */
export const ARG_DOCS: Readonly<Record<string, string>> = {
  name: 'model name',
  path: 'FILE.onnx, a package directory or a .tar of one',
  alias: 'alias name (e.g. production)',
  version: 'version number',
  weight: "the canary's traffic share, 0..1",
  view: 'feature view name (apply: VIEW.json)',
  keys: 'entity keys as key=value',
  event: 'EVENT.json (one event, or JSON lines)',
  kind: 'generator: fraud',
  file: 'CSV file',
  ref: 'dataset: name, name@digest prefix or sha256:digest',
  model: 'deployed model name',
  job: 'job spec (JSON file)',
  jobId: 'job id',
  nodeId: 'node id',
  nodeIds: 'node ids',
};
