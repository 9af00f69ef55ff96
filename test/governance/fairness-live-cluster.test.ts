/**
 * Live fairness on labeled traffic (issue #20 part 2) on a real cluster: a real nats-server, a
 * scheduler (feedback service and label join by default, registry service), a node process with
 * the replicas (real onnxruntime) and the monitor actors, the gateway in-process. The fraud model
 * is registered with a reference profile whose decision threshold is the traffic's median score
 * and whose fairness audit declares `age_band`, and a disparate-impact policy (four-fifths rule).
 * Traffic is served, then labeled through the feedback API with each row's `age_band` group —
 * the model's scores depend on account age, so the young band is selected far more often.
 *
 * Checked: `groups` naming an undeclared attribute is a 400 naming it; the window's `fairness`
 * block has the per-group numbers (n per group) in `GET /v1/models/{m}/monitoring`; a `fairness`
 * alert on `shoal.events.alert` names metric, attribute, groups and interval; the
 * `shoal_model_fairness` gauge has the attribute name and no group value.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActorClient, subjects } from '../../cluster/index.ts';
import { AlertRule, RegistryClient, fairnessAudit, modelMonitoring, monitorId, type Alert, type MonitorStatus, type WindowReport } from '../../ml/index.ts';
import { FRAUD_COLUMNS } from '../../ml/datasets/fraud.ts';
import { formatMonitoring } from '../../cli/monitor.ts';
import type { TestCluster } from '../harness/cluster.ts';
import { startMonitoredCluster, type MonitoredCluster } from '../fixtures/monitor-cluster.ts';
import { until } from '../harness/wait.ts';
import { fraudModel, fraudReference, fraudTraffic, records } from '../fixtures/monitoring-monitor.ts';

const s = subjects();
const KEY = 'test-key-fair-live-01';
const DAY = 86_400_000;
const MODEL = 'fraud-fair-live';
const utf8 = new TextEncoder();

describe('live fairness on labeled traffic (real cluster)', () => {
  let c: TestCluster;
  let m: MonitoredCluster;
  let base = '';
  let actors: ActorClient;
  const alerts: Alert[] = [];

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const ask = <T>(type: 'status' | 'flush') => actors.ref(monitorId(MODEL, 1)).ask<T>({ type }, { timeoutMs: 15_000 });

  beforeAll(async () => {
    m = await startMonitoredCluster({ key: KEY, nodes: [{ id: 'node-f', profile: 'cpu-ondemand' }], alerts });
    ({ c, actors, base } = m);
  }, 180_000);

  afterAll(async () => {
    await m?.stop();
  });

  it('biased labeled traffic with groups: per-group numbers in the monitoring route, a fairness alert, a gauge without group values', async () => {
    const { rows, labels } = fraudTraffic({ rows: 1000, seed: 61 });
    const scores = records(MODEL, 1, rows, () => 0).map((r) => r.outputs.Y as number);
    const threshold = [...scores].sort((a, b) => a - b)[500]!;
    // The reference: decisions at the median score; its audit (on groups drawn independently of
    // everything, so the version passes the gate) declares `age_band`.
    const ref = fraudTraffic({ rows: 2000, seed: 62 });
    const refScores = records(MODEL, 1, ref.rows, () => 0).map((r) => r.outputs.Y as number);
    const audit = fairnessAudit(refScores, ref.labels, [{ name: 'age_band', values: refScores.map((_, i) => i % 2), levels: ['old', 'young'] }], threshold, { intersections: false });
    const reference = { ...fraudReference(), threshold, fairness: audit };
    await c.control.register(MODEL, fraudModel(), { reference: utf8.encode(JSON.stringify(reference)) });
    await new RegistryClient(c.client, s, 'cli:alice').setFairnessPolicy(MODEL, { attributes: ['age_band'], disparateImpact: { min: 0.8 } }, 'four-fifths rule');
    const monitoring = { sampleRate: 1, flushMs: 50, batchRecords: 100, windows: [DAY], fairness: { samples: 300 } };
    await until(async () => (await c.control.deploy(MODEL, { replicas: 1, maxBatchSize: 64, readyTimeoutMs: 30_000, monitoring })).stable.state === 'ready' || undefined, 90_000, `${MODEL} deployed`);
    await until(async () => ((await get(`/v2/models/${MODEL}/ready`)).status === 200 ? true : undefined), 20_000, 'the gateway sees the model');
    await until(() => ask<MonitorStatus>('status'), 60_000, 'the monitor answers');

    const ids: string[] = [];
    for (let i = 0; i < rows.length; i += 50) {
      const res = await post(`/v1/models/${MODEL}/predict`, { instances: rows.slice(i, i + 50) });
      expect(res.status).toBe(200);
      const id = res.headers.get('x-request-id')!;
      for (let k = 0; k < Math.min(50, rows.length - i); k++) ids.push(`${id}:${k}`);
    }
    // The group of each row: its account age below the median (young) or not (old).
    const ai = FRAUD_COLUMNS.indexOf('account_age');
    const median = rows.map((r) => r[ai]!).sort((a, b) => a - b)[500]!;
    const band = (i: number) => (rows[i]![ai]! < median ? 'young' : 'old');

    // An attribute the model does not declare: a 400 naming it, nothing stored.
    const bad = await post(`/v1/models/${MODEL}/feedback`, [{ id: ids[0], label: 0, groups: { age_band: 'young' } }, { id: ids[1], label: 0, groups: { religion: 'x' } }]);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/\[1\]\.groups\.religion: unknown attribute \(the model declares "age_band"\)/);

    for (let i = 0; i < ids.length; i += 200) {
      const res = await post(`/v1/models/${MODEL}/feedback`, ids.slice(i, i + 200).map((id, k) => ({ id, label: labels[i + k]!, groups: { age_band: band(i + k) } })));
      expect(res.status).toBe(200);
    }
    await until(async () => {
      const st = await ask<MonitorStatus>('status');
      return st.counters.records >= 1000 && st.counters.labeled >= 1000 ? true : undefined;
    }, 60_000, 'the monitor took the predictions and their labels');
    const [w] = await ask<WindowReport[]>('flush');
    const f = w!.fairness!;
    expect(f.rows).toBe(1000);
    const a = f.attributes.find((x) => x.attribute === 'age_band')!;
    expect(a.groups.map((g) => [g.group, g.size, g.tooSmall])).toEqual([
      ['old', 500, false],
      ['young', 500, false],
    ]);
    expect(a.summary.disparateImpact.value).toBeLessThan(0.8);

    // The alert: rule fairness, the metric, the attribute, the groups (lowest selection first), the interval.
    const alert = await until(() => alerts.find((x) => x.model === MODEL && x.rule === AlertRule.FAIRNESS), 20_000, 'the fairness alert');
    expect(alert).toMatchObject({ statistic: 'disparateImpact', attribute: 'age_band', groups: ['old', 'young'], threshold: 0.8, window: '1d' });
    expect(alert.interval![1]!).toBeLessThan(0.8);

    // The monitoring route shows the per-group numbers.
    const mon = (await (await get(`/v1/models/${MODEL}/monitoring`)).json()) as { versions: { windows: WindowReport[] }[] };
    const shown = mon.versions[0]!.windows.find((x) => x.fairness)!.fairness!.attributes[0]!;
    expect(shown.groups.map((g) => [g.group, g.size])).toEqual([
      ['old', 500],
      ['young', 500],
    ]);
    expect(shown.summary.disparateImpact.high).toBeLessThan(0.8);

    // `shoal monitor` prints the per-group numbers and the alert.
    const text = formatMonitoring((await modelMonitoring(c.client, s, MODEL))!);
    expect(text).toMatch(/fairness \(1000 labeled rows with groups, groups under 30 rows not judged\)/);
    expect(text).toMatch(/age_band: old n=500 sel [0-9.]+, young n=500 sel [0-9.]+/);
    expect(text).toMatch(/disparate impact 0\.[0-9]+ \[/);
    expect(text).toMatch(/ALERT critical fairness: fairness in the 1d window: disparateImpact/);

    // The gauge: attribute name only, never a group value.
    const line = await until(async () => (await (await get('/metrics')).text()).split('\n').find((l) => l.startsWith(`shoal_model_fairness{model="${MODEL}"`) && l.includes('metric="disparateImpact"')), 20_000, 'the fairness gauge');
    expect(line).toContain('attribute="age_band"');
    expect(line).not.toMatch(/young|old/);
    expect(Number(line.split(' ').pop())).toBeCloseTo(a.summary.disparateImpact.value, 6);
  }, 240_000);
});
