/**
 * One TypeBox schema for the whole configuration, with defaults. Sources, lowest to highest
 * precedence: defaults → config file (`shoal.config.json` in the working directory, or
 * `--config FILE` / `SHOAL_CONFIG`) → environment (`SHOAL_<PATH>`, e.g. `SHOAL_GATEWAY_PORT`)
 * → flags (`--gateway.port 8081`). A bad value fails at start with an error naming the exact
 * field and where the value came from.
 */
import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type, type Static, type TSchema, type TObject } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { Errors } from './errors.ts';
import { NodeLabels } from './wire.ts';
import { CostConfig } from './cost-config.ts';

const Port = (def: number, description: string) => Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

export const NodeProfile = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: 'profile name; node ids are <name>-<n>' }),
    labels: NodeLabels,
    /** Probe for a WebGPU adapter and advertise it. @default true */
    gpu: Type.Boolean({ default: true }),
    /** How many agents `shoal up` starts with this profile. @default 1 */
    replicas: Type.Integer({ minimum: 0, maximum: 64, default: 1 }),
    /** Threads of the node's worker pool (0 = cores - 1, at least 1). @default 0 */
    workerThreads: Type.Integer({ minimum: 0, maximum: 256, default: 0 }),
  },
  { additionalProperties: false },
);
export type NodeProfile = Static<typeof NodeProfile>;

export const DEFAULT_PROFILES: NodeProfile[] = [
  { name: 'cpu-spot', labels: { pool: 'cpu-spot', zone: 'local-a', spot: true, pricePerHour: 0.012 }, gpu: false, replicas: 1, workerThreads: 0 },
  { name: 'cpu-ondemand', labels: { pool: 'cpu-ondemand', zone: 'local-b', spot: false, pricePerHour: 0.04 }, gpu: true, replicas: 1, workerThreads: 0 },
];

