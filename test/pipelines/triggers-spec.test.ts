/**
 * Pipeline triggers at apply (issue #16 item 1): a cron expression is parsed when the spec is
 * applied and a malformed one refused naming `triggers.cron` with croner's reason; a time zone is
 * checked and needs a cron; `newLabels` is accepted. The next scheduled time (a scheduled run's
 * job deadline) is the earlier of the cron and the interval.
 */
import { describe, expect, it } from 'vitest';
import { nextCron, nextScheduled, validatePipelineSpec, type SpecLookups } from '../../ml/pipelines/index.ts';

const lookups: SpecLookups = { modelMetrics: async () => ['auc'], datasetExists: async () => true, viewExists: async () => false };
const base = { name: 'fraud-nightly', model: 'fraud', data: { dataset: 'fraud' } };
const refusal = async (spec: unknown) => {
  try {
    await validatePipelineSpec(spec, lookups);
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('accepted');
};
const at = (iso: string) => Date.parse(iso);

describe('pipeline triggers at apply', () => {
  it('accepts a cron (with or without a time zone), newLabels, and both schedules at once', async () => {
    const s = await validatePipelineSpec({ ...base, triggers: { cron: '0 3 * * *', timezone: 'Europe/Stockholm', interval: '6h', newLabels: 500 } }, lookups);
    expect(s.triggers).toEqual({ cron: '0 3 * * *', timezone: 'Europe/Stockholm', interval: '6h', newLabels: 500 });
    await expect(validatePipelineSpec({ ...base, triggers: { cron: '*/10 * * * * *' } }, lookups)).resolves.toBeTruthy();
    await expect(validatePipelineSpec({ ...base, triggers: { newLabels: 1 } }, lookups)).resolves.toBeTruthy();
  });

  it('refuses a malformed cron naming triggers.cron with the parser\'s reason', async () => {
    const e = await refusal({ ...base, triggers: { cron: '0 3 * *' } });
    expect(e.code).toBe('SHOAL_ERR_BAD_INPUT');
    expect(e.message).toMatch(/^pipeline triggers\.cron: "0 3 \* \*": CronPattern: .*five, six, or seven/);
    expect((await refusal({ ...base, triggers: { cron: '61 3 * * *' } })).message).toMatch(/^pipeline triggers\.cron: .*Invalid value for minute: 61/);
    expect((await refusal({ ...base, triggers: { cron: 'nightly' } })).message).toMatch(/^pipeline triggers\.cron: /);
    // Seven fields (a year) are not a schedule that repeats: refused.
    expect((await refusal({ ...base, triggers: { cron: '0 0 3 * * * 2027' } })).message).toMatch(/^pipeline triggers\.cron: .*5 or 6 parts/);
    // 30 February never comes.
    expect((await refusal({ ...base, triggers: { cron: '0 3 30 2 *' } })).message).toMatch(/^pipeline triggers\.cron: "0 3 30 2 \*" never fires/);
    expect((await refusal({ ...base, triggers: { cron: '' } })).message).toMatch(/^pipeline triggers\.cron: /);
  });

  it('refuses an unknown time zone, or one without a cron, naming triggers.timezone', async () => {
    expect((await refusal({ ...base, triggers: { cron: '0 3 * * *', timezone: 'Mars/Olympus' } })).message).toMatch(/^pipeline triggers\.timezone: "Mars\/Olympus" is not an IANA time zone/);
    expect((await refusal({ ...base, triggers: { interval: '1h', timezone: 'UTC' } })).message).toMatch(/^pipeline triggers\.timezone: .*triggers\.cron/);
  });

  it('data.labeled is a boolean, beside a dataset', async () => {
    expect((await validatePipelineSpec({ ...base, data: { dataset: 'fraud', labeled: true } }, lookups)).data).toEqual({ dataset: 'fraud', labeled: true });
    expect((await refusal({ ...base, data: { dataset: 'fraud', labeled: 'yes' } })).message).toMatch(/^pipeline data\.labeled: /);
  });

  it('refuses a bad newLabels count naming it', async () => {
    expect((await refusal({ ...base, triggers: { newLabels: 0 } })).message).toMatch(/^pipeline triggers\.newLabels: /);
    expect((await refusal({ ...base, triggers: { newLabels: 2.5 } })).message).toMatch(/^pipeline triggers\.newLabels: /);
  });

  it('the next cron time is strictly after the given one, in the time zone', () => {
    expect(nextCron({ cron: '0 3 * * *' }, at('2026-01-01T02:59:59Z'))).toBe(at('2026-01-01T03:00:00Z'));
    expect(nextCron({ cron: '0 3 * * *' }, at('2026-01-01T03:00:00Z'))).toBe(at('2026-01-02T03:00:00Z'));
    // 03:00 in Stockholm is 02:00 UTC in winter, 01:00 UTC in summer.
    expect(nextCron({ cron: '0 3 * * *', timezone: 'Europe/Stockholm' }, at('2026-01-01T00:00:00Z'))).toBe(at('2026-01-01T02:00:00Z'));
    expect(nextCron({ cron: '0 3 * * *', timezone: 'Europe/Stockholm' }, at('2026-07-01T00:00:00Z'))).toBe(at('2026-07-01T01:00:00Z'));
    expect(nextCron({}, at('2026-01-01T00:00:00Z'))).toBeUndefined();
  });

  it('the deadline of a scheduled run is the next fire: the earlier of cron and interval', async () => {
    const spec = (triggers: object) => validatePipelineSpec({ ...base, triggers }, lookups);
    const t = at('2026-01-01T02:00:00Z');
    expect(nextScheduled(await spec({ cron: '0 3 * * *' }), t)).toBe(at('2026-01-01T03:00:00Z'));
    expect(nextScheduled(await spec({ interval: '30m' }), t)).toBe(at('2026-01-01T02:30:00Z'));
    expect(nextScheduled(await spec({ cron: '0 3 * * *', interval: '30m' }), t)).toBe(at('2026-01-01T02:30:00Z'));
    expect(nextScheduled(await spec({ cron: '0 3 * * *', interval: '2h' }), t)).toBe(at('2026-01-01T03:00:00Z'));
    expect(nextScheduled(await spec({ newLabels: 10 }), t)).toBeUndefined();
  });
});
