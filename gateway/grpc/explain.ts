/**
 * `shoal.v1.ExplainService/ModelExplain` (shoal_explain.proto): the gRPC twin of the HTTP explain
 * route (gateway/routes/explain.ts). The request is a ModelInferRequest plus the route's query
 * options; its tensors become the body a replica reads as they do for ModelInfer (tensors.ts), the
 * replica computes the explanation (ml/serving/explain.ts) and its JSON answer is turned into the
 * response message. Admission (API key, rate limit), tenant isolation and error statuses are
 * ModelInfer's: the same `unary` wrapper and `checkAccess`.
 */
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { GatewayErrors } from '../errors.ts';
import type { GatewayParts } from '../app.ts';
import { OwnedKind, type ExplainOptions } from '../../ml/index.ts';
import { RANGES } from '../routes/explain.ts';
import { requestIdOf } from '../routes/request-id.ts';
import type { ModelInferRequest } from './proto.ts';
import { checkName, first, unary } from './server.ts';
import { toForwardedBody } from './tensors.ts';

/** ModelExplainRequest as the loader hands it over: ModelInferRequest's fields and the options. */
export interface ModelExplainRequest extends ModelInferRequest {
  method: string;
  samples: number;
  steps: number;
  background: number;
  link: string;
  output: string;
  /** Present only when set (proto3 `optional`). */
  column?: number;
}

interface RowExplanation {
  prediction: number;
  output: number;
  base_value: number;
  attributions: Record<string, number>;
  efficiency_gap: number;
  column_attributions?: Record<string, number>;
}

export interface ModelExplainResponse {
  model_name: string;
  model_version: string;
  id: string;
  method: string;
  link: string;
  output: string;
  features: string[];
  background_rows: number;
  samples: number;
  steps: number;
  run_rows: number;
  explanations: RowExplanation[];
}

const METHODS = ['auto', 'exact', 'kernel', 'ig'] as const;
const LINKS = ['auto', 'identity', 'logit'] as const;

/** The request's option fields as {@link ExplainOptions}; a bad one is a BAD_REQUEST naming the field (INVALID_ARGUMENT). */
export function explainOptionsOf(req: ModelExplainRequest): ExplainOptions {
  const o: ExplainOptions = {};
  if (req.method !== '') {
    if (!(METHODS as readonly string[]).includes(req.method)) throw GatewayErrors.BAD_REQUEST(`method must be one of ${METHODS.join(', ')}, got ${JSON.stringify(req.method)}`);
    o.method = req.method as ExplainOptions['method'];
  }
  if (req.link !== '') {
    if (!(LINKS as readonly string[]).includes(req.link)) throw GatewayErrors.BAD_REQUEST(`link must be one of ${LINKS.join(', ')}, got ${JSON.stringify(req.link)}`);
    o.link = req.link as ExplainOptions['link'];
  }
  if (req.output !== '') {
    if (req.output.length > 256) throw GatewayErrors.BAD_REQUEST('output must be at most 256 characters');
    o.output = req.output;
  }
  // 0 is proto3's unset for these three (none of them takes 0); column is `optional` (0 is a column).
  const nums: [keyof typeof RANGES, number | undefined][] = [
    ['samples', req.samples || undefined],
    ['steps', req.steps || undefined],
    ['background', req.background || undefined],
    ['column', req.column ?? undefined],
  ];
  for (const [k, v] of nums) {
    if (v === undefined) continue;
    const [lo, hi] = RANGES[k];
    if (v < lo || v > hi) throw GatewayErrors.BAD_REQUEST(`${k} must be ${lo}..${hi}, got ${v}`);
    o[k] = v;
  }
  return o;
}

/** The replica's JSON explanation → the response message (unset fields: proto3 defaults). */
export function toExplainResponse(body: Buffer): ModelExplainResponse {
  const b = JSON.parse(body.toString('utf8')) as Partial<ModelExplainResponse> & { explanations: RowExplanation[] };
  return {
    model_name: b.model_name ?? '',
    model_version: b.model_version ?? '',
    id: b.id ?? '',
    method: b.method ?? '',
    link: b.link ?? '',
    output: b.output ?? '',
    features: b.features ?? [],
    background_rows: b.background_rows ?? 0,
    samples: b.samples ?? 0,
    steps: b.steps ?? 0,
    run_rows: b.run_rows ?? 0,
    explanations: b.explanations.map((e) => ({
      prediction: e.prediction,
      output: e.output,
      base_value: e.base_value,
      attributions: e.attributions,
      efficiency_gap: e.efficiency_gap,
      column_attributions: e.column_attributions ?? {},
    })),
  };
}

/** The service's handler over the gateway's parts. */
export function explainHandlers(parts: GatewayParts): UntypedServiceImplementation {
  return {
    ModelExplain: unary(parts, 'ModelExplain', false, async (req: ModelExplainRequest, c): Promise<ModelExplainResponse> => {
      if (!parts.inference) throw GatewayErrors.NOT_FOUND('inference on this gateway (started with inference off)');
      checkName('model_name', req.model_name);
      parts.tenants.checkAccess(c, OwnedKind.MODEL, req.model_name);
      let version: string | undefined;
      if (req.model_version !== '') {
        checkName('the version', req.model_version);
        version = req.model_version;
      }
      const options = explainOptionsOf(req);
      const fwd = toForwardedBody(req);
      if (fwd.body.length > parts.bodyLimit) throw GatewayErrors.PAYLOAD_TOO_LARGE(parts.bodyLimit);
      const r = await parts.inference.explain(req.model_name, version, 'oip', fwd.body, options, fwd.headerLength, {
        requestId: requestIdOf(first(c.call.metadata, 'x-request-id')),
        tenant: c.tenant,
      });
      return toExplainResponse(r.body);
    }),
  };
}
