/**
 * The `cost` section of the configuration: how the scheduler leader's cost accountant
 * integrates node prices over time, how long it keeps a fine-grained history, the budgets it
 * checks and the evidence right-sizing advice needs. Kept in its own file so config.ts only
 * names it.
 */
import { Type, type Static } from '@sinclair/typebox';

const OwnerName = Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,128}$' });

/** One budget: dollars per period for a tenant or a model (name, or `name@v<version>`). */
export const CostBudget = Type.Object(
  {
    tenant: Type.Optional(OwnerName),
    model: Type.Optional(OwnerName),
    /** Spend allowed per period ($). */
    dollars: Type.Number({ exclusiveMinimum: 0 }),
    /** Period length; periods start at multiples of it since the epoch (UTC). @default 24 */
    periodHours: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 24 * 366 })),
    /** A `warning` alert at this fraction of the budget, a `critical` one at 1. @default 0.8 */
    warnAt: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  },
  { additionalProperties: false },
);
export type CostBudget = Static<typeof CostBudget>;

export const CostConfig = Type.Object(
  {
    /** How often the leader charges the time elapsed, persists its ledger and samples utilisation. @default 10000 */
    tickMs: Type.Integer({ minimum: 50, maximum: 600_000, default: 10_000 }),
    /** Resolution of the history that `--since` reads. @default 60000 */
    bucketMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 60_000 }),
    /** How long that history is kept (totals are kept forever). @default 86400000 (24 h) */
    retentionMs: Type.Integer({ minimum: 60_000, maximum: 31 * 86_400_000, default: 86_400_000 }),
    /**
     * After a leader failover, the time since the old leader last persisted is charged to the
     * placements the new leader finds, up to this long (beyond it, nothing: the cluster was
     * probably down). @default 60000
     */
    maxGapMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 60_000 }),
    /** Budgets per tenant and per model, each alerting on `<prefix>.events.alert`. @default [] */
    budgets: Type.Array(CostBudget, { default: [] }),
    rightSizing: Type.Object(
      {
        /** Utilisation samples kept per service and node (one per tick). @default 90 */
        samples: Type.Integer({ minimum: 1, maximum: 100_000, default: 90 }),
        /** No advice on fewer samples than this. @default 6 */
        minSamples: Type.Integer({ minimum: 1, maximum: 100_000, default: 6 }),
        /** Aim for replicas this busy (ongoing ÷ target ongoing). @default 0.7 */
        targetUtilisation: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.7 }),
      },
      { default: {}, additionalProperties: false },
    ),
  },
  { default: {}, additionalProperties: false },
);
export type CostConfig = Static<typeof CostConfig>;
