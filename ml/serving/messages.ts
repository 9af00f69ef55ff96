/** The inference actor's wire protocol (a discriminated union on `type`, MessagePack on NATS). */
import { Type, type Static } from '@sinclair/typebox';
import { PayloadRef } from '../../cluster/index.ts';
import { WireTensor } from '../tensor.ts';
import type { BatcherStats } from './batcher.ts';
import type { BatchingInfo } from './batch-axis.ts';
import { MonitoringSpec } from '../monitoring/records.ts';
import type { PredictionLogStats } from '../monitoring/prediction-log.ts';

/** One inference request; its first dimension is its row count (a request may hold many rows). */
export const InferItem = Type.Object({
  inputs: Type.Array(WireTensor, { minItems: 1, maxItems: 64 }),
  /** Output names to return (default: all). */
  outputs: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
  /** The request id its prediction-log records carry (what feedback names); default: a random one. */
  id: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
});
export type InferItem = Static<typeof InferItem>;

/** How to explain (the explain routes' query string): README "Explanations". */
export const ExplainOptions = Type.Object({
  /** `auto`: exact for a linear/logistic graph, else KernelSHAP. @default 'auto' */
  method: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('exact'), Type.Literal('kernel'), Type.Literal('ig')])),
  /** KernelSHAP coalitions per row (all 2^M − 2 when they fit). @default 512 */
  samples: Type.Optional(Type.Integer({ minimum: 2, maximum: 65_536 })),
  /** Integrated gradients' path steps. @default 64 */
  steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  /** Background rows used (of those stored). @default 32 */
  background: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  /** Output space: `logit` explains a probability's log-odds. @default logit for a Sigmoid output, else identity */
  link: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('identity'), Type.Literal('logit')])),
  /** The explained output (default: the first) and its column (default: the last, the positive class). */
  output: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  column: Type.Optional(Type.Integer({ minimum: 0, maximum: 65_535 })),
});
export type ExplainOptions = Static<typeof ExplainOptions>;

/**
 * One HTTP request forwarded by the gateway as it came: an OIP v2 `infer` body or a `/v1
 * predict` body (JSON bytes). The replica parses and checks it and answers the response body.
 */
export const JsonItem = Type.Object({
  format: Type.Union([Type.Literal('oip'), Type.Literal('v1')]),
  body: Type.Uint8Array(),
  /** `Inference-Header-Content-Length`: the body is a JSON header and binary tensor data. */
  headerLength: Type.Optional(Type.Integer({ minimum: 0 })),
  /** A body larger than one NATS message stays with the gateway and is pulled from here (`body` is then empty). */
  ref: Type.Optional(PayloadRef),
  /** The gateway's request id (`x-request-id`): the prediction log's record id unless an OIP body has its own `id`. */
  requestId: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  /** The tenant the gateway admitted the request as (logged with its prediction). */
  tenant: Type.Optional(Type.String({ maxLength: 128 })),
  /** Explain the rows instead of predicting them (the explain routes). */
  explain: Type.Optional(ExplainOptions),
});
export type JsonItem = Static<typeof JsonItem>;

/** Which HTTP body a forwarded request carries. */
export type JsonFormat = JsonItem['format'];

export const InferenceMsg = Type.Union([
  /** One or more requests in one NATS message (a gateway coalesces concurrent requests). */
  Type.Object({ type: Type.Literal('infer'), items: Type.Array(InferItem, { minItems: 1, maxItems: 4096 }) }),
  /** The same for HTTP bodies: each gets its own JSON response body or error. */
  Type.Object({
    type: Type.Literal('infer-json'),
    items: Type.Array(JsonItem, { minItems: 1, maxItems: 4096 }),
    /**
     * A hedged copy (gateway/hedged-send.ts): the same requests are with another replica too, so
     * this one answers them without logging or profiling them — the first copy does, and model
     * monitoring counts every served request once.
     */
    hedge: Type.Optional(Type.Boolean()),
  }),
  Type.Object({ type: Type.Literal('stats') }),
  Type.Object({ type: Type.Literal('ready') }),
]);
export type InferenceMsg = Static<typeof InferenceMsg>;

export interface ItemOk {
  outputs: WireTensor[];
  /** Rows in the `session.run` this request was part of. */
  batch: number;
}
export interface ItemError {
  error: { code: string; message: string };
}
export type ItemResult = ItemOk | ItemError;

export interface JsonOk {
  /** The HTTP response body (UTF-8 JSON, then binary output data when `headerLength` is set). */
  body: Uint8Array;
  /** Length of the JSON header when outputs are binary (`Inference-Header-Content-Length`). */
  headerLength?: number;
  /** Rows in the `session.run` this request was part of. */
  batch: number;
  /** A body larger than one NATS message stays with the replica and is pulled from here (`body` is then empty). */
  ref?: PayloadRef;
  /** The request id used, when it is not the gateway's (an OIP body's own `id`). */
  requestId?: string;
}
export type JsonResult = JsonOk | ItemError;

