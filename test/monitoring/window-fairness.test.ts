/**
 * Live fairness per monitor window (ml/monitoring/window-fairness.ts) through the monitor core:
 * the window's block equals `fairnessAudit` on the same labeled rows; a biased model raises a
 * `fairness` alert naming metric, attribute, groups and interval; two groups that behave alike
 * raise none over 24 windows; a window with too few labeled rows per group is "too small to
 * judge"; feedback `groups` are checked against the model's declared attributes.
 */
import { describe, expect, it } from 'vitest';
import { ContentType, decode, encode, seededRandom } from '../../cluster/index.ts';
import { AlertRule, MonitorCore, checkFeedback, fairnessAudit, judge, type FairnessPolicy, type LabeledRecord, type PredictionRecord } from '../../ml/index.ts';
import { fraudReference, fraudTraffic, records } from '../fixtures/monitoring-monitor.ts';

const MIN = 60_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % (60 * MIN));

/** Labeled rows of one window: `group(i)` names each row's group; `bias` lowers group B's scores. */
function labeledWindow(o: { rows: number; seed: number; start: number; group: (i: number) => string; biasB?: number }): LabeledRecord[] {
  const { rows, labels } = fraudTraffic({ rows: o.rows, seed: o.seed });
  return records('fraud', 1, rows, (i) => o.start + i * 10, `w${o.seed}-`).map((r: PredictionRecord, i) => {
    const g = o.group(i);
    const y = r.outputs.Y as number;
    return { ...r, outputs: { Y: g === 'B' && o.biasB ? y * o.biasB : y }, label: labels[i]!, labelTs: o.start, groups: { sex: g } };
  });
}

