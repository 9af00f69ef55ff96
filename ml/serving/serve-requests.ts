/**
 * What every serving actor does with the requests of one message, whatever runs them (the
 * inference actor's batcher, the pipeline actor's steps): decode each against the public
 * signature with its protocol's codec, run it, encode its answer — a request that fails gets its
 * own error, the others their answers.
 */
import { MlErrors } from '../errors.ts';
import type { Signature } from '../registry/schemas.ts';
import { decodeOip, decodePredict, decodeWire, encodeOip, encodePredict, encodeWire, type Decoded, type Outputs } from './codecs/index.ts';
import type { InferItem, ItemError, ItemResult, JsonItem, JsonOk, JsonResult } from './messages.ts';
import { observeBegin, observeEnd, type PredictionLog } from '../monitoring/prediction-log.ts';

export interface RequestRunner {
  /** The signature clients send and get. */
  signature: Signature;
  /** `name vN`, for error messages. */
  label: string;
  name: string;
  version: number;
  /** Runs one decoded request; its outputs and the rows of the run it was part of. */
  run(d: Decoded): Promise<{ value: Outputs; batch: number }>;
  /** A failed request's error reply (and the actor's error count). */
  failure(err: unknown): ItemError;
  /**
   * A body as a prediction by entity (entity-features.ts), or undefined when it is a tensor
   * request; absent for models that record no feature views.
   */
  entities?(format: JsonItem['format'], body: Uint8Array, headerLength: number | undefined): Promise<Decoded | undefined>;
  /** The deployment's prediction log (monitoring on), which never fails or slows a request. */
  log?: PredictionLog | undefined;
}

const ENTITIES = Buffer.from('"entities"');

/** A tensor decoder's refusal of a body that asks for entities, from a model without feature views: say that instead. */
function noEntities(r: RequestRunner, item: JsonItem, err: unknown): unknown {
  if (!MlErrors.BAD_INPUT.is(err) || Buffer.from(item.body.buffer, item.body.byteOffset, item.body.byteLength).indexOf(ENTITIES) < 0) return err;
  return MlErrors.BAD_INPUT(`${r.label} records no feature views (lineage.features), so it cannot predict by entity: send ${item.format === 'v1' ? '"instances"' : '"inputs"'} (the original error: ${(err as Error).message})`);
}

/** Binary requests (tensors as bytes, from NATS clients). */
export function serveWire(r: RequestRunner, items: readonly InferItem[]): Promise<ItemResult[]> {
  const sig = r.signature;
  return Promise.all(
    items.map(async (item): Promise<ItemResult> => {
      try {
        const t0 = performance.now();
        const d = decodeWire(sig, r.label, item.inputs, item.outputs);
        const logged = observeBegin(r.log, sig, d, item.id, undefined, t0);
        const { value, batch } = await r.run(d);
        observeEnd(r.log, logged, sig, value);
        return { outputs: encodeWire(sig, value, d.outputs), batch };
      } catch (err) {
        return r.failure(err);
      }
    }),
  );
}

/** HTTP bodies forwarded by the gateway: parsed, checked and answered here. */
export function serveJson(r: RequestRunner, items: readonly JsonItem[]): Promise<JsonResult[]> {
  const sig = r.signature;
  const version = String(r.version);
  return Promise.all(
    items.map(async (item): Promise<JsonResult> => {
      try {
        // The inference actor takes explain requests aside (explain.ts); any other server (a pipeline) cannot explain.
        if (item.explain) throw MlErrors.EXPLAIN_UNSUPPORTED(r.label, 'it is a pipeline; explain one of its models');
        const t0 = performance.now();
        const v1 = item.format === 'v1';
        let d = r.entities ? await r.entities(item.format, item.body, item.headerLength) : undefined;
        try {
          d ??= v1 ? decodePredict(sig, r.label, item.body) : decodeOip(sig, r.label, item.body, item.headerLength);
        } catch (err) {
          throw r.entities ? err : noEntities(r, item, err);
        }
        // The request id feedback names: the OIP body's `id`, else the gateway's.
        const requestId = d.id ?? item.requestId;
        const logged = observeBegin(r.log, sig, d, requestId, item.tenant, t0);
        const { value, batch } = await r.run(d);
        observeEnd(r.log, logged, sig, value);
        const out = v1 ? encodePredict(sig, r.name, version, d, value) : encodeOip(sig, r.name, version, d, value);
        const res: JsonOk = out.headerLength === undefined ? { body: out.body, batch } : { body: out.body, headerLength: out.headerLength, batch };
        if (requestId !== undefined && requestId !== item.requestId) res.requestId = requestId;
        return res;
      } catch (err) {
        return r.failure(err);
      }
    }),
  );
}
