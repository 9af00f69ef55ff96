/** Applying a pipeline: each refusal names the field. */
import { describe, expect, it } from 'vitest';
import { parseInterval, validatePipelineSpec, type SpecLookups } from '../../ml/pipelines/index.ts';

const lookups: SpecLookups = {
  modelMetrics: async (m) => (m === 'fraud' ? ['auc', 'f1', 'ece'] : undefined),
  datasetExists: async (d) => d === 'fraud' || d === 'fraud-holdout',
  viewExists: async (v) => v === 'txn_stats' || v === 'outcome',
};
const base = { name: 'fraud-nightly', model: 'fraud', triggers: { interval: '24h' }, data: { dataset: 'fraud' } };
const refusal = async (spec: unknown) => {
  try {
    await validatePipelineSpec(spec, lookups);
  } catch (err) {
    return (err as { code: string; message: string });
  }
  throw new Error('accepted');
};

describe('pipeline spec', () => {
  it('a valid spec gets its defaults (spot training, AUC gate, 5/25/50/100 canary)', async () => {
    const s = await validatePipelineSpec(base, lookups);
    expect(s.training).toMatchObject({ type: 'logreg', spotOk: true });
    expect(s.gates).toMatchObject({ metric: 'auc', maxDrop: 0.01, confidence: 0.95 });
    expect(s.rollout.steps).toEqual([5, 25, 50, 100]);
  });

  it('refuses an unknown model, dataset, view or holdout naming the field', async () => {
    expect(await refusal({ ...base, model: 'nope' })).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/^pipeline model: .*"nope"/) });
    expect((await refusal({ ...base, data: { dataset: 'gone' } })).message).toMatch(/^pipeline data\.dataset: .*"gone"/);
    expect((await refusal({ ...base, data: { view: 'txn_stats' } })).message).toMatch(/^pipeline data\.view: Unexpected property/);
    expect((await refusal({ ...base, gates: { holdout: 'gone' } })).message).toMatch(/^pipeline gates\.holdout: /);
    expect((await refusal({ ...base, data: {} })).message).toMatch(/^pipeline data: /);
  });

  it('takes a feature-view training set; each unknown view, a bad ref, both sources or data.labeled with it is refused naming the field', async () => {
    const features = { features: ['txn_stats@2'], labels: { view: 'outcome', label: 'is_fraud', windowMs: 86_400_000 } };
    const ok = await validatePipelineSpec({ ...base, data: { features } }, lookups);
    expect(ok.data).toEqual({ features });
    const f = (over: Record<string, unknown>) => ({ ...base, data: { features: { ...features, ...over } } });
    expect(await refusal(f({ features: ['txn_stats', 'gone'] }))).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/^pipeline data\.features\.features\.1: feature view "gone" not found/) });
    expect((await refusal(f({ features: ['txn_stats', 'txn_stats@1'] }))).message).toMatch(/^pipeline data\.features\.features\.1: .*appears twice/);
    expect((await refusal(f({ features: ['txn_stats@0'] }))).message).toMatch(/^pipeline data\.features\.features\.0: /);
    expect((await refusal(f({ features: [] }))).message).toMatch(/^pipeline data\.features\.features: /);
    expect((await refusal(f({ labels: { view: 'gone', label: 'is_fraud' } }))).message).toMatch(/^pipeline data\.features\.labels\.view: label view "gone" not found/);
    expect((await refusal(f({ labels: { view: 'outcome' } }))).message).toMatch(/^pipeline data\.features\.labels/);
    expect((await refusal(f({ labels: { view: 'outcome', label: 'is_fraud', windowMs: 10 } }))).message).toMatch(/^pipeline data\.features\.labels\.windowMs: /);
    expect((await refusal(f({ since: 1 }))).message).toMatch(/^pipeline data\.features/);
    expect((await refusal({ ...base, data: { dataset: 'fraud', features } })).message).toMatch(/^pipeline data: name exactly one of data\.dataset or data\.features/);
    expect((await refusal({ ...base, data: { features, labeled: true } })).message).toMatch(/^pipeline data\.labeled: /);
  });

  it('refuses a malformed interval or a cron expression naming triggers.interval', async () => {
    expect((await refusal({ ...base, triggers: { interval: 'every day' } })).message).toMatch(/^pipeline triggers\.interval: /);
    expect((await refusal({ ...base, triggers: { interval: '0 3 * * *' } })).message).toMatch(/^pipeline triggers\.interval: .*cron/);
    expect((await refusal({ ...base, triggers: { interval: '500ms' } })).message).toMatch(/^pipeline triggers\.interval: .*shorter than one second/);
    expect(parseInterval('2s')).toBe(2000);
    expect(parseInterval('1.5h')).toBe(5_400_000);
  });

  it('refuses a gate on a metric the model does not report, naming gates.metric', async () => {
    expect((await refusal({ ...base, gates: { metric: 'rmse' } })).message).toMatch(/^pipeline gates\.metric: model "fraud" does not report "rmse" \(it reports auc, f1, ece\)/);
  });

  it('refuses unknown fields and bad shapes at their path', async () => {
    expect((await refusal({ ...base, rollout: { steps: [50, 25] } })).message).toMatch(/^pipeline rollout\.steps\.1: /);
    expect((await refusal({ ...base, training: { steps: 0 } })).message).toMatch(/^pipeline training\.steps: /);
    expect((await refusal({ ...base, extra: 1 })).message).toMatch(/^pipeline /);
    expect((await refusal({ ...base, name: 'a b' })).message).toMatch(/^pipeline name: /);
  });

  it('a latency gate is optional; a ratio under 1 or too few replayed requests is refused at its path', async () => {
    expect((await validatePipelineSpec({ ...base, gates: { latency: { maxRatio: 2 } } }, lookups)).gates.latency).toEqual({ maxRatio: 2 });
    expect((await refusal({ ...base, gates: { latency: { maxRatio: 0.5 } } })).message).toMatch(/^pipeline gates\.latency\.maxRatio: /);
    expect((await refusal({ ...base, gates: { latency: { requests: 5 } } })).message).toMatch(/^pipeline gates\.latency\.requests: /);
  });

  it('a shadow is optional; when given it gets its defaults, and a bad value is refused at its path', async () => {
    expect((await validatePipelineSpec(base, lookups)).shadow).toBeUndefined();
    expect((await validatePipelineSpec({ ...base, shadow: { fraction: 0.25 } }, lookups)).shadow).toEqual({ fraction: 0.25, durationMs: 30_000, minCompared: 200, minAgreement: 0.9, maxDistance: 0.1, maxWaitMs: 300_000 });
    expect(await refusal({ ...base, shadow: { fraction: 0 } })).toMatchObject({ code: 'SHOAL_ERR_BAD_INPUT', message: expect.stringMatching(/^pipeline shadow\.fraction: /) });
    expect((await refusal({ ...base, shadow: { minAgreement: 1.5 } })).message).toMatch(/^pipeline shadow\.minAgreement: /);
    expect((await refusal({ ...base, shadow: { minCompared: 0 } })).message).toMatch(/^pipeline shadow\.minCompared: /);
    expect((await refusal({ ...base, shadow: { percent: 10 } })).message).toMatch(/^pipeline shadow/);
  });
});
