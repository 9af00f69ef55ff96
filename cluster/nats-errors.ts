/**
 * NATS and JetStream failures classified by their type and API error code — never by matching
 * words in a message, which change between client versions.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';

/** A compare-and-swap lost: the key is not at the expected revision (or exists on create). */
export function isCasConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown);
}

/** The stream (or bucket) does not exist (yet). */
export function isStreamNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound;
}
