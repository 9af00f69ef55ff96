/**
 * The model monitor on a real cluster (issue #15 items 4 and 6): a real nats-server, a scheduler
 * (with the feedback service and the label join, as deployed by default) and a node process
 * hosting the replicas (real onnxruntime) and the monitors; the gateway in-process. The fraud
 * model is registered with its reference profile (the dataset's column names; the replica logs
 * `X_<j>`) and deployed with `monitoring` at sampleRate 1, one deployment per scenario so each
 * monitor sees only its own traffic. Windows are one day long and closed by a flush (`{type:
 * 'flush'}`) once the monitor has consumed every record — no test waits on the wall clock.
 *
 * Checked: traffic from the generator's drift knob is flagged on the shifted features and not on
 * the unshifted ones, with alerts on `shoal.events.alert`, gauges on /metrics and the window in
 * `GET /v1/models/{m}/monitoring`; undrifted traffic raises no dataset-drift alert; labels sent
 * through the feedback API after the window closed give the quality an offline computation gives
 * on the same rows; rows near the decision boundary fire the confidence-drop alert; a monitor
 * that crashes is restarted by its supervisor, and one whose node is SIGKILLed is re-placed on the
 * other node, both resuming from the checkpoint (nothing counted twice, nothing lost).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../cluster/index.ts';
import { ActorClient } from '../../cluster/index.ts';
import { AlertRule, MonitorCore, monitorId, type Alert, type MonitorReport, type MonitorStatus, type WindowReport } from '../../ml/index.ts';
import { binaryQuality } from '../../ml/monitoring/stats/index.ts';
import type { TestCluster } from '../harness/cluster.ts';
import { startMonitoredCluster, type MonitoredCluster } from '../fixtures/monitor-cluster.ts';
import { until } from '../harness/wait.ts';
import { fraudModel, fraudReference, fraudTraffic, records, unsureTraffic } from '../fixtures/monitoring-monitor.ts';

const KEY = 'test-key-monitor-01';
const DAY = 86_400_000;
const utf8 = new TextEncoder();

describe('model monitor (real cluster)', () => {
  let c: TestCluster;
  let m: MonitoredCluster;
  let base = '';
  let actors: ActorClient;
  const alerts: Alert[] = [];
  const reference = fraudReference();

  const post = (path: string, body: unknown) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': KEY }, body: JSON.stringify(body) });
  const get = (path: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': KEY } });
  const ask = <T>(model: string, type: 'status' | 'report' | 'flush') => actors.ref(monitorId(model, 1)).ask<T>({ type }, { timeoutMs: 15_000 });

  /** Registers the fraud model with its reference and deploys it with monitoring on. */
  const deploy = async (name: string, extra: Record<string, unknown> = {}, replicas = 1) => {
    await c.control.register(name, fraudModel(), { reference: utf8.encode(JSON.stringify(reference)) });
    const monitoring = { sampleRate: 1, flushMs: 50, batchRecords: 100, windows: [DAY], ...extra };
    await until(async () => (await c.control.deploy(name, { replicas, maxBatchSize: 64, readyTimeoutMs: 30_000, monitoring })).stable.state === 'ready' || undefined, 90_000, `${name} deployed`);
    await until(async () => ((await get(`/v2/models/${name}/ready`)).status === 200 ? true : undefined), 20_000, `the gateway sees ${name}`);
    await until(() => ask<MonitorStatus>(name, 'status'), 60_000, `${name}'s monitor answers`);
  };

  /** Sends `rows` in requests of 50; returns each row's record id and score. */
  const serve = async (name: string, rows: number[][]): Promise<{ ids: string[]; scores: number[] }> => {
    const ids: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i < rows.length; i += 50) {
      const chunk = rows.slice(i, i + 50);
      const res = await post(`/v1/models/${name}/predict`, { instances: chunk });
      expect(res.status).toBe(200);
      const id = res.headers.get('x-request-id')!;
      const body = (await res.json()) as { predictions: number[][] };
      chunk.forEach((_, k) => {
        ids.push(chunk.length === 1 ? id : `${id}:${k}`);
        scores.push(body.predictions[k]![0]!);
      });
    }
    return { ids, scores };
  };

  /**
   * Waits until the monitor has taken `n` records (`logged` of them, when sampled) and, when the
   * replicas profile (sampled deployments, by the `profiles` default), their profiles of `n` rows;
   * then closes its window.
   */
  const closeAfter = async (name: string, n: number, logged = n): Promise<WindowReport> => {
    const profiled = logged < n ? n : 0;
    await until(async () => {
      const st = await ask<MonitorStatus>(name, 'status');
      return st.counters.records >= logged && st.counters.profiled >= profiled ? true : undefined;
    }, 60_000, `${name}'s monitor consumed ${logged} records and profiles of ${profiled} rows`);
    const closed = await ask<WindowReport[]>(name, 'flush');
    expect(closed).toHaveLength(1);
    return closed[0]!;
  };

  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [join(import.meta.dirname, '..', '..', 'bin', 'shoal.mjs'), ...args], { env: c.nats.env(Role.CLIENT), timeout: 60_000 });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  beforeAll(async () => {
    m = await startMonitoredCluster({ key: KEY, nodes: [{ id: 'node-m', profile: 'cpu-ondemand' }, { id: 'node-n', profile: 'cpu-ondemand' }], alerts });
    ({ c, actors, base } = m);
  }, 180_000);

  afterAll(async () => {
    await m?.stop();
  });

  it('drifted traffic: drift flagged on the shifted features, not on the unshifted ones; alerts, gauges and the monitoring API show it', async () => {
    await deploy('fraud-drift');
    const { rows } = fraudTraffic({ rows: 600, seed: 32, drift: 1 });
    await serve('fraud-drift', rows);
    const w = await closeAfter('fraud-drift', 600);
    // Every request is logged, so the replicas do not profile (the `profiles` default): the monitor tested the records.
    expect(w.source).toBe('log');
    expect(w).toMatchObject({ model: 'fraud-drift', version: 1, window: '1d', rows: 600, partial: true });
    const byName = new Map(w.drift!.features.map((f) => [f.feature, f]));
    // The replica logs X_0…X_14; the monitor tested them under the reference's column names.
    for (const f of ['log_amount', 'account_age', 'distance_from_home']) expect(byName.get(f)?.drifted, f).toBe(true);
    for (const f of ['tx_last_24h', 'hour_sin', 'hour_cos']) expect(byName.get(f)?.drifted, f).toBe(false);
    expect(byName.get('log_amount')!.test).toBe('ks');
    expect(w.drift!.datasetDrift).toBe(true);
    // Alerts on shoal.events.alert: the shifted features and the dataset, none for the unshifted ones.
    const mine = () => alerts.filter((a) => a.model === 'fraud-drift');
    await until(() => (mine().some((a) => a.rule === AlertRule.DATASET_DRIFT) ? true : undefined), 20_000, 'the dataset-drift alert');
    const featureAlerts = mine().filter((a) => a.rule === AlertRule.FEATURE_DRIFT);
    expect(featureAlerts.map((a) => a.feature)).toEqual(expect.arrayContaining(['log_amount', 'account_age', 'distance_from_home']));
    expect(featureAlerts.map((a) => a.feature)).not.toContain('hour_sin');
    expect(featureAlerts.find((a) => a.feature === 'log_amount')).toMatchObject({ severity: 'warning', version: 1, window: '1d', statistic: 'ks', threshold: 0.05 });
    // The gateway's gauges (from the monitor's published report).
    const metrics = await until(async () => {
      const text = await (await get('/metrics')).text();
      return text.includes('shoal_model_drift{model="fraud-drift"') ? text : undefined;
    }, 20_000, 'drift gauges on /metrics');
    expect(metrics).toMatch(/shoal_model_drift_detected\{model="fraud-drift",version="1",window="1d",feature="log_amount"\} 1/);
    expect(metrics).toMatch(/shoal_model_drift_detected\{model="fraud-drift",version="1",window="1d",feature="hour_cos"\} 0/);
    expect(metrics).toMatch(/shoal_model_quality\{model="fraud-drift",version="1",window="1d",metric="accuracy",source="estimated"\} 0\.\d+/);
    // GET /v1/models/{m}/monitoring: the latest window per feature, and the monitor's lag.
    const res = await get('/v1/models/fraud-drift/monitoring');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: string; versions: (MonitorReport & { role: string })[] };
    expect(body.versions).toHaveLength(1);
    const v = body.versions[0]!;
    expect(v).toMatchObject({ version: 1, role: 'stable', hasReference: true, counters: { records: 600 } });
    expect(v.lag).toMatchObject({ predictions: 0 });
    const f = v.windows[0]!.drift!.features.find((x) => x.feature === 'log_amount')!;
    expect(f).toMatchObject({ test: 'ks', drifted: true });
    expect(f.adjustedPValue).toBeLessThan(0.05);
    expect((await get('/v1/models/not-deployed/monitoring')).status).toBe(404);
    // `shoal monitor`: the table, and --json.
    const table = await cli(['monitor', 'fraud-drift']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/fraud-drift v1 \(stable\)/);
    expect(table.stdout).toMatch(/log_amount\s+ks\s+\S+\s+\S+\s+0\.05\s+\S+\s+DRIFT/);
    expect(table.stdout).toMatch(/hour_cos\s+ks\s+\S+\s+\S+\s+0\.05\s+\S+\s+ok/);
    expect(table.stdout).toMatch(/dataset drift: YES/);
    const json = await cli(['monitor', 'fraud-drift', '--json']);
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as { versions: MonitorReport[] };
    expect(parsed.versions[0]).toMatchObject({ version: 1, counters: { records: 600 } });
    expect(parsed.versions[0]!.windows[0]!.rows).toBe(600);
    expect((await cli(['monitor', 'not-deployed'])).code).toBe(1);
  }, 240_000);

  it('two replicas profile their own traffic and the monitor merges them: at 10 % sampling its window is all the traffic, tested as one profile of every served row is', async () => {
    await deploy('fraud-two', { sampleRate: 0.1 }, 2);
    const { rows } = fraudTraffic({ rows: 1200, seed: 34, drift: 1 });
    await serve('fraud-two', rows);
    const w = await closeAfter('fraud-two', 1200, 0);
    expect(w).toMatchObject({ rows: 1200, source: 'replicas' });
    // Both replicas' profiles are in the window; the log kept only the sampled part.
    expect(w.replicas).toHaveLength(2);
    expect(w.logged).toBeLessThan(1200);
    // The same rows as records into a monitor core here: the union of the traffic, profiled in one place.
    const offline = new MonitorCore('fraud-two', 1, reference, { windows: [DAY] });
    for (const r of records('fraud-two', 1, rows, () => w.start + 1)) offline.addPrediction(r);
    const [o] = offline.close(w.end + 60_000);
    expect(o).toMatchObject({ rows: 1200, source: 'log' });
    const byName = new Map(o!.drift!.features.map((f) => [f.feature, f]));
    for (const f of w.drift!.features) {
      const a = byName.get(f.feature)!;
      expect([f.test, f.drifted], f.feature).toEqual([a.test, a.drifted]);
      expect(Math.abs(f.statistic - a.statistic), f.feature).toBeLessThanOrEqual(0.02);
    }
    for (const f of ['log_amount', 'account_age', 'distance_from_home']) expect(byName.get(f)?.drifted, f).toBe(true);
    expect(w.confidence!.currentMean).toBeCloseTo(o!.confidence!.currentMean, 6);
  }, 240_000);

  it('monitor options are checked at deploy: a bad one is refused, named', async () => {
    await c.control.register('fraud-bad', fraudModel(), { reference: utf8.encode(JSON.stringify(reference)) });
    await expect(c.control.deploy('fraud-bad', { replicas: 1, monitoring: { windows: [5] } })).rejects.toThrow(/windows/);
    await expect(c.control.deploy('fraud-bad', { replicas: 1, monitoring: { drift: { alpha: 2 } } as never })).rejects.toThrow(/alpha/);
    await expect(c.control.deploy('fraud-bad', { replicas: 1, monitoring: { webhooks: ['ftp://x'] } })).rejects.toThrow(/webhooks/);
  }, 60_000);

  it('undrifted traffic: no dataset-drift alert', async () => {
    await deploy('fraud-calm');
    await serve('fraud-calm', fraudTraffic({ rows: 600, seed: 33 }).rows);
    const w = await closeAfter('fraud-calm', 600);
    expect(w.drift!.datasetDrift).toBe(false);
    expect(w.drift!.drifted).toBe(0);
    expect(w.alerts).toEqual([]);
    await c.client.flush();
    expect(alerts.filter((a) => a.model === 'fraud-calm')).toEqual([]);
  }, 240_000);

  it('rows near the decision boundary fire the confidence-drop alert', async () => {
    await deploy('fraud-unsure');
    await serve('fraud-unsure', unsureTraffic({ rows: 300, seed: 5 }));
    const w = await closeAfter('fraud-unsure', 300);
    expect(w.confidence!.fired).toBe(true);
    expect(w.confidence!.currentMean).toBeLessThan(w.confidence!.referenceMean - 0.02);
    const alert = await until(() => alerts.find((a) => a.model === 'fraud-unsure' && a.rule === AlertRule.CONFIDENCE_DROP), 20_000, 'the confidence-drop alert');
    expect(alert).toMatchObject({ severity: 'critical', statistic: 'mean-confidence', window: '1d', version: 1 });
  }, 240_000);

  it('labels sent after the window closed give the quality an offline computation gives on the same rows; a crashed monitor resumes from its checkpoint', async () => {
    await deploy('fraud-q');
    const { rows, labels } = fraudTraffic({ rows: 400, seed: 41, drift: 0.5 });
    const { ids, scores } = await serve('fraud-q', rows);
    const w = await closeAfter('fraud-q', 400);
    expect(w.labeled).toBe(0);
    expect(w.quality).toBeUndefined();
    // Days later (for the monitor: after its window closed), the labels, through the feedback API.
    for (let i = 0; i < ids.length; i += 100) {
      const res = await post('/v1/models/fraud-q/feedback', ids.slice(i, i + 100).map((id, k) => ({ id, label: labels[i + k]! })));
      expect(res.status).toBe(200);
    }
    const report = await until(async () => {
      const r = await ask<MonitorReport>('fraud-q', 'report');
      return r.windows[0]?.labeled === 400 ? r : undefined;
    }, 60_000, 'the labeled rows reach the closed window');
    const q = report.windows[0]!.quality!;
    const offline = binaryQuality(scores, labels, { threshold: 0.5 });
    expect(q.rows).toBe(400);
    expect(q.confusion).toEqual(offline.confusion);
    for (const m of ['accuracy', 'precision', 'recall', 'auc'] as const) expect(q[m], m).toEqual(offline[m]);
    expect(q.f1.value).toBe(offline.f1.value);
    expect(report.windows[0]!.estimated!.rows).toBe(400);
    await until(async () => ((await (await get('/metrics')).text()).includes('shoal_model_quality{model="fraud-q",version="1",window="1d",metric="auc",source="labeled"}') ? true : undefined), 20_000, 'labeled quality on /metrics');

    // The monitor crashes: its supervisor restarts it, and it resumes from its checkpoint.
    actors.ref(monitorId('fraud-q', 1)).tell({ type: 'crash', message: 'test crash' });
    const after = await until(async () => {
      const st = await ask<MonitorStatus>('fraud-q', 'status');
      return st.restarts >= 1 ? st : undefined;
    }, 60_000, 'the monitor restarted');
    expect(after.counters.records).toBe(400);
    expect(after.counters.labeled).toBe(400);
    expect(after.consumed).toEqual(report.consumed);
    const again = await ask<MonitorReport>('fraud-q', 'report');
    expect(again.windows[0]!.quality).toEqual(q);
    // New traffic after the restart is taken once (a new window: the flushed one is closed).
    await serve('fraud-q', fraudTraffic({ rows: 50, seed: 42 }).rows);
    await until(async () => ((await ask<MonitorStatus>('fraud-q', 'status')).counters.late >= 50 ? true : undefined), 60_000, 'the new records reached the monitor');
    expect((await ask<MonitorStatus>('fraud-q', 'status')).counters.records).toBe(400);
  }, 300_000);

  it('SIGKILL of the node hosting a monitor: it is re-placed on the other node and resumes from its checkpoint', async () => {
    const before = await ask<MonitorReport>('fraud-q', 'report');
    const victim = before.nodeId;
    c.nodes[victim]!.kill('SIGKILL');
    const after = await until(async () => {
      const st = await ask<MonitorReport>('fraud-q', 'report');
      return st.nodeId !== victim ? st : undefined;
    }, 120_000, 'the monitor re-placed away from the killed node');
    expect(after.restarts).toBe(0);
    expect(after.consumed).toEqual(before.consumed);
    expect(after.counters).toEqual(before.counters);
    expect(after.windows[0]!.quality).toEqual(before.windows[0]!.quality);
    expect(after.windows[0]!.drift).toEqual(before.windows[0]!.drift);
  }, 240_000);
});
