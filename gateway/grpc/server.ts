/**
 * The Open Inference Protocol over gRPC (KServe v2 `inference.GRPCInferenceService`), on its own
 * port in the gateway process. It is a second front door on the same gateway, not a second
 * gateway: the same inference service (routing table, stable/canary split, version pinning,
 * sticky key, coalescing and hedging toward replicas, outcome reports for the rollout
 * controller), the same tenants' keys and rate-limit windows (a tenant's limit counts its HTTP
 * and gRPC requests together), the same metrics and request log, and the same error codes —
 * mapped to gRPC status codes (status.ts).
 *
 * Open, as their REST twins are: ServerLive, ServerReady, ServerMetadata. Everything else needs
 * an API key when keys are on: metadata `x-api-key: <key>` or `authorization: Bearer <key>`.
 * No TLS here (as the HTTP port): terminate it in front, as for HTTP.
 *
 * Beside it, on the same server: Shoal's `shoal.v1.ExplainService` (explain.ts, shoal_explain.proto).
 */
import { Metadata, Server, ServerCredentials, status as Status, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { Errors, SHOAL_VERSION, SpanKind, activeTrace, extractHttpTrace, inSpan, tracing } from '../../cluster/index.ts';
import type { GatewayParts } from '../app.ts';
import { GatewayErrors } from '../errors.ts';
import type { InferenceService } from '../inference.ts';
import { TenantGuard } from '../tenants.ts';
import { OwnedKind } from '../../ml/index.ts';
import { requestIdOf } from '../routes/request-id.ts';
import { explainHandlers } from './explain.ts';
import { loadExplainPackage, loadInferencePackage, type ModelInferRequest, type ModelInferResponse, type ModelMetadataResponse } from './proto.ts';
import { toGrpcError } from './status.ts';
import { toForwardedBody, toInferResponse } from './tensors.ts';

export interface GrpcGatewayOptions {
  host: string;
  /** 0 picks a free one. */
  port: number;
}

export interface GrpcGateway {
  /** The port it listens on (the one picked, with port 0). */
  readonly port: number;
  /** `host:port`, for clients. */
  readonly address: string;
  /** Stops taking calls; calls in flight get up to `graceMs` to finish, then are cut. */
  stop(graceMs?: number): Promise<void>;
}

/** Model names and version references as the REST routes take them in the path. */
export const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** Largest header and framing a request adds to its tensors' bytes, beyond the body limit. */
const FRAMING_SLACK = 64 * 1024;

export const first = (md: Metadata, key: string): string | undefined => {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
};
/** The client's address from grpc-js's peer string (`127.0.0.1:5000`, `[::1]:5000`, `ipv4:…`). */
const clientAddress = (peer: string): string => peer.replace(/^ipv[46]:/, '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');

export function checkName(what: string, v: string): void {
  if (!NAME.test(v)) throw GatewayErrors.BAD_REQUEST(`${what} must match ${NAME.source}, got ${JSON.stringify(v)}`);
}

export interface Call {
  tenant: string;
  /** An admin key (or an open gateway): sees every tenant's models. */
  admin: boolean;
  call: ServerUnaryCall<unknown, unknown>;
}

/**
 * One RPC: admission (key, rate limit) unless `open`, the handler, then the answer, a metrics
 * observation and — per `gateway.requestLog` — one log line.
 */
export function unary<Req, Res>(parts: GatewayParts, method: string, open: boolean, fn: (req: Req, c: Call) => Promise<Res> | Res) {
  const { metrics, tenants, logger, requestLog } = parts;
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const t0 = performance.now();
    const c: Call = { tenant: 'anonymous', admin: false, call: call as ServerUnaryCall<unknown, unknown> };
    let retryAfter: number | undefined;
    const run = async (): Promise<Res> => {
      if (!open) {
        const md = call.metadata;
        const a = await tenants.admit(first(md, 'x-api-key'), first(md, 'authorization'), clientAddress(call.getPeer()));
        c.tenant = a.tenant;
        c.admin = a.admin;
        if (!a.decision.allowed) {
          retryAfter = a.decision.resetSeconds;
          throw TenantGuard.refusal(a);
        }
      }
      return fn(call.request, c);
    };
    run().then(
      (res) => {
        callback(null, res);
        const ms = performance.now() - t0;
        metrics.grpcDuration.labels(method, 'OK').observe(ms / 1000);
        if (requestLog === 'all') logger.info({ rpc: method, status: 'OK', ms: Math.round(ms * 100) / 100, tenant: c.tenant }, 'grpc call');
      },
      (err: unknown) => {
        const e = toGrpcError(err, retryAfter);
        callback({ code: e.code, details: e.details, metadata: e.metadata });
        const ms = performance.now() - t0;
        const name = Status[e.code];
        metrics.grpcDuration.labels(method, name).observe(ms / 1000);
        metrics.errors.labels(e.shoalCode, String(e.httpStatus)).inc();
        if (requestLog === 'off') return;
        const line = { rpc: method, status: name, ms: Math.round(ms * 100) / 100, tenant: c.tenant, code: e.shoalCode };
        // As the HTTP error handler: the stack only of what no code explains (a bug).
        if (e.httpStatus >= 500) logger.error(e.shoalCode === Errors.INTERNAL.code ? { ...line, err } : line, 'grpc call failed');
        else logger.info(line, 'grpc call refused');
      },
    );
  };
}