/** One tenant's quotas (config `tenants.<name>`), each held across the whole cluster. */
export const TenantQuota = Type.Object(
  {
    /** Requests per minute over every gateway (HTTP and gRPC). @default gateway.rateLimitPerMinute */
    requestsPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Replicas over all of the tenant's deployments (stable + canary), checked at deploy and canary. @default unlimited */
    maxReplicas: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Training budget per UTC day: the sum of the `budget` of jobs submitted that day, checked at submit. @default unlimited */
    trainingDollarsPerDay: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type TenantQuota = Static<typeof TenantQuota>;

export const ConfigSchema = Type.Object(
  {
    /** Where the embedded nats-server keeps its store, credentials and pid files. @default ./.shoal */
    dataDir: Type.String({ minLength: 1, default: './.shoal' }),
    /** Subject prefix; several clusters can share one NATS account. @default shoal */
    subjectPrefix: Type.String({ pattern: '^[A-Za-z0-9_-]+$', default: 'shoal' }),
    log: Type.Object(
      {
        level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
        /** Pretty-print logs; default: only when stdout is a TTY. */
        pretty: Type.Optional(Type.Boolean()),
      },
      { default: {}, additionalProperties: false },
    ),
    nats: Type.Object(
      {
        /** Host the embedded server listens on. @default 127.0.0.1 */
        host: Type.String({ minLength: 1, default: '127.0.0.1' }),
        /** Client port of the embedded server (0 = pick a free one). @default 4222 */
        port: Port(4222, 'client port of the embedded nats-server'),
        /** Connect to these servers instead of starting one (comma-separated URLs; several = an existing cluster). */
        servers: Type.Optional(Type.String({ minLength: 1 })),
        /**
         * How many clustered nats-servers `shoal up` starts (routes on `host`, JetStream on each,
         * client ports `port` then free ones). Odd only: JetStream's RAFT needs a majority. @default 1
         */
        cluster: Type.Integer({ minimum: 1, maximum: 9, default: 1 }),
        /**
         * Copies of every stream, KV bucket and object store; existing ones are scaled to it.
         * @default min(3, servers): `nats.cluster`, or the URLs in `nats.servers` / `nats.url`
         */
        replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 5 })),
        /** Path of the nats-server binary; default: PATH, then /usr/sbin/nats-server. */
        serverBin: Type.Optional(Type.String({ minLength: 1 })),
        /**
         * Key node passwords are derived from (user `node-<nodeId>`, password
         * HMAC-SHA256(nodeSecret, nodeId)). `shoal up` generates one unless given; the scheduler
         * needs it to start nodes (autoscaler). Never give it to a node.
         */
        nodeSecret: Type.Optional(Type.String({ minLength: 16 })),
        /**
         * Tenants' own NATS users (README "Tenants over NATS"): each an NKey public key (`shoal keys
         * new --tenant T --nats` makes one; the tenant keeps the seed), allowed to publish only
         * `<prefix>.t.<tenant>.>` and to read only its inbox `_INBOX_tenant-<tenant>`. The embedded
         * server adds them; an external one needs the printed `users` entry. @default []
         */
        tenantUsers: Type.Array(
          Type.Object({ tenant: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), nkey: Type.String({ pattern: '^U[A-Z2-7]{55}$' }) }, { additionalProperties: false }),
          { default: [] },
        ),
        /**
         * How often this process pings its nats-server; two pings unanswered and it moves to
         * another server. A server cut off by the network (not one that exited: that closes the
         * connection at once) is only noticed this way — nats.js's own default, 2 min, left
         * processes attached to a partitioned server for minutes. @default 10000
         */
        pingIntervalMs: Type.Integer({ minimum: 500, maximum: 600_000, default: 10_000 }),
        /**
         * How this process reaches NATS (a comma-separated URL list): set by `shoal up` for the
         * processes it starts, or by whoever runs a scheduler, node agent or gateway.
         */
        url: Type.Optional(Type.String({ minLength: 1 })),
        /** This process's NATS user. @default its role's (`scheduler`, `gateway`, `client`), or `node-<nodeId>` */
        user: Type.Optional(Type.String({ minLength: 1 })),
        /** This process's NATS password. */
        pass: Type.Optional(Type.String({ minLength: 1 })),
      },
      { default: {}, additionalProperties: false },
    ),
    gateway: Type.Object(
      {
        host: Type.String({ minLength: 1, default: '127.0.0.1' }),
        /** HTTP port of the gateway (0 = pick a free one). @default 8080 */
        port: Port(8080, 'HTTP port of the gateway'),
        /**
         * Serve the Open Inference Protocol over gRPC too (KServe v2 `inference.GRPCInferenceService`,
         * on `grpcPort`, same host); `false` turns it off. @default true
         */
        grpc: Type.Boolean({ default: true }),
        /** gRPC port of the gateway (0 = pick a free one); KServe's convention is HTTP + 1. @default 8081 */
        grpcPort: Port(8081, 'gRPC port of the gateway'),
        /**
         * API keys, one or more per tenant (header `x-api-key` or `Authorization: Bearer`). Each
         * gives `keyHash` (`sha256:<hex>`, from `shoal keys hash`) or, for development, the plain
         * `key` (hashed at load, never logged). Empty: the gateway refuses to start unless `open`.
         * @default []
         */
        apiKeys: Type.Array(
          Type.Object(
            {
              key: Type.Optional(Type.String({ minLength: 8 })),
              keyHash: Type.Optional(Type.String({ pattern: '^sha256:[0-9a-f]{64}$' })),
              tenant: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }),
              rateLimitPerMinute: Type.Optional(Type.Integer({ minimum: 1 })),
              /** `admin`: registry, deploy, cluster operations and the dashboard, every tenant's resources; `inference`: its tenant's models, jobs and views. @default inference (admin with `admin: true`) */
              role: Type.Optional(Type.Union([Type.Literal('admin'), Type.Literal('inference')])),
              /** Same as `role: admin` (kept for older configs). @default false */
              admin: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
          { default: [] },
        ),
        /** Serve without API keys (no authentication, every caller an admin of the `default` tenant). Needed when `apiKeys` is empty. @default false */
        open: Type.Boolean({ default: false }),
        /** Requests per tenant per minute (cluster-wide: counted in NATS KV across gateways), unless the key or `tenants` says otherwise. @default 600000 */
        rateLimitPerMinute: Type.Integer({ minimum: 1, default: 600_000 }),
        /**
         * Largest request body in bytes (413 above). A body larger than one NATS message stays in
         * the gateway and its replica pulls it in chunks (cluster/payloads.ts); the bound is what
         * one process may hold and a replica allocate whole.
         * @default 67108864 (64 MiB)
         */
        bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024, default: 64 * 1024 * 1024 }),
        /** Longest an inference request may take, retries included (504 after). @default 10000 */
        requestTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
        /**
         * Longest a client may take to send a whole request, headers and body (408 after, checked
         * at least every second). @default requestTimeoutMs + 5000
         */
        receiveTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
        /**
         * One pino line per request: `all`, only refused and failed ones (`errors`: 4xx at info,
         * 5xx at error), or `off`. @default errors
         */
        requestLog: Type.Union([Type.Literal('all'), Type.Literal('errors'), Type.Literal('off')], { default: 'errors' }),
        /**
         * Coalescing toward replicas: while this many NATS messages per replica of a model version
         * await replies, new requests wait for a reply (fewer, fuller messages)… @default 2
         */
        inflightPerReplica: Type.Integer({ minimum: 1, maximum: 1024, default: 2 }),
        /** …for at most this long (0: never wait). @default 1 */
        maxHoldMs: Type.Number({ minimum: 0, maximum: 100, default: 1 }),
        /**
         * A message to a replica unanswered this long (or 4× the model's recent p95 reply time, if
         * longer) gets a copy sent to another replica; the first answer wins. A replica on a
         * SIGKILLed node never answers, and this is how long its requests wait. @default 250
         */
        hedgeAfterMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 250 }),
      },
      { default: {}, additionalProperties: false },
    ),
    node: Type.Object(
      {
        /** This node agent's id (also its NATS user, `node-<id>`). @default <profile>-<host>-<pid> */
        id: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' })),
        /** The profile (of `nodes`) this node agent runs as. @default the first */
        profile: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$' })),
      },
      { default: {}, additionalProperties: false },
    ),
    membership: Type.Object(
      {
        /** How often a node writes its record. @default 1000 */
        heartbeatMs: Type.Integer({ minimum: 50, maximum: 60_000, default: 1000 }),
        /** A node silent this long is dead. @default 5000 */
        deadAfterMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 5000 }),
      },
      { default: {}, additionalProperties: false },
    ),
    scheduler: Type.Object(
      {
        /** Leader lease TTL: a standby takes over this long after the leader stops renewing. @default 10000 */
        leaseTtlMs: Type.Integer({ minimum: 500, maximum: 600_000, default: 10_000 }),
        /** Placement strategy. @default cost-aware */
        strategy: Type.Union([Type.Literal('cost-aware'), Type.Literal('pack'), Type.Literal('spread')], { default: 'cost-aware' }),
        /**
         * A running job whose record has not moved for 20× its expected update interval (from
         * its step time), and at least this long, is stalled: its coordinator is restarted
         * (it resumes from its checkpoint). @default 60000
         */
        jobStallMs: Type.Integer({ minimum: 100, maximum: 86_400_000, default: 60_000 }),
        /** Coordinator restarts of a stalled job before it fails with the reason. @default 3 */
        jobMaxRestarts: Type.Integer({ minimum: 0, maximum: 100, default: 3 }),
        /**
         * Control modules the scheduler process runs (modules exporting `controlModules`, see
         * cluster/control.ts): paths, file URLs, or `shoal:<path>` for modules shipped with Shoal.
         * @default ["shoal:ml/control.ts"] (the model/dataset registry and deployment service)
         */
        modules: Type.Array(Type.String({ minLength: 1 }), { default: ['shoal:ml/control.ts'] }),
      },
      { default: {}, additionalProperties: false },
    ),
    autoscaler: Type.Object(
      {
        /**
         * Let the leader scheduler start and stop node agents on this machine (the `local`
         * provider) for pending actors, within the budget. @default false
         */
        enabled: Type.Boolean({ default: false }),
        /** Most the fleet the autoscaler launched may cost per hour ($). @default 1 */
        budgetPerHour: Type.Number({ minimum: 0, default: 1 }),
        /** A launched node idle this long is stopped. @default 60000 */
        idleTimeoutMs: Type.Integer({ minimum: 0, default: 60_000 }),
        /** How often pending demand is re-planned. @default 2000 */
        intervalMs: Type.Integer({ minimum: 100, default: 2000 }),
        /** Spot preemption notice (AWS 120000, GCP 30000). @default 30000 */
        noticeMs: Type.Integer({ minimum: 0, default: 30_000 }),
        /** Most nodes the autoscaler adds per profile pool. @default 4 */
        maxPerPool: Type.Integer({ minimum: 0, maximum: 1000, default: 4 }),
      },
      { default: {}, additionalProperties: false },
    ),
    actors: Type.Object(
      {
        /**
         * Modules exporting `actorTypes`, loaded by every node agent: paths (relative to the
         * working directory), file URLs, or `shoal:<path>` for modules that ship with Shoal.
         * @default ["shoal:ml/serving/actors.ts", "shoal:ml/training/actors.ts", "shoal:ml/batch/actors.ts", "shoal:ml/features/aggregate-actor.ts", "shoal:ml/monitoring/monitor-actor.ts"] (inference, training, batch scoring, streaming feature aggregates, model monitors)
         */
        modules: Type.Array(Type.String({ minLength: 1 }), { default: ['shoal:ml/serving/actors.ts', 'shoal:ml/training/actors.ts', 'shoal:ml/batch/actors.ts', 'shoal:ml/features/aggregate-actor.ts', 'shoal:ml/monitoring/monitor-actor.ts'] }),
        /** Most actors one node hosts. @default 10000 */
        maxPerNode: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
        /** How long a draining node waits for actors to finish and checkpoint. @default 30000 */
        drainTimeoutMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 30_000 }),
        /**
         * How often a node checks each actor it hosts against the directory and stops a copy that
         * was re-placed elsewhere (fencing; the directory watch also fences at once). 0: watch only. @default 5000
         */
        fenceCheckMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 5000 }),
      },
      { default: {}, additionalProperties: false },
    ),
    gpu: Type.Object(
      {
        /**
         * Pin the WebGPU adapter whose name (vendor, architecture, device, description) contains
         * this text, on machines with several. Default: Dawn's choice.
         */
        adapter: Type.Optional(Type.String({ minLength: 1 })),
      },
      { default: {}, additionalProperties: false },
    ),
    kernels: Type.Object(
      {
        /**
         * Where a node's kernels run steps: `gpu` (WebGPU; the node fails to start without an
         * adapter), `cpu` (worker thread + ONNX Runtime), or `auto` (per step, by the measured
         * crossover; CPU when there is no adapter). A node profile with `gpu: false` always uses
         * `cpu`. Also read from `SHOAL_TRAINING_BACKEND`, its older name. @default auto
         */
        backend: Type.Union([Type.Literal('auto'), Type.Literal('gpu'), Type.Literal('cpu')], { default: 'auto' }),
        /** Directory of the autotune tables. Default: `$XDG_CACHE_HOME/shoal/kernels` (`~/.cache/shoal/kernels`). */
        cache: Type.Optional(Type.String({ minLength: 1 })),
        /**
         * K-depth of matmul's big WebGPU tile: 32 needs 24 KiB of workgroup memory and is used
         * only where the adapter grants it; a knob for tuning on real GPUs. @default 16
         */
        matmulBk: Type.Integer({ minimum: 16, maximum: 32, multipleOf: 16, default: 16 }),
      },
      { default: {}, additionalProperties: false },
    ),
    metrics: Type.Object(
      {
        /** Host a scheduler's or node agent's `/metrics` listens on. @default 127.0.0.1 */
        host: Type.String({ minLength: 1, default: '127.0.0.1' }),
        /**
         * Port of this scheduler's or node agent's Prometheus `/metrics` (the gateway serves its
         * own on its HTTP port). 0 = not served (a process started by hand). @default 0
         */
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 0 }),
        /**
         * `shoal up` gives its processes fixed metrics ports from here: the scheduler this one,
         * node agents the next ones (in profile order), recorded in `cluster.json`; 0 = none.
         * @default 9470
         */
        basePort: Type.Integer({ minimum: 0, maximum: 65535, default: 9470 }),
      },
      { default: {}, additionalProperties: false },
    ),
    tracing: Type.Object(
      {
        /**
         * OTLP/HTTP traces endpoint (e.g. `http://127.0.0.1:4318/v1/traces`: Jaeger, Tempo, an
         * OpenTelemetry Collector); unset = tracing off. Also read from
         * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
         */
        endpoint: Type.Optional(Type.String({ pattern: '^https?://' })),
        /** Write finished spans as JSON lines to this file instead (debugging, tests); also turns tracing on. */
        file: Type.Optional(Type.String({ minLength: 1 })),
        /** Fraction of new traces recorded (a request with a sampled `traceparent` is always recorded). @default 1 */
        sampleRatio: Type.Number({ minimum: 0, maximum: 1, default: 1 }),
      },
      { default: {}, additionalProperties: false },
    ),
    /** Model monitoring (ml/monitoring): the prediction log's and labels' retention, and the label join. */
    monitoring: Type.Object(
      {
        /**
         * Run the feedback service (every scheduler) and the label join (the leader) in the
         * scheduler processes; `false` when they run elsewhere. @default true
         */
        feedback: Type.Boolean({ default: true }),
        /** A label joins its logged prediction at most this long after it (later: counted as late; unknown ids: orphaned after it). @default 604800000 (7 days) */
        joinHorizonMs: Type.Integer({ minimum: 1000, maximum: 365 * 86_400_000, default: 7 * 86_400_000 }),
        /** Labels waiting for their prediction, at most (more: the oldest counted as orphaned). @default 100000 */
        maxPendingLabels: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100_000 }),
        /** Prediction log (stream `<P>_PREDICTIONS`) retention. @default 604800000 (7 days) */
        predictionsMaxAgeMs: Type.Integer({ minimum: 1000, default: 7 * 86_400_000 }),
        /** Prediction log size bound in bytes, oldest dropped first (-1: none). @default 1073741824 (1 GiB) */
        predictionsMaxBytes: Type.Integer({ minimum: -1, default: 1024 ** 3 }),
        /** Retention of stored labels and joined rows (`<P>_FEEDBACK`, `<P>_LABELED`). @default 2592000000 (30 days) */
        labelsMaxAgeMs: Type.Integer({ minimum: 1000, default: 30 * 86_400_000 }),
        /** Joined rows size bound in bytes (-1: none). @default 1073741824 (1 GiB) */
        labeledMaxBytes: Type.Integer({ minimum: -1, default: 1024 ** 3 }),
      },
      { default: {}, additionalProperties: false },
    ),
    /** Cost accounting, budgets and right-sizing on the scheduler leader (cluster/cost-config.ts). */
    cost: CostConfig,
    /** Node profiles `shoal up` starts. */
    nodes: Type.Array(NodeProfile, { default: DEFAULT_PROFILES, minItems: 1 }),
    /** Per-tenant quotas, cluster-wide (README "Tenants, roles and quotas"); a tenant not listed has none beyond `gateway.rateLimitPerMinute`. @default {} */
    tenants: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }), TenantQuota, { default: {} }),
    /** How long shutdown waits for a process before SIGKILL. @default 10000 */
    shutdownTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof ConfigSchema>;

