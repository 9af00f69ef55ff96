/**
 * The cost API on the wire (`<prefix>.sched.cost`, served by the leader): a spend report grouped
 * by tenant, model or job, or right-sizing advice. One TypeBox schema validates the request
 * here and types it for the CLI and the gateway.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { Recommendation } from './right-size.ts';

export const CostGroup = Type.Union([Type.Literal('tenant'), Type.Literal('model'), Type.Literal('job'), Type.Literal('owner')]);
export type CostGroup = Static<typeof CostGroup>;

export const SchedulerCostRequest = Type.Union([
  Type.Object(
    {
      type: Type.Literal('report'),
      /** Group rows by this. @default owner (tenant × model × job) */
      by: Type.Optional(CostGroup),
      /** Only spend of the last this many milliseconds (history resolution: `cost.bucketMs`). */
      sinceMs: Type.Optional(Type.Integer({ minimum: 1 })),
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('recommend') }, { additionalProperties: false }),
]);
export type SchedulerCostRequest = Static<typeof SchedulerCostRequest>;

export interface CostReportRow {
  tenant?: string;
  model?: string;
  job?: string;
  dollars: number;
  /** Model versions only: predictions served in the same span, and dollars per 1,000 of them. */
  predictions?: number;
  dollarsPer1kPredictions?: number;
}

export interface CostReport {
  by: CostGroup;
  /** Span covered (epoch ms); `from` is the ledger's start when no `since` was given. */
  from: number | null;
  to: number;
  totalDollars: number;
  /** What the nodes cost per hour right now, and how much of it no actor asked for. */
  fleetDollarsPerHour: number;
  idleDollarsPerHour: number;
  rows: CostReportRow[];
}

export interface CostAdvice {
  at: number;
  /** Sum of the recommendations' expected changes ($/h; negative saves). */
  dollarsPerHourChange: number;
  recommendations: Recommendation[];
  /** Services and nodes skipped, with why (too few samples…). */
  skipped: { target: string; reason: string }[];
}
