/**
 * The gateway's refusals over gRPC: the status code that means what the error's HTTP status
 * means, and the error's stable code carried twice — at the head of the status message
 * (`SHOAL_ERR_BAD_INPUT: input "X": …`, what a client library prints) and in the trailing
 * metadata `shoal-error-code` (what a program reads).
 */
import { Metadata, status as Status } from '@grpc/grpc-js';
import { Errors, ShoalError, errorCode, registeredErrorCodes } from '../../cluster/index.ts';

/**
 * HTTP status → gRPC status: the pairs of Google's API design guide (and of grpc-gateway's
 * mapping), read backwards. 429 is RESOURCE_EXHAUSTED — a tenant over its rate limit and a full
 * replica queue are both "retry later" — and 503 is UNAVAILABLE, which clients retry on their own.
 */
const BY_HTTP: Readonly<Record<number, Status>> = {
  400: Status.INVALID_ARGUMENT,
  401: Status.UNAUTHENTICATED,
  403: Status.PERMISSION_DENIED,
  404: Status.NOT_FOUND,
  408: Status.DEADLINE_EXCEEDED,
  409: Status.ABORTED,
  413: Status.RESOURCE_EXHAUSTED,
  414: Status.INVALID_ARGUMENT,
  415: Status.INVALID_ARGUMENT,
  429: Status.RESOURCE_EXHAUSTED,
  431: Status.RESOURCE_EXHAUSTED,
  500: Status.INTERNAL,
  501: Status.UNIMPLEMENTED,
  503: Status.UNAVAILABLE,
  504: Status.DEADLINE_EXCEEDED,
};

/** The gRPC status of an HTTP status (an unlisted 4xx is the caller's: INVALID_ARGUMENT; an unlisted 5xx: INTERNAL). */
export function grpcStatusOf(httpStatus: number): Status {
  return BY_HTTP[httpStatus] ?? (httpStatus >= 400 && httpStatus < 500 ? Status.INVALID_ARGUMENT : Status.INTERNAL);
}

export interface GrpcError {
  code: Status;
  details: string;
  metadata: Metadata;
  /** The Shoal code and its HTTP status (metrics, request log). */
  shoalCode: string;
  httpStatus: number;
}

/** Any error → what the call is answered with. Not a Shoal error: INTERNAL (a bug, logged by the caller). */
export function toGrpcError(err: unknown, retryAfterSeconds?: number): GrpcError {
  const given = errorCode(err);
  const shoalCode = given?.startsWith('SHOAL_ERR_') ? given : Errors.INTERNAL.code;
  const httpStatus = err instanceof ShoalError ? err.status : (registeredErrorCodes().get(shoalCode)?.status ?? 500);
  const message = err instanceof Error ? err.message : String(err);
  const metadata = new Metadata();
  metadata.set('shoal-error-code', shoalCode);
  if (retryAfterSeconds !== undefined) metadata.set('retry-after', String(retryAfterSeconds));
  return { code: grpcStatusOf(httpStatus), details: `${shoalCode}: ${message}`, metadata, shoalCode, httpStatus };
}