describe('live fairness per window', () => {
  const reference = fraudReference();

  it("a window's fairness block equals fairnessAudit on the same labeled rows", () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN], fairness: { samples: 300 } });
    const r = seededRandom(5);
    const rows = labeledWindow({ rows: 800, seed: 11, start: T0, group: () => (r() < 0.4 ? 'F' : 'M'), biasB: 0 });
    // A third of the rows carry no group: left out of the audit, counted nowhere.
    rows.forEach((row, i) => core.addLabeled(i % 3 === 2 ? { ...row, groups: undefined } : row));
    const [w] = core.close(T0 + 2 * 60 * MIN);
    const used = rows.filter((_, i) => i % 3 !== 2);
    const levels = ['F', 'M'];
    const audit = fairnessAudit(
      used.map((x) => x.outputs.Y as number),
      used.map((x) => x.label as number),
      [{ name: 'sex', values: used.map((x) => levels.indexOf(x.groups!.sex!)), levels }],
      reference.threshold ?? 0.5,
      { samples: 300, seed: 1, minGroupSize: 30, intersections: false },
    );
    const f = w!.fairness!;
    expect(f.rows).toBe(used.length);
    expect(f.attributes).toHaveLength(1);
    const { rows: n, ...live } = f.attributes[0]!;
    expect(n).toBe(used.length);
    expect(live).toEqual(audit.attributes[0]);
    expect(live.groups.map((g) => [g.group, g.size])).toEqual(audit.attributes[0]!.groups.map((g) => [g.group, g.size]));
    expect(f.tooSmall).toBeUndefined();
    expect(f.verdict).toBeUndefined(); // no policy
  });

  it('a biased model raises a fairness alert naming metric, attribute, groups and interval (once per window)', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN], fairness: { samples: 300 } });
    core.fairnessPolicy = { disparateImpact: { min: 0.8 } };
    for (const row of labeledWindow({ rows: 1200, seed: 12, start: T0, group: (i) => (i % 2 ? 'A' : 'B'), biasB: 0.3 })) core.addLabeled(row);
    const [w] = core.close(T0 + 2 * 60 * MIN);
    const alerts = core.takeAlerts().filter((a) => a.rule === AlertRule.FAIRNESS);
    expect(alerts).toHaveLength(1);
    const a = alerts[0]!;
    expect(a).toMatchObject({ rule: 'fairness', statistic: 'disparateImpact', attribute: 'sex', groups: ['B', 'A'], threshold: 0.8, severity: 'critical' });
    expect(a.interval![1]!).toBeLessThan(0.8); // the whole interval below the bound
    expect(a.message).toMatch(/disparateImpact .* for sex \(groups B vs A\)/);
    expect(w!.fairness!.verdict!.pass).toBe(false);
    // More labels for the same window re-judge it: the alert is not raised twice.
    core.addLabeled({ ...labeledWindow({ rows: 1, seed: 13, start: T0, group: () => 'A' })[0]!, id: 'late-1' });
    core.rejudge(T0 + 3 * 60 * MIN);
    expect(core.takeAlerts()).toEqual([]);
  });

  // (Rare positives make the selection-rate metrics unstable: a group with no positive prediction
  // in a window has a disparate impact of 0 in every resample. The traffic here selects about half.)
  it('two groups that behave alike raise no fairness alert over 24 windows', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [5 * MIN], fairness: { samples: 200 } });
    core.fairnessPolicy = { demographicParityDifference: { max: 0.1 }, equalizedOddsDifference: { max: 0.2 }, disparateImpact: { min: 0.8 } };
    const r = seededRandom(77);
    let judged = 0;
    for (let k = 0; k < 24; k++) {
      const start = T0 + k * 5 * MIN;
      // Scores uniform on [0, 1] and labels drawn from them, whatever the group: the model treats both alike.
      for (const row of labeledWindow({ rows: 600, seed: 100 + k, start, group: () => (r() < 0.5 ? 'A' : 'B') })) {
        const y = r();
        core.addLabeled({ ...row, outputs: { Y: y }, label: r() < y ? 1 : 0 });
      }
      for (const w of core.close(start + 5 * MIN + 20_000)) if (w.fairness && !w.fairness.tooSmall) judged++;
    }
    expect(judged).toBe(24);
    expect(core.takeAlerts().filter((a) => a.rule === AlertRule.FAIRNESS)).toEqual([]);
  });

  it('a window with too few labeled rows per group is too small to judge, never an alarm', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN], fairness: { samples: 100 } });
    core.fairnessPolicy = { disparateImpact: { min: 0.99 } };
    for (const row of labeledWindow({ rows: 40, seed: 14, start: T0, group: (i) => (i % 2 ? 'A' : 'B'), biasB: 0.1 })) core.addLabeled(row);
    const [w] = core.close(T0 + 2 * 60 * MIN);
    expect(w!.fairness!.tooSmall).toMatch(/too small to judge/);
    expect(w!.fairness!.attributes[0]!.groups.map((g) => [g.group, g.size, g.tooSmall])).toEqual([
      ['A', 20, true],
      ['B', 20, true],
    ]);
    expect(w!.fairness!.verdict).toMatchObject({ pass: true, violations: [] });
    expect(w!.fairness!.verdict!.notes.join(' ')).toMatch(/too small to judge/);
    expect(core.takeAlerts()).toEqual([]);
  });

  it('groups survive a checkpoint: a restored monitor computes the same fairness block', () => {
    const spec = { windows: [60 * MIN], fairness: { samples: 100 } };
    const a = new MonitorCore('fraud', 1, reference, spec);
    const rows = labeledWindow({ rows: 300, seed: 15, start: T0, group: (i) => (i % 3 ? 'A' : 'B') });
    rows.slice(0, 200).forEach((r) => a.addLabeled(r));
    const b = new MonitorCore('fraud', 1, reference, spec).restore(decode(encode(a.toJSON(), ContentType.MSGPACK), ContentType.MSGPACK) as ReturnType<MonitorCore['toJSON']>);
    for (const core of [a, b]) rows.slice(200).forEach((r) => core.addLabeled(r));
    const [wa] = a.close(T0 + 2 * 60 * MIN);
    const [wb] = b.close(T0 + 2 * 60 * MIN);
    expect(wb!.fairness!.rows).toBe(300);
    expect(wb!.fairness).toEqual(wa!.fairness);
  });

  it('alarm mode is "demonstrably outside", the gate "demonstrably within": an interval across the bound passes one and fails the other', () => {
    const policy: FairnessPolicy = { demographicParityDifference: { max: 0.1 } };
    const audit = {
      format: 'shoal-fairness/1' as const,
      rows: 100,
      threshold: 0.5,
      minGroupSize: 10,
      bootstrap: { samples: 100, seed: 1, confidence: 0.95 },
      attributes: [
        {
          attribute: 'sex',
          groups: [],
          judgedGroups: 2,
          summary: { demographicParityDifference: { value: 0.09, low: 0.02, high: 0.16, used: 100 }, equalizedOddsDifference: { value: 0, low: 0, high: 0, used: 100 }, disparateImpact: { value: 1, low: 1, high: 1, used: 100 } },
        },
      ],
    };
    expect(judge(policy, audit).pass).toBe(false);
    expect(judge(policy, audit, 'w', 'alarm').pass).toBe(true);
    audit.attributes[0]!.summary.demographicParityDifference = { value: 0.2, low: 0.12, high: 0.3, used: 100 };
    expect(judge(policy, audit, 'w', 'alarm').violations.map((v) => v.metric)).toEqual(['demographicParityDifference']);
  });

  it('feedback groups: declared attributes only, string values of at most 64 characters, never echoed', () => {
    const rule = { type: 'number' as const, declared: false, attributes: ['sex', 'age_band'] };
    expect(checkFeedback({ id: 'a', label: 1, groups: { sex: 'F' } }, rule)).toEqual([{ id: 'a', label: 1, groups: { sex: 'F' } }]);
    expect(checkFeedback([{ id: 'a', label: 1 }], rule)).toEqual([{ id: 'a', label: 1 }]);
    expect(() => checkFeedback([{ id: 'a', label: 1 }, { id: 'b', label: 0, groups: { religion: 'x' } }], rule)).toThrow(/\[1\]\.groups\.religion: unknown attribute \(the model declares "sex", "age_band"\)/);
    expect(() => checkFeedback({ id: 'a', label: 1, groups: { sex: 'F'.repeat(65) } }, rule)).toThrow(/groups\.sex: the group must be a string of 1 to 64 characters/);
    expect(() => checkFeedback({ id: 'a', label: 1, groups: { sex: 3 } }, rule)).toThrow(/groups\.sex: the group must be a string/);
    expect(() => checkFeedback({ id: 'a', label: 1, groups: ['F'] }, rule)).toThrow(/groups: must be an object/);
    expect(() => checkFeedback({ id: 'a', label: 1, groups: { sex: 'F' } }, { type: 'number', declared: false })).toThrow(/groups\.sex: unknown attribute \(the model declares no sensitive attribute\)/);
    try {
      checkFeedback({ id: 'a', label: 1, groups: { sex: 'secret-value-that-is-way-too-long-to-be-a-group-name-at-all-really' } }, rule);
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-value');
    }
  });
});
