/**
 * A pipeline (issue #16): per model, what triggers a retrain, the data it trains on, the training
 * job, the gates a candidate must pass, the shadow it may first serve (mirrored traffic only) and
 * the canary it then goes through. Applied with
 * `shoal pipelines apply`, stored versioned in the pipelines KV bucket (store.ts).
 *
 * {@link validatePipelineSpec} checks the shape (TypeBox) and then what only the cluster knows —
 * the model, the dataset or feature views and label view, the metric the gate reads — through injected lookups;
 * every refusal is SHOAL_ERR_BAD_INPUT naming the field.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { FairnessPolicy } from '../governance/fairness/index.ts';
import { MlErrors } from '../errors.ts';
import { cronProblem, nextCron } from './schedule.ts';

const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });

/** "30s", "5m", "1h", "1d" or a number of milliseconds (a time of day is `triggers.cron`). */
export const Interval = Type.Union([Type.String({ minLength: 1, maxLength: 32 }), Type.Integer({ minimum: 1000 })]);

export const PipelineTriggers = Type.Object(
  {
    /** Retrain every this long (e.g. "24h"), at least one second. */
    interval: Type.Optional(Interval),
    /** Retrain at these times: a cron expression, 5 fields (`0 3 * * *`: 03:00 every day) or 6 with seconds first. */
    cron: Type.Optional(Type.String({ minLength: 1, maxLength: 120 })),
    /** The IANA time zone `cron` is read in. @default "UTC" */
    timezone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    /** Retrain when the monitor raises a drift or quality alert on the model's production version. */
    onAlert: Type.Optional(Type.Array(Type.Union([Type.Literal('drift'), Type.Literal('quality')]), { minItems: 1, maxItems: 2 })),
    /** Retrain once this many labeled rows of the model were joined since the last run started (or since the spec was applied). */
    newLabels: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false, default: {} },
);