export interface LoadConfigOptions {
  /** Command-line arguments after the subcommand (flags only; positional args are ignored). */
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

interface Leaf {
  path: string[];
  schema: TSchema;
}

function leaves(schema: TObject, path: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const [key, sub] of Object.entries(schema.properties)) {
    const p = [...path, key];
    if ((sub as TSchema).type === 'object' && (sub as TObject).properties) out.push(...leaves(sub as TObject, p));
    else out.push({ path: p, schema: sub as TSchema });
  }
  return out;
}

const snake = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
export const envName = (path: string[]) => `SHOAL_${path.map(snake).join('_')}`;

/**
 * Older env names still accepted for a field, read only when its derived name is unset.
 * `SHOAL_TRAINING_BACKEND` chose the backend of the kernels that training created for itself;
 * the node now owns one kernels instance, and training is what runs on it.
 */
export const ENV_ALIASES: Readonly<Record<string, readonly string[]>> = {
  'kernels.backend': ['SHOAL_TRAINING_BACKEND'],
  // The name setup.sh and the errors have always told people to set.
  'nats.serverBin': ['SHOAL_NATS_SERVER'],
  // OpenTelemetry's own name for it, so an environment set up for other OTel services works.
  'tracing.endpoint': ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
};
const flagName = (path: string[]) => path.join('.');