/** The service's handlers over the gateway's parts. */
function handlers(parts: GatewayParts): UntypedServiceImplementation {
  const inference = (): InferenceService => {
    if (!parts.inference) throw GatewayErrors.NOT_FOUND('inference on this gateway (started with inference off)');
    return parts.inference;
  };
  const version = (v: string): string | undefined => {
    if (v === '') return undefined;
    checkName('the version', v);
    return v;
  };
  return {
    ServerLive: unary(parts, 'ServerLive', true, () => ({ live: true })),
    ServerReady: unary(parts, 'ServerReady', true, () => ({ ready: parts.ready() })),
    ServerMetadata: unary(parts, 'ServerMetadata', true, () => ({ name: 'shoal', version: SHOAL_VERSION, extensions: ['binary_tensor_data'] })),
    ModelReady: unary(parts, 'ModelReady', false, async (req: { name: string; version: string }, c) => {
      checkName('name', req.name);
      parts.tenants.checkAccess(c, OwnedKind.MODEL, req.name);
      return { ready: (await inference().ready(req.name, version(req.version))).ready };
    }),
    ModelMetadata: unary(parts, 'ModelMetadata', false, (req: { name: string; version: string }, c): ModelMetadataResponse => {
      checkName('name', req.name);
      parts.tenants.checkAccess(c, OwnedKind.MODEL, req.name);
      return inference().metadata(req.name, version(req.version));
    }),
    ModelInfer: unary(parts, 'ModelInfer', false, async (req: ModelInferRequest, c): Promise<ModelInferResponse> => {
      // A server span when tracing (the child of the caller's `traceparent` metadata), as for HTTP.
      const parent = tracing.on ? extractHttpTrace(Object.fromEntries(Object.entries(c.call.metadata.getMap()).map(([k, v]) => [k, String(v)]))) : undefined;
      const attributes = { 'rpc.system': 'grpc', 'rpc.service': 'inference.GRPCInferenceService', 'rpc.method': 'ModelInfer' };
      return inSpan('inference.GRPCInferenceService/ModelInfer', { kind: SpanKind.SERVER, ...(parent ? { parent } : {}), attributes }, async () => {
        checkName('model_name', req.model_name);
        parts.tenants.checkAccess(c, OwnedKind.MODEL, req.model_name);
        const pinned = version(req.model_version);
        const fwd = toForwardedBody(req);
        if (fwd.body.length > parts.bodyLimit) throw GatewayErrors.PAYLOAD_TOO_LARGE(parts.bodyLimit);
        const trace = activeTrace();
        const r = await inference().infer(req.model_name, pinned, first(c.call.metadata, 'x-shoal-route-key'), 'oip', fwd.body, fwd.headerLength, {
          requestId: requestIdOf(first(c.call.metadata, 'x-request-id')),
          tenant: c.tenant,
          ...(trace ? { trace } : {}),
        });
        const md = new Metadata();
        md.set('x-shoal-model-version', r.version);
        md.set('x-shoal-route', r.route);
        // The id feedback names (the request's own `id` wins, as over HTTP).
        if (r.requestId !== undefined) md.set('x-request-id', r.requestId);
        c.call.sendMetadata(md);
        return toInferResponse(r.body, r.headerLength);
      });
    }),
  };
}

/** Starts the gRPC service on `host:port` over a built gateway's parts (`app.shoal`). */
export async function startGrpcGateway(parts: GatewayParts, o: GrpcGatewayOptions): Promise<GrpcGateway> {
  const server = new Server({
    // Past this grpc-js refuses the message itself (RESOURCE_EXHAUSTED); under it, the forwarded
    // body is checked against the body limit with the gateway's own code.
    'grpc.max_receive_message_length': parts.bodyLimit + FRAMING_SLACK,
  });
  server.addService(loadInferencePackage().inference.GRPCInferenceService.service, handlers(parts));
  server.addService(loadExplainPackage().shoal.v1.ExplainService.service, explainHandlers(parts));
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${o.port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port,
    address: `${host}:${port}`,
    stop: (graceMs = 5000) =>
      new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(cut);
          resolve();
        });
      }),
  };
}