/** The reply to `infer-json`: one result per item, in order. */
export interface InferJsonReply {
  results: JsonResult[];
  queueRows: number;
  actorId: string;
  /** The replica's model version (the one that answered). */
  version: number;
}

export interface InferReply {
  results: ItemResult[];
  /** Rows waiting in the replica's batcher when this reply was sent. */
  queueRows: number;
  actorId: string;
}

/** A replica's counters: its batcher's (`session.run` calls, requests and rows served, batches running now, …) and more. */
export interface ReplicaStats extends BatcherStats {
  actorId: string;
  nodeId: string;
  model: string;
  version: number;
  errors: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
  /** Sessions (worker threads) of this replica. */
  instances: number;
  /** Sessions with a batch running or queued in their worker now. */
  busySessions: number;
  /** The prediction log's counters (deployments with `monitoring`): sampled, published, dropped… */
  predictionLog?: PredictionLogStats;
}

/** Which warm-up a replica runs (deploy option `warmup`, Triton's `model_warmup`). */
export const WarmupMode = { SAMPLE: 'sample', SYNTHETIC: 'synthetic', OFF: 'off' } as const;
export type WarmupMode = (typeof WarmupMode)[keyof typeof WarmupMode];
export const WarmupModeSchema = Type.Union([Type.Literal('sample'), Type.Literal('synthetic'), Type.Literal('off')]);

/** The warm-up a replica ran, and how it went. */
export const WarmupReport = Type.Object({
  mode: WarmupModeSchema,
  /** False when a synthetic warm-up failed (the replica serves anyway; `warning` says why). */
  ok: Type.Boolean(),
  warning: Type.Optional(Type.String()),
});
export type WarmupReport = Static<typeof WarmupReport>;

/** `BatchingInfo` (batch-axis.ts) as a schema: deployment records carry it. */
export const BatchingInfoSchema = Type.Object({
  batched: Type.Boolean(),
  maxBatchSize: Type.Integer({ minimum: 0 }),
  dim: Type.Optional(Type.String()),
  axes: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  reason: Type.Optional(Type.String()),
});

/** How a replica serves, as it decided at load time: what metadata and `shoal models status` show. */
export const ServingInfo = Type.Object({
  batching: BatchingInfoSchema,
  warmup: WarmupReport,
  /** Sessions per replica (worker threads, Triton's instance group count). */
  instances: Type.Integer({ minimum: 1 }),
  /** onnxruntime intra-op threads per session. */
  intraOpThreads: Type.Integer({ minimum: 1 }),
});
export type ServingInfo = Static<typeof ServingInfo> & { batching: BatchingInfo };

export interface ReadyReply extends ServingInfo {
  ready: true;
  actorId: string;
  model: string;
  version: number;
}

/** Spawn arguments of an `inference` actor. */
export const InferenceArgs = Type.Object(
  {
    model: Type.String({ minLength: 1 }),
    version: Type.Integer({ minimum: 1 }),
    /** Most rows in one `session.run` (Triton `max_batch_size`). @default 32 */
    maxBatchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536 })),
    /** How long the oldest request may wait for a fuller batch (Triton `max_queue_delay`). @default 0 */
    maxQueueDelayMs: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000 })),
    /** Rows the batcher holds before refusing (SHOAL_ERR_MAILBOX_FULL → 429). @default 4096 */
    maxQueueRows: Type.Optional(Type.Integer({ minimum: 1 })),
    /** onnxruntime intra-op threads per session (`threads` is the older name). @default 1 */
    intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Alias of `intraOpThreads` (kept for older deployments). */
    threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Sessions per replica, each on its own worker thread; the batcher runs this many batches at once (Triton instance group count). @default 1 */
    instances: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Warm-up (Triton `model_warmup`): the version's sample request, a synthetic one, or none. @default 'sample' when the version has one, else 'synthetic' */
    warmup: Type.Optional(WarmupModeSchema),
    /** `false`: every request runs alone, shapes as sent (Triton `max_batch_size: 0`). @default true when the model is batchable */
    batching: Type.Optional(Type.Boolean()),
    /** Batch axis by tensor name where it is not 0 (e.g. a recurrent state [layers, batch, hidden]: 1). */
    batchAxes: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Integer({ minimum: 0, maximum: 15 }))),
    /** The prediction log (ml/monitoring): sample rate, excluded fields, buffer. Off without it. */
    monitoring: Type.Optional(MonitoringSpec),
    /** Booted session workers the node keeps ready after this replica starts (spare-workers.ts). @default 0 */
    spareWorkers: Type.Optional(Type.Integer({ minimum: 0, maximum: 8 })),
  },
  { additionalProperties: false },
);
export type InferenceArgs = Static<typeof InferenceArgs>;

export const INFERENCE_ACTOR_TYPE = 'shoal-inference';
