/**
 * The pipeline's shadow stage (ml/pipelines/shadow-stage.ts) on a virtual clock, against a real
 * nats-server answering `shoal.sched.shadow-report` with sums the test chooses, and a stand-in
 * for the deployments (the real placement is exercised in test/e2e/pipeline-shadow.test.ts):
 * skipped when there is nothing to shadow, judged only after `durationMs` from the track's
 * `since`, a shadow already at the candidate reused (a resumed run starts no second one), too few
 * rows by `maxWaitMs` fails the stage, and the shadow is cleared in every outcome.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Subscription } from '@nats-io/transport-node';
import { Role, VirtualClock, createLogger, ensureResources, serve, subjects, type NatsConnection } from '../../cluster/index.ts';
import { SHADOW_BINS, ShadowReportRequest, validatePipelineSpec, type Deployment, type RunRecord, type ShadowCounts } from '../../ml/index.ts';
import { shadowStage } from '../../ml/pipelines/shadow-stage.ts';
import { startTestNats, type TestNats } from '../harness/nats.ts';
import { until } from '../harness/wait.ts';

const log = createLogger({ level: 'silent' });
const lookups = { modelMetrics: async () => ['auc'], datasetExists: async () => true, viewExists: async () => true };
const T0 = 1_000_000;
const track = (version: number) => ({ version, service: `model-m-v${version}`, replicas: 1, state: 'ready' as const, maxBatchSize: 32, maxQueueDelayMs: 0, since: T0 });
const hist = (bins: Record<number, number>) => Array.from({ length: SHADOW_BINS }, (_, i) => bins[i] ?? 0);

/** The deployment record and the calls the stage made on it. */
function fakeDeployments(dep: Deployment | undefined) {
  const calls: string[] = [];
  const state = { dep };
  const api = {
    get: async () => state.dep,
    shadow: async (_m: string, o: { version: number; fraction: number }) => {
      calls.push(`shadow v${o.version} ${o.fraction}`);
      state.dep = { ...state.dep!, shadow: { ...track(o.version), fraction: o.fraction } };
      return state.dep;
    },
    clearShadow: async (_m: string, reason: string, v?: number) => {
      calls.push(`clear v${v} ${reason}`);
      if (state.dep && state.dep.shadow?.version === v) delete state.dep.shadow;
      return true;
    },
  };
  return { api, calls, state };
}