const LEAVES = leaves(ConfigSchema);

/** Every config field as a flag name (`gateway.port`, …): what `--<field> VALUE` accepts on any command. */
export const CONFIG_FLAGS: readonly string[] = LEAVES.map((l) => flagName(l.path));

/** Parse a string from env/flags by the leaf's type; arrays/objects take JSON. */
function parseScalar(raw: string, schema: TSchema): unknown {
  const t = schema.type;
  if (t === 'array' || t === 'object') {
    try {
      return JSON.parse(raw);
    } catch {
      return raw; // let validation name the field
    }
  }
  if (t === 'integer' || t === 'number') return raw.trim() === '' ? raw : Number(raw);
  if (t === 'boolean') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  return raw;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const k of path.slice(0, -1)) {
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Parses `--a.b value`, `--a.b=value` and `--config FILE`; returns flags and positionals. */
export function parseFlags(argv: string[]): { flags: Map<string, string>; positionals: string[] } {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) {
      flags.set(a.slice(2, eq), a.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) flags.set(a.slice(2), 'true');
      else {
        flags.set(a.slice(2), next);
        i++;
      }
    }
  }
  return { flags, positionals };
}

/** Flags that are not config fields (subcommand options) pass through untouched. */
export function loadConfig(opts: LoadConfigOptions = {}, extraFlags: readonly string[] = []): Config {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const { flags } = parseFlags(opts.argv ?? []);
  const sources = new Map<string, string>(); // field path → where its value came from
  const rawText = new Map<string, string>(); // field path → the string given in env/flags
  const raw: Record<string, unknown> = {};

  const configFile = flags.get('config') ?? env.SHOAL_CONFIG ?? (existsSync(resolve(cwd, 'shoal.config.json')) ? 'shoal.config.json' : undefined);
  if (configFile !== undefined) {
    const file = resolve(cwd, configFile);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw Errors.BAD_CONFIG('config', `cannot read ${file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw Errors.BAD_CONFIG('config', `${file} is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw Errors.BAD_CONFIG('config', `${file} must hold a JSON object`);
    Object.assign(raw, parsed);
    for (const l of LEAVES) sources.set(l.path.join('.'), `file ${file}`);
  }
  for (const l of LEAVES) {
    const name = [envName(l.path), ...(ENV_ALIASES[l.path.join('.')] ?? [])].find((n) => env[n] !== undefined) ?? envName(l.path);
    const v = env[name];
    if (v !== undefined) {
      setPath(raw, l.path, parseScalar(v, l.schema));
      sources.set(l.path.join('.'), `env ${name}`);
      rawText.set(l.path.join('.'), v);
    }
  }
  const known = new Set(LEAVES.map((l) => flagName(l.path)));
  for (const [k, v] of flags) {
    if (k === 'config' || extraFlags.includes(k)) continue;
    if (!known.has(k)) throw Errors.BAD_CONFIG(k, `unknown flag --${k} (config fields: ${[...known].map((f) => `--${f}`).join(', ')})`);
    const leaf = LEAVES.find((l) => flagName(l.path) === k)!;
    setPath(raw, leaf.path, parseScalar(v, leaf.schema));
    sources.set(k, `flag --${k}`);
    rawText.set(k, v);
  }

  const withDefaults = Value.Default(ConfigSchema, Value.Clone(raw));
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const field = first.path.replace(/^\//, '').split('/').filter(Boolean).join('.') || '(root)';
    const top = LEAVES.map((l) => l.path.join('.')).find((p) => field === p || field.startsWith(`${p}.`));
    const from = top ? sources.get(top) : undefined;
    const given = top !== undefined && top === field ? rawText.get(top) : undefined;
    // API keys and passwords are never echoed, not even a malformed one.
    const secret = /(^|\.)(apiKeys|pass|nodeSecret)(\.|$)/.test(field);
    const got = secret ? '(value not shown)' : given !== undefined ? JSON.stringify(given) : JSON.stringify(first.value);
    const literals = (first.schema.anyOf as TSchema[] | undefined)?.map((s) => s.const).filter((c) => c !== undefined);
    const expected = literals && literals.length > 0 ? `expected one of ${literals.map((c) => JSON.stringify(c)).join(', ')}` : first.message;
    const why = first.type === ValueErrorType.ObjectAdditionalProperties ? `unknown field` : `${expected}, got ${got === undefined ? 'nothing' : got}`;
    throw Errors.BAD_CONFIG(field, `${why}${from ? ` (from ${from})` : ''}`);
  }
  const cfg = withDefaults as Config;
  try {
    checkClusterSize(cfg.nats.cluster);
  } catch (err) {
    const from = sources.get('nats.cluster');
    throw from ? Errors.BAD_CONFIG('nats.cluster', `${(err as Error).message.replace(/^invalid config nats\.cluster: /, '')} (from ${from})`) : err;
  }
  return cfg;
}

/** Refuses a cluster size JetStream cannot run safely: an even count has no better fault tolerance than one fewer, and 2 has none. */
export function checkClusterSize(size: number, field = 'nats.cluster'): void {
  if (!Number.isInteger(size) || size < 1) throw Errors.BAD_CONFIG(field, `must be a positive odd number of servers, got ${size}`);
  if (size % 2 === 0) {
    throw Errors.BAD_CONFIG(
      field,
      `${size} servers refused: JetStream's RAFT needs a majority (quorum ${size / 2 + 1} of ${size}), so ${size} servers survive no more failures than ${size - 1} and a split can stop writes; use ${size - 1} or ${size + 1}`,
    );
  }
}
