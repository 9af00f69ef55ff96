/**
 * `shoal models …`: the model registry and deployments from the command line.
 *
 *   shoal models register NAME FILE.onnx|DIR|FILE.tar [--alias production] [--metrics JSON] [--lineage JSON] [--description TEXT] [--sample request.json]
 *     (a directory or a tarball: a graph whose weights are external data files beside it — one artifact;
 *      --sample: an OIP v2 infer request body stored with the version, what replicas warm up with)
 *     [--processor proc.ts]   a pre/post-processing module stored with the version (its signature is what clients see)
 *     [--reference profile.json] [--reference-dataset NAME]   what monitoring compares live traffic with (README "Model monitoring")
 *     (`--file FILE` may stand for the positional FILE)
 *   shoal models register NAME --pipeline spec.json  a pipeline model: a DAG of registered models (README "Pipelines")
 *   shoal models list
 *   shoal models show NAME [--version N|ALIAS]
 *   shoal models alias NAME ALIAS VERSION          point an alias at a version
 *   shoal models rollback NAME [--alias production] move an alias back to its previous version
 *   shoal models deploy NAME [--version N|ALIAS] [--replicas 2] [--max-batch 32] [--max-delay-ms 0] [--max-queue-rows 4096] [--autoscale MIN:MAX[:TARGET]]
 *     [--min-replicas 0 --idle-timeout-ms N --hold-timeout-ms N --max-held N]   (scale to zero: cli/zero-status.ts)
 *                       [--instances 1] [--intra-op-threads 1] [--warmup sample|synthetic|off] [--batching false] [--batch-axes '{"h":1}']
 *                       [--monitoring '{"sampleRate":0.1,"logExclude":["ssn"],"labelType":"number"}']
 *   shoal models canary NAME --version N [--weight 0.1] [--replicas 1] [--sticky]
 *   shoal models weight NAME WEIGHT                 change the canary's traffic share
 *   shoal models promote NAME                       canary → stable (and the production alias)
 *   shoal models abort NAME                         roll the canary back
 *   shoal models undeploy NAME
 *   shoal models status NAME
 *   shoal models card NAME@V [--json]              the version's model card (Markdown; --json)
 *   shoal models fairness NAME [--policy JSON [--reason TEXT] | --clear]   the model's fairness policy
 *   (deploy, canary, promote: [--override-fairness REASON] past a failing fairness policy, audited)
 *   shoal models quantize NAME@VERSION --int8|--fp16 [--format integer|qdq]   a quantized version with its report (README "Quantization"; cli/models-quantize.ts)
 *   (deploy, canary, promote: --allow-rejected serves a version marked rejected)
 *
 * Every command takes `--json`. Reads (list, show, status) read the registry's KV bucket; every
 * change is a request to the registry service in the scheduler (a model file goes through the
 * `uploads` object store first), so the client role needs no KV write right.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Errors, parseFlags, subjects, type Config } from '../cluster/index.ts';
import { ModelDeployments, ModelRegistry, PACKAGE_FORMAT, RegistryClient, describeBatching, isTarball, packDirectory, type LiveTrack, type ModelVersion, type TrackOptions, type WarmupMode } from '../ml/index.ts';
import { connectClient } from './status.ts';
import { GOVERNANCE_MODEL_FLAGS, cardCommand, cardTextOf, cliActor, fairnessCommand, overrideOf } from './governance.ts';
import { ZERO_FLAGS, zeroLines, zeroTrackOptions } from './zero-status.ts';
import { MODELS_QUANTIZE_FLAGS, quantizeCmd } from './models-quantize.ts';

export const MODELS_FLAGS = [
  'alias',
  'metrics',
  'lineage',
  'description',
  'sample',
  'reference',
  'reference-dataset',
  'file',
  'processor',
  'pipeline',
  'version',
  'replicas',
  'max-batch',
  'max-delay-ms',
  'weight',
  'sticky',
  'json',
  'threads',
  'intra-op-threads',
  'instances',
  'warmup',
  'batching',
  'batch-axes',
  'autoscale',
  'max-queue-rows',
  'monitoring',
  ...GOVERNANCE_MODEL_FLAGS,
  ...ZERO_FLAGS,
  'allow-rejected',
  ...MODELS_QUANTIZE_FLAGS,
] as const;

const USAGE = `usage: shoal models <register|list|show|alias|rollback|deploy|canary|weight|promote|abort|undeploy|status|card|fairness|quantize> …  (see README "Inference serving")`;

function json(flag: string | undefined, name: string): Record<string, unknown> | undefined {
  if (flag === undefined) return undefined;
  try {
    const v = JSON.parse(flag) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw Errors.USAGE(`--${name} must be a JSON object: ${(err as Error).message}`);
  }
}

/** `--autoscale MIN:MAX[:TARGET]`: replicas follow load (ongoing + queued per replica, default target 2). */
function autoscaleFlag(v: string): { minReplicas: number; maxReplicas: number; targetOngoingPerReplica?: number; upscaleDelayMs: number; downscaleDelayMs: number } {
  const m = /^(\d+):(\d+)(?::(\d+(?:\.\d+)?))?$/.exec(v);
  if (!m || Number(m[1]) > Number(m[2]) || Number(m[2]) < 1) throw Errors.USAGE(`--autoscale takes MIN:MAX[:TARGET] with MIN ≤ MAX, MAX ≥ 1 (e.g. 1:4 or 1:4:2), got "${v}"`);
  return { minReplicas: Number(m[1]), maxReplicas: Number(m[2]), ...(m[3] ? { targetOngoingPerReplica: Number(m[3]) } : {}), upscaleDelayMs: 10_000, downscaleDelayMs: 120_000 };
}

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw Errors.USAGE(`--${name} must be a number, got "${v}"`);
  return n;
}

