/**
 * Serving load with a failure in the middle, for the failover suites: autocannon keeps
 * `connections` busy on one POST for `durationS`, counting every response per second since the
 * start, and calls `kill` a third of the way in. Meanwhile a writer submits a job and pushes a
 * feature event every 250 ms (the work that must not be lost). The figures are printed by the
 * caller; the tests assert on counts, never on the clock.
 */
import autocannon from 'autocannon';
import type { FeatureClient, JobClient } from '../../ml/index.ts';

export interface LoadKillOptions {
  url: string;
  body: string;
  kill: () => void;
  connections?: number;
  durationS?: number;
  jobs: JobClient;
  features: FeatureClient;
  /** The push view (entity `user_id`, numeric feature `n`). */
  view: string;
  /** Prefix of the job and event ids written. */
  idPrefix: string;
}

export interface PushedEvent {
  eventId: string;
  entity: Record<string, string>;
  values: Record<string, number>;
  eventTime: number;
}

export interface LoadKillResult {
  ok: number;
  failed: number;
  total: number;
  result: autocannon.Result;
  /** Seconds from the start. */
  killedAt: number;
  perSecond: { ok: number; failed: number }[];
  /** Mean 2xx per second before the kill (the first second, a warm-up, left out). */
  baseline: number;
  /** The first second after the kill that served ≥ 90 % of the baseline (-1: none). */
  back: number;
  accepted: { jobs: string[]; events: string[] };
  refused: { jobs: string[]; events: string[] };
  /** Pushes whose answer was lost (they may or may not be in the log): the caller sends them again. */
  unanswered: PushedEvent[];
}

export async function loadWithKill(o: LoadKillOptions): Promise<LoadKillResult> {
  const durationS = o.durationS ?? 15;
  const accepted = { jobs: [] as string[], events: [] as string[] };
  const refused = { jobs: [] as string[], events: [] as string[] };
  const unanswered: PushedEvent[] = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const id = `${o.idPrefix}-job-${i}`;
      // A spec the training-job actor refuses at once: the job ends FAILED quickly and costs no CPU under the load.
      await o.jobs.submit({}, { id, unchecked: true }).then(
        () => accepted.jobs.push(id),
        (err: Error) => refused.jobs.push(`${id}: ${err.message}`),
      );
      const event = { eventId: `${o.idPrefix}-ev-${i}`, entity: { user_id: `u${i % 7}` }, values: { n: i }, eventTime: Date.now() };
      await o.features.push(o.view, event).then(
        () => accepted.events.push(event.eventId),
        (err: Error) => {
          refused.events.push(`${event.eventId}: ${err.message}`);
          unanswered.push(event);
        },
      );
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const perSecond: { ok: number; failed: number }[] = [];
  const t0 = Date.now();
  let killedAt = -1;
  let done!: (r: autocannon.Result) => void;
  const finished = new Promise<autocannon.Result>((res) => (done = res));
  const inst = autocannon({ url: o.url, method: 'POST', headers: { 'content-type': 'application/json' }, body: o.body, connections: o.connections ?? 32, duration: durationS, pipelining: 1 }, (err, r) => {
    if (err) throw err;
    done(r);
  });
  inst.on('response', (_c: unknown, status: number) => {
    const sec = Math.floor((Date.now() - t0) / 1000);
    while (perSecond.length <= sec) perSecond.push({ ok: 0, failed: 0 });
    if (status >= 200 && status < 300) perSecond[sec]!.ok++;
    else perSecond[sec]!.failed++;
  });
  const kill = setTimeout(() => {
    killedAt = (Date.now() - t0) / 1000;
    o.kill();
  }, (durationS * 1000) / 3);
  const result = await finished;
  clearTimeout(kill);
  writing = false;
  await writer;

  const ok = result['2xx'];
  const failed = result.non2xx + result.errors + result.timeouts;
  const before = perSecond.slice(1, Math.max(2, Math.floor(killedAt)));
  const baseline = before.reduce((a, b) => a + b.ok, 0) / Math.max(1, before.length);
  const back = perSecond.findIndex((b, sec) => sec > killedAt && b.ok >= 0.9 * baseline);
  return { ok, failed, total: ok + failed, result, killedAt, perSecond, baseline, back, accepted, refused, unanswered };
}

/** The per-second line: `2xx(-failed)` for each second. */
export const bySecond = (r: LoadKillResult) => r.perSecond.map((b) => (b.failed ? `${b.ok}(-${b.failed})` : `${b.ok}`)).join(' ');