export const PipelineSpec = Type.Object(
  {
    name: Name,
    /** The registered model the pipeline retrains. */
    model: Name,
    triggers: PipelineTriggers,
    data: Type.Object(
      {
        /** A dataset ref (`name`, `name@<digest prefix>`, `sha256:<digest>`), pinned by digest at each run… */
        dataset: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        /**
         * …or a feature-view training set built point-in-time up to the run's trigger time: the
         * views (`view` = its latest version, `view@N` pinned) and the label view whose events are
         * the labels, taken up to the trigger time (and from `windowMs` before it, when set).
         */
        features: Type.Optional(
          Type.Object(
            {
              features: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}(@[1-9][0-9]{0,8})?$' }), { minItems: 1, maxItems: 32 }),
              labels: Type.Object(
                {
                  view: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
                  label: Type.String({ minLength: 1, maxLength: 128 }),
                  /** How far back from the trigger time labels are taken, in ms; else all labels up to it. */
                  windowMs: Type.Optional(Type.Integer({ minimum: 1000 })),
                },
                { additionalProperties: false },
              ),
            },
            { additionalProperties: false },
          ),
        ),
        /**
         * Append the model's labeled rows (predictions joined with their feedback labels, from the
         * labeled stream) to the dataset: each run then trains on a new dataset version
         * `<dataset>-labeled`, pinned by digest (with `data.dataset` only). @default false
         */
        labeled: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    ),
    training: Type.Object(
      {
        type: Type.Union([Type.Literal('logreg'), Type.Literal('mlp')], { default: 'logreg' }),
        steps: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 200 }),
        lr: Type.Number({ exclusiveMinimum: 0, maximum: 10, default: 0.05 }),
        seed: Type.Integer({ default: 1 }),
        /** Workers may run on spot capacity. @default true */
        spotOk: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
    gates: Type.Object(
      {
        /** The metric compared with production (the model must report it). @default "auc" */
        metric: Type.String({ minLength: 1, maxLength: 64, default: 'auc' }),
        /** The candidate may be worse than production by at most this, on the interval's low end. @default 0.01 */
        maxDrop: Type.Number({ minimum: 0, maximum: 1, default: 0.01 }),
        /** @default 0.95 */
        confidence: Type.Number({ exclusiveMinimum: 0.5, exclusiveMaximum: 1, default: 0.95 }),
        /** Upper bound of the candidate's expected calibration error. */
        maxEce: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
        /** The fairness policy the candidate must meet; else the model's stored policy (`shoal governance`), if any. */
        fairness: Type.Optional(FairnessPolicy),
        /**
         * A dataset whose holdout split both versions are scored on (labels you trust, fixed across
         * runs); else the holdout of the run's own data snapshot.
         */
        holdout: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        /**
         * A latency gate: both versions answer a replay of the latest logged requests (the holdout
         * when nothing is logged), interleaved; the candidate's p99 must be within `maxRatio` of
         * production's (default 1.5) and under `maxP99Ms` when set. Off unless given.
         */
        latency: Type.Optional(
          Type.Object(
            {
              maxRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 1000 })),
              maxP99Ms: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
              requests: Type.Optional(Type.Integer({ minimum: 20, maximum: 5000 })),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    rollout: Type.Object(
      {
        /** Canary traffic steps, in percent. @default [5, 25, 50, 100] */
        steps: Type.Array(Type.Integer({ minimum: 1, maximum: 100 }), { minItems: 1, maxItems: 10, default: [5, 25, 50, 100] }),
        /** How long each step runs before it is judged, in ms. @default 10000 */
        stepMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 10_000 }),
        /** Promote without the canary (for models with no deployment yet). @default false */
        direct: Type.Boolean({ default: false }),
        /** How each step is judged on model quality (canary-quality.ts), besides the rollout controller's errors and latency. */
        quality: Type.Object(
          {
            /** The canary may be worse than the stable by at most this (AUC or accuracy), on the high end of the difference's interval. @default 0.02 */
            maxDrop: Type.Number({ minimum: 0, maximum: 1, default: 0.02 }),
            /** Largest PSI between the canary's and the stable's score distributions (when the difference is also significant). @default 0.25 */
            maxDivergence: Type.Number({ exclusiveMinimum: 0, maximum: 100, default: 0.25 }),
            /** Labeled canary rows from which labeled metrics are preferred to estimated ones. @default 200 */
            minLabeled: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 200 }),
            /** Rows each track's window needs before estimated performance and the divergence are judged. @default 100 */
            minRows: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 100 }),
            /** Of every interval and test. @default 0.95 */
            confidence: Type.Number({ exclusiveMinimum: 0.5, exclusiveMaximum: 1, default: 0.95 }),
            /** Longest a step waits past stepMs for enough rows; then it passes with basis "insufficient". @default 900000 */
            maxWaitMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 900_000 }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Shadow before the canary: the candidate gets a mirrored share of production's requests, its
     * answers compared with production's and never returned (skipped when the model has no
     * deployment or with `rollout.direct`).
     */
    shadow: Type.Optional(
      Type.Object(
        {
          /** Share of the stable version's requests mirrored to the candidate. @default 0.1 */
          fraction: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.1 }),
          /** How long the shadow runs before it is judged, in ms. @default 30000 */
          durationMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 30_000 }),
          /** Rows compared before any verdict. @default 200 */
          minCompared: Type.Integer({ minimum: 1, maximum: 100_000_000, default: 200 }),
          /** Lowest share of rows on which both versions agree (same class, or close for a regression). @default 0.9 */
          minAgreement: Type.Number({ minimum: 0, maximum: 1, default: 0.9 }),
          /** Highest PSI between the two versions' score distributions (20 bins over 0..1). @default 0.1 */
          maxDistance: Type.Number({ minimum: 0, default: 0.1 }),
          /** Longest the shadow may wait (from when it is ready) for `minCompared` rows; the run then fails, the candidate untouched. @default 300000 */
          maxWaitMs: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 300_000 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type PipelineSpec = Static<typeof PipelineSpec>;

const check = TypeCompiler.Compile(PipelineSpec);

/** The defaults of `rollout.quality`. */
export const QUALITY_DEFAULTS = { maxDrop: 0.02, maxDivergence: 0.25, minLabeled: 200, minRows: 100, confidence: 0.95, maxWaitMs: 900_000 } as const;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of an interval, or a message saying why it is malformed. */
export function parseInterval(v: string | number): number | string {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1000 ? v : 'must be at least 1000 ms';
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) return `"${v}" is not an interval like "30s", "5m", "24h"${/\s/.test(v.trim()) ? ' (a cron expression goes in triggers.cron)' : ''}`;
  const ms = Number(m[1]) * UNITS[m[2]!]!;
  return ms >= 1000 ? Math.round(ms) : `"${v}" is shorter than one second`;
}

/** What validation needs to know about the cluster (throws nothing; undefined = not found). */
export interface SpecLookups {
  /** The metric names the model's production version (or latest) reports; undefined when the model is not registered. */
  modelMetrics(model: string): Promise<string[] | undefined>;
  datasetExists(ref: string): Promise<boolean>;
  viewExists(name: string): Promise<boolean>;
}

const bad = (field: string, why: string) => MlErrors.BAD_INPUT(`pipeline ${field}: ${why}`);

