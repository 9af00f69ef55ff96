/**
 * Scale-to-zero: what a deployment asks for (`minReplicas: 0` with an idle timeout), what its
 * record says while no replica runs, and the wake request a gateway sends when a request comes
 * for a model scaled to zero (Knative's activator, Ray Serve's `min_replicas: 0`).
 *
 * The controller on the scheduler leader (zero-controller.ts) owns the decisions: it stops the
 * replicas of an idle track and starts them again on a wake; gateways only hold requests
 * (gateway/activator.ts) and ask.
 */
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SpawnSpec } from '../../cluster/index.ts';

/** Options of a scale-to-zero deployment (all optional on the wire; resolved into the track). */
export const ScaleToZeroOptions = Type.Object(
  {
    /** No request for this long: the replicas are stopped (at least 1 s: gateways report requests every 0.5 s). @default 300000 */
    idleTimeoutMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 7 * 24 * 3_600_000 })),
    /** How long a gateway holds a request while a replica starts; then 503. @default 30000 */
    holdTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 })),
    /** Requests one gateway holds per model; one more is refused at once (503). @default 256 */
    maxHeld: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    /**
     * The node that runs the replica keeps a booted session worker ready (ml/serving/spare-workers.ts),
     * so the next start there skips the worker's boot (most of a small model's cold start). @default true
     */
    prewarm: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ScaleToZeroOptions = Static<typeof ScaleToZeroOptions>;

export const ScaleToZero = Type.Object({
  idleTimeoutMs: Type.Integer({ minimum: 100 }),
  holdTimeoutMs: Type.Integer({ minimum: 100 }),
  maxHeld: Type.Integer({ minimum: 1 }),
  prewarm: Type.Boolean(),
});
export type ScaleToZero = Static<typeof ScaleToZero>;

export const SCALE_TO_ZERO_DEFAULTS: ScaleToZero = { idleTimeoutMs: 300_000, holdTimeoutMs: 30_000, maxHeld: 256, prewarm: true };

export function resolveScaleToZero(o: ScaleToZeroOptions | undefined): ScaleToZero {
  return { ...SCALE_TO_ZERO_DEFAULTS, ...o };
}

/** Set on a track while it runs no replica: how to start them again. */
export const ZeroState = Type.Object({
  /** When the replicas were stopped. */
  since: Type.Number(),
  /** The first replica's spawn spec (without its id), as it was placed. */
  spec: Type.Omit(SpawnSpec, ['id']),
});
export type ZeroState = Static<typeof ZeroState>;

/** The last start from zero: wake request to a ready replica, as the controller measured it. */
export const ColdStart = Type.Object({ at: Type.Number(), seconds: Type.Number({ minimum: 0 }) });
export type ColdStart = Static<typeof ColdStart>;

/**
 * The wake request (gateway → controller), on the service subject {@link WAKE_SERVICE}: the
 * controller answers once the model serves again, or with a typed error.
 */
export const WakeRequest = Type.Object({ type: Type.Literal('wake'), model: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false });
export type WakeRequest = Static<typeof WakeRequest>;
export const isWakeRequest = TypeCompiler.Compile(WakeRequest);
export interface WakeReply {
  model: string;
  version: number;
  /** True when this wake started the replicas (false: they were already serving). */
  started: boolean;
  coldStartSeconds?: number;
}

/** The queue-group service the leader's controller answers wakes on (`<prefix>.svc.scale-from-zero`). */
export const WAKE_SERVICE = 'scale-from-zero';
