/** The inference actor's wire protocol (a discriminated union on `type`, MessagePack on NATS). */
import { Type, type Static } from '@sinclair/typebox';
import { PayloadRef } from '../../cluster/index.ts';
import { WireTensor } from '../tensor.ts';
import type { BatcherStats } from './batcher.ts';

/** One inference request; its first dimension is its row count (a request may hold many rows). */
export const InferItem = Type.Object({
  inputs: Type.Array(WireTensor, { minItems: 1, maxItems: 64 }),
  /** Output names to return (default: all). */
  outputs: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
});
export type InferItem = Static<typeof InferItem>;

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
});
export type JsonItem = Static<typeof JsonItem>;
/** Which HTTP body a forwarded request carries. */
export type JsonFormat = JsonItem['format'];

export const InferenceMsg = Type.Union([
  /** One or more requests in one NATS message (a gateway coalesces concurrent requests). */
  Type.Object({ type: Type.Literal('infer'), items: Type.Array(InferItem, { minItems: 1, maxItems: 4096 }) }),
  /** The same for HTTP bodies: each gets its own JSON response body or error. */
  Type.Object({ type: Type.Literal('infer-json'), items: Type.Array(JsonItem, { minItems: 1, maxItems: 4096 }) }),
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

/** A replica's counters: its batcher's (`session.run` calls, requests and rows served, …) and more. */
export interface ReplicaStats extends Omit<BatcherStats, 'inflight'> {
  actorId: string;
  nodeId: string;
  model: string;
  version: number;
  errors: number;
  maxBatchSize: number;
  maxQueueDelayMs: number;
}

export interface ReadyReply {
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
    /** onnxruntime intra-op threads per replica. @default 1 */
    threads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  },
  { additionalProperties: false },
);
export type InferenceArgs = Static<typeof InferenceArgs>;

export const INFERENCE_ACTOR_TYPE = 'shoal-inference';
