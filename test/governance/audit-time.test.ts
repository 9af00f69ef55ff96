/** The `since` parameters of `shoal audit` and GET /v1/audit: ISO 8601, epoch ms, durations back from an injected now. */
import { describe, expect, it } from 'vitest';
import { formatAudit, sinceOf } from '../../cli/audit.ts';
import { parseSince } from '../../gateway/routes/governance.ts';

const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

describe('audit since', () => {
  it('CLI: durations back from now, ISO 8601, epoch ms; anything else is a usage error naming the flag', () => {
    expect(sinceOf('30m', NOW)).toBe(NOW - 30 * 60_000);
    expect(sinceOf('2h', NOW)).toBe(NOW - 2 * 3_600_000);
    expect(sinceOf('7d', NOW)).toBe(NOW - 7 * 86_400_000);
    expect(sinceOf('2026-12-01T10:00:00Z', NOW)).toBe(Date.UTC(2026, 11, 1, 10));
    expect(sinceOf('1764583200000', NOW)).toBe(1764583200000);
    expect(() => sinceOf('soon', NOW)).toThrow(/--since: "soon" is not a time/);
  });

  it('gateway: ISO 8601 or epoch ms; absent is undefined; else a 400 naming since', () => {
    expect(parseSince(undefined)).toBeUndefined();
    expect(parseSince('2026-12-01T10:00:00Z')).toBe(Date.UTC(2026, 11, 1, 10));
    expect(parseSince('5')).toBe(5);
    expect(() => parseSince('yesterday')).toThrow(expect.objectContaining({ code: 'SHOAL_ERR_BAD_REQUEST', message: expect.stringMatching(/^since: "yesterday"/) }));
  });

  it('formats entries one per line, with who and why', () => {
    const text = formatAudit([{ at: NOW, who: 'cli:alice', action: 'override', target: 'fraud', version: 2, why: 'RISK-42' }]);
    expect(text).toBe('2026-12-01T12:00:00.000Z  override         fraud v2                 by cli:alice — RISK-42');
    expect(formatAudit([])).toBe('no audit entries');
  });
});
