/**
 * The replica's side of bodies larger than one NATS message (see cluster/payloads.ts): before
 * the inference actor sees an `infer-json` message, the items whose body stayed with the gateway
 * are pulled from it; after, response bodies that would not fit in the reply are held here for
 * the gateway to pull. Small messages pass through untouched (one loop over the items and one
 * over the results). One host per node connection: one subscription, under the node's own
 * payload subject, shared by the node's replicas.
 */
import { PayloadHost, fetchPayload, inlineLimitOf, toWireError, type ActorContext, type NatsConnection } from '../../cluster/index.ts';
import type { InferJsonReply, ItemError, JsonItem, JsonResult } from './messages.ts';

/** How long a held response body waits for its gateway (which pulls it as soon as the reply lands). */
const REPLY_HOLD_MS = 30_000;
/** Longest a request body's pull may take. */
const PULL_TIMEOUT_MS = 30_000;
const EMPTY = new Uint8Array(0);

const hosts = new WeakMap<NatsConnection, PayloadHost>();

type Ctx = Pick<ActorContext, 'nc' | 'subjects' | 'nodeId'>;

function hostOf(ctx: Ctx): PayloadHost {
  let h = hosts.get(ctx.nc);
  if (!h) hosts.set(ctx.nc, (h = new PayloadHost(ctx.nc, ctx.subjects.payloadNode(ctx.nodeId))));
  return h;
}

/**
 * Runs `run` on `items` with their large bodies pulled first, and holds the reply's bodies that
 * would not fit in one message. An item whose body cannot be pulled gets its own error result;
 * the others run.
 */
export async function withLargePayloads(ctx: Ctx, items: JsonItem[], run: (items: JsonItem[]) => Promise<InferJsonReply>): Promise<InferJsonReply> {
  if (!items.some((i) => i.ref !== undefined)) return holdLarge(ctx, await run(items));
  const pulled = await Promise.all(
    items.map(async (item): Promise<JsonItem | ItemError> => {
      if (!item.ref) return item;
      try {
        const body = await fetchPayload(ctx.nc, item.ref, { timeoutMs: PULL_TIMEOUT_MS });
        // Everything else the item carries (its request id and tenant for the prediction log) stays.
        const { ref: _ref, ...rest } = item;
        return { ...rest, body };
      } catch (err) {
        return { error: toWireError(err) };
      }
    }),
  );
  const ok = pulled.filter((p): p is JsonItem => !('error' in p));
  const reply = await run(ok);
  if (ok.length < items.length) {
    let j = 0;
    reply.results = pulled.map((p): JsonResult => ('error' in p ? p : reply.results[j++]!));
  }
  return holdLarge(ctx, reply);
}

/** Moves the largest response bodies to the host until what is left fits in the reply. */
function holdLarge(ctx: Ctx, reply: InferJsonReply): InferJsonReply {
  const limit = inlineLimitOf(ctx.nc);
  let total = 0;
  for (const r of reply.results) if (!('error' in r)) total += r.body.length;
  if (total <= limit) return reply;
  const bySize = reply.results.map((_, i) => i).sort((a, b) => sizeOf(reply.results[b]!) - sizeOf(reply.results[a]!));
  for (const i of bySize) {
    if (total <= limit) break;
    const r = reply.results[i]!;
    if ('error' in r) break;
    const { ref } = hostOf(ctx).hold(r.body, { ttlMs: REPLY_HOLD_MS, once: true });
    total -= r.body.length;
    reply.results[i] = { ...r, body: EMPTY, ref };
  }
  return reply;
}

const sizeOf = (r: JsonResult): number => ('error' in r ? 0 : r.body.length);
