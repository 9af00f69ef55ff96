/**
 * NATS and JetStream failures classified by their type and API error code — never by matching
 * words in a message, which change between client versions.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { RequestError, errors } from '@nats-io/transport-node';

/** A compare-and-swap lost: the key is not at the expected revision (or exists on create). */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/** The stream (or bucket) does not exist (yet). */
export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}

/**
 * JetStream cannot answer yet, but will: no meta leader (a cluster starting, or electing after a
 * server died), too few peers up to place a replicated stream, or no reply in time. Worth a
 * bounded retry; anything else is a real refusal.
 */
export function isJetStreamUnavailable(err: unknown): boolean {
  // A service's typed reply saying the same (its own bounded retry ran out): by its stable code.
  if (err && typeof err === 'object' && (err as { code?: unknown }).code === 'SHOAL_ERR_JETSTREAM_UNAVAILABLE') return true;
  // The client's own class (not exported by name): no responders on $JS.API while no server answers for it.
  if (err instanceof Error && err.name === 'JetStreamNotEnabled') return true;
  if (err instanceof errors.TimeoutError) return true;
  if (err instanceof RequestError && err.isNoResponders()) return true;
  return err instanceof JetStreamApiError && TRANSIENT_JS_CODES.has(err.code);
}

/** JetStream API codes a settling cluster answers with (nats-server's own table). */
const TRANSIENT_JS_CODES = new Set<number>([
  10008, // JSClusterNotAvailErr: JetStream system temporarily unavailable
  10005, // JSClusterNoPeersErr: no suitable peers for placement
  10023, // JSInsufficientResourcesErr
  10009, // JSClusterNotLeaderErr
  10076, // JSNotEnabledErr
]);