/** The spec with its defaults, or SHOAL_ERR_BAD_INPUT naming the first bad field. */
export async function validatePipelineSpec(raw: unknown, lookups: SpecLookups): Promise<PipelineSpec> {
  const withDefaults = structuredClone(raw) as Record<string, unknown>;
  if (withDefaults && typeof withDefaults === 'object') {
    for (const k of ['triggers', 'training', 'gates', 'rollout'] as const) withDefaults[k] ??= {};
    const fill = (k: string, d: Record<string, unknown>) => {
      const o = withDefaults[k];
      if (o && typeof o === 'object' && !Array.isArray(o)) for (const [dk, dv] of Object.entries(d)) (o as Record<string, unknown>)[dk] ??= dv;
    };
    fill('training', { type: 'logreg', steps: 200, lr: 0.05, seed: 1, spotOk: true });
    fill('gates', { metric: 'auc', maxDrop: 0.01, confidence: 0.95 });
    fill('rollout', { steps: [5, 25, 50, 100], stepMs: 10_000, direct: false, quality: {} });
    const rollout = withDefaults['rollout'];
    if (rollout && typeof rollout === 'object' && !Array.isArray(rollout)) {
      const q = (rollout as Record<string, unknown>)['quality'];
      if (q && typeof q === 'object' && !Array.isArray(q)) for (const [dk, dv] of Object.entries(QUALITY_DEFAULTS)) (q as Record<string, unknown>)[dk] ??= dv;
    }
    fill('shadow', { fraction: 0.1, durationMs: 30_000, minCompared: 200, minAgreement: 0.9, maxDistance: 0.1, maxWaitMs: 300_000 });
  }
  const first = check.Errors(withDefaults).First();
  if (first) throw bad(first.path.replace(/^\//, '').replaceAll('/', '.') || '(root)', first.message);
  const spec = withDefaults as unknown as PipelineSpec;
  if (spec.triggers.interval !== undefined) {
    const ms = parseInterval(spec.triggers.interval);
    if (typeof ms === 'string') throw bad('triggers.interval', ms);
  }
  if (spec.triggers.cron !== undefined) {
    const p = cronProblem(spec.triggers.cron, spec.triggers.timezone);
    if (p) throw bad(p.field, p.message);
  } else if (spec.triggers.timezone !== undefined) throw bad('triggers.timezone', 'a time zone applies to triggers.cron only; set triggers.cron too');
  const { dataset, features } = spec.data;
  if ((dataset === undefined) === (features === undefined)) throw bad('data', 'name exactly one of data.dataset or data.features');
  if (spec.data.labeled && dataset === undefined) throw bad('data.labeled', 'labeled rows are appended to a dataset; with data.features the labels come from the label view');
  const metrics = await lookups.modelMetrics(spec.model);
  if (!metrics) throw bad('model', `model "${spec.model}" is not registered`);
  if (dataset !== undefined && !(await lookups.datasetExists(dataset))) throw bad('data.dataset', `dataset "${dataset}" not found`);
  if (features !== undefined) {
    const seen = new Set<string>();
    for (const [i, ref] of features.features.entries()) {
      const name = ref.split('@')[0]!;
      if (seen.has(name)) throw bad(`data.features.features.${i}`, `feature view "${name}" appears twice`);
      seen.add(name);
      if (!(await lookups.viewExists(name))) throw bad(`data.features.features.${i}`, `feature view "${name}" not found`);
    }
    if (!(await lookups.viewExists(features.labels.view))) throw bad('data.features.labels.view', `label view "${features.labels.view}" not found`);
  }
  if (spec.gates.holdout !== undefined && !(await lookups.datasetExists(spec.gates.holdout))) throw bad('gates.holdout', `dataset "${spec.gates.holdout}" not found`);
  if (!metrics.includes(spec.gates.metric)) throw bad('gates.metric', `model "${spec.model}" does not report "${spec.gates.metric}" (it reports ${metrics.join(', ') || 'no metrics'})`);
  if (spec.gates.metric !== 'auc') throw bad('gates.metric', `only "auc" is compared with production so far`);
  const steps = spec.rollout.steps;
  for (let i = 1; i < steps.length; i++) if (steps[i]! <= steps[i - 1]!) throw bad(`rollout.steps.${i}`, 'steps must increase');
  return spec;
}

/** The interval of a spec in ms, when it has one (the spec is valid). */
export const intervalMs = (spec: PipelineSpec): number | undefined => (spec.triggers.interval === undefined ? undefined : (parseInterval(spec.triggers.interval) as number));

/**
 * The next scheduled fire after a run triggered at `atMs` (epoch ms): the earlier of the next cron
 * time and `atMs` plus the interval; undefined for a pipeline with neither (alerts, labels, by
 * hand). A scheduled run's training job gets it as its deadline.
 */
export function nextScheduled(spec: PipelineSpec, atMs: number): number | undefined {
  const every = intervalMs(spec);
  const byInterval = every === undefined ? undefined : atMs + every;
  const byCron = nextCron(spec.triggers, atMs);
  if (byInterval === undefined) return byCron;
  return byCron === undefined ? byInterval : Math.min(byInterval, byCron);
}
