/** Reference profiles: what `buildReferenceProfile` stores, and that it survives JSON and MessagePack. */
import { pack, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { REFERENCE_PROFILE_FORMAT, buildReferenceProfile, driftAgainstReference, inferSchema, outputValue, profileRows, type ReferenceProfile } from '../../ml/monitoring/stats/index.ts';
import { fraudRows } from '../fixtures/monitoring-stats.ts';

describe('reference profiles', () => {
  const rows = fraudRows({ rows: 3000, seed: 4 });

  it('hold per-feature sketches, the prediction distribution and holdout metrics with intervals', () => {
    const p = buildReferenceProfile(rows, undefined, { createdAt: 123, source: { datasetDigest: 'abc' } });
    expect(p).toMatchObject({ format: REFERENCE_PROFILE_FORMAT, createdAt: 123, rows: 3000, threshold: 0.5, source: { datasetDigest: 'abc' } });
    expect(Object.keys(p.profile.features).sort()).toEqual(['account_age', 'category', 'channel', 'distance_from_home', 'hour_cos', 'hour_sin', 'log_amount', 'new_device', 'tx_last_24h']);
    expect(p.profile.features.category!.freq!.n).toBe(3000);
    expect(p.profile.outputs.score!.kll!.n).toBe(3000);
    expect(p.profile.confidence.n).toBe(3000);
    const positives = rows.filter((r) => r.label === true).length;
    expect(p.metrics!.rows).toBe(3000);
    expect(p.metrics!.positives).toBe(positives);
    expect(p.metrics!.recall.n).toBe(positives);
    expect(p.metrics!.auc.lower).toBeLessThan(p.metrics!.auc.value);
    expect(p.metrics!.auc.value).toBeGreaterThan(0.6); // the fixed score ranks fraud better than chance
    expect(p.calibration!.x.length).toBeGreaterThan(1);
    expect(p.estimated!.rows).toBe(3000);
  });

  it('without labels: sketches only; a given schema wins over inference', () => {
    const unlabeled = rows.map(({ label: _, ...r }) => r);
    const p = buildReferenceProfile(unlabeled, { features: { log_amount: 'numeric', tx_last_24h: 'categorical' }, outputs: { score: 'numeric' }, score: 'score' });
    expect(p.metrics).toBeUndefined();
    expect(p.calibration).toBeUndefined();
    expect(Object.keys(p.profile.features)).toEqual(['log_amount', 'tx_last_24h']);
    expect(p.profile.features.tx_last_24h!.kind).toBe('categorical');
  });

  it('round-trips through JSON and MessagePack: the same drift verdicts after the trip', () => {
    const p = buildReferenceProfile(rows, undefined, { createdAt: 0 });
    const viaJson = JSON.parse(JSON.stringify(p)) as ReferenceProfile;
    const viaPack = unpack(pack(p)) as ReferenceProfile;
    const window = profileRows(fraudRows({ rows: 400, seed: 9, drift: 0.7 }), p.schema);
    const verdict = (r: ReferenceProfile) => driftAgainstReference(r, window).features.features.map((f) => [f.feature, f.statistic, f.adjustedPValue, f.drifted]);
    expect(verdict(viaJson)).toEqual(verdict(p));
    expect(verdict(viaPack)).toEqual(verdict(p));
  });

  it('reads outputs of every shape: scalars, [p], [p0, p1], class-probability vectors, labels', () => {
    expect(outputValue(0.3)).toBe(0.3);
    expect(outputValue([0.3])).toBe(0.3);
    expect(outputValue([0.3, 0.7])).toBe(0.7);
    expect(outputValue([0.1, 0.6, 0.3])).toBe('1');
    expect(outputValue('cat')).toBe('cat');
    const s = inferSchema([
      { features: { a: 1, b: 'x', c: true }, outputs: { probs: [0.2, 0.5, 0.3], y: [0.9] } },
      { features: { a: 2, b: 'y', c: false }, outputs: { probs: [0.5, 0.2, 0.3], y: [0.1] } },
    ]);
    expect(s).toEqual({ features: { a: 'categorical', b: 'categorical', c: 'categorical' }, outputs: { probs: 'categorical', y: 'numeric' }, score: 'y' });
  });
});
