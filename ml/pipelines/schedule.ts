/**
 * When a pipeline's cron schedule fires (issue #16 items 1 and 6): `triggers.cron` (5 fields, or 6
 * with seconds first, in `triggers.timezone`, UTC by default) parsed by croner. Kept apart from the
 * runner so the same arithmetic decides when the runner fires and which deadline a run's training
 * job gets (spec.ts `nextScheduled`: a scheduled retrain should be done before the next one is due).
 *
 * All times are epoch milliseconds (wall time): a cron expression names hours of a day, so the
 * runner computes it from its `now`, never from a monotonic clock.
 */
import { Cron } from 'croner';

interface CronTriggers {
  cron?: string;
  timezone?: string;
}

/** Parsed expressions, by `timezone|pattern` (a spec's cron is read on every tick). */
const parsed = new Map<string, Cron>();

function cronOf(pattern: string, timezone = 'UTC'): Cron {
  const key = `${timezone}|${pattern}`;
  let c = parsed.get(key);
  if (!c) {
    // paused and without a function: croner only computes times, it schedules nothing.
    c = new Cron(pattern, { timezone, paused: true, mode: '5-or-6-parts' });
    if (parsed.size > 1000) parsed.clear();
    parsed.set(key, c);
  }
  return c;
}

/** Why a cron expression or its timezone is malformed (`field` names which), or undefined when both are fine. */
export function cronProblem(pattern: string, timezone: string | undefined): { field: 'triggers.cron' | 'triggers.timezone'; message: string } | undefined {
  if (timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    } catch {
      return { field: 'triggers.timezone', message: `"${timezone}" is not an IANA time zone (like "UTC" or "Europe/Stockholm")` };
    }
  }
  try {
    const c = new Cron(pattern, { timezone: timezone ?? 'UTC', paused: true, mode: '5-or-6-parts' });
    if (c.nextRun(new Date(0)) === null) return { field: 'triggers.cron', message: `"${pattern}" never fires` };
  } catch (err) {
    return { field: 'triggers.cron', message: `"${pattern}": ${err instanceof Error ? err.message : String(err)}` };
  }
  return undefined;
}

/** The first cron time strictly after `afterMs`; undefined without a cron (or when it never fires again). */
export function nextCron(t: CronTriggers, afterMs: number): number | undefined {
  if (t.cron === undefined) return undefined;
  return cronOf(t.cron, t.timezone).nextRun(new Date(afterMs))?.getTime();
}