describe('pipeline shadow stage', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let responder: Subscription;
  const asked: ShadowReportRequest[] = [];
  let sums: Omit<ShadowCounts, 'model' | 'version' | 'since' | 'stable'> = { compared: 0, agreed: 0, errors: 0, dropped: 0, stableHist: hist({}), shadowHist: hist({}) };

  const run = async (spec: object, candidate = 2): Promise<RunRecord> => {
    const s = await validatePipelineSpec({ name: 'p', model: 'm', data: { dataset: 'd' }, ...spec }, lookups);
    return { pipeline: 'p', run: 1, specRevision: 1, spec: s, state: 'shadow', trigger: { kind: 'manual', at: 0 }, coalesced: [], steps: [], candidate: { version: candidate }, updatedAt: 0 };
  };
  const deployed = (extra: Partial<Deployment> = {}): Deployment => ({ model: 'm', stable: track(1), policy: {} as never, history: [], updatedAt: 0, ...extra });
  /** Runs the stage, moving the virtual clock a second at a time whenever the stage waits on it. */
  const drive = async (clock: VirtualClock, p: Promise<unknown>) => {
    let settled = false;
    const out = p.then(
      (v) => ((settled = true), { ok: v }),
      (err: unknown) => ((settled = true), { err: err as Error }),
    );
    await until(() => {
      if (settled) return true;
      if (clock.pending > 0) clock.advance(1000);
      return undefined;
    }, 20_000, 'the stage to finish', 5);
    return out;
  };

  beforeAll(async () => {
    nats = await startTestNats();
    nc = await nats.connect(Role.SCHEDULER);
    await ensureResources(nc);
    responder = serve(nc, subjects().scheduler('shadow-report'), ShadowReportRequest, (req) => {
      asked.push(req);
      return { model: req.model, version: req.version, since: req.since, stable: 1, ...sums };
    });
  });
  afterAll(async () => {
    responder?.unsubscribe();
    await nats?.stop();
  });

  it('is skipped without a shadow in the spec, with rollout.direct, without a deployment, or when the candidate already serves', async () => {
    const clock = new VirtualClock(T0);
    const o = (dep: Deployment | undefined) => ({ nc, subjects: subjects(), deployments: fakeDeployments(dep).api as never, log, clock });
    expect(await shadowStage(o(deployed()), await run({}))).toMatchObject({ skipped: true, pass: true, reason: expect.stringMatching(/no shadow/) });
    expect(await shadowStage(o(deployed()), await run({ shadow: {}, rollout: { direct: true } }))).toMatchObject({ skipped: true, reason: expect.stringMatching(/rollout\.direct/) });
    expect(await shadowStage(o(undefined), await run({ shadow: {} }))).toMatchObject({ skipped: true, reason: expect.stringMatching(/not deployed/) });
    expect(await shadowStage(o(deployed()), await run({ shadow: {} }, 1))).toMatchObject({ skipped: true, reason: expect.stringMatching(/v1 already serves/) });
  });

  it('starts the candidate as the shadow, asks for the sums only after durationMs, judges them and clears the shadow', async () => {
    const clock = new VirtualClock(T0);
    const { api, calls, state } = fakeDeployments(deployed());
    sums = { compared: 240, agreed: 230, errors: 1, dropped: 0, stableHist: hist({ 1: 120, 9: 120 }), shadowHist: hist({ 1: 118, 9: 122 }) };
    asked.length = 0;
    const p = shadowStage({ nc, subjects: subjects(), deployments: api as never, log, clock }, await run({ shadow: { fraction: 0.3, durationMs: 5000, minCompared: 200 } }));
    await until(() => (clock.pending > 0 ? true : undefined), 10_000, 'the stage waiting');
    expect(asked).toEqual([]);
    const res = await drive(clock, p);
    expect(res).toMatchObject({ ok: { pass: true, compared: 240, agreement: 230 / 240, errors: 1 } });
    expect(asked[0]).toEqual({ model: 'm', version: 2, since: T0 });
    expect(clock.now()).toBeGreaterThanOrEqual(T0 + 5000);
    expect(calls).toEqual(['shadow v2 0.3', 'clear v2 pipeline p run 1: passed']);
    expect(state.dep?.shadow).toBeUndefined();
  });

  it('a resumed run reuses the shadow already at the candidate; a disagreeing one fails with the reason and is cleared', async () => {
    const clock = new VirtualClock(T0 + 60_000);
    const { api, calls } = fakeDeployments(deployed({ shadow: { ...track(2), fraction: 0.1 } }));
    sums = { compared: 500, agreed: 100, errors: 0, dropped: 0, stableHist: hist({ 0: 500 }), shadowHist: hist({ 19: 500 }) };
    const res = await drive(clock, shadowStage({ nc, subjects: subjects(), deployments: api as never, log, clock }, await run({ shadow: {} })));
    expect(res).toMatchObject({ ok: { pass: false, compared: 500, agreement: 0.2 } });
    expect((res as { ok: { reason: string } }).ok.reason).toMatch(/^shadow: agreement 20\.0% below 90\.0%; score distribution PSI .* above 0\.1 over 500 rows$/);
    expect(calls).toEqual(['clear v2 pipeline p run 1: failed']);
  });

  it('too few rows compared by maxWaitMs fails the stage (the run fails), and the shadow is cleared', async () => {
    const clock = new VirtualClock(T0);
    const { api, calls } = fakeDeployments(deployed());
    sums = { compared: 12, agreed: 12, errors: 0, dropped: 3, stableHist: hist({ 0: 12 }), shadowHist: hist({ 0: 12 }) };
    const res = await drive(clock, shadowStage({ nc, subjects: subjects(), deployments: api as never, log, clock }, await run({ shadow: { durationMs: 2000, maxWaitMs: 6000 } })));
    expect((res as { err: Error }).err.message).toMatch(/12 rows compared, fewer than minCompared 200/);
    expect((res as unknown as { err: { code: string } }).err.code).toBe('SHOAL_ERR_TIMEOUT');
    expect(clock.now()).toBeGreaterThanOrEqual(T0 + 6000);
    expect(calls).toEqual(['shadow v2 0.1', 'clear v2 pipeline p run 1: too few rows']);
  });

  it('a shadow removed by someone else while it runs fails the stage', async () => {
    const clock = new VirtualClock(T0);
    const { api, calls, state } = fakeDeployments(deployed());
    const p = shadowStage({ nc, subjects: subjects(), deployments: api as never, log, clock }, await run({ shadow: { durationMs: 10_000 } }));
    await until(() => (clock.pending > 0 ? true : undefined), 10_000, 'the stage waiting');
    delete state.dep!.shadow;
    const res = await drive(clock, p);
    expect((res as { err: Error }).err.message).toMatch(/removed or replaced/);
    expect(calls).toEqual(['shadow v2 0.1', 'clear v2 pipeline p run 1: removed']);
  });
});
