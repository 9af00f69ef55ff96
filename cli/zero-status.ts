/**
 * Scale-to-zero in `shoal models`: the deploy flags (`--min-replicas 0 --idle-timeout-ms N
 * --hold-timeout-ms N --max-held N`) and the lines `shoal models status` prints for a track that
 * scales to zero (scaled to zero since when, and the last cold start).
 */
import { Errors } from '../cluster/index.ts';
import type { Deployment, TrackOptions } from '../ml/index.ts';

export const ZERO_FLAGS = ['min-replicas', 'idle-timeout-ms', 'hold-timeout-ms', 'max-held'] as const;

function int(flags: Map<string, string>, name: string): number | undefined {
  const v = flags.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw Errors.USAGE(`--${name} takes a non-negative integer, got "${v}"`);
  return n;
}

/** The scale-to-zero deploy options the flags give (the registry service checks them). */
export function zeroTrackOptions(flags: Map<string, string>): Pick<TrackOptions, 'minReplicas' | 'scaleToZero'> {
  const minReplicas = int(flags, 'min-replicas');
  const idleTimeoutMs = int(flags, 'idle-timeout-ms');
  const holdTimeoutMs = int(flags, 'hold-timeout-ms');
  const maxHeld = int(flags, 'max-held');
  const z = { ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}), ...(holdTimeoutMs !== undefined ? { holdTimeoutMs } : {}), ...(maxHeld !== undefined ? { maxHeld } : {}) };
  return { ...(minReplicas !== undefined ? { minReplicas } : {}), ...(Object.keys(z).length ? { scaleToZero: z } : {}) };
}

const secs = (ms: number) => `${+(ms / 1000).toFixed(1)} s`;

/** Status lines of the stable track's scale-to-zero, or none when it does not scale to zero. */
export function zeroLines(d: Deployment, now = Date.now()): string[] {
  const t = d.stable;
  if (!t.scaleToZero) return [];
  const z = t.scaleToZero;
  const lines = [
    t.zero
      ? `  scaled to zero since ${new Date(t.zero.since).toISOString()} (${secs(now - t.zero.since)} ago): the next request starts a replica (held up to ${secs(z.holdTimeoutMs)}, ${z.maxHeld} at most per gateway)`
      : `  scales to zero after ${secs(z.idleTimeoutMs)} without requests`,
  ];
  lines.push(t.coldStart ? `  last cold start ${t.coldStart.seconds.toFixed(3)} s at ${new Date(t.coldStart.at).toISOString()}` : '  no cold start yet');
  return lines;
}
