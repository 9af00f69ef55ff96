/**
 * The monitor's windows and rules (ml/monitoring/monitor-core.ts) on a VirtualClock: windows by
 * record time close by the clock or by newer records; drift is flagged on the features the fraud
 * generator's drift knob shifts and not on the others; undrifted traffic over 40 windows raises
 * few false alarms; the confidence-drop rule fires; CBPE's estimate tracks the labeled accuracy on
 * shifted data and its drop alerts before labels come; labels that come after their window closed
 * give the quality an offline computation gives; a checkpointed state resumes to the same
 * results; webhooks are retried with backoff.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../cluster/index.ts';
import { AlertRule, MonitorCore, Webhooks, windowName, type Alert, type LabeledRecord } from '../../ml/index.ts';
import { binaryQuality } from '../../ml/monitoring/stats/index.ts';
import { FRAUD_COLUMNS } from '../../ml/datasets/fraud.ts';
import { fraudReference, fraudTraffic, records, unsureTraffic } from '../fixtures/monitoring-monitor.ts';

const MIN = 60_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % (60 * MIN)); // an hour boundary
const SHIFTED = ['log_amount', 'account_age', 'distance_from_home'];
const UNSHIFTED = ['tx_last_24h', 'hour_sin', 'hour_cos'];

describe('monitor core: windows, drift, confidence, quality (virtual clock)', () => {
  const reference = fraudReference();

  it('names windows', () => {
    expect([300_000, 3_600_000, 86_400_000, 90_000, 1500].map(windowName)).toEqual(['5m', '1h', '1d', '90s', '1500ms']);
  });

  it('tumbling windows by record time close when the clock passes their end plus the lateness, or on newer records; late records are counted', () => {
    const clock = new VirtualClock(T0);
    const core = new MonitorCore('fraud', 1, reference, { windows: [5 * MIN, 60 * MIN], latenessMs: 10_000 });
    const { rows } = fraudTraffic({ rows: 100, seed: 7 });
    // 100 rows over the first 5 minutes.
    for (const r of records('fraud', 1, rows, (i) => T0 + i * 3000)) core.addPrediction(r);
    // Another version's records are not this monitor's.
    for (const r of records('fraud', 2, rows.slice(0, 5), () => T0)) core.addPrediction(r);
    expect(core.counters.records).toBe(100);
    expect(core.openWindows().map((w) => [w.window, w.rows])).toEqual([
      ['5m', 100],
      ['1h', 100],
    ]);
    clock.advance(5 * MIN + 9_999);
    expect(core.close(clock.now())).toEqual([]);
    clock.advance(1);
    const closed = core.close(clock.now());
    expect(closed.map((w) => [w.window, w.start, w.end, w.rows, w.partial])).toEqual([['5m', T0, T0 + 5 * MIN, 100, false]]);
    // A record for the closed window is late (it still counts in the open hour); one an hour later closes the hour window by record time.
    core.addPrediction(records('fraud', 1, rows.slice(0, 1), () => T0 + MIN)[0]!);
    expect(core.counters).toMatchObject({ late: 1, records: 101 });
    core.addPrediction(records('fraud', 1, rows.slice(0, 1), () => T0 + 61 * MIN)[0]!);
    const byRecords = core.close(clock.now());
    expect(byRecords.map((w) => [w.window, w.start, w.rows])).toEqual([['1h', T0, 101]]);
    // Flush closes what is open now, marked partial.
    const flushed = core.close(clock.now(), true);
    expect(flushed.map((w) => [w.window, w.rows, w.partial])).toEqual([
      ['5m', 1, true],
      ['1h', 1, true],
    ]);
    expect(flushed[0]!.skipped).toMatch(/fewer than minRows/);
  });

  it('flags drift on the shifted features (mapped by position from X_<j>) and not on the unshifted ones, with alerts', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN] });
    for (const r of records('fraud', 1, fraudTraffic({ rows: 600, seed: 32, drift: 1 }).rows, (i) => T0 + i)) core.addPrediction(r);
    const [w] = core.close(T0 + 61 * MIN);
    const byName = new Map(w!.drift!.features.map((f) => [f.feature, f]));
    expect([...byName.keys()]).toEqual(FRAUD_COLUMNS);
    for (const f of SHIFTED) expect(byName.get(f)!.drifted, f).toBe(true);
    for (const f of UNSHIFTED) expect(byName.get(f)!.drifted, f).toBe(false);
    expect(byName.get('log_amount')!.test).toBe('ks');
    const alerts = core.takeAlerts();
    const featureAlerts = alerts.filter((a) => a.rule === AlertRule.FEATURE_DRIFT).map((a) => a.feature);
    expect(featureAlerts).toEqual(expect.arrayContaining(SHIFTED));
    for (const f of UNSHIFTED) expect(featureAlerts).not.toContain(f);
    const a = alerts.find((x) => x.feature === 'log_amount')!;
    expect(a).toMatchObject({ severity: 'warning', model: 'fraud', version: 1, window: '1h', windowStart: T0, statistic: 'ks', threshold: 0.05 });
    expect(a.value).toBeLessThan(0.05);
    expect(core.takeAlerts()).toEqual([]);
  });

  it('undrifted traffic over 40 windows: at most 5 % of windows raise any drift alert, none a dataset-drift alert', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [5 * MIN], latenessMs: 0 });
    const { rows } = fraudTraffic({ rows: 40 * 200, seed: 77 });
    for (const r of records('fraud', 1, rows, (i) => T0 + Math.floor(i / 200) * 5 * MIN + (i % 200))) core.addPrediction(r);
    const closed = core.close(T0 + 41 * 5 * MIN);
    expect(closed).toHaveLength(40);
    const alerts = core.takeAlerts();
    const alarmed = new Set(alerts.filter((a) => a.rule === AlertRule.FEATURE_DRIFT || a.rule === AlertRule.PREDICTION_DRIFT || a.rule === AlertRule.DATASET_DRIFT).map((a) => a.windowStart));
    expect(alarmed.size / 40).toBeLessThanOrEqual(0.05);
    expect(alerts.filter((a) => a.rule === AlertRule.DATASET_DRIFT)).toEqual([]);
    expect(closed.every((w) => w.drift && !w.drift.datasetDrift)).toBe(true);
  });

  it('the confidence-drop rule fires on rows near the decision boundary, not on ordinary ones', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN] });
    for (const r of records('fraud', 1, unsureTraffic({ rows: 300, seed: 5 }), (i) => T0 + i)) core.addPrediction(r);
    for (const r of records('fraud', 1, fraudTraffic({ rows: 300, seed: 6 }).rows, (i) => T0 + 60 * MIN + i)) core.addPrediction(r);
    const [unsure, ordinary] = core.close(T0 + 200 * MIN);
    expect(unsure!.confidence!.fired).toBe(true);
    expect(ordinary!.confidence!.fired).toBe(false);
    const drops = core.takeAlerts().filter((a) => a.rule === AlertRule.CONFIDENCE_DROP);
    expect(drops.map((a) => a.windowStart)).toEqual([T0]);
    expect(drops[0]).toMatchObject({ severity: 'critical', statistic: 'mean-confidence' });
    // CBPE ran on the scores.
    expect(ordinary!.estimated!.rows).toBe(300);
  });

  it('labels after their window closed update its quality, equal to an offline computation on the same rows', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [5 * MIN, 60 * MIN] });
    const { rows, labels } = fraudTraffic({ rows: 500, seed: 41, drift: 0.5 });
    const recs = records('fraud', 1, rows, (i) => T0 + i * 100);
    for (const r of recs) core.addPrediction(r);
    expect(core.close(T0 + 2 * 60 * MIN)).toHaveLength(2);
    // Days later: labels for 400 of the rows, in a shuffled order.
    const order = Array.from({ length: 400 }, (_, i) => (i * 7) % 500);
    for (const i of order) core.addLabeled({ ...recs[i]!, label: labels[i]!, labelTs: T0 + 3 * 86_400_000 } as LabeledRecord);
    expect(core.rejudge(T0 + 3 * 86_400_000).map((w) => w.window).sort()).toEqual(['1h', '5m']);
    const hour = core.reports().find((w) => w.window === '1h')!;
    expect(hour.labeled).toBe(400);
    const offline = binaryQuality(
      order.map((i) => recs[i]!.outputs.Y as number),
      order.map((i) => labels[i]!),
      { threshold: 0.5 },
    );
    expect(hour.quality).toEqual(offline);
    // A label whose window is no longer kept is counted, not an error.
    const tiny = new MonitorCore('fraud', 1, reference, { windows: [5 * MIN], keepWindows: 1 });
    tiny.addPrediction(recs[0]!);
    tiny.close(T0 + 10 * MIN);
    tiny.addPrediction({ ...recs[1]!, ts: T0 + 20 * MIN });
    tiny.close(T0 + 30 * MIN);
    tiny.addLabeled({ ...recs[0]!, label: 1, labelTs: 0 } as LabeledRecord);
    expect(tiny.counters.labeledTooLate).toBe(1);
  });

  it('estimated performance (CBPE) tracks the labeled one on shifted data within 0.02 accuracy, and its drop alerts before labels come', () => {
    const core = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN], quality: { metric: 'accuracy', maxDrop: 0.05, minRows: 100 } });
    const data = [0, 0.5, 1].map((drift, k) => ({ drift, ...fraudTraffic({ rows: 3000, seed: 51 + k, drift }) }));
    const recs = data.map((d, k) => records('fraud', 1, d.rows, (i) => T0 + k * 60 * MIN + i, `d${k}-`));
    for (const rs of recs) for (const r of rs) core.addPrediction(r);
    const windows = core.close(T0 + 4 * 60 * MIN);
    expect(windows).toHaveLength(3);
    // Before labels: only the most shifted window's estimate is more than 0.05 below the reference's accuracy.
    const early = core.takeAlerts().filter((a) => a.rule === AlertRule.ESTIMATED_QUALITY_DROP);
    expect(early.map((a) => a.windowStart)).toEqual([T0 + 2 * 60 * MIN]);
    expect(early[0]).toMatchObject({ statistic: 'accuracy', severity: 'warning' });
    // The labels come: the labeled accuracy is where the estimate said.
    data.forEach((d, k) => recs[k]!.forEach((r, i) => core.addLabeled({ ...r, label: d.labels[i]!, labelTs: 0 } as LabeledRecord)));
    const judged = core.rejudge(T0 + 5 * 60 * MIN).sort((a, b) => a.start - b.start);
    for (const w of judged) {
      expect(w.quality!.rows).toBe(3000);
      expect(Math.abs(w.estimated!.accuracy - w.quality!.accuracy.value), w.window).toBeLessThan(0.02);
    }
    expect(judged[0]!.estimated!.accuracy - judged[2]!.estimated!.accuracy).toBeGreaterThan(0.05);
    expect(core.takeAlerts().filter((a) => a.rule === AlertRule.QUALITY_DROP).map((a) => a.windowStart)).toEqual([T0 + 2 * 60 * MIN]);
  });

  it('a state saved mid-window and restored gives the same reports as an uninterrupted run', () => {
    const recs = records('fraud', 1, fraudTraffic({ rows: 400, seed: 9, drift: 0.7 }).rows, (i) => T0 + i);
    const whole = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN] });
    for (const r of recs) whole.addPrediction(r);
    const first = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN] });
    for (const r of recs.slice(0, 150)) first.addPrediction(r);
    const resumed = new MonitorCore('fraud', 1, reference, { windows: [60 * MIN] }).restore(JSON.parse(JSON.stringify(first.toJSON())));
    for (const r of recs.slice(150)) resumed.addPrediction(r);
    const a = whole.close(T0 + 2 * 60 * MIN);
    const b = resumed.close(T0 + 2 * 60 * MIN);
    expect(b).toEqual(a);
    expect(resumed.counters).toEqual(whole.counters);
  });
});

describe('alert webhooks', () => {
  let server: Server;
  let url = '';
  const got: { status: number; body: Alert }[] = [];
  let answers: number[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        const status = answers.shift() ?? 200;
        got.push({ status, body: JSON.parse(body) as Alert });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const alert = (id: string): Alert => ({ id, at: 1, severity: 'critical', rule: AlertRule.DATASET_DRIFT, model: 'fraud', version: 1, window: '5m', windowStart: 0, windowEnd: 300_000, statistic: 'share', value: 0.6, threshold: 0.5, message: 'm' });

  it('retries 5xx and 429 with backoff until delivered; a 4xx is not retried; an unreachable URL is counted as failed', async () => {
    const hooks = new Webhooks([url], { backoffMs: 1, attempts: 4 });
    answers = [503, 429, 200];
    hooks.send(alert('a1'));
    await hooks.idle();
    expect(got.map((g) => [g.status, g.body.id])).toEqual([
      [503, 'a1'],
      [429, 'a1'],
      [200, 'a1'],
    ]);
    expect(hooks.stats).toEqual({ delivered: 1, failed: 0, retries: 2 });
    answers = [400];
    hooks.send(alert('a2'));
    await hooks.idle();
    expect(hooks.stats).toEqual({ delivered: 1, failed: 1, retries: 2 });
    const dead = new Webhooks(['http://127.0.0.1:1/nothing'], { backoffMs: 1, attempts: 2 });
    dead.send(alert('a3'));
    await dead.idle();
    expect(dead.stats).toEqual({ delivered: 0, failed: 1, retries: 1 });
  });
});
