/**
 * Tenants' inference over NATS (README "Tenants over NATS"): `<prefix>.t.<tenant>.infer.<model>`
 * with an OIP v2 JSON body (what `POST /v2/models/{model}/infer` takes), served by every gateway
 * with inference on, in one queue group. The tenant is the subject's (only its own NATS user may
 * publish there); the request goes the HTTP route's way with that tenant: another tenant's model
 * is the `SHOAL_ERR_MODEL_NOT_FOUND` of an unknown one, the tenant's cluster-wide rate limit
 * counts it, and the inference service routes it (stable/canary split, coalescing, hedging). The
 * reply is the OIP JSON response body as the replica wrote it (`content-type: application/json`,
 * header `Shoal-Model-Version`); a refusal is a typed error reply (`Shoal-Error-Code` /
 * `Shoal-Error-Message`).
 */
import { headers as natsHeaders, type Msg, type Subscription } from '@nats-io/transport-node';
import { ContentType, Errors, ShoalError, errorCode, errorHeaders, parseContentType, type Logger, type NatsConnection, type Subjects } from '../cluster/index.ts';
import { OwnedKind } from '../ml/index.ts';
import { GatewayErrors } from './errors.ts';
import type { InferenceService } from './inference.ts';
import { TENANT_QUEUE, admitTenant } from './tenant-nats.ts';
import type { TenantGuard } from './tenants.ts';

export interface TenantInferOptions {
  nc: NatsConnection;
  subjects: Subjects;
  guard: TenantGuard;
  inference: InferenceService;
  /** The gateway's body limit (bytes), as for HTTP. */
  bodyLimit: number;
  log?: Logger;
}

/** Starts serving tenants' inference requests on this gateway's connection. */
export function startTenantInfer(o: TenantInferOptions): { stop(): void } {
  const sub: Subscription = o.nc.subscribe(o.subjects.tenantInferAny, { queue: TENANT_QUEUE });
  const one = async (m: Msg): Promise<void> => {
    try {
      const [, , tenant, , model] = m.subject.split('.');
      const { caller } = await admitTenant(o.guard, tenant!);
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(model!)) throw GatewayErrors.BAD_REQUEST(`the model in the subject must match ^[A-Za-z0-9_-]{1,64}$, got ${JSON.stringify(model)}`);
      // An OIP JSON body only (no header: JSON too; MessagePack is not an inference body).
      if (parseContentType(m.headers?.get('content-type') ?? ContentType.JSON) !== ContentType.JSON) throw Errors.BAD_CONTENT_TYPE(m.headers!.get('content-type'));
      o.guard.checkAccess(caller, OwnedKind.MODEL, model!);
      if (m.data.length > o.bodyLimit) throw GatewayErrors.PAYLOAD_TOO_LARGE(o.bodyLimit);
      const r = await o.inference.infer(model!, undefined, m.headers?.get('Shoal-Route-Key') || undefined, 'oip', Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), undefined, { tenant });
      const h = natsHeaders();
      h.set('content-type', ContentType.JSON);
      h.set('Shoal-Model-Version', r.version);
      if (r.requestId !== undefined) h.set('Shoal-Request-Id', r.requestId);
      if (m.reply) m.respond(r.body, { headers: h });
    } catch (err) {
      const code = errorCode(err);
      const expected = err instanceof ShoalError && code !== Errors.INTERNAL.code;
      if (!expected) o.log?.error({ subject: m.subject, err }, 'tenant inference failed');
      if (m.reply) m.respond(new Uint8Array(0), { headers: errorHeaders(expected ? err : Errors.INTERNAL(err instanceof Error ? err.message : String(err)), ContentType.JSON) });
    }
  };
  void (async () => {
    for await (const m of sub) void one(m);
  })().catch((err: unknown) => o.log?.error({ subject: o.subjects.tenantInferAny, err: err instanceof Error ? err.message : String(err) }, 'subscription ended: this gateway no longer serves tenants\' inference over NATS'));
  return { stop: () => sub.unsubscribe() };
}