/** `--sample FILE`: the bytes of an OIP v2 infer request body (the registry checks it against the signature). */
function readSample(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw Errors.USAGE(`cannot read the sample request ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `--reference FILE`: a reference profile's JSON (`buildReferenceProfile`; the registry checks its shape). */
function readReference(file: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (err) {
    throw Errors.USAGE(`cannot read the reference profile ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `--batching true|false` (also on/off). */
function boolFlag(v: string, name: string): boolean {
  if (['true', 'on', 'yes'].includes(v)) return true;
  if (['false', 'off', 'no'].includes(v)) return false;
  throw Errors.USAGE(`--${name} takes true or false, got "${v}"`);
}

function warmupFlag(v: string): WarmupMode {
  if (v === 'sample' || v === 'synthetic' || v === 'off') return v;
  throw Errors.USAGE(`--warmup takes sample, synthetic or off, got "${v}"`);
}

/** `--batch-axes '{"h":1}'`: the batch axis of tensors where it is not 0. */
function batchAxesFlag(v: string): Record<string, number> {
  const o = json(v, 'batch-axes')!;
  for (const [k, a] of Object.entries(o)) if (!Number.isInteger(a) || (a as number) < 0) throw Errors.USAGE(`--batch-axes: the axis of "${k}" must be a non-negative integer, got ${JSON.stringify(a)}`);
  return o as Record<string, number>;
}

/** A track's serving info as `shoal models status` prints it. */
function servingLines(t: LiveTrack): string[] {
  const lines: string[] = [];
  if (t.info) {
    lines.push(`    ${describeBatching(t.info.batching)}`);
    lines.push(`    ${t.info.instances} instance${t.info.instances > 1 ? 's' : ''} per replica × ${t.info.intraOpThreads} intra-op thread${t.info.intraOpThreads > 1 ? 's' : ''}; warm-up ${t.info.warmup.mode}${t.info.warmup.ok ? '' : ' (failed)'}`);
  }
  for (const w of t.warnings.length ? t.warnings : t.info?.warmup.warning ? [t.info.warmup.warning] : []) lines.push(`    WARNING: ${w}`);
  return lines;
}

/** What every `shoal models` subcommand gets: its arguments, flags, and the cluster's clients. */
interface Ctx {
  cmd: string;
  args: string[];
  need(i: number, what: string): string;
  flags: Map<string, string>;
  versionRef: number | string | undefined;
  print(value: unknown, text: string): void;
  nc: Awaited<ReturnType<typeof connectClient>>;
  registry: ModelRegistry;
  control: RegistryClient;
  /** The deployment options the flags give (`deploy`, `canary`). */
  track(): TrackOptions;
}

/**
 * A model file, or a package: a directory (packed on the fly, deterministically) or a tarball of
 * a graph with its external data files — streamed up, never read whole.
 */
async function registerCmd(c: Ctx): Promise<number> {
  const name = c.need(0, 'NAME');
  if (c.flags.has('pipeline')) return registerPipelineCmd(c, name);
  const file = c.flags.get('file') ?? c.need(1, 'FILE');
  const cannot = (err: unknown) => Errors.USAGE(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  const alias = c.flags.get('alias');
  const opts = {
    ...(alias ? { aliases: alias.split(',') } : {}),
    ...(c.flags.has('metrics') ? { metrics: json(c.flags.get('metrics'), 'metrics') as Record<string, number> } : {}),
    ...(c.flags.has('lineage') ? { lineage: json(c.flags.get('lineage'), 'lineage') } : {}),
    ...(c.flags.has('description') ? { description: c.flags.get('description')! } : {}),
    ...(c.flags.has('processor') ? { processor: readProcessor(c.flags.get('processor')!) } : {}),
    ...(c.flags.has('sample') ? { sample: readSample(c.flags.get('sample')!) } : {}),
    ...(c.flags.has('reference') ? { reference: readReference(c.flags.get('reference')!) } : {}),
    ...(c.flags.has('reference-dataset') ? { referenceDataset: c.flags.get('reference-dataset')! } : {}),
    ...cardTextOf(c.flags),
  };
  const isDir = await stat(file).then((st) => st.isDirectory(), (err: unknown) => Promise.reject(cannot(err)));
  let mv: ModelVersion;
  if (isDir) mv = await c.control.registerPackage(name, await packDirectory(file), opts);
  else if (await isTarball(file).catch((err: unknown) => Promise.reject(cannot(err)))) mv = await c.control.registerPackage(name, createReadStream(file), opts);
  else mv = await c.control.register(name, readFileSync(file), opts);
  const kind = `${mv.format === PACKAGE_FORMAT ? 'package, ' : ''}${mv.processor ? `processor ${mv.processor.filename}, ` : ''}`;
  c.print(mv, `registered ${name} v${mv.version} (${kind}sha256 ${mv.sha256.slice(0, 12)}…, ${mv.sizeBytes} bytes${mv.sample ? `, sample request sha256 ${mv.sample.sha256.slice(0, 12)}…` : ''}${mv.reference ? `, reference profile of ${mv.reference.rows} rows` : ''}${mv.referenceDataset ? `, reference dataset ${mv.referenceDataset}` : ''})${alias ? `, ${alias} → v${mv.version}` : ''}`);
  return 0;
}

/** `--processor FILE`: the module's bytes and its file name (the extension tells the replica how to load it). */
function readProcessor(file: string): { bytes: Uint8Array; filename: string } {
  try {
    return { bytes: readFileSync(file), filename: basename(file) };
  } catch (err) {
    throw Errors.USAGE(`cannot read --processor ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** `register NAME --pipeline spec.json`: the spec is checked by the registry against the step models. */
async function registerPipelineCmd(c: Ctx, name: string): Promise<number> {
  const file = c.flags.get('pipeline')!;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw Errors.USAGE(`cannot read --pipeline ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const alias = c.flags.get('alias');
  const mv = await c.control.registerPipeline(name, bytes, {
    ...(alias ? { aliases: alias.split(',') } : {}),
    ...(c.flags.has('description') ? { description: c.flags.get('description')! } : {}),
  });
  const io = (xs: { name: string; datatype: string; shape: number[] }[]) => xs.map((i) => `${i.name}:${i.datatype}[${i.shape.join(',')}]`).join(' ');
  c.print(mv, `registered pipeline ${name} v${mv.version} (${mv.pipeline?.steps.length ?? 0} steps: ${mv.pipeline?.steps.map((s) => s.model).join(', ')}; in ${io(mv.signature.inputs)} out ${io(mv.signature.outputs)})${alias ? `, ${alias} → v${mv.version}` : ''}`);
  return 0;
}

async function listCmd(c: Ctx): Promise<number> {
  const all = await c.registry.list();
  const rows = all.map((m) => `${m.name.padEnd(24)} ${String(m.latest).padStart(6)}  ${Object.entries(m.aliases).map(([a, v]) => `${a}=v${v}`).join(' ') || '-'}`);
  c.print(all, [`${'MODEL'.padEnd(24)} ${'LATEST'.padStart(6)}  ALIASES`, ...rows].join('\n'));
  return 0;
}

async function showCmd(c: Ctx): Promise<number> {
  const name = c.need(0, 'NAME');
  if (c.versionRef !== undefined) {
    const mv = await c.registry.resolve(name, c.versionRef);
    c.print(mv, JSON.stringify(mv, null, 2));
    return 0;
  }
  const rec = await c.registry.get(name);
  const versions = await c.registry.versions(name);
  const io = (xs: { name: string; datatype: string; shape: number[] }[]) => xs.map((i) => `${i.name}:${i.datatype}[${i.shape.join(',')}]`).join(' ');
  const lines = [
    `${name}: latest v${rec.latest}; aliases ${Object.entries(rec.aliases).map(([a, v]) => `${a}=v${v}`).join(' ') || '-'}`,
    ...versions.map((v) => `  v${v.version}  ${new Date(v.createdAt).toISOString()}  sha256 ${v.sha256.slice(0, 12)}…  in ${io(v.signature.inputs)}  out ${io(v.signature.outputs)}${kindOf(v)}  ${JSON.stringify(v.metrics)}${v.quantization ? `  quantized from v${v.lineage.parentVersion}` : ''}${v.rejected ? `  REJECTED (${v.rejected.reason})` : ''}`),
  ];
  c.print({ ...rec, versionRecords: versions }, lines.join('\n'));
  return 0;
}

/** What `show` adds for versions that are more than an ONNX file: a processor module, a pipeline's steps. */
function kindOf(v: ModelVersion): string {
  if (v.pipeline) return `  pipeline of ${v.pipeline.steps.map((s) => `${s.model}${s.version ? ` v${s.version}` : ''}`).join(', ')}`;
  if (v.processor) return `  processor ${v.processor.filename} (sha256 ${v.processor.sha256.slice(0, 12)}…)`;
  return '';
}

/** Replica counts and readiness are probed now, not read from the record. */
async function statusCmd(c: Ctx): Promise<number> {
  const name = c.need(0, 'NAME');
  const live = await (await ModelDeployments.open(c.nc, c.control.subjects)).live(name);
  const d = live.deployment;
  const serving = (t: LiveTrack) =>
    `${t.serving} of ${t.desired} replicas serving${t.serving < t.desired ? ` — ${t.replicas.filter((r) => !r.serving).map((r) => `${r.actorId}: ${r.state}${r.nodeId ? ` on ${r.nodeId}` : ''}${r.reason ? ` (${r.reason})` : ''}, no answer`).join('; ') || 'none in the directory'}` : ''}`;
  const lines = [
    `${name}: ${live.ready ? 'ready' : d.stable.zero ? 'scaled to zero' : 'NOT SERVING'} — stable v${live.stable.version} on ${live.stable.service}, ${serving(live.stable)}`,
    ...servingLines(live.stable),
    ...zeroLines(d),
    d.canary && live.canary ? `  canary v${d.canary.version} (${d.canary.state}, weight ${d.canary.weight}${d.canary.sticky ? ', sticky' : ''}), ${serving(live.canary)}` : '  no canary',
    ...(d.canary && live.canary ? servingLines(live.canary) : []),
    ...d.history.slice(-10).map((h) => `  ${new Date(h.at).toISOString()}  ${h.event} v${h.version}${h.detail ? `  ${h.detail}` : ''}`),
  ];
  c.print(live, lines.join('\n'));
  // Scaled to zero on purpose is not a failure: it serves on the next request.
  return live.ready || d.stable.zero ? 0 : 1;
}

const COMMANDS: Record<string, (c: Ctx) => Promise<number>> = {
  register: registerCmd,
  list: listCmd,
  show: showCmd,
  status: statusCmd,
  quantize: (c) => quantizeCmd({ positionals: c.args, flags: c.flags, nc: c.nc, subjects: c.control.subjects, print: c.print }),
  async alias(c) {
    const name = c.need(0, 'NAME');
    const alias = c.need(1, 'ALIAS');
    const v = num(c.need(2, 'VERSION'), 'VERSION')!;
    c.print(await c.control.setAlias(name, alias, v), `${name}: ${alias} → v${v}`);
    return 0;
  },
  async rollback(c) {
    const name = c.need(0, 'NAME');
    const alias = c.flags.get('alias') ?? 'production';
    const r = await c.control.rollbackAlias(name, alias);
    c.print(r, `${name}: ${alias} v${r.from} → v${r.to}`);
    return 0;
  },
  async deploy(c) {
    const name = c.need(0, 'NAME');
    const d = await c.control.deploy(name, { ...c.track(), ...overrideOf(c.flags) });
    const info = d.stable.serving;
    const extra = info ? [`  ${describeBatching(info.batching)}`, ...(info.warmup.warning ? [`  WARNING: ${info.warmup.warning}`] : [])] : [];
    c.print(d, [`${name}: v${d.stable.version} serving on ${d.stable.service} (${d.stable.replicas} replica${d.stable.replicas > 1 ? 's' : ''})`, ...extra].join('\n'));
    return 0;
  },
  async canary(c) {
    const name = c.need(0, 'NAME');
    const d = await c.control.canary(name, { ...c.track(), weight: num(c.flags.get('weight'), 'weight') ?? 0.1, sticky: c.flags.has('sticky'), ...overrideOf(c.flags) });
    c.print(d, `${name}: canary v${d.canary?.version} ready, weight ${d.canary?.weight}; stable v${d.stable.version}`);
    return 0;
  },
  async weight(c) {
    const name = c.need(0, 'NAME');
    const d = await c.control.setWeight(name, num(c.need(1, 'WEIGHT'), 'WEIGHT')!);
    c.print(d, `${name}: canary v${d.canary?.version} weight ${d.canary?.weight}`);
    return 0;
  },
  async promote(c) {
    const name = c.need(0, 'NAME');
    const d = await c.control.promote(name, { ...overrideOf(c.flags), ...(c.flags.has('allow-rejected') ? { allowRejected: true } : {}) });
    c.print(d, `${name}: v${d.stable.version} promoted to stable (production → v${d.stable.version})`);
    return 0;
  },
  async abort(c) {
    const name = c.need(0, 'NAME');
    const done = await c.control.rollback(name, 'rolled back by operator');
    c.print({ rolledBack: done }, done ? `${name}: canary rolled back` : `${name}: no canary`);
    return done ? 0 : 1;
  },
  // Governance (cli/governance.ts): a version's model card; a model's fairness policy.
  card: (c) => cardCommand(c),
  fairness: (c) => fairnessCommand(c),
  async undeploy(c) {
    const name = c.need(0, 'NAME');
    await c.control.undeploy(name);
    c.print({ undeployed: name }, `${name}: undeployed`);
    return 0;
  },
};

/** Runs `shoal models …` (argv: everything after `models`). Returns the exit code. */
export async function modelsCommand(argv: string[], config: Config): Promise<number> {
  const { flags, positionals } = parseFlags(argv);
  const [cmd, ...args] = positionals;
  if (!cmd) throw Errors.USAGE(USAGE);
  const run = COMMANDS[cmd];
  if (!run) throw Errors.USAGE(`unknown models command "${cmd}"\n${USAGE}`);
  const versionFlag = flags.get('version');
  const versionRef = versionFlag === undefined ? undefined : /^\d+$/.test(versionFlag) ? Number(versionFlag) : versionFlag;
  const nc = await connectClient(config);
  try {
    const s = subjects(config.subjectPrefix);
    return await run({
      cmd,
      args,
      flags,
      versionRef,
      nc,
      registry: await ModelRegistry.open(nc, config.subjectPrefix),
      control: new RegistryClient(nc, s, cliActor()),
      need(i, what) {
        const v = args[i];
        if (v === undefined) throw Errors.USAGE(`shoal models ${cmd}: missing ${what}\n${USAGE}`);
        return v;
      },
      print: (value, text) => process.stdout.write(flags.has('json') ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`),
      track: () => ({
        ...(versionRef !== undefined ? { version: versionRef } : {}),
        ...(flags.has('allow-rejected') ? { allowRejected: true } : {}),
        replicas: num(flags.get('replicas'), 'replicas') ?? 1,
        ...(flags.has('max-batch') ? { maxBatchSize: num(flags.get('max-batch'), 'max-batch')! } : {}),
        ...(flags.has('max-delay-ms') ? { maxQueueDelayMs: num(flags.get('max-delay-ms'), 'max-delay-ms')! } : {}),
        ...(flags.has('threads') ? { intraOpThreads: num(flags.get('threads'), 'threads')! } : {}),
        ...(flags.has('intra-op-threads') ? { intraOpThreads: num(flags.get('intra-op-threads'), 'intra-op-threads')! } : {}),
        ...(flags.has('instances') ? { instances: num(flags.get('instances'), 'instances')! } : {}),
        ...(flags.has('warmup') ? { warmup: warmupFlag(flags.get('warmup')!) } : {}),
        ...(flags.has('batching') ? { batching: boolFlag(flags.get('batching')!, 'batching') } : {}),
        ...(flags.has('batch-axes') ? { batchAxes: batchAxesFlag(flags.get('batch-axes')!) } : {}),
        ...(flags.has('max-queue-rows') ? { maxQueueRows: num(flags.get('max-queue-rows'), 'max-queue-rows')! } : {}),
        ...(flags.has('autoscale') ? { autoscale: autoscaleFlag(flags.get('autoscale')!) } : {}),
        // The prediction log and feedback (ml/monitoring): the registry service checks the fields.
        ...(flags.has('monitoring') ? { monitoring: json(flags.get('monitoring'), 'monitoring') as TrackOptions['monitoring'] } : {}),
        ...zeroTrackOptions(flags),
      }),
    });
  } finally {
    await nc.close();
  }
}
